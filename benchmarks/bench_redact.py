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


def photos(limit: int | None, min_px: float, settings: RedactionSettings) -> None:
    base = FaceEngine.create()
    engine = redaction_engine(base, settings)
    plain = base  # identification's detector, for the height estimate only
    counts = {"faces": 0, "hidden50": 0, "hidden90": 0, "photos": 0, "skipped": 0, "regions": 0}
    seconds = []
    for entry in wider_images()[:limit]:
        image = engine.load(entry.path)
        height = estimate_source_height(entry, plain.find_faces(image))
        if height is None:
            counts["skipped"] += 1
            continue
        start = time.perf_counter()
        _, result = redact_photo(engine, image, settings)
        seconds.append(time.perf_counter() - start)
        mask = hidden_mask((image.height, image.width), result.hidden, settings.padding)
        sx, sy = image.width / WIDER_SOURCE_WIDTH, image.height / height
        counts["photos"] += 1
        counts["regions"] += len(result.hidden)
        for x, y, w, h in entry.boxes:
            box = (x * sx, y * sy, w * sx, h * sy)
            if box[3] < min_px:
                continue
            counts["faces"] += 1
            cover = coverage(mask, box)
            counts["hidden50"] += cover >= 0.5
            counts["hidden90"] += cover >= 0.9
    faces = counts["faces"]
    print(
        f"WIDER val200: {counts['photos']} photos ({counts['skipped']} without a height estimate), {faces} faces "
        f">= {min_px:g} px; left visible: {faces - counts['hidden50']} ({(faces - counts['hidden50']) / faces:.2%}) "
        f"at 50% cover, {faces - counts['hidden90']} ({(faces - counts['hidden90']) / faces:.2%}) at 90% cover; "
        f"{counts['regions']} regions obscured; median {np.median(seconds) * 1000:.0f} ms per photo; load {load_average()}",
        flush=True,
    )
    dlib(engine, settings, min_px)


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
            start = time.perf_counter()
            report = redact_video(
                engine, clip, Path(folder) / "out.mp4", VideoRedactionSettings(detect_every=every)
            )
            seconds = time.perf_counter() - start
            print(
                f"hamilton 640x360, detect every {every}: {report.frames} frames in {seconds:.1f} s = "
                f"{report.frames / seconds:.1f} fps (clip 29.97); {report.faces_hidden} face tracks hidden, "
                f"{report.regions} regions; load {load_average()}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", choices=("photos", "video", "all"), default="all")
    parser.add_argument("--limit", type=int, default=None, help="first N WIDER photos only")
    parser.add_argument("--min-px", type=float, default=16.0)
    parser.add_argument("--min-confidence", type=float, default=RedactionSettings().min_confidence)
    parser.add_argument("--padding", type=float, default=RedactionSettings().padding)
    parser.add_argument("--every", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    print(machine_info())
    if args.section in ("photos", "all"):
        chosen = RedactionSettings(min_confidence=args.min_confidence, padding=args.padding)
        print(f"settings: {chosen}")
        photos(args.limit, args.min_px, chosen)
    if args.section in ("video", "all"):
        for every in args.every:
            video(every)


if __name__ == "__main__":
    main()
