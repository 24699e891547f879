"""Faces left visible by ``facetrace redact`` on crowd photos, and its speed on 640×360 video.

    python benchmarks/bench_redact.py [--section photos|video|all] [--limit N]

photos: WIDER FACE validation crowds (``wider_val200``: 200 photos squashed to 416×416). Their official boxes
are in the original pixels; the original height is recovered per photo from the detections
(``benchmarks.common.estimate_source_height``, photos where it cannot be are left out and counted), then every
official face at least 16 px tall in the 416×416 photo is checked: it counts as *hidden* when the obscured
regions cover at least ``--cover`` (default 0.5, also reported at 0.9) of its box. dlib_faces' 43 hand-drawn
boxes are checked the same way, in their own pixels.

video: the Hamilton clip (640×360, 29.97 fps, 275 frames, audio) redacted end to end (decode twice, detect
every ``n`` frames, track, obscure, encode H.264, copy the audio), frames per second of the whole run.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    WIDER_SOURCE_WIDTH,
    estimate_source_height,
    load_average,
    machine_info,
    require_data,
    wider_images,
)
from facetrace.engine import FaceEngine
from facetrace.redaction import RedactionSettings, padded_box, redact_photo, redaction_engine


def coverage(mask: np.ndarray, box: tuple[float, float, float, float]) -> float:
    height, width = mask.shape
    x0, y0 = max(0, round(box[0])), max(0, round(box[1]))
    x1, y1 = min(width, round(box[0] + box[2])), min(height, round(box[1] + box[3]))
    if x1 <= x0 or y1 <= y0:
        return 1.0
    return float(mask[y0:y1, x0:x1].mean())


def hidden_mask(shape: tuple[int, int], boxes, padding: float) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for box in boxes:
        x0, y0, x1, y1 = padded_box(box, padding, shape[1], shape[0])
        mask[y0:y1, x0:x1] = True
    return mask


CONFIDENCES = (0.3, 0.15)


def photos(limit: int | None, min_px: float, padding: float) -> None:
    """Each WIDER photo as given (squashed to 416×416) and with its aspect restored (416 wide, the height its
    original had), redacted at each detector score in ``CONFIDENCES``; even-numbered photos are for choosing
    the default, odd-numbered ones are reported as held out."""
    import cv2

    from facetrace.imaging import Image

    base = FaceEngine.create()
    variants = {c: RedactionSettings(min_confidence=c, padding=padding) for c in CONFIDENCES}
    engines = {c: redaction_engine(base, s) for c, s in variants.items()}
    # (split, view, confidence) -> [faces, hidden at 50%, hidden at 90%, regions, photos, seconds...]
    tally: dict[tuple[str, str, float], list[float]] = {}
    skipped = 0
    for number, entry in enumerate(wider_images()[:limit]):
        squashed = base.load(entry.path)
        height = estimate_source_height(entry, base.find_faces(squashed))
        if height is None:
            skipped += 1
            continue
        split = "even (tuning)" if number % 2 == 0 else "odd (held out)"
        restored_size = (squashed.width, round(squashed.width * height / WIDER_SOURCE_WIDTH))
        restored = Image(
            np.ascontiguousarray(cv2.resize(squashed.pixels, restored_size, interpolation=cv2.INTER_AREA))
        )
        views = {
            "squashed 416x416": (squashed, squashed.width / WIDER_SOURCE_WIDTH, squashed.height / height),
            "aspect restored": (
                restored,
                restored.width / WIDER_SOURCE_WIDTH,
                restored.width / WIDER_SOURCE_WIDTH,
            ),
        }
        for view, (image, sx, sy) in views.items():
            truth = [(x * sx, y * sy, w * sx, h * sy) for x, y, w, h in entry.boxes if h * sy >= min_px]
            for confidence, settings in variants.items():
                start = time.perf_counter()
                _, result = redact_photo(engines[confidence], image, settings)
                elapsed = time.perf_counter() - start
                mask = hidden_mask((image.height, image.width), result.hidden, settings.padding)
                row = tally.setdefault((split, view, confidence), [0, 0, 0, 0, 0, 0.0])
                covers = [coverage(mask, box) for box in truth]
                row[0] += len(truth)
                row[1] += sum(c >= 0.5 for c in covers)
                row[2] += sum(c >= 0.9 for c in covers)
                row[3] += len(result.hidden)
                row[4] += 1
                row[5] += elapsed
    print(
        f"\nWIDER val200 ({skipped} photos without a height estimate left out); faces >= {min_px:g} px; padding {padding}"
    )
    print(
        "| photos | view | detector score | faces | left visible (<50% covered) | <90% covered | regions per photo | s per photo |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for (split, view, confidence), (faces, h50, h90, regions, count, seconds) in sorted(tally.items()):
        print(
            f"| {split} ({count}) | {view} | {confidence:g} | {faces:.0f} | {faces - h50:.0f} ({(faces - h50) / faces:.2%}) | "
            f"{faces - h90:.0f} ({(faces - h90) / faces:.2%}) | {regions / count:.1f} | {seconds / count:.2f} |",
            flush=True,
        )
    print(f"load {load_average()}")
    dlib(engines[RedactionSettings().min_confidence], variants[RedactionSettings().min_confidence], min_px)


def dlib(engine: FaceEngine, settings: RedactionSettings, min_px: float) -> None:
    folder = require_data() / "dlib_faces"
    faces = hidden50 = hidden90 = 0
    for xml in ("training.xml", "testing.xml"):
        text = (folder / xml).read_text()
        for name, body in re.findall(r"<image file='([^']+)'[^>]*>(.*?)</image>", text, flags=re.S):
            image = engine.load(folder / name)
            _, result = redact_photo(engine, image, settings)
            mask = hidden_mask((image.height, image.width), result.hidden, settings.padding)
            for top, left, width, height in re.findall(
                r"<box top='(\d+)' left='(\d+)' width='(\d+)' height='(\d+)'", body
            ):
                box = (float(left), float(top), float(width), float(height))
                if box[3] < min_px:
                    continue
                faces += 1
                cover = coverage(mask, box)
                hidden50 += cover >= 0.5
                hidden90 += cover >= 0.9
    print(
        f"dlib_faces: {faces} hand-labelled faces; left visible {faces - hidden50} at 50% cover, {faces - hidden90} at 90%"
    )


def video(every: int) -> None:
    from facetrace.video.redact import VideoRedactionSettings, redact_video

    clip = require_data() / "face_recognition" / "examples" / "short_hamilton_clip.mp4"
    engine = FaceEngine.create()
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(2):
            start, cpu = time.perf_counter(), time.process_time()
            report = redact_video(
                engine, clip, Path(folder) / "out.mp4", VideoRedactionSettings(detect_every=every)
            )
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            print(
                f"hamilton 640x360, detect every {every}: {report.frames} frames in {seconds:.1f} s wall = "
                f"{report.frames / seconds:.1f} fps; {cpu:.1f} CPU-s (all threads) = {report.frames / cpu:.1f} frames "
                f"per CPU-second (clip 29.97 fps); {report.faces_hidden} face tracks, {report.regions} regions; "
                f"load {load_average()}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", choices=("photos", "video", "all"), default="all")
    parser.add_argument("--limit", type=int, default=None, help="first N WIDER photos only")
    parser.add_argument("--min-px", type=float, default=16.0)
    parser.add_argument("--padding", type=float, default=RedactionSettings().padding)
    parser.add_argument("--every", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    print(machine_info())
    if args.section in ("photos", "all"):
        photos(args.limit, args.min_px, args.padding)
    if args.section in ("video", "all"):
        for every in args.every:
            video(every)


if __name__ == "__main__":
    main()
