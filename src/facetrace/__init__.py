"""facetrace: self-hosted face detection, recognition, search and tracking.

The public surface is what ``__all__`` lists; everything else is internal and may change.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from facetrace.app import open_gallery
    from facetrace.audit import AuditEvent, AuditSink, Caller
    from facetrace.calibration import Calibration, load_calibration
    from facetrace.engine import AnalyzedFace, Comparison, DetectionSettings, FaceEngine
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


# Imported on first use (PEP 562): ``import facetrace`` (and so every CLI start, ``--help`` included) must
# not pay for NumPy, OpenCV and onnxruntime before a command needs them.
_LAZY = {
    "open_gallery": "facetrace.app",
    **dict.fromkeys(("AuditEvent", "AuditSink", "Caller"), "facetrace.audit"),
    **dict.fromkeys(("Calibration", "load_calibration"), "facetrace.calibration"),
    **dict.fromkeys(("AnalyzedFace", "Comparison", "DetectionSettings", "FaceEngine"), "facetrace.engine"),
    **dict.fromkeys(("DEFAULT_MATCH_THRESHOLD", "Gallery"), "facetrace.gallery"),
    **dict.fromkeys(("Image", "ImageLimits", "load_image"), "facetrace.imaging"),
    **dict.fromkeys(
        (
            "BoundingBox",
            "FaceDetail",
            "FaceMatch",
            "FaceRecord",
            "ModelInfo",
            "QualityFilter",
            "UserMatch",
            "UserRecord",
        ),
        "facetrace.types",
    ),
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'facetrace' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once imported, a plain attribute
    return value
