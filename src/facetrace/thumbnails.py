"""Small face pictures for people: event snapshots, enrolled-face and sighting thumbnails, review items.

A thumbnail is the detected box with a 25% margin (a person recognises a face with its hair and chin, which the
112-pixel aligned crop cuts off), shrunk so its longer side is at most ``side`` pixels, as a JPEG. Cutting the
array is separate from encoding it because the video pipeline keeps the best crop of a track as pixels and
encodes only the one it finally reports.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from facetrace.types import Detection

THUMBNAIL_SIDE = 128
"""Default longer side in pixels: enough to recognise a face on a screen, ~4–6 KB as a JPEG."""

JPEG_QUALITY = 85


def face_crop(
    pixels: npt.NDArray[np.uint8], detection: Detection, side: int = THUMBNAIL_SIDE
) -> npt.NDArray[np.uint8]:
    """The face in ``pixels`` (BGR) with a 25% margin, scaled so its longer side is at most ``side`` pixels."""
    height, width = pixels.shape[:2]
    margin = 0.25 * max(detection.w, detection.h)
    x0, y0 = int(max(0, detection.x - margin)), int(max(0, detection.y - margin))
    x1 = int(min(width, detection.x + detection.w + margin))
    y1 = int(min(height, detection.y + detection.h + margin))
    crop = pixels[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]
    scale = side / max(crop.shape[:2])
    if scale < 1.0:
        return np.ascontiguousarray(cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    return np.ascontiguousarray(crop)


def encode_jpeg(crop: object) -> bytes | None:
    """JPEG bytes of a BGR crop, or None for anything that is not a non-empty picture."""
    if not isinstance(crop, np.ndarray) or crop.size == 0:
        return None
    ok, encoded = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    return encoded.tobytes() if ok else None


def face_thumbnail(
    pixels: npt.NDArray[np.uint8], detection: Detection, side: int = THUMBNAIL_SIDE
) -> bytes | None:
    """``face_crop`` as a JPEG: what is stored with a face, a sighting or a review item."""
    return encode_jpeg(face_crop(pixels, detection, side))
