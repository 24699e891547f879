"""Pure geometry: face alignment, box overlap and non-maximum suppression. No models, no I/O."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from facetrace.types import Detection

__all__ = [
    "ARCFACE_TEMPLATE_112",
    "align_face",
    "alignment_scale",
    "iou",
    "merge_detections",
    "similarity_transform",
]

ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],  # eye at the image's left
        [73.5318, 51.5014],  # eye at the image's right
        [56.0252, 71.7366],  # nose tip
        [41.5493, 92.3655],  # mouth corner at the image's left
        [70.7299, 92.2041],  # mouth corner at the image's right
    ],
    dtype=np.float32,
)
"""Where the five landmarks go in a 112×112 crop: the template both SFace and ArcFace were trained on."""


def similarity_transform(src: npt.NDArray[np.float32], dst: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """The 2×3 least-squares similarity (rotation, uniform scale, translation) mapping ``src`` onto ``dst``.

    Umeyama's closed form, as InsightFace and OpenCV's ``alignCrop`` use; unlike RANSAC estimators it is
    deterministic and uses all five points.
    """
    src64 = np.asarray(src, dtype=np.float64)
    dst64 = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src64.mean(axis=0), dst64.mean(axis=0)
    src_c, dst_c = src64 - src_mean, dst64 - dst_mean
    covariance = dst_c.T @ src_c / len(src64)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rotation = u @ sign @ vt
    variance = (src_c**2).sum() / len(src64)
    scale = float(np.trace(np.diag(singular) @ sign) / variance) if variance > 0 else 1.0
    matrix = np.zeros((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def alignment_scale(landmarks: npt.NDArray[np.float32], size: int = 112) -> float:
    """Pixels of the ``size``-pixel aligned crop per pixel of the image the ``landmarks`` are in.

    Below 0.5 the face has more than twice the crop's resolution, and ``align_face`` shrinks it to twice the
    crop's resolution before warping: any image of the face at least that sharp gives the same crop.
    """
    matrix = similarity_transform(landmarks, ARCFACE_TEMPLATE_112 * (size / 112.0))
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


def align_face(
    bgr: npt.NDArray[np.uint8], landmarks: npt.NDArray[np.float32], size: int = 112
) -> npt.NDArray[np.uint8]:
    """Warp the face with ``landmarks`` (5×2, pixels of ``bgr``) onto the ArcFace template at ``size``.

    When the face is much larger than the crop, the region is first shrunk with area averaging: warping a
    1,000-pixel face straight to 112 pixels with bilinear sampling aliases and costs recognition accuracy.
    """
    template = ARCFACE_TEMPLATE_112 * (size / 112.0)
    matrix = similarity_transform(landmarks, template)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5:
        # Crop a generous box around the face, shrink it to about twice the crop's resolution, re-fit.
        x0, y0 = np.floor(landmarks.min(axis=0) - (landmarks.max(axis=0) - landmarks.min(axis=0)) * 1.5)
        x1, y1 = np.ceil(landmarks.max(axis=0) + (landmarks.max(axis=0) - landmarks.min(axis=0)) * 1.5)
        height, width = bgr.shape[:2]
        x0, y0 = int(max(0, x0)), int(max(0, y0))
        x1, y1 = int(min(width, x1)), int(min(height, y1))
        factor = min(1.0, scale * 2.0)
        if x1 - x0 > 1 and y1 - y0 > 1 and factor < 1.0:
            region = bgr[y0:y1, x0:x1]
            new_w = max(1, round((x1 - x0) * factor))
            new_h = max(1, round((y1 - y0) * factor))
            small = cv2.resize(region, (new_w, new_h), interpolation=cv2.INTER_AREA)
            local = (landmarks - np.array([x0, y0], dtype=np.float32)) * np.array(
                [new_w / (x1 - x0), new_h / (y1 - y0)], dtype=np.float32
            )
            bgr, matrix = np.asarray(small, dtype=np.uint8), similarity_transform(local, template)
    warped = cv2.warpAffine(bgr, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(warped, dtype=np.uint8)


def rescaled(
    detection: Detection, sx: float, sy: float | None = None, dx: float = 0.0, dy: float = 0.0
) -> Detection:
    """``detection`` found in a copy of a picture, in the picture's pixels: scaled by ``sx`` across and ``sy``
    down (``sx`` when None), then moved by (``dx``, ``dy``) — a reduced copy, a tile, a stretched view."""
    fy = sx if sy is None else sy
    if sx == 1.0 and fy == 1.0 and dx == 0.0 and dy == 0.0:
        return detection
    landmarks = detection.landmarks * np.array([sx, fy], dtype=np.float32) + np.array([dx, dy], dtype=np.float32)
    return Detection(
        x=detection.x * sx + dx, y=detection.y * fy + dy, w=detection.w * sx, h=detection.h * fy,
        score=detection.score, landmarks=landmarks.astype(np.float32),
    )  # fmt: skip


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    inter_w = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    inter_h = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def merge_detections(
    detections: list[Detection], iou_threshold: float = 0.4, containment: float = 0.6
) -> list[Detection]:
    """Non-maximum suppression across detection passes (tiles, scales): keep the best of overlapping boxes.

    Two boxes are the same face when their IoU reaches ``iou_threshold`` or when ``containment`` of the
    smaller box lies inside the larger one (a face found whole in one pass and partly in another).
    """
    if len(detections) < 2:
        return list(detections)
    order = sorted(range(len(detections)), key=lambda i: detections[i].score, reverse=True)
    boxes = np.array([[d.x, d.y, d.x + d.w, d.y + d.h] for d in detections], dtype=np.float64)
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0.0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0.0)
    kept: list[int] = []
    for index in order:
        if kept:
            others = boxes[kept]
            inter_w = np.minimum(others[:, 2], boxes[index, 2]) - np.maximum(others[:, 0], boxes[index, 0])
            inter_h = np.minimum(others[:, 3], boxes[index, 3]) - np.maximum(others[:, 1], boxes[index, 1])
            inter = np.clip(inter_w, 0.0, None) * np.clip(inter_h, 0.0, None)
            union = areas[kept] + areas[index] - inter
            smaller = np.minimum(areas[kept], areas[index])
            overlap_iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
            overlap_min = np.where(smaller > 0, inter / np.maximum(smaller, 1e-12), 0.0)
            if (overlap_iou >= iou_threshold).any() or (overlap_min >= containment).any():
                continue
        kept.append(index)
    return [detections[i] for i in kept]
