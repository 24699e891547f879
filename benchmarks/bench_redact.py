"""Faces left visible by ``facetrace redact`` on crowd photos, the picture it obscures needlessly, and its speed
on 640×360 video.

    python -m benchmarks.bench_redact [--section photos|video|all] [--quick] [--limit N]

``--quick`` (about 5 minutes on a quiet 2-core machine): the held-out photos only, and the video section;
it regenerates every figure in docs/redact.md except the tuning half of the photo table.

photos: WIDER FACE validation crowds (``wider_val200``: 200 photos *squashed* to 416×416 — every photo was
resized to a square whatever its shape, so faces are narrowed, most of them 2–3×). Their official boxes are
in the original pixels (1024 wide); the original height is recovered per photo from the detections
(``benchmarks.common.estimate_source_height``; photos where it cannot be are left out and counted). Each
photo is redacted twice: as shipped (*squashed*) and resized back to its own aspect, 416 px wide (*aspect
restored*, which is what real photos look like). Every official face at least 16 px tall in the view redacted
counts: it is *left visible* when the obscured regions cover less than half of its box (and, stricter, less
than 90%). The price of recall is measured as the share of the picture *outside* every official face (each
grown by the padding, as obscuring grows it) that is obscured. Even-numbered photos were used to choose the
settings; odd-numbered ones are held out. dlib_faces' 43 hand-drawn boxes are checked the same way.

video: the Hamilton clip (640×360, 29.97 fps, 275 frames, audio) redacted end to end (decode twice, detect,
track, obscure, encode H.264, copy the audio): wall time and CPU time (all threads) per second of video.
"""

from __future__ import annotations

import argparse
import math
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


def upper_bound(misses: int, total: int, confidence: float = 0.95) -> float:
    """Two-sided Clopper–Pearson upper bound of a rate seen as ``misses`` of ``total`` (bisection on the
    binomial CDF; no scipy needed)."""
    if total == 0 or misses >= total:
        return 1.0
    tail = (1.0 - confidence) / 2.0

    def cdf(p: float) -> float:
        return sum(
            math.exp(math.lgamma(total + 1) - math.lgamma(k + 1) - math.lgamma(total - k + 1)
                     + k * math.log(p) + (total - k) * math.log1p(-p))
            for k in range(misses + 1)
        )  # fmt: skip

    low, high = misses / total, 1.0
    for _ in range(60):
        mid = (low + high) / 2.0
        low, high = (mid, high) if cdf(mid) > tail else (low, mid)
    return high


VARIANTS = {
    "YuNet 0.15 (session 4)": RedactionSettings(min_confidence=0.15, centerface_confidence=None, aspects=()),
    "YuNet 0.1 + CenterFace 0.1 (session 5)": RedactionSettings(aspects=()),
    "+ YuNet stretched 2x, 3x wide and tall (default)": RedactionSettings(),
}
QUICK_VARIANTS = ("+ YuNet stretched 2x, 3x wide and tall (default)",)
"""``--quick`` measures the default only (the earlier rows' counts, measured on the same photos, do not
depend on the machine's load)."""


def photos(limit: int | None, min_px: float, padding: float, held_out_only: bool) -> None:
    """Every WIDER photo in both views, redacted with each of ``VARIANTS`` in turn (side by side); with
    ``held_out_only`` (``--quick``) the odd photos with ``QUICK_VARIANTS``."""
    import cv2

    from facetrace.imaging import Image

    base = FaceEngine.create()
    variants = {
        name: RedactionSettings(**{**_fields(s), "padding": padding})
        for name, s in VARIANTS.items()
        if name in QUICK_VARIANTS or not held_out_only
    }
    engines = {name: redaction_engine(base, s) for name, s in variants.items()}
    # (split, view, variant) -> [faces, hidden at 50%, hidden at 90%, regions, photos, seconds, non-face px, obscured]
    tally: dict[tuple[str, str, str], list[float]] = {}
    skipped = 0
    for number, entry in enumerate(wider_images()[:limit]):
        if held_out_only and number % 2 == 0:
            continue
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
            every = [(x * sx, y * sy, w * sx, h * sy) for x, y, w, h in entry.boxes]
            truth = [box for box in every if box[3] >= min_px]
            faces = hidden_mask((image.height, image.width), every, padding)
            for name, settings in variants.items():
                start = time.perf_counter()
                _, result = redact_photo(engines[name], image, settings)
                elapsed = time.perf_counter() - start
                mask = hidden_mask((image.height, image.width), result.hidden, settings.padding)
                row = tally.setdefault((split, view, name), [0, 0, 0, 0, 0, 0.0, 0, 0])
                covers = [coverage(mask, box) for box in truth]
                row[0] += len(truth)
                row[1] += sum(c >= 0.5 for c in covers)
                row[2] += sum(c >= 0.9 for c in covers)
                row[3] += len(result.hidden)
                row[4] += 1
                row[5] += elapsed
                row[6] += int((~faces).sum())
                row[7] += int((mask & ~faces).sum())
    print(
        f"\nWIDER val200 ({skipped} photos without a height estimate left out); faces >= {min_px:g} px; padding {padding}"
    )
    print(
        "| photos | view | detectors | faces | left visible (<50% covered) | 95% upper bound | <90% covered "
        "| non-face area obscured | regions per photo | s per photo |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (split, view, name), (faces, h50, h90, regions, count, seconds, background, wasted) in sorted(
        tally.items(), key=lambda item: (item[0][0], item[0][1], list(VARIANTS).index(item[0][2]))
    ):
        left = int(faces - h50)
        print(
            f"| {split} ({count}) | {view} | {name} | {faces:.0f} | {left} ({left / faces:.2%}) | "
            f"{upper_bound(left, int(faces)):.2%} | {faces - h90:.0f} ({(faces - h90) / faces:.2%}) | "
            f"{wasted / background:.1%} | {regions / count:.1f} | {seconds / count:.2f} |",
            flush=True,
        )
    print(f"load {load_average()}")
    default = list(VARIANTS)[-1]
    dlib(engines[default], variants[default], min_px)


def _fields(settings: RedactionSettings) -> dict[str, object]:
    return {name: getattr(settings, name) for name in RedactionSettings.__dataclass_fields__}


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


VIDEO_VARIANTS = {
    "before: YuNet 0.15 on every frame": dict(
        detect_every=1,
        centerface_every=0,
        redaction=RedactionSettings(min_confidence=0.15, small_faces=False, aspects=()),
    ),
    "default: YuNet 0.1 every 2nd frame, + CenterFace 0.1 every 30th": {},
    "--anamorphic on: the default + YuNet stretched 2x, 3x wide and tall every 30th": dict(
        redaction=RedactionSettings(small_faces=False)
    ),
}


def video(runs: int) -> None:
    """Each variant ``runs`` times, alternating, so that the machine's load falls on both alike."""
    from facetrace.video.redact import VideoRedactionSettings, redact_video

    clip = require_data() / "face_recognition" / "examples" / "short_hamilton_clip.mp4"
    engine = FaceEngine.create()
    seconds_of_video = 275 / 29.97
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(runs):
            for name, options in VIDEO_VARIANTS.items():
                start, cpu = time.perf_counter(), time.process_time()
                report = redact_video(
                    engine,
                    clip,
                    Path(folder) / "out.mp4",
                    VideoRedactionSettings(**options),  # type: ignore[arg-type]
                )
                seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
                print(
                    f"hamilton 640x360, {name}: {report.frames} frames in {seconds:.1f} s wall = "
                    f"{seconds_of_video / seconds:.2f}x real time; {cpu:.1f} CPU-s (all threads) = "
                    f"{cpu / seconds_of_video:.2f} CPU-s per video-s; {report.faces_hidden} face tracks, "
                    f"{report.regions} regions; load {load_average()}",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", choices=("photos", "video", "all"), default="all")
    parser.add_argument("--limit", type=int, default=None, help="first N WIDER photos only")
    parser.add_argument("--min-px", type=float, default=16.0)
    parser.add_argument("--padding", type=float, default=RedactionSettings().padding)
    parser.add_argument("--quick", action="store_true", help="held-out photos only, video once per variant")
    args = parser.parse_args()
    print(machine_info())
    if args.section in ("photos", "all"):
        photos(args.limit, args.min_px, args.padding, held_out_only=args.quick)
    if args.section in ("video", "all"):
        video(1 if args.quick else 2)


if __name__ == "__main__":
    main()
