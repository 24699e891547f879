"""YuNet (OpenCV zoo, 2023mar): a 230 KB face detector with five landmarks, run by onnxruntime.

The network is run at the image's own size (padded to a multiple of 32) and its outputs are decoded exactly
as OpenCV's ``FaceDetectorYN`` does (``modules/objdetect/src/face_detect.cpp``): per stride, score =
√(cls · obj), box centre = (cell + offset) · stride, size = exp(log-size) · stride, landmarks = (cell +
offset) · stride, then NMS. onnxruntime with full graph optimisation runs the forward pass about 3× faster
than OpenCV's DNN module on one thread (``benchmarks/bench_pipeline.py``); ``tests/test_models.py`` checks
the detections against ``cv2.FaceDetectorYN`` on real photos.
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
from facetrace.models.runtime import load_onnx_session, padded_blob
from facetrace.types import Detection

__all__ = ["YuNetDetector"]

DEFAULT_FILE = "face_detection_yunet_2023mar.onnx"
STRIDES = (8, 16, 32)
DIVISOR = 32


class YuNetDetector:
    """Detects faces with YuNet. The engine gives each thread its own instance."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.3,
        top_k: int = 5000,
        threads: int | None = None,
    ) -> None:
        path = model_path or artifact_path(ARTIFACTS[DEFAULT_FILE])
        self._lock = threading.Lock()
        self._session = load_onnx_session(path, threads=threads, dynamic_spatial=True)
        inputs = self._session.get_inputs()
        names = {output.name for output in self._session.get_outputs()}
        expected = {f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in STRIDES}
        if len(inputs) != 1 or not expected <= names:
            raise ModelLoadError(f"{path} is not a YuNet model (outputs {sorted(names)})")
        self._input_name = inputs[0].name
        self._outputs = [f"{kind}_{stride}" for stride in STRIDES for kind in ("cls", "obj", "bbox", "kps")]
        self._score_threshold = float(score_threshold)
        self._nms_threshold = float(nms_threshold)
        self._top_k = int(top_k)

    @property
    def name(self) -> str:
        return "yunet-2023mar"

    def detect(self, bgr: npt.NDArray[np.uint8]) -> list[Detection]:
        blob = padded_blob(bgr, DIVISOR)  # BGR, 0–255, no normalisation
        pad_w = blob.shape[3]
        with self._lock:
            outputs = self._session.run(self._outputs, {self._input_name: blob})
        boxes, scores, landmarks = [], [], []
        for index, stride in enumerate(STRIDES):
            cls, obj, bbox, kps = (
                np.asarray(o).reshape(-1, o.shape[-1]) for o in outputs[4 * index : 4 * index + 4]
            )
            score = np.sqrt(np.clip(cls[:, 0], 0.0, 1.0) * np.clip(obj[:, 0], 0.0, 1.0))
            keep = np.flatnonzero(score >= self._score_threshold)
            if keep.size == 0:
                continue
            cols = pad_w // stride
            cell = np.stack([keep % cols, keep // cols], axis=1).astype(np.float32)
            centre = (cell + bbox[keep, :2]) * stride
            size = np.exp(bbox[keep, 2:4]) * stride
            boxes.append(np.concatenate([centre - size / 2.0, size], axis=1))
            scores.append(score[keep])
            landmarks.append((kps[keep].reshape(-1, 5, 2) + cell[:, None, :]) * stride)
        if not boxes:
            return []
        all_boxes = np.concatenate(boxes)
        all_scores = np.concatenate(scores)
        all_landmarks = np.concatenate(landmarks).astype(np.float32)
        # Like OpenCV, suppress on boxes truncated to whole pixels (it keeps the same faces that way).
        kept = cv2.dnn.NMSBoxes(
            np.trunc(all_boxes).astype(np.int32).tolist(),
            all_scores.tolist(),
            self._score_threshold,
            self._nms_threshold,
            top_k=self._top_k,
        )
        detections = []
        for i in np.asarray(kept, dtype=np.int64).reshape(-1):
            x, y, w, h = (float(v) for v in all_boxes[i])
            detections.append(
                Detection(x=x, y=y, w=w, h=h, score=float(all_scores[i]), landmarks=all_landmarks[i])
            )
        return detections


@register_detector("yunet")
def _create_yunet(
    model_path: str | Path | None = None,
    *,
    score_threshold: float = 0.5,
    nms_threshold: float = 0.3,
    top_k: int = 5000,
    threads: int | None = None,
) -> YuNetDetector:
    return YuNetDetector(
        Path(model_path) if model_path else None,
        score_threshold=score_threshold, nms_threshold=nms_threshold, top_k=top_k, threads=threads,
    )  # fmt: skip
