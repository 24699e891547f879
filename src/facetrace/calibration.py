"""Turning a cosine between identity vectors into a 0–100 similarity whose thresholds mean something.

A raw cosine means different things for different models. facetrace maps it through a monotonic,
piecewise-linear curve fitted per model by ``benchmarks/calibrate.py`` on thousands of impostor pairs
(faces of different people) so that a similarity threshold corresponds to a measured false match rate:

    similarity  80 ↔ FMR 1e-3     90 ↔ 1e-4     95 ↔ 1e-5     99 ↔ 1e-6

The curve and the figures it rests on ship as JSON in ``facetrace/data/``; the README's table is
generated from the same file. Searches convert the threshold to a cosine once and compare raw dot
products, so calibration costs nothing per stored face.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from facetrace.errors import ModelError

__all__ = ["FMR_ANCHORS", "Calibration", "load_calibration"]

FMR_ANCHORS: tuple[tuple[float, float], ...] = (
    (50.0, 1e-1),
    (70.0, 1e-2),
    (80.0, 1e-3),
    (90.0, 1e-4),
    (95.0, 1e-5),
    (99.0, 1e-6),
)
"""(similarity, false match rate) pairs the calibration curve is built to honour."""


@dataclass(frozen=True, slots=True)
class Calibration:
    """A monotonic map between cosine and similarity for one model (``model`` is ``ModelInfo.key``)."""

    model: str
    cosines: tuple[float, ...]
    similarities: tuple[float, ...]
    evidence: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def uncalibrated(cls, model: str) -> Calibration:
        """A plain linear map (cosine −1…1 → 0…100) for a model nobody has calibrated yet.

        Thresholds on this scale carry no false-match guarantee; use it only to try a new model.
        """
        return cls(model=model, cosines=(-1.0, 1.0), similarities=(0.0, 100.0), evidence={"uncalibrated": True})

    def __post_init__(self) -> None:
        if len(self.cosines) != len(self.similarities) or len(self.cosines) < 2:
            raise ModelError("a calibration needs matching cosine and similarity anchors")
        if any(b <= a for a, b in zip(self.cosines, self.cosines[1:], strict=False)) or any(
            b <= a for a, b in zip(self.similarities, self.similarities[1:], strict=False)
        ):
            raise ModelError("calibration anchors must be strictly increasing")

    @overload
    def similarity(self, cosine: float) -> float: ...
    @overload
    def similarity(self, cosine: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]: ...
    def similarity(self, cosine: float | npt.NDArray[np.floating[Any]]) -> float | npt.NDArray[np.float64]:
        """Similarity (0–100) for one cosine or an array of them."""
        values = np.interp(cosine, self.cosines, self.similarities)
        return float(values) if np.ndim(values) == 0 else np.asarray(values, dtype=np.float64)

    def cosine_for(self, similarity: float) -> float:
        """The smallest cosine whose similarity reaches ``similarity``."""
        return float(np.interp(similarity, self.similarities, self.cosines))


def load_calibration(model: str) -> Calibration:
    """The shipped calibration for ``model`` (e.g. ``sface-2021dec``)."""
    name = f"calibration-{model}.json"
    try:
        text = resources.files("facetrace.data").joinpath(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(
            f"no calibration for model {model!r}; run benchmarks/calibrate.py to fit one and pass it to the engine"
        ) from None
    data = json.loads(text)
    return Calibration(
        model=data["model"],
        cosines=tuple(float(c) for c in data["cosines"]),
        similarities=tuple(float(s) for s in data["similarities"]),
        evidence=data.get("evidence", {}),
    )
