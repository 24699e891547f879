"""YuNet (OpenCV zoo, 2023mar): a 230 KB face detector with five landmarks, run by OpenCV's DNN module.

OpenCV's ``FaceDetectorYN`` wraps the network with its own anchor decoding and NMS, which are exactly what
the model was trained with; re-implementing them over onnxruntime would only add a place for bugs.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from facetrace.errors import ModelLoadError
from facetrace.models.assets import ARTIFACTS, artifact_path
from facetrace.models.base import register_detector
from facetrace.types import Detection

__all__ = ["YuNetDetector"]

DEFAULT_FILE = "face_detection_yunet_2023mar.onnx"


class YuNetDetector:
    """Detects faces with YuNet. One instance is not thread-safe; the engine gives each thread its own."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.3,
        top_k: int = 5000,
    ) -> None:
        path = model_path or artifact_path(ARTIFACTS[DEFAULT_FILE])
        self._lock = threading.Lock()
        self._size = (320, 320)
        try:
            self._net = cv2.FaceDetectorYN.create(str(path), "", self._size, score_threshold, nms_threshold, top_k)
        except cv2.error as exc:
            raise ModelLoadError(f"OpenCV cannot load YuNet from {path}: {exc}") from None

    @property
    def name(self) -> str:
        return "yunet-2023mar"

    def detect(self, bgr: npt.NDArray[np.uint8]) -> list[Detection]:
        height, width = bgr.shape[:2]
        with self._lock:
            if (width, height) != self._size:
                self._net.setInputSize((width, height))
                self._size = (width, height)
            _, rows = self._net.detect(bgr)
        if rows is None:
            return []
        detections = []
        for row in rows:
            landmarks = np.asarray(row[4:14], dtype=np.float32).reshape(5, 2)
            detections.append(
                Detection(
                    x=float(row[0]),
                    y=float(row[1]),
                    w=float(row[2]),
                    h=float(row[3]),
                    score=float(row[14]),
                    landmarks=landmarks,
                )
            )
        return detections


@register_detector("yunet")
def _create_yunet(model_path: str | Path | None = None, **options: float) -> YuNetDetector:
    return YuNetDetector(Path(model_path) if model_path else None, **options)  # type: ignore[arg-type]
