"""The models layer: the only code that touches inference runtimes.

Importing this package registers the built-in detectors (``yunet``, ``centerface`` and
``ensemble``, a union of others) and embedders (``sface``, ``onnx``).
"""

from __future__ import annotations

from facetrace.models import centerface, ensemble, onnx_embedder, yunet
from facetrace.models.base import (
    Detector,
    Embedder,
    available_detectors,
    available_embedders,
    create_detector,
    create_embedder,
    register_detector,
    register_embedder,
)

__all__ = [
    "Detector",
    "Embedder",
    "available_detectors",
    "available_embedders",
    "centerface",
    "create_detector",
    "create_embedder",
    "ensemble",
    "onnx_embedder",
    "register_detector",
    "register_embedder",
    "yunet",
]
