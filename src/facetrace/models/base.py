"""The two model roles and the registry that builds them by name.

A detector finds faces and five landmarks in a BGR image; an embedder turns aligned face crops into
L2-normalised identity vectors. Both are small protocols so another model family (or a user's own ONNX
file) can be plugged in without touching the engine. Implementations register a factory under a name;
configuration names the factory and passes its arguments explicitly (nothing is guessed from the graph).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from facetrace.errors import InvalidParameterError
from facetrace.types import Detection, ModelInfo

__all__ = [
    "Detector",
    "Embedder",
    "available_detectors",
    "available_embedders",
    "create_detector",
    "create_embedder",
    "register_detector",
    "register_embedder",
]


@runtime_checkable
class Detector(Protocol):
    """Finds faces in one image."""

    @property
    def name(self) -> str:
        """A stable id such as ``yunet-2023mar``."""
        ...

    def detect(self, bgr: npt.NDArray[np.uint8]) -> list[Detection]:
        """All faces in ``bgr`` (H, W, 3 uint8), in pixels of that array, in no particular order."""
        ...


@runtime_checkable
class Embedder(Protocol):
    """Turns aligned face crops into identity vectors."""

    @property
    def info(self) -> ModelInfo: ...

    @property
    def input_size(self) -> int:
        """Side of the square aligned crop the model expects (112 for SFace and ArcFace)."""
        ...

    def embed(self, crops: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """(N, S, S, 3) BGR uint8 crops → (N, dim) float32 vectors, each of unit L2 norm."""
        ...


DetectorFactory = Callable[..., Detector]
EmbedderFactory = Callable[..., Embedder]
_DETECTORS: dict[str, DetectorFactory] = {}
_EMBEDDERS: dict[str, EmbedderFactory] = {}


def register_detector(name: str) -> Callable[[DetectorFactory], DetectorFactory]:
    def decorate(factory: DetectorFactory) -> DetectorFactory:
        _DETECTORS[name] = factory
        return factory

    return decorate


def register_embedder(name: str) -> Callable[[EmbedderFactory], EmbedderFactory]:
    def decorate(factory: EmbedderFactory) -> EmbedderFactory:
        _EMBEDDERS[name] = factory
        return factory

    return decorate


def available_detectors() -> list[str]:
    return sorted(_DETECTORS)


def available_embedders() -> list[str]:
    return sorted(_EMBEDDERS)


def create_detector(name: str, /, **options: Any) -> Detector:
    """Build the detector registered as ``name`` with explicit ``options``."""
    try:
        factory = _DETECTORS[name]
    except KeyError:
        raise InvalidParameterError(
            f"unknown detector {name!r}; available: {', '.join(available_detectors())}"
        ) from None
    return factory(**options)


def create_embedder(name: str, /, **options: Any) -> Embedder:
    """Build the embedder registered as ``name`` with explicit ``options``."""
    try:
        factory = _EMBEDDERS[name]
    except KeyError:
        raise InvalidParameterError(
            f"unknown embedder {name!r}; available: {', '.join(available_embedders())}"
        ) from None
    return factory(**options)
