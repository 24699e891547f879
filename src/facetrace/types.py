"""Records that flow between the layers: frozen dataclasses, never dicts.

Geometry that leaves the engine is in *ratios* of the image size, as Rekognition reports it, so a box means
the same thing whatever resolution the caller later displays the image at. Pixel geometry stays inside the
models layer (``Detection``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = [
    "BoundingBox",
    "Detection",
    "FaceDetail",
    "FaceMatch",
    "FaceRecord",
    "Landmark",
    "ModelInfo",
    "Pose",
    "Quality",
    "QualityFilter",
    "UnindexedReason",
    "UserMatch",
    "UserRecord",
    "Vector",
]

Vector = npt.NDArray[np.float32]
"""An L2-normalised identity vector (1-D float32)."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """Which recognizer produced a vector. Vectors with different ``key`` are never compared."""

    name: str
    version: str
    dim: int

    @property
    def key(self) -> str:
        """The identifier stored with every vector, e.g. ``sface-2021dec``; also Rekognition's FaceModelVersion."""
        return f"{self.name}-{self.version}"


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """A box as ratios of the image width and height (Rekognition's BoundingBox)."""

    left: float
    top: float
    width: float
    height: float

    @classmethod
    def from_pixels(cls, x: float, y: float, w: float, h: float, image_w: int, image_h: int) -> BoundingBox:
        return cls(left=x / image_w, top=y / image_h, width=w / image_w, height=h / image_h)

    def to_pixels(self, image_w: int, image_h: int) -> tuple[float, float, float, float]:
        """(x, y, w, h) in pixels of an image of the given size."""
        return (self.left * image_w, self.top * image_h, self.width * image_w, self.height * image_h)


@dataclass(frozen=True, slots=True)
class Landmark:
    """A facial landmark as ratios of the image size; ``type`` uses Rekognition's names (eyeLeft, nose…)."""

    type: str
    x: float
    y: float


@dataclass(frozen=True, slots=True)
class Pose:
    """Head pose in degrees, estimated from the five landmarks (see ``facetrace.quality.estimate_pose``)."""

    roll: float
    yaw: float
    pitch: float


@dataclass(frozen=True, slots=True)
class Quality:
    """Image quality of the face region, 0–100 (higher is better)."""

    brightness: float
    sharpness: float


@dataclass(frozen=True, slots=True, eq=False)
class Detection:
    """A detector's raw output in pixels of the image it was given.

    ``landmarks`` is a (5, 2) float32 array in the order: left eye, right eye, nose tip, left mouth corner,
    right mouth corner, where *left* is the subject's left as seen in the image's left half
    (Rekognition's ``eyeLeft`` is the one with the smaller x).
    """

    x: float
    y: float
    w: float
    h: float
    score: float
    landmarks: npt.NDArray[np.float32]

    @property
    def area(self) -> float:
        return self.w * self.h

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(x, y, w, h), as ``geometry.iou`` takes it."""
        return (self.x, self.y, self.w, self.h)


@dataclass(frozen=True, slots=True)
class FaceDetail:
    """What DetectFaces reports for one face. Only what facetrace really estimates; nothing invented."""

    bounding_box: BoundingBox
    confidence: float  # 0–100
    landmarks: tuple[Landmark, ...]
    pose: Pose
    quality: Quality


class QualityFilter(enum.StrEnum):
    """Rekognition's QualityFilter: how strict to be before indexing or searching a face."""

    NONE = "NONE"
    AUTO = "AUTO"
    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"


class UnindexedReason(enum.StrEnum):
    """Rekognition's reasons for not indexing a detected face."""

    EXCEEDS_MAX_FACES = "EXCEEDS_MAX_FACES"
    EXTREME_POSE = "EXTREME_POSE"
    LOW_BRIGHTNESS = "LOW_BRIGHTNESS"
    LOW_SHARPNESS = "LOW_SHARPNESS"
    LOW_CONFIDENCE = "LOW_CONFIDENCE"
    SMALL_BOUNDING_BOX = "SMALL_BOUNDING_BOX"
    LOW_FACE_QUALITY = "LOW_FACE_QUALITY"


@dataclass(frozen=True, slots=True)
class FaceRecord:
    """A face stored in a collection (Rekognition's Face). The vector is kept by the store, not here."""

    face_id: str
    bounding_box: BoundingBox
    image_id: str
    confidence: float
    model: str  # ModelInfo.key of the recognizer that produced the vector
    external_image_id: str | None = None
    user_id: str | None = None
    created_at: float = 0.0  # unix seconds
    quality: float | None = None
    """0–100 face quality used to pick the calibration band (``facetrace.quality.face_quality``); None =
    unknown, scored with the most conservative band."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user: a named identity that groups several faces of the same person."""

    user_id: str
    status: str = "ACTIVE"
    face_count: int = 0
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class FaceMatch:
    """A stored face that matched a probe, with the calibrated 0–100 similarity."""

    face: FaceRecord
    similarity: float


@dataclass(frozen=True, slots=True)
class UserMatch:
    """A user that matched a probe: the best similarity over the user's faces."""

    user: UserRecord
    similarity: float
    face_ids: tuple[str, ...] = field(default=())
