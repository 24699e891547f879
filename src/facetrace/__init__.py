"""facetrace: self-hosted face detection, recognition, search and tracking.

The public surface is what ``__all__`` lists; everything else is internal and may change.
"""

from __future__ import annotations

from facetrace.audit import AuditEvent, AuditSink, Caller
from facetrace.calibration import Calibration, load_calibration
from facetrace.engine import AnalyzedFace, Comparison, DetectionSettings, FaceEngine
from facetrace.errors import (
    AccessDeniedError,
    AlreadyExistsError,
    FacetraceError,
    ImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageFormatError,
    InvalidInputError,
    InvalidParameterError,
    ModelError,
    NoFaceError,
    NotFoundError,
    StoreError,
    StreamError,
)
from facetrace.gallery import DEFAULT_MATCH_THRESHOLD, Gallery
from facetrace.imaging import Image, ImageLimits, load_image
from facetrace.types import (
    BoundingBox,
    FaceDetail,
    FaceMatch,
    FaceRecord,
    ModelInfo,
    QualityFilter,
    UserMatch,
    UserRecord,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MATCH_THRESHOLD",
    "AccessDeniedError",
    "AlreadyExistsError",
    "AnalyzedFace",
    "AuditEvent",
    "AuditSink",
    "BoundingBox",
    "Calibration",
    "Caller",
    "Comparison",
    "DetectionSettings",
    "FaceDetail",
    "FaceEngine",
    "FaceMatch",
    "FaceRecord",
    "FacetraceError",
    "Gallery",
    "Image",
    "ImageError",
    "ImageLimits",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "InvalidImageFormatError",
    "InvalidInputError",
    "InvalidParameterError",
    "ModelError",
    "ModelInfo",
    "NoFaceError",
    "NotFoundError",
    "QualityFilter",
    "StoreError",
    "StreamError",
    "UserMatch",
    "UserRecord",
    "__version__",
    "load_calibration",
    "load_image",
    "open_gallery",
]


def __getattr__(name: str) -> object:
    # ``open_gallery`` pulls in the storage backend; import it only when asked for.
    if name == "open_gallery":
        from facetrace.app import open_gallery

        return open_gallery
    raise AttributeError(f"module 'facetrace' has no attribute {name!r}")
