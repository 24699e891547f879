"""The cosine → similarity curve: its shape, the shipped SFace fit and the evidence it carries."""

from __future__ import annotations

import numpy as np
import pytest

from facetrace.calibration import FMR_ANCHORS, Calibration, load_calibration
from facetrace.errors import ModelError


@pytest.fixture(scope="module")
def sface() -> Calibration:
    return load_calibration("sface-2021dec")


def test_uncalibrated_is_linear() -> None:
    linear = Calibration.uncalibrated("mine-1")
    assert linear.model == "mine-1"
    assert linear.similarity(-1.0) == 0.0
    assert linear.similarity(0.0) == pytest.approx(50.0)
    assert linear.similarity(1.0) == 100.0
    assert linear.cosine_for(75.0) == pytest.approx(0.5)
    assert linear.evidence["uncalibrated"] is True


def test_similarity_accepts_arrays_and_clamps() -> None:
    linear = Calibration.uncalibrated("mine-1")
    values = linear.similarity(np.array([-2.0, -1.0, 0.5, 1.0, 3.0]))
    assert isinstance(values, np.ndarray)
    np.testing.assert_allclose(values, [0.0, 0.0, 75.0, 100.0, 100.0])
    assert isinstance(linear.similarity(0.5), float)


@pytest.mark.parametrize(
    ("cosines", "similarities"),
    [((0.0, 1.0), (0.0,)), ((0.5,), (50.0,)), ((0.0, 0.5, 0.4), (0.0, 50.0, 60.0)), ((0.0, 1.0), (10.0, 10.0))],
    ids=["mismatched", "single", "cosines-decrease", "similarities-flat"],
)
def test_bad_anchors_are_refused(cosines: tuple[float, ...], similarities: tuple[float, ...]) -> None:
    with pytest.raises(ModelError):
        Calibration(model="x-1", cosines=cosines, similarities=similarities)


def test_unknown_model_has_no_calibration() -> None:
    with pytest.raises(ModelError, match="calibrate"):
        load_calibration("nobody-0")


def test_shipped_sface_curve_is_monotonic_and_spans_the_range(sface: Calibration) -> None:
    assert sface.model == "sface-2021dec"
    assert sface.cosines[0] == -1.0
    assert sface.cosines[-1] == 1.0
    assert sface.similarities[0] == 0.0
    assert sface.similarities[-1] == 100.0
    assert all(b > a for a, b in zip(sface.cosines, sface.cosines[1:], strict=False))
    assert "provisional" not in sface.evidence


@pytest.mark.parametrize("similarity", [50.0, 70.0, 80.0, 90.0, 95.0, 99.0])
def test_cosine_for_inverts_similarity(sface: Calibration, similarity: float) -> None:
    cosine = sface.cosine_for(similarity)
    assert sface.similarity(cosine) == pytest.approx(similarity, abs=1e-6)
    assert sface.similarity(cosine - 0.01) < similarity


def test_evidence_backs_every_fmr_anchor(sface: Calibration) -> None:
    evidence = sface.evidence
    assert evidence["impostor_pairs"] >= 100_000
    assert evidence["genuine_pairs"] >= 500
    assert "tail" in evidence
    assert "method" in evidence["tail"]
    targets = dict(FMR_ANCHORS)
    for key in ("80", "90", "95", "99"):
        row = evidence["thresholds"][key]
        similarity = float(key)
        assert row["fmr_target"] == targets[similarity]
        assert row["cosine"] == pytest.approx(sface.cosine_for(similarity), abs=1e-4)
        false, total = (int(n) for n in row["impostors_at_or_above"].split("/"))
        assert total == evidence["impostor_pairs"]
        # Measured false matches never exceed the target (extrapolated thresholds are, by construction, above
        # every impostor pair beyond what the target allows).
        assert false / total <= targets[similarity] * 1.01 + 1.0 / total
        assert 0.0 <= row["tmr"] <= 1.0


def test_stricter_thresholds_trade_matches_for_safety(sface: Calibration) -> None:
    rows = sface.evidence["thresholds"]
    tmrs = [rows[key]["tmr"] for key in ("80", "90", "95", "99")]
    assert tmrs == sorted(tmrs, reverse=True)
    assert tmrs[0] > 0.95  # at FMR 1e-3 almost every genuine pair of the labelled sets matches
