"""Rekognition's QualityFilter: the bar a face must clear before it is indexed or used as a probe.

MEDIUM (and so AUTO) keeps faces inside the calibration's evidence: the false match rates in
docs/accuracy.md were measured on detections with confidence ≥ 70 and at least 16 px tall. Faces let in by
LOW or NONE can be searched, but their similarities carry no measured guarantee.
"""

from __future__ import annotations

from dataclasses import dataclass

from facetrace.engine import AnalyzedFace
from facetrace.errors import InvalidParameterError
from facetrace.types import QualityFilter, UnindexedReason

__all__ = ["QUALITY_BARS", "QualityBar", "parse_quality_filter", "quality_reasons"]


@dataclass(frozen=True, slots=True)
class QualityBar:
    """The minimums a face must meet under one QualityFilter level."""

    min_side_px: float
    min_confidence: float  # 0–100
    min_sharpness: float  # 0–100
    brightness: tuple[float, float]  # allowed range, 0–100
    max_yaw: float  # degrees
    max_pitch: float


QUALITY_BARS: dict[QualityFilter, QualityBar] = {
    QualityFilter.LOW: QualityBar(20, 50, 5, (5, 98), 75, 60),
    QualityFilter.MEDIUM: QualityBar(40, 70, 15, (10, 95), 60, 45),
    QualityFilter.HIGH: QualityBar(60, 80, 30, (20, 90), 45, 35),
}
QUALITY_BARS[QualityFilter.AUTO] = QUALITY_BARS[QualityFilter.MEDIUM]


def quality_reasons(face: AnalyzedFace, level: QualityFilter) -> tuple[str, ...]:
    """Why ``face`` falls below ``level`` (empty when it passes or the level is NONE)."""
    bar = QUALITY_BARS.get(level)
    if bar is None:
        return ()
    detail, reasons = face.detail, list[str]()
    if min(face.detection.w, face.detection.h) < bar.min_side_px:
        reasons.append(UnindexedReason.SMALL_BOUNDING_BOX)
    if detail.confidence < bar.min_confidence:
        reasons.append(UnindexedReason.LOW_CONFIDENCE)
    if abs(detail.pose.yaw) > bar.max_yaw or abs(detail.pose.pitch) > bar.max_pitch:
        reasons.append(UnindexedReason.EXTREME_POSE)
    if not bar.brightness[0] <= detail.quality.brightness <= bar.brightness[1]:
        reasons.append(UnindexedReason.LOW_BRIGHTNESS)
    if detail.quality.sharpness < bar.min_sharpness:
        reasons.append(UnindexedReason.LOW_SHARPNESS)
    return tuple(reasons)


def parse_quality_filter(value: QualityFilter | str) -> QualityFilter:
    try:
        return QualityFilter(value)
    except ValueError:
        allowed = ", ".join(level.value for level in QualityFilter)
        raise InvalidParameterError(f"quality filter must be one of {allowed}, not {value!r}") from None
