"""The cosine → similarity curve: its shape, the shipped SFace fit and the evidence it carries."""

from __future__ import annotations

import numpy as np
import pytest

from facetrace.calibration import FMR_ANCHORS, Calibration, calibration_from_json, load_calibration, pair_quality
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
    assert evidence["impostor_pairs"] >= 1_000_000
    assert evidence["genuine_pairs"] >= 100_000
    targets = dict(FMR_ANCHORS)
    for band in sface.bands:
        fitted = evidence["bands"][band.name]
        assert fitted["min_quality"] == band.min_quality
        assert fitted["impostor_pairs"] >= 100_000
        for key in ("80", "90", "95", "99"):
            assert fitted["cosine_at"][key] == pytest.approx(band.curve.cosine_for(float(key)), abs=1e-4)
            row = evidence["in_sample"]["by_band"][band.name][key]
            false, total = (int(n) for n in row["impostors_at_or_above"].split("/"))
            # Measured false matches never exceed the target (extrapolated thresholds are, by construction,
            # above every impostor pair beyond what the target allows).
            assert false / total <= targets[float(key)] * 1.01 + 1.0 / total


def test_held_out_figures_meet_the_targets(sface: Calibration) -> None:
    """The shipped document's own held-out report (people and photos the split's curve never saw)."""
    held_out = sface.evidence["held_out"]
    clear = held_out["lfw_clear"]["99"]
    assert clear["fmr_95ci"][1] <= 3e-6
    assert clear["tmr_per_person"] >= 0.75
    assert held_out["crowd"]["99"]["impostors_at_or_above"].startswith("0/")
    for curve in ("split_curve", "shipped_curve"):
        for wrong in sface.evidence["labelled_sets_wrong_at_99"][curve].values():
            assert wrong.startswith("0/")


def test_stricter_thresholds_trade_matches_for_safety(sface: Calibration) -> None:
    rows = sface.evidence["in_sample"]["all"]
    tmrs = [rows[key]["tmr_per_pair"] for key in ("80", "90", "95", "99")]
    assert tmrs == sorted(tmrs, reverse=True)
    assert tmrs[0] > 0.95  # at FMR 1e-3 almost every genuine pair of the labelled sets matches


def test_clear_faces_get_the_more_lenient_curve(sface: Calibration) -> None:
    low, clear = sface.band(None), sface.band(100.0)
    assert low is sface.bands[0]
    assert clear is sface.bands[-1]
    assert sface.band(0.0) is low
    assert sface.band(float("nan")) is low  # an unreadable quality is an unknown one
    assert sface.band(clear.min_quality) is clear
    assert sface.band(clear.min_quality - 0.01) is not clear
    for threshold in (80.0, 90.0, 95.0, 99.0):
        assert clear.curve.cosine_for(threshold) < low.curve.cosine_for(threshold)
        assert sface.similarity(0.6, 100.0) > sface.similarity(0.6, None)
        # A store query must reach every band a pair with this probe can fall in, and no more.
        assert sface.lenient_cosine_for(threshold, 100.0) == clear.curve.cosine_for(threshold)
        assert sface.lenient_cosine_for(threshold, None) == low.curve.cosine_for(threshold)
        assert sface.lenient_cosine_for(threshold, 0.0) == low.curve.cosine_for(threshold)


def test_pair_quality_is_the_worse_face() -> None:
    assert pair_quality(80.0, 40.0) == 40.0
    assert pair_quality(None, 90.0) is None
    assert pair_quality(90.0, None) is None


def test_the_old_single_curve_format_still_loads() -> None:
    old = {"model": "m-1", "cosines": [-1.0, 0.5, 1.0], "similarities": [0.0, 99.0, 100.0], "evidence": {"x": 1}}
    calibration = calibration_from_json(old)
    assert len(calibration.bands) == 1
    assert calibration.cosine_for(99.0) == 0.5
    assert calibration.cosine_for(99.0, 100.0) == 0.5  # one curve for every quality
    assert calibration.evidence == {"x": 1}


@pytest.mark.parametrize(
    "bands",
    [
        [{"name": "a", "min_quality": 10, "cosines": [-1, 1], "similarities": [0, 100]}],  # first band not at 0
        [{"name": "a", "min_quality": 0, "cosines": [-1, 0.9, 1], "similarities": [0, 50, 100]}],  # not the base
        [
            {"name": "a", "min_quality": 0, "cosines": [-1, 1], "similarities": [0, 100]},
            {"name": "b", "min_quality": 0, "cosines": [-1, 1], "similarities": [0, 100]},  # not increasing
        ],
        [{"name": "a", "min_quality": 0, "cosines": [-1, 1]}],  # no similarities
    ],
)
def test_bad_band_documents_are_refused(bands: list[dict[str, object]]) -> None:
    with pytest.raises(ModelError):
        calibration_from_json({"model": "m-1", "cosines": [-1, 1], "similarities": [0, 100], "bands": bands})
