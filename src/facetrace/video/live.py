"""A live view's picture: the last analysed frame of a running stream with its faces boxed and named.

Drawn on request from ``StreamWorker.latest_frame`` (the analyser's own decoded frame and results), so a
browser watching a camera costs one resize and one JPEG encode per picture it asks for, and never a second
connection to the camera or a second decoder.
"""

from __future__ import annotations

import cv2
import numpy as np

from facetrace.video.analysis import FrameResult
from facetrace.video.source import Frame

__all__ = ["annotated_jpeg"]

MAX_SIDE = 960
_KNOWN = (60, 200, 60)  # BGR
_UNKNOWN = (0, 190, 255)


def annotated_jpeg(frame: Frame, result: FrameResult, max_side: int = MAX_SIDE, quality: int = 80) -> bytes:
    """``frame`` scaled to at most ``max_side`` pixels, each observation boxed (green: identified, with the
    name and similarity; amber: not identified), as a JPEG."""
    pixels = frame.bgr()
    scale = min(1.0, max_side / max(pixels.shape[:2]))
    canvas = (
        cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if scale < 1.0
        else pixels.copy()
    )
    for seen in result.observations:
        d = seen.detection
        x0, y0 = int(d.x * scale), int(d.y * scale)
        x1, y1 = int((d.x + d.w) * scale), int((d.y + d.h) * scale)
        colour = _KNOWN if seen.name else _UNKNOWN
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, 2)
        label = f"{seen.name} {seen.similarity:.0f}" if seen.name and seen.similarity is not None else "unknown"
        (width, height), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        top = max(0, y0 - height - 6)
        cv2.rectangle(canvas, (x0, top), (x0 + width + 6, top + height + 6), colour, -1)
        cv2.putText(canvas, label, (x0 + 3, top + height + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(canvas), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR picture
        raise ValueError("could not encode the live view")
    return bytes(encoded.tobytes())
