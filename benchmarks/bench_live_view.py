"""What a dashboard live view costs the server: drawing and encoding one picture from the pipeline's last
analysed frame (``video.live.annotated_jpeg``), per frame size, against the analysis of the same frame.

The live view asks for 2.5 pictures a second per watching browser; the pipeline analyses every frame it is
given. The ratio says how much a watcher adds to a camera's work. Medians of repeated runs; machine and load
printed (other processes share the cores)::

    .venv/bin/python benchmarks/bench_live_view.py
"""

from __future__ import annotations

import statistics

import numpy as np

from benchmarks.common import load_average, machine_info, timed
from facetrace.engine import FaceEngine
from facetrace.imaging import Image
from facetrace.types import BoundingBox, Detection
from facetrace.video.analysis import FrameResult, Observation
from facetrace.video.live import annotated_jpeg
from facetrace.video.source import Frame


def frame_and_result(width: int, height: int) -> tuple[Frame, FrameResult]:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    observations = []
    for i in range(3):
        det = Detection(100.0 + 300 * i, 100.0, 120.0, 150.0, 0.9, np.zeros((5, 2), dtype=np.float32))
        box = BoundingBox(det.x / width, det.y / height, det.w / width, det.h / height)
        observations.append(Observation(i, box, det, name="person" if i else None, similarity=99.0))
    return Frame.from_array(pixels, 0, 0.0), FrameResult(0, 0.0, tuple(observations), (), 0)


def main() -> None:
    print(machine_info())
    engine = FaceEngine.create()
    for width, height in ((640, 360), (1280, 720), (1920, 1080)):
        frame, result = frame_and_result(width, height)
        draw = timed(lambda frame=frame, result=result: annotated_jpeg(frame, result), repeat=30, warmup=3)
        analyse = timed(lambda frame=frame: engine.find_faces(Image(frame.bgr())), repeat=10, warmup=2)
        d, a = statistics.median(draw) * 1000, statistics.median(analyse) * 1000
        print(
            f"{width}x{height}: live picture {d:.1f} ms (median of 30), face detection {a:.1f} ms (median of 10);"
            f" 2.5 pictures/s = {2.5 * d / 10:.1f}% of one core; load {load_average()}"
        )


if __name__ == "__main__":
    main()
