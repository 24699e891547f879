"""Hiding faces for release: every face obscured, except the people a collection names (or only them).

For footage released under public-records or privacy law, the failure that matters is a face left visible,
so detection here is tuned for recall rather than for identification: a lower detector score
(``REDACTION_MIN_CONFIDENCE``), tiles at full resolution for small faces in photos, no cap on the number of
faces, and boxes padded on every side (``RedactionSettings.padding``) so a slightly short box still covers
hair line, chin and ears. A false detection only costs a blurred patch of wall.

Obscuring is irreversible: the padded region is shrunk to a few blocks across (``blocks``; the detail is
thrown away, not hidden) and, for ``BLUR``, those blocks are smoothed back out with a Gaussian; ``PIXELATE``
keeps the blocks. Either way no deconvolution can bring the face back (``tests/test_redaction.py`` checks
that the redacted face no longer matches the original at all).

Who is spared is decided by a ``Recognizer`` (``video.identity.CollectionMatcher`` fits it) at the
identification threshold (99 by default): with ``KEEP`` the faces identified are left as they are and every
other face is hidden; with ``ONLY`` just the faces identified are hidden. A face the recognizer cannot
embed well is never identified, so with ``KEEP`` it is hidden (fail safe); with ``ONLY`` it stays visible,
which is what "only these people" asks for. Video lives in ``facetrace.video.redact``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from facetrace.engine import DetectionSettings, FaceEngine
from facetrace.errors import InvalidParameterError
from facetrace.imaging import Image
from facetrace.models import create_detector
from facetrace.types import Detection, FaceMatch, Vector

__all__ = [
    "REDACTION_MIN_CONFIDENCE",
    "Box",
    "Method",
    "PhotoRedaction",
    "Recognizer",
    "RedactionSettings",
    "Spare",
    "obscure",
    "padded_box",
    "redact_photo",
    "redaction_engine",
]

REDACTION_MIN_CONFIDENCE = 0.3
"""Detector score kept when hiding faces (identification keeps 0.5): recall first, see docs/redact.md."""

Box = tuple[float, float, float, float]
"""(x, y, w, h) in pixels."""


class Method(enum.StrEnum):
    BLUR = "blur"
    PIXELATE = "pixelate"


class Spare(enum.StrEnum):
    """Which identified faces the decision is about: ``KEEP`` them visible, or hide ``ONLY`` them."""

    KEEP = "keep"
    ONLY = "only"


class Recognizer(Protocol):
    """Searches one collection: matches at or above its threshold, best first (empty: nobody)."""

    @property
    def threshold(self) -> float: ...

    def search(self, vector: Vector, limit: int = 5, quality: float | None = None) -> tuple[FaceMatch, ...]: ...


@dataclass(frozen=True, slots=True)
class RedactionSettings:
    """``padding``: each side of a face box grows by this share of the box (0.25: a box 1.5× as wide).
    ``blocks``: the obscured region keeps at most this many blocks across its longer side.
    ``min_confidence``: least detector score of a face to hide. ``small_faces``: also scan photos in tiles
    at full resolution (``DetectionSettings.small_faces``), ``upscale``× for faces under ~20 px."""

    method: Method = Method.BLUR
    padding: float = 0.25
    blocks: int = 6
    min_confidence: float = REDACTION_MIN_CONFIDENCE
    small_faces: bool = True
    upscale: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.padding <= 2.0:
            raise InvalidParameterError("padding must be between 0 and 2 (a share of the face box)")
        if not 2 <= self.blocks <= 32:
            raise InvalidParameterError("blocks must be between 2 and 32")
        if not 0.05 <= self.min_confidence <= 1.0:
            raise InvalidParameterError("min_confidence must be between 0.05 and 1")


def redaction_engine(engine: FaceEngine, settings: RedactionSettings, *, photos: bool = True) -> FaceEngine:
    """``engine``'s recognizer with a detector tuned for recall (tiles for photos; one pass for video)."""
    detection = DetectionSettings(
        small_faces=settings.small_faces and photos,
        upscale=settings.upscale if photos else 1.0,
        min_confidence=settings.min_confidence,
    )
    threshold = settings.min_confidence
    return engine.with_detector(lambda: create_detector("yunet", score_threshold=threshold), detection)


def padded_box(box: Box, padding: float, width: int, height: int) -> tuple[int, int, int, int]:
    """``box`` grown by ``padding`` on each side, as whole pixels (x0, y0, x1, y1) clipped to the image."""
    x, y, w, h = box
    x0, y0 = int(np.floor(x - padding * w)), int(np.floor(y - padding * h))
    x1, y1 = int(np.ceil(x + w + padding * w)), int(np.ceil(y + h + padding * h))
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def obscure(pixels: npt.NDArray[np.uint8], boxes: Sequence[Box], settings: RedactionSettings) -> int:
    """Obscure each padded box of ``pixels`` in place; returns how many regions were touched."""
    height, width = pixels.shape[:2]
    done = 0
    for box in boxes:
        x0, y0, x1, y1 = padded_box(box, settings.padding, width, height)
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        region = pixels[y0:y1, x0:x1]
        rh, rw = region.shape[:2]
        scale = settings.blocks / max(rw, rh)
        small = cv2.resize(
            region, (max(1, round(rw * scale)), max(1, round(rh * scale))), interpolation=cv2.INTER_AREA
        )
        if settings.method is Method.PIXELATE:
            out = cv2.resize(small, (rw, rh), interpolation=cv2.INTER_NEAREST)
        else:
            out = cv2.resize(small, (rw, rh), interpolation=cv2.INTER_LINEAR)
            sigma = max(rw, rh) / (2.0 * settings.blocks)
            out = cv2.GaussianBlur(out, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
        region[...] = out
        done += 1
    return done


@dataclass(frozen=True, slots=True)
class PhotoRedaction:
    """What was done to one photo: the boxes hidden and kept (pixels of the photo), and the face ids the
    recognizer matched (for the audit record)."""

    hidden: tuple[Box, ...]
    kept: tuple[Box, ...]
    matched_face_ids: tuple[str, ...]


def _spared(
    engine: FaceEngine, image: Image, detections: list[Detection], recognizer: Recognizer | None
) -> tuple[list[bool], list[str]]:
    """Per detection: whether the recognizer names it; and the face ids it matched."""
    if recognizer is None or not detections:
        return [False] * len(detections), []
    identified, matched = [], []
    for face in engine.describe(image, detections):
        assert face.vector is not None
        found = recognizer.search(face.vector, 1, face.quality_score)
        identified.append(bool(found))
        matched += [m.face.face_id for m in found]
    return identified, matched


def redact_photo(
    engine: FaceEngine,
    image: Image,
    settings: RedactionSettings | None = None,
    *,
    recognizer: Recognizer | None = None,
    spare: Spare = Spare.KEEP,
) -> tuple[npt.NDArray[np.uint8], PhotoRedaction]:
    """A copy of ``image`` with faces obscured (``engine`` should come from ``redaction_engine``).

    Without a recognizer every face is hidden. With one, ``spare`` says whether the faces it identifies
    are the ones kept (``KEEP``) or the only ones hidden (``ONLY``).
    """
    settings = settings or RedactionSettings()
    detections = engine.find_all_faces(image)
    identified, matched = _spared(engine, image, detections, recognizer)
    hide = [(not named) if spare is Spare.KEEP else named for named in identified]
    if recognizer is None:
        hide = [True] * len(detections)
    hidden = tuple((d.x, d.y, d.w, d.h) for d, h in zip(detections, hide, strict=True) if h)
    kept = tuple((d.x, d.y, d.w, d.h) for d, h in zip(detections, hide, strict=True) if not h)
    pixels = image.pixels.copy()
    obscure(pixels, hidden, settings)
    return pixels, PhotoRedaction(hidden, kept, tuple(matched))
