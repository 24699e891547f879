"""What facetrace can honestly say about a face besides who it is: head pose and image quality.

Pose comes from the five detector landmarks fitted to a generic 3-D face with ``cv2.solvePnP``; it is a
coarse estimate (about ±10° near frontal, less reliable past ±45° yaw, where landmarks themselves drift).
Brightness is the mean luminance of the face box; sharpness is the variance of the Laplacian of the
aligned 112×112 crop, mapped onto 0–100. Both are on Rekognition's 0–100 scale, higher is better.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from facetrace.types import Detection, Pose, Quality

__all__ = ["FACE_MODEL_3D", "estimate_pose", "estimate_quality", "face_quality", "quality_score"]

FACE_MODEL_3D = np.array(
    [
        [-32.0, 35.0, -30.0],  # eye at the image's left (subject's right)
        [32.0, 35.0, -30.0],  # eye at the image's right
        [0.0, 0.0, 0.0],  # nose tip
        [-25.0, -32.0, -25.0],  # mouth corner, image left
        [25.0, -32.0, -25.0],  # mouth corner, image right
    ],
    dtype=np.float64,
)
"""Mean adult face landmarks in millimetres, nose tip at the origin, y up, z towards the camera."""

SHARPNESS_SCALE = 400.0
"""Laplacian variance at which sharpness reads 63 (1 − 1/e); a crisp 112-px face reads about 80–95."""

QUALITY_MIN_PX = 16.0
"""``face_quality``: a face box this many pixels tall (or fewer) scores 0 for size..."""
QUALITY_FULL_PX = 96.0
"""...and one this tall or taller 100."""
QUALITY_MIN_CONFIDENCE = 0.5
"""Detector score at which a face scores 0 for confidence (the engine's default ``min_confidence``)..."""
QUALITY_FULL_CONFIDENCE = 0.9
"""...and at or above which it scores 100."""


def estimate_pose(landmarks: npt.NDArray[np.float32], image_w: int, image_h: int) -> Pose:
    """Roll, yaw and pitch in degrees.

    Signs: roll > 0 when the face is turned clockwise in the image, yaw > 0 when the face turns towards
    the image's right, pitch > 0 when the face tilts up.
    """
    focal = float(max(image_w, image_h))
    camera = np.array([[focal, 0, image_w / 2.0], [0, focal, image_h / 2.0], [0, 0, 1]], dtype=np.float64)
    # Image y grows downwards; flip the model's y so a frontal face needs no rotation.
    model = FACE_MODEL_3D * np.array([1.0, -1.0, -1.0])
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 1, 2)
    try:
        ok, rvec, _ = cv2.solvePnP(model, points, camera, None, flags=cv2.SOLVEPNP_SQPNP)
    except cv2.error:
        ok = False
    if not ok:
        return Pose(roll=_roll(landmarks), yaw=0.0, pitch=0.0)
    rotation, _ = cv2.Rodrigues(rvec)
    # Decompose R = Rz(roll) · Ry(yaw) · Rx(pitch).
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, -rotation[2, 0]))))
    pitch = math.degrees(math.atan2(rotation[2, 1], rotation[2, 2]))
    roll = math.degrees(math.atan2(rotation[1, 0], rotation[0, 0]))
    return Pose(roll=_wrap(roll), yaw=_wrap(-yaw), pitch=_wrap(-pitch))


def _roll(landmarks: npt.NDArray[np.float32]) -> float:
    dx, dy = landmarks[1] - landmarks[0]
    return math.degrees(math.atan2(float(dy), float(dx)))


def _wrap(angle: float) -> float:
    return (angle + 180.0) % 360.0 - 180.0


def estimate_quality(bgr: npt.NDArray[np.uint8], detection: Detection, aligned: npt.NDArray[np.uint8]) -> Quality:
    """Brightness of the face box and sharpness of the aligned crop, each 0–100."""
    height, width = bgr.shape[:2]
    x0, y0 = max(0, int(detection.x)), max(0, int(detection.y))
    x1, y1 = min(width, int(detection.x + detection.w)), min(height, int(detection.y + detection.h))
    region = bgr[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else aligned
    brightness = float(cv2.cvtColor(region, cv2.COLOR_BGR2GRAY).mean()) * 100.0 / 255.0
    gray = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY)
    variance = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    sharpness = 100.0 * (1.0 - math.exp(-variance / SHARPNESS_SCALE))
    return Quality(brightness=round(brightness, 4), sharpness=round(sharpness, 4))


def face_quality(detection: Detection) -> float:
    """0–100 quality of a face *for recognition*: how far its impostor scores can be trusted.

    Impostor cosines between small faces the detector is unsure of (crowds) run much higher than between
    clear ones, so the calibration keeps one curve per quality band and scores a pair with the band of its
    worse face. Measured (``benchmarks/calibrate.py``, docs/accuracy.md): box height and detector confidence
    separate the impostor tails; sharpness, brightness and pose did not, beyond what those two say, so they
    are left out. The score is the weaker of the two, each mapped linearly onto 0–100.
    """
    return quality_score(detection.h, detection.score)


def quality_score(height_px: float, confidence: float) -> float:
    """``face_quality`` from its evidence: face box height in pixels and detector score (0–1)."""
    if not (math.isfinite(height_px) and math.isfinite(confidence)):
        return 0.0
    size = 100.0 * (height_px - QUALITY_MIN_PX) / (QUALITY_FULL_PX - QUALITY_MIN_PX)
    sure = 100.0 * (confidence - QUALITY_MIN_CONFIDENCE) / (QUALITY_FULL_CONFIDENCE - QUALITY_MIN_CONFIDENCE)
    return round(max(0.0, min(100.0, size, sure)), 2)
