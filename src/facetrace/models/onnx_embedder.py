"""Any ArcFace-style recognizer in ONNX: aligned 112×112 crop in, identity vector out.

SFace (the default) and ArcFace differ only in input normalisation, so one class serves both, configured
explicitly by its constructor; the normalisation is never guessed from the graph (InsightFace's habit).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from facetrace.errors import ModelLoadError
from facetrace.models.assets import ARTIFACTS, artifact_path
from facetrace.models.base import register_embedder
from facetrace.models.runtime import load_onnx_session
from facetrace.types import ModelInfo

__all__ = ["OnnxEmbedder"]

SFACE_FILE = "face_recognition_sface_2021dec.onnx"


class OnnxEmbedder:
    """Runs an ONNX face recognizer. ``x = (pixel - mean) / std`` on RGB (or BGR) crops in NCHW order."""

    def __init__(
        self,
        model_path: Path,
        *,
        name: str,
        version: str,
        mean: float = 127.5,
        std: float = 127.5,
        swap_rb: bool = True,
        input_size: int = 112,
        threads: int | None = None,
    ) -> None:
        if std <= 0:
            raise ModelLoadError("std must be positive")
        self._session = load_onnx_session(model_path, threads=threads, batch_dim=True)
        inputs = self._session.get_inputs()
        outputs = self._session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ModelLoadError(f"{model_path}: expected one input and an embedding output")
        shape = inputs[0].shape
        if len(shape) != 4 or shape[1] != 3 or shape[2] != input_size or shape[3] != input_size:
            raise ModelLoadError(f"{model_path}: input shape {shape} is not (N, 3, {input_size}, {input_size})")
        out_shape = outputs[0].shape
        dim = out_shape[-1]
        if not isinstance(dim, int) or dim < 2:
            raise ModelLoadError(f"{model_path}: output shape {out_shape} has no fixed embedding size")
        self._input_name = inputs[0].name
        self._mean = np.float32(mean)
        self._scale = np.float32(1.0 / std)
        self._swap_rb = swap_rb
        self._input_size = input_size
        self._info = ModelInfo(name=name, version=version, dim=dim)

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def input_size(self) -> int:
        return self._input_size

    def embed(self, crops: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        if crops.ndim != 4 or crops.shape[1:] != (self._input_size, self._input_size, 3):
            raise ModelLoadError(
                f"expected (N, {self._input_size}, {self._input_size}, 3) crops, got {crops.shape}"
            )
        if len(crops) == 0:
            return np.zeros((0, self._info.dim), dtype=np.float32)
        pixels = crops[..., ::-1] if self._swap_rb else crops
        blob = (pixels.astype(np.float32) - self._mean) * self._scale
        blob = np.ascontiguousarray(blob.transpose(0, 3, 1, 2))
        vectors = np.asarray(self._session.run(None, {self._input_name: blob})[0], dtype=np.float32)
        vectors = vectors.reshape(len(crops), -1)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


@register_embedder("sface")
def _create_sface(model_path: str | Path | None = None, threads: int | None = None) -> OnnxEmbedder:
    """SFace 2021dec (OpenCV zoo): RGB input in 0–255, no normalisation, 128-d output."""
    path = Path(model_path) if model_path else artifact_path(ARTIFACTS[SFACE_FILE])
    return OnnxEmbedder(path, name="sface", version="2021dec", mean=0.0, std=1.0, swap_rb=True, threads=threads)


@register_embedder("onnx")
def _create_onnx(
    model_path: str | Path,
    name: str,
    version: str,
    mean: float = 127.5,
    std: float = 127.5,
    swap_rb: bool = True,
    input_size: int = 112,
    threads: int | None = None,
) -> OnnxEmbedder:
    """A user's own ArcFace-style model by path (InsightFace's defaults: (x − 127.5) / 127.5, RGB)."""
    return OnnxEmbedder(
        Path(model_path), name=name, version=version, mean=mean, std=std,
        swap_rb=swap_rb, input_size=input_size, threads=threads,
    )  # fmt: skip
