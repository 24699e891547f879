"""Several detectors as one: the union of their faces, overlapping boxes merged.

Detectors miss different faces: YuNet is fast and good on frontal faces, CenterFace finds the small and
profile faces of crowds that YuNet misses (``shared/MODELS.md``). Where missing a face is the failure that
matters (redaction) the union of both, each at a low score, finds more than either; a face two of them
found is kept once, as the higher-scoring box (``geometry.merge_detections``: IoU ≥ 0.4, or most of the
smaller box inside the larger). With ``flip`` every member also sees the image mirrored, which finds some
faces turned the way a detector handles worse; it doubles the cost.

With ``aspects`` the ``stretched`` detectors also see the picture stretched to other aspect ratios (2.0: twice
as wide; 0.5: twice as tall; a picture is only ever enlarged, so no pixel is lost). Pictures are not always
stored in their true aspect — anamorphic video, 4:3 stored as 16:9, photos resized to squares by some
systems — and a face narrowed 2–3× is a shape neither detector was trained on; stretched back it is an
ordinary face (``stretched_view``). Both directions are searched, since nothing says which way a picture was
squashed (docs/redact.md measures this on WIDER crowds squashed to squares). A stretched pass keeps only
faces at most ``stretched_narrow`` pixels across their narrow side (48): a larger squashed face has the
pixels the plain passes need, and stretched pictures turn bodies and backgrounds into large false faces
(on a six-person group photo, uncapped, they covered 80% of the picture).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from facetrace.errors import InvalidParameterError
from facetrace.geometry import merge_detections, rescaled
from facetrace.models.base import Detector, create_detector, register_detector
from facetrace.types import Detection

__all__ = ["EnsembleDetector", "check_aspects", "mirrored", "stretched_view"]

CONFIDENT = 0.5
"""A face found at this score in the picture as it is keeps its box against the stretched passes' boxes."""
_MIRROR_ORDER = [1, 0, 2, 4, 3]  # a mirrored face's left eye is the original's right eye; same for the mouth


def mirrored(detection: Detection, width: int) -> Detection:
    """``detection`` found in an image flipped left to right, in the unflipped image's pixels."""
    landmarks = detection.landmarks[_MIRROR_ORDER].copy()
    landmarks[:, 0] = width - landmarks[:, 0]
    return Detection(
        x=width - detection.x - detection.w, y=detection.y, w=detection.w, h=detection.h,
        score=detection.score, landmarks=landmarks.astype(np.float32),
    )  # fmt: skip


def _intersects(a: Detection, b: Detection) -> bool:
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h


def check_aspects(aspects: Sequence[float]) -> None:
    """``InvalidParameterError`` unless every aspect is a real stretch between 5× tall and 5× wide."""
    if any(not 0.2 <= aspect <= 5.0 or aspect == 1.0 for aspect in aspects):
        raise InvalidParameterError("aspects must be between 0.2 and 5, and not 1 (the picture as it is)")


def stretched_view(detector: Detector, bgr: npt.NDArray[np.uint8], aspect: float) -> list[Detection]:
    """``detector``'s faces in ``bgr`` stretched to ``aspect`` (>1: wider, <1: taller), in ``bgr``'s pixels."""
    fx, fy = (aspect, 1.0) if aspect >= 1.0 else (1.0, 1.0 / aspect)
    height, width = bgr.shape[:2]
    size = (max(1, round(width * fx)), max(1, round(height * fy)))
    view = np.asarray(cv2.resize(bgr, size, interpolation=cv2.INTER_LINEAR), dtype=np.uint8)
    sx, sy = width / size[0], height / size[1]
    return [rescaled(d, sx, sy) for d in detector.detect(view)]


class EnsembleDetector:
    """Runs every member on the image (and mirrored, with ``flip``), the ``stretched`` detectors on each of
    ``aspects``, and merges what they find."""

    def __init__(
        self,
        members: Sequence[Detector],
        *,
        flip: bool = False,
        stretched: Sequence[Detector] = (),
        aspects: Sequence[float] = (),
        stretched_narrow: float = 48.0,
        iou_threshold: float = 0.4,
        containment: float = 0.6,
    ) -> None:
        if not members:
            raise InvalidParameterError("an ensemble needs at least one detector")
        if not 0.0 < iou_threshold <= 1.0 or not 0.0 < containment <= 1.0:
            raise InvalidParameterError("iou_threshold and containment must be in (0, 1]")
        check_aspects(aspects)
        if stretched_narrow <= 0:
            raise InvalidParameterError("stretched_narrow must be positive")
        if bool(stretched) != bool(aspects):
            raise InvalidParameterError("stretched detectors and aspects come together")
        self._members = tuple(members)
        self._flip = flip
        self._stretched = tuple(stretched)
        self._aspects = tuple(aspects)
        self._narrow = stretched_narrow
        self._iou = iou_threshold
        self._containment = containment

    @property
    def name(self) -> str:
        inner = "+".join(member.name for member in self._members)
        if self._aspects:
            names = "+".join(member.name for member in self._stretched)
            inner += f",{names}@" + "/".join(f"{aspect:g}" for aspect in self._aspects)
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
        plain_count = len(found)
        if not self._aspects:
            return merge_detections(found, self._iou, self._containment)
        for member in self._stretched:
            for aspect in self._aspects:
                found += [d for d in stretched_view(member, bgr, aspect) if min(d.w, d.h) <= self._narrow]
        # A face found confidently in the picture as it is keeps its own box (a kept face is restored by that
        # box and embedded from it), and a stretched box touching it is a slice of it (a face's edge stretched
        # 3× looks like a narrow face), not another face. Below that the best box wins, so a low-score
        # fragment of a squashed face does not stand in for the whole face a stretched pass found.
        confident = merge_detections(
            [d for d in found[:plain_count] if d.score >= CONFIDENT], self._iou, self._containment
        )
        rest = [d for d in found[:plain_count] if d.score < CONFIDENT] + [
            d for d in found[plain_count:] if not any(_intersects(c, d) for c in confident)
        ]
        return confident + [
            d for d in merge_detections(rest, self._iou, self._containment)
            if not any(len(merge_detections([c, d], self._iou, self._containment)) == 1 for c in confident)
        ]  # fmt: skip


@register_detector("ensemble")
def _create_ensemble(
    members: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    flip: bool = False,
    stretched: Sequence[tuple[str, Mapping[str, Any]]] = (),
    aspects: Sequence[float] = (),
    stretched_narrow: float = 48.0,
    iou_threshold: float = 0.4,
    containment: float = 0.6,
) -> EnsembleDetector:
    """``members`` and ``stretched``: (registered detector name, its options) pairs, e.g.
    ``[("yunet", {}), ("centerface", {})]``."""
    return EnsembleDetector(
        [create_detector(name, **dict(options)) for name, options in members],
        flip=flip,
        stretched=[create_detector(name, **dict(options)) for name, options in stretched],
        aspects=aspects, stretched_narrow=stretched_narrow, iou_threshold=iou_threshold, containment=containment,
    )  # fmt: skip
