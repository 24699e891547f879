"""The fitting statistics (``facetrace.calibration_fit``) on real face vectors and known closed forms."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from facetrace.calibration import Calibration, calibration_from_json, calibration_to_json, load_calibration
from facetrace.calibration_fit import (
    MIN_FIT_PAIRS,
    all_pairs,
    clopper_pearson,
    fit_bands,
    fit_curve,
    measure,
    pair_similarity,
)
from facetrace.engine import FaceEngine
from facetrace.errors import InvalidInputError


def test_clopper_pearson_matches_its_closed_forms() -> None:
    # k = 0: the upper bound solves (1 − p)^n = α/2; k = n: the lower bound solves p^n = α/2.
    for n in (68, 4500):
        low, high = clopper_pearson(0, n)
        assert low == 0.0
        assert high == pytest.approx(1 - 0.025 ** (1 / n), rel=1e-9)
        low, high = clopper_pearson(n, n)
        assert low == pytest.approx(0.025 ** (1 / n), rel=1e-9)
        assert high == 1.0
    # The shipped curve's 99 row (docs/accuracy.md); exact bounds are χ² quantiles / 2n:
    # χ²(0.025; 34) = 19.8063, χ²(0.975; 36) = 54.4373.
    low, high = clopper_pearson(17, 23_987_057)
    assert low == pytest.approx(19.8063 / (2 * 23_987_057), rel=1e-4)
    assert high == pytest.approx(54.4373 / (2 * 23_987_057), rel=1e-4)


def test_a_curve_fitted_on_few_real_impostor_pairs_is_valid_and_cautious(
    engine: FaceEngine, photos: dict[str, Path]
) -> None:
    """Six strangers of t1.jpg plus Biden and Tom Hanks: 28 impostor pairs are refused, and with Obama's five
    photos the 68 pairs fit a curve whose thresholds lie above every impostor pair observed."""
    vectors, identity = [], []
    _, guests = engine.analyze(photos["t1.jpg"])
    for number, face in enumerate(guests):
        vectors.append(face.vector)
        identity.append(number)
    for number, name in enumerate(("biden.jpg", "Tom_Hanks_54745.png"), start=len(guests)):
        vectors.append(engine.analyze(photos[name], max_faces=1)[1][0].vector)
        identity.append(number)
    few = all_pairs(np.asarray(vectors), np.asarray(identity), np.full(len(vectors), 100.0), ())
    assert len(few.impostors) == math.comb(8, 2) == 28 < MIN_FIT_PAIRS
    with pytest.raises(InvalidInputError):
        fit_curve(few.impostors.astype(np.float64))

    for name in ("obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg", "obama_partial_face2.jpg"):
        vectors.append(engine.analyze(photos[name], max_faces=1)[1][0].vector)
        identity.append(99)
    pairs = all_pairs(np.asarray(vectors), np.asarray(identity), np.full(len(vectors), 100.0), ())
    assert (len(pairs.impostors), len(pairs.genuines)) == (68, 10)
    calibration, evidence = fit_bands(pairs, (), "sface-2021dec")
    assert [b.name for b in calibration.bands] == ["all"]
    assert evidence["all"]["threshold_from"]["99"] != "empirical"  # type: ignore[index]
    assert calibration.cosine_for(80.0) > float(pairs.impostors.max())  # no observed impostor reaches 80
    rows = measure(calibration, pairs)
    assert rows["80"]["impostors_at_or_above"] == "0/68"
    # the document round-trips through JSON
    again = calibration_from_json(calibration_to_json(calibration))
    assert again.bands == calibration.bands


def test_pair_similarity_scores_each_pair_on_its_band() -> None:
    shipped = load_calibration("sface-2021dec")
    cosines = np.asarray([0.5, 0.5], dtype=np.float32)
    scored = pair_similarity(shipped, cosines, np.asarray([0, 1], dtype=np.int8))
    assert scored[0] == pytest.approx(shipped.similarity(0.5, 0.0))
    assert scored[1] == pytest.approx(shipped.similarity(0.5, 100.0))
    assert scored[1] > scored[0]  # the clear curve is the less cautious
    one = Calibration("x-1", shipped.cosines, shipped.similarities)  # one band scores every pair alike
    assert np.all(pair_similarity(one, cosines, np.asarray([0, 1], dtype=np.int8)) == scored[0])
