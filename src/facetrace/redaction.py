"""Hiding faces for release: every face obscured, except the people a collection names (or only them).

For footage released under public-records or privacy law, the failure that matters is a face left visible,
so detection here is tuned for recall rather than for identification: YuNet and CenterFace together
(``models.ensemble``; CenterFace finds the small and profile crowd faces YuNet misses), each at a low score
(``REDACTION_MIN_CONFIDENCE``), tiles at full resolution for small faces in photos, no cap on the number of
faces, and boxes padded on every side (``RedactionSettings.padding``) so a slightly short box still covers
hair line, chin and ears. Photos are also searched stretched 2× and 3× wide and tall
(``RedactionSettings.aspects``): a picture stored squashed (anamorphic video, 4:3 stored as 16:9, photos
resized to squares) narrows its faces past what the detectors were trained on, and stretched back they are
ordinary faces. A false detection only costs a blurred patch of wall: on held-out WIDER crowds this leaves
0.25% of faces ≥ 16 px visible (0.81% on the same photos squashed to squares) and blurs ~20% of the non-face
picture (docs/redact.md).

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from facetrace.engine import DetectionSettings, FaceEngine
from facetrace.errors import InvalidParameterError
from facetrace.imaging import Image
from facetrace.models import Detector, create_detector
from facetrace.models.ensemble import check_aspects
from facetrace.types import Detection, FaceMatch, Vector

__all__ = [
    "ANAMORPHIC_ASPECTS",
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
    "redaction_detector",
    "redaction_engine",
]

REDACTION_MIN_CONFIDENCE = 0.1
"""Detector score kept when hiding faces (identification keeps 0.5): recall first, see docs/redact.md."""

Box = tuple[float, float, float, float]
"""(x, y, w, h) in pixels."""

ANAMORPHIC_ASPECTS = (2.0, 3.0, 0.5, 1.0 / 3.0)
"""The stretches searched for squashed pictures (``RedactionSettings.aspects``): 2× and 3× wide, 2× and 3× tall
(faces narrowed 2–3× are what the plain passes missed on squashed crowds; docs/redact.md)."""


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
    ``min_confidence``: least YuNet score of a face to hide. ``centerface_confidence``: CenterFace joins
    YuNet at this least score (``models.ensemble``; None: YuNet alone). ``flip``: every detector also sees
    the picture mirrored. ``small_faces``: also scan photos in tiles at full resolution
    (``DetectionSettings.small_faces``), ``upscale``× for faces under ~20 px. ``max_side``: the longest side
    the whole-picture pass sees (larger pictures are reduced to it; tiles still see every pixel).
    ``aspects``: YuNet (at ``min_confidence``) also sees the whole picture stretched to each of these aspects
    (2.0: twice as wide, 0.5: twice as tall; ``models.ensemble.stretched_view``), for pictures stored
    squashed; only faces at most 48 px across their narrow side (``models.ensemble``); not in the tiles,
    where it found no more faces on the tuning photos and blurred twice the background (docs/redact.md).
    Empty: the picture only as it is."""

    method: Method = Method.BLUR
    padding: float = 0.25
    blocks: int = 6
    min_confidence: float = REDACTION_MIN_CONFIDENCE
    centerface_confidence: float | None = REDACTION_MIN_CONFIDENCE
    flip: bool = False
    small_faces: bool = True
    upscale: float = 2.0
    max_side: int = 1920
    aspects: tuple[float, ...] = ANAMORPHIC_ASPECTS

    def __post_init__(self) -> None:
        if not 0.0 <= self.padding <= 2.0:
            raise InvalidParameterError("padding must be between 0 and 2 (a share of the face box)")
        if not 2 <= self.blocks <= 32:
            raise InvalidParameterError("blocks must be between 2 and 32")
        for score in (self.min_confidence, self.centerface_confidence):
            if score is not None and not 0.05 <= score <= 1.0:
                raise InvalidParameterError("detector scores (min_confidence) must be between 0.05 and 1")
        if not 64 <= self.max_side <= 4096:
            raise InvalidParameterError("max_side must be between 64 and 4096 pixels")
        check_aspects(self.aspects)


def redaction_detector(
    settings: RedactionSettings, *, centerface: bool = True, stretched: bool = True
) -> Callable[[], Detector]:
    """A factory of the recall-tuned detector: YuNet, with CenterFace beside it unless ``centerface`` is
    False or the settings leave it out (video runs the cheap YuNet-only one on most frames), and YuNet on
    the picture stretched to ``settings.aspects`` when ``stretched`` and ``centerface`` (the whole picture
    of a photo, or video's periodic heavy frames; never the tiles)."""
    yunet: tuple[str, dict[str, Any]] = ("yunet", {"score_threshold": settings.min_confidence})
    members = [yunet]
    if centerface and settings.centerface_confidence is not None:
        members.append(("centerface", {"score_threshold": settings.centerface_confidence}))
    aspects = settings.aspects if stretched and centerface else ()
    if len(members) == 1 and not settings.flip and not aspects:
        name, options = members[0]
        return lambda: create_detector(name, **options)
    return lambda: create_detector(
        "ensemble", members=members, flip=settings.flip, stretched=[yunet] if aspects else [], aspects=aspects
    )


def redaction_engine(
    engine: FaceEngine, settings: RedactionSettings, *, photos: bool = True, centerface: bool = True
) -> FaceEngine:
    """``engine``'s recognizer with a detector tuned for recall (tiles for photos; one pass for video)."""
    detection = DetectionSettings(
        max_side=settings.max_side,
        small_faces=settings.small_faces and photos,
        upscale=settings.upscale if photos else 1.0,
        min_confidence=min(settings.min_confidence, settings.centerface_confidence or 1.0),
        reduced_decode=False,
    )
    tiles = redaction_detector(settings, centerface=centerface, stretched=False) if detection.small_faces else None
    return engine.with_detector(redaction_detector(settings, centerface=centerface), detection, tiles=tiles)


def padded_box(box: Box, padding: float, width: int, height: int) -> tuple[int, int, int, int]:
    """``box`` grown by ``padding`` on each side, as whole pixels (x0, y0, x1, y1) clipped to the image."""
    x, y, w, h = box
    x0, y0 = int(np.floor(x - padding * w)), int(np.floor(y - padding * h))
    x1, y1 = int(np.ceil(x + w + padding * w)), int(np.ceil(y + h + padding * h))
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def obscure(
    pixels: npt.NDArray[np.uint8], boxes: Sequence[Box], settings: RedactionSettings, keep: Sequence[Box] = ()
) -> int:
    """Obscure each padded box of ``pixels`` in place; returns how many regions were touched.

    ``keep``: faces left visible on purpose (identified with ``Spare.KEEP``). Their own boxes (not padded)
    come out untouched even where a hidden box's padding, or a stray low-score detection at their edge,
    reaches into them: the recall-tuned detector reports such fragments, and a kept face must stay whole.
    """
    height, width = pixels.shape[:2]
    kept = [padded_box(box, 0.0, width, height) for box in keep]
    originals = [pixels[y0:y1, x0:x1].copy() for x0, y0, x1, y1 in kept]
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
            # blurred at block scale (a few pixels: costs nothing) and smoothly enlarged: the same look as a
            # Gaussian of sigma ≈ half a block on the full region, without its cost on large faces
            small = cv2.GaussianBlur(small, (0, 0), sigmaX=0.6, sigmaY=0.6, borderType=cv2.BORDER_REPLICATE)
            out = cv2.resize(small, (rw, rh), interpolation=cv2.INTER_CUBIC)
        region[...] = out
        done += 1
    for (x0, y0, x1, y1), original in zip(kept, originals, strict=True):
        pixels[y0:y1, x0:x1] = original
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
    # with ONLY the "kept" are everyone else, stray fragments included: nothing may uncover a named face
    obscure(pixels, hidden, settings, kept if spare is Spare.KEEP else ())
    return pixels, PhotoRedaction(hidden, kept, tuple(matched))
