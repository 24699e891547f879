"""Several detectors as one: the union of their faces, overlapping boxes merged.

Detectors miss different faces: YuNet is fast and good on frontal faces, CenterFace finds the small and
profile faces of crowds that YuNet misses (``shared/MODELS.md``). Where missing a face is the failure that
matters (redaction) the union of both, each at a low score, finds more than either; a face two of them
found is kept once, as the higher-scoring box (``geometry.merge_detections``: IoU ≥ 0.4, or most of the
smaller box inside the larger). With ``flip`` every member also sees the image mirrored, which finds some
faces turned the way a detector handles worse; it doubles the cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from facetrace.errors import InvalidParameterError
from facetrace.geometry import merge_detections
from facetrace.models.base import Detector, create_detector, register_detector
from facetrace.types import Detection

__all__ = ["EnsembleDetector", "mirrored"]

_MIRROR_ORDER = [1, 0, 2, 4, 3]  # a mirrored face's left eye is the original's right eye; same for the mouth


def mirrored(detection: Detection, width: int) -> Detection:
    """``detection`` found in an image flipped left to right, in the unflipped image's pixels."""
    landmarks = detection.landmarks[_MIRROR_ORDER].copy()
    landmarks[:, 0] = width - landmarks[:, 0]
    return Detection(
        x=width - detection.x - detection.w, y=detection.y, w=detection.w, h=detection.h,
        score=detection.score, landmarks=landmarks.astype(np.float32),
    )  # fmt: skip


class EnsembleDetector:
    """Runs every member on the image (and mirrored, with ``flip``) and merges what they find."""

    def __init__(
        self,
        members: Sequence[Detector],
        *,
        flip: bool = False,
        iou_threshold: float = 0.4,
        containment: float = 0.6,
    ) -> None:
        if not members:
            raise InvalidParameterError("an ensemble needs at least one detector")
        if not 0.0 < iou_threshold <= 1.0 or not 0.0 < containment <= 1.0:
            raise InvalidParameterError("iou_threshold and containment must be in (0, 1]")
        self._members = tuple(members)
        self._flip = flip
        self._iou = iou_threshold
        self._containment = containment

    @property
    def name(self) -> str:
        inner = "+".join(member.name for member in self._members)
        return f"ensemble({inner}{',flip' if self._flip else ''})"

    @property
    def members(self) -> tuple[Detector, ...]:
        return self._members

    def detect(self, bgr: npt.NDArray[np.uint8]) -> list[Detection]:
        found: list[Detection] = []
        flipped = np.ascontiguousarray(bgr[:, ::-1]) if self._flip else None
        width = bgr.shape[1]
        for member in self._members:
            found += member.detect(bgr)
            if flipped is not None:
                found += [mirrored(d, width) for d in member.detect(flipped)]
        return merge_detections(found, self._iou, self._containment)


@register_detector("ensemble")
def _create_ensemble(
    members: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    flip: bool = False,
    iou_threshold: float = 0.4,
    containment: float = 0.6,
) -> EnsembleDetector:
    """``members``: (registered detector name, its options) pairs, e.g. ``[("yunet", {}), ("centerface", {})]``."""
    return EnsembleDetector(
        [create_detector(name, **dict(options)) for name, options in members],
        flip=flip, iou_threshold=iou_threshold, containment=containment,
    )  # fmt: skip
