"""Turning a cosine between identity vectors into a 0–100 similarity whose thresholds mean something.

A raw cosine means different things for different models, and for one model different things for faces of
different quality: impostor cosines between small, uncertain crowd faces run far higher than between clear
ones. facetrace maps a cosine through a monotonic, piecewise-linear curve fitted per model *and per quality
band* by ``benchmarks/calibrate.py`` on millions of impostor pairs (faces of different people), so that a
similarity threshold corresponds to a measured false match rate whatever the faces' quality:

    similarity  80 ↔ FMR 1e-3     90 ↔ 1e-4     95 ↔ 1e-5     99 ↔ 1e-6

A pair is scored with the curve of its worse face (``pair_quality``; a face's quality is
``facetrace.quality.face_quality``, stored as ``FaceRecord.quality``); an unknown quality gets the most
conservative curve. The curves and the figures they rest on ship as JSON in ``facetrace/data/`` (the older
single-curve documents still load, as one band). Searches convert the threshold to a cosine once per band
and compare raw dot products, so calibration costs nothing per stored face.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from facetrace.errors import ModelError

__all__ = [
    "FMR_ANCHORS",
    "Calibration",
    "Curve",
    "QualityBand",
    "calibration_from_json",
    "calibration_to_json",
    "false_match_rate",
    "load_calibration",
    "pair_quality",
]

FMR_ANCHORS: tuple[tuple[float, float], ...] = (
    (50.0, 1e-1),
    (70.0, 1e-2),
    (80.0, 1e-3),
    (90.0, 1e-4),
    (95.0, 1e-5),
    (99.0, 1e-6),
)
"""(similarity, false match rate) pairs the calibration curve is built to honour."""


def false_match_rate(similarity: float) -> float:
    """What a calibrated similarity means: the false match rate of a threshold set there (log-linear between
    ``FMR_ANCHORS``; 1.0 at 0, and below 99 the last anchor's decade per point is extrapolated, never better than
    1e-7). 90 → 1e-4: about one stranger in 10,000 scores this high against a given face."""
    points = [(0.0, 1.0), *FMR_ANCHORS]
    if similarity >= points[-1][0]:
        return max(1e-7, points[-1][1] * 10 ** (-(similarity - points[-1][0]) / 4.0))
    logs = np.interp(similarity, [p[0] for p in points], [math.log10(p[1]) for p in points])
    return float(10 ** float(logs))


@dataclass(frozen=True, slots=True)
class Curve:
    """A monotonic piecewise-linear map between cosine and similarity."""

    cosines: tuple[float, ...]
    similarities: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.cosines) != len(self.similarities) or len(self.cosines) < 2:
            raise ModelError("a calibration needs matching cosine and similarity anchors")
        if any(b <= a for a, b in zip(self.cosines, self.cosines[1:], strict=False)) or any(
            b <= a for a, b in zip(self.similarities, self.similarities[1:], strict=False)
        ):
            raise ModelError("calibration anchors must be strictly increasing")

    def similarity(self, cosine: float | npt.NDArray[np.floating[Any]]) -> float | npt.NDArray[np.float64]:
        values = np.interp(cosine, self.cosines, self.similarities)
        return float(values) if np.ndim(values) == 0 else np.asarray(values, dtype=np.float64)

    def cosine_for(self, similarity: float) -> float:
        return float(np.interp(similarity, self.similarities, self.cosines))


@dataclass(frozen=True, slots=True)
class QualityBand:
    """Pairs whose quality (the lower of the two faces' ``face_quality``) is at least ``min_quality``."""

    name: str
    min_quality: float
    curve: Curve


def pair_quality(a: float | None, b: float | None) -> float | None:
    """A pair is as good as its worse face; unknown if either face's quality is unknown."""
    return None if a is None or b is None else min(a, b)


@dataclass(frozen=True, slots=True)
class Calibration:
    """Cosine ↔ similarity for one model (``model`` is ``ModelInfo.key``), one curve per quality band.

    Impostor cosines run higher between poor faces (small, blurred crowd faces) than between clear ones, so
    one curve either lets crowds through or makes clear faces pay for the crowd's tail. Each band has its own
    curve fitted so that a similarity means the same false match rate whatever the quality. A pair is scored
    with the band of its *lower* quality face (``pair_quality``); an unknown quality gets the most
    conservative band, ``bands[0]`` (whose curve is also ``cosines``/``similarities``, the single curve of
    older calibrations).
    """

    model: str
    cosines: tuple[float, ...]
    similarities: tuple[float, ...]
    evidence: dict[str, Any] = field(default_factory=dict, compare=False)
    bands: tuple[QualityBand, ...] = ()

    @classmethod
    def uncalibrated(cls, model: str) -> Calibration:
        """A plain linear map (cosine −1…1 → 0…100) for a model nobody has calibrated yet.

        Thresholds on this scale carry no false-match guarantee; use it only to try a new model.
        """
        return cls(model=model, cosines=(-1.0, 1.0), similarities=(0.0, 100.0), evidence={"uncalibrated": True})

    def __post_init__(self) -> None:
        base = Curve(tuple(self.cosines), tuple(self.similarities))  # validates
        if not self.bands:
            object.__setattr__(self, "bands", (QualityBand("all", 0.0, base),))
            return
        if self.bands[0].min_quality != 0.0 or self.bands[0].curve != base:
            raise ModelError("the first quality band starts at 0 and carries the calibration's own curve")
        if any(b.min_quality <= a.min_quality for a, b in zip(self.bands, self.bands[1:], strict=False)):
            raise ModelError("quality bands must be in increasing order of min_quality")

    def band(self, quality: float | None) -> QualityBand:
        """The band for a pair of this quality (``pair_quality``); None → the most conservative band."""
        chosen = self.bands[0]
        if quality is None or not math.isfinite(quality):
            return chosen
        for band in self.bands[1:]:
            if quality >= band.min_quality:
                chosen = band
        return chosen

    @overload
    def similarity(self, cosine: float, quality: float | None = None) -> float: ...
    @overload
    def similarity(
        self, cosine: npt.NDArray[np.floating[Any]], quality: float | None = None
    ) -> npt.NDArray[np.float64]: ...
    def similarity(
        self, cosine: float | npt.NDArray[np.floating[Any]], quality: float | None = None
    ) -> float | npt.NDArray[np.float64]:
        """Similarity (0–100) for one cosine or an array of them, for a pair of quality ``quality``."""
        return self.band(quality).curve.similarity(cosine)

    def cosine_for(self, similarity: float, quality: float | None = None) -> float:
        """The smallest cosine whose similarity reaches ``similarity`` for a pair of quality ``quality``."""
        return self.band(quality).curve.cosine_for(similarity)

    def lenient_cosine_for(self, similarity: float, probe_quality: float | None) -> float:
        """The lowest cosine that reaches ``similarity`` in any band a pair with this probe can fall in.

        A pair's quality is at most the probe's, so bands above the probe's are out of reach; a store query
        at this cosine misses no candidate, and each one is then checked against its own band.
        """
        return min(b.curve.cosine_for(similarity) for b in self._reachable(probe_quality))

    def best_similarity(self, cosine: float, probe_quality: float | None) -> float:
        """The highest similarity ``cosine`` can score in any band a pair with this probe can fall in: a
        bound on what store candidates ranked at or below this cosine can reach."""
        return max(float(b.curve.similarity(cosine)) for b in self._reachable(probe_quality))

    def _reachable(self, probe_quality: float | None) -> list[QualityBand]:
        reachable = [b for b in self.bands if probe_quality is not None and probe_quality >= b.min_quality]
        return reachable or list(self.bands[:1])


def _curve(data: dict[str, Any]) -> Curve:
    return Curve(tuple(float(c) for c in data["cosines"]), tuple(float(s) for s in data["similarities"]))


def load_calibration(model: str) -> Calibration:
    """The shipped calibration for ``model`` (e.g. ``sface-2021dec``)."""
    name = f"calibration-{model}.json"
    try:
        text = resources.files("facetrace.data").joinpath(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(
            f"no calibration for model {model!r}; run benchmarks/calibrate.py to fit one and pass it to the engine"
        ) from None
    return calibration_from_json(json.loads(text))


def calibration_from_json(data: dict[str, Any]) -> Calibration:
    """A calibration document: ``{"model", "cosines", "similarities", "evidence"}`` (one curve, the old
    format) plus, optionally, ``"bands": [{"name", "min_quality", "cosines", "similarities"}, …]`` whose
    first band is the top-level curve."""
    try:
        base = _curve(data)
        bands = tuple(
            QualityBand(str(band["name"]), float(band["min_quality"]), _curve(band))
            for band in data.get("bands", ())
        )
        return Calibration(
            model=str(data["model"]),
            cosines=base.cosines,
            similarities=base.similarities,
            evidence=data.get("evidence", {}),
            bands=bands,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"not a calibration document: {exc}") from exc


def calibration_to_json(calibration: Calibration) -> dict[str, Any]:
    """The document ``calibration_from_json`` reads back: the model, the first band's curve at the top level
    (what single-curve readers use), every band, and the evidence."""
    return {
        "model": calibration.model,
        "cosines": list(calibration.cosines),
        "similarities": list(calibration.similarities),
        "bands": [
            {
                "name": band.name,
                "min_quality": band.min_quality,
                "cosines": list(band.curve.cosines),
                "similarities": list(band.curve.similarities),
            }
            for band in calibration.bands
        ],
        "evidence": calibration.evidence,
    }
