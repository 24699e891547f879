"""Helpers shared by the benchmark scripts: machine info, timing, the labelled sets in ../shared/data.

Nothing here is part of facetrace; the scripts import it as ``benchmarks.common`` (run them from the repo
root as ``python -m benchmarks.<name>`` or ``python benchmarks/<name>.py``).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facetrace.engine import FaceEngine
from facetrace.imaging import Image
from facetrace.types import Detection

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("FACETRACE_SHARED_DATA", ROOT.parent / "shared" / "data"))
WIDER_SOURCE_WIDTH = 1024  # every WIDER FACE image is 1024 px wide; the shared copies are squashed to 416×416


def require_data() -> Path:
    if not DATA.is_dir():
        sys.exit(f"{DATA} does not exist: the benchmarks need ../shared/data (or FACETRACE_SHARED_DATA)")
    return DATA


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine_info() -> str:
    """One paragraph: CPU, cores, load, Python and the versions of the libraries that matter for speed."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for module in ("numpy", "cv2", "onnxruntime", "PIL"):
        with contextlib.suppress(ImportError):
            versions.append(f"{module} {__import__(module).__version__}")
    return (
        f"machine: {cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}\n"
        f"load average (1/5/15 min): {load_average()}\n"
        f"python {platform.python_version()}; " + ", ".join(versions) + "\n"
        f"FACETRACE_THREADS={os.environ.get('FACETRACE_THREADS', '1 (default)')}"
    )


def timed(fn: Callable[[], object], repeat: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of ``repeat`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def median_ms(samples: Sequence[float]) -> float:
    return statistics.median(samples) * 1000.0


def central_face(detections: Sequence[Detection], width: int, height: int) -> Detection | None:
    """The face the photo is *of*: the largest one whose box contains the centre, else the largest.

    LFW photos and dlib's chips are centred on the labelled person; other faces at the edges are bystanders.
    """
    if not detections:
        return None
    cx, cy = width / 2.0, height / 2.0
    covering = [d for d in detections if d.x <= cx <= d.x + d.w and d.y <= cy <= d.y + d.h]
    return max(covering or detections, key=lambda d: d.area)


# -- labelled verification sets ------------------------------------------------------------------------


@dataclass
class PairSet:
    """Images with identities and the pairs to verify (index a, index b, same person?)."""

    name: str
    images: list[Path]
    identities: list[str]
    pairs: list[tuple[int, int, bool]] = field(default_factory=list)
    central: bool = True  # pick the centred face (LFW, chips) rather than the largest

    @property
    def genuine(self) -> int:
        return sum(1 for _, _, same in self.pairs if same)

    @property
    def impostor(self) -> int:
        return len(self.pairs) - self.genuine


def _from_pairs_csv(name: str, folder: Path) -> PairSet:
    images: dict[str, int] = {}
    paths: list[Path] = []
    pairs = []
    with (folder / "all_pairs.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            indices = []
            for key in ("img_a", "img_b"):
                rel = row[key]
                if rel not in images:
                    images[rel] = len(paths)
                    paths.append(folder / rel)
                indices.append(images[rel])
            pairs.append((indices[0], indices[1], row["same"] == "1"))
    identities = [p.parent.name for p in paths]
    return PairSet(name=name, images=paths, identities=identities, pairs=pairs)


def lfw_subset() -> PairSet:
    return _from_pairs_csv("lfw_subset", require_data() / "lfw_subset")


def dlib_johns() -> PairSet:
    return _from_pairs_csv("dlib_johns", require_data() / "dlib_johns")


def face_recognition_set() -> PairSet:
    """face_recognition's photos that show one labelled person, byte-identical copies dropped; all pairs."""
    folder = require_data() / "face_recognition"
    seen: set[str] = set()
    paths: list[Path] = []
    identities: list[str] = []
    with (folder / "labels.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            path = folder / row["path"]
            names = row["identities"]
            if ";" in names or names == "?" or path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in seen:
                continue
            seen.add(digest)
            paths.append(path)
            identities.append(names)
    pairs = [(a, b, identities[a] == identities[b]) for a in range(len(paths)) for b in range(a + 1, len(paths))]
    return PairSet(name="face_recognition", images=paths, identities=identities, pairs=pairs, central=False)


def labelled_sets() -> list[PairSet]:
    return [lfw_subset(), dlib_johns(), face_recognition_set()]


# -- WIDER FACE crowds -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WiderImage:
    path: Path
    boxes: npt.NDArray[np.float64]  # official boxes (x, y, w, h) in pixels of the 1024-px-wide original


def wider_images() -> list[WiderImage]:
    folder = require_data() / "wider_val200"
    entries = json.loads((folder / "annotations.json").read_text())
    return [
        WiderImage(path=folder / entry["file"], boxes=np.asarray(entry["boxes_xywh"], dtype=np.float64))
        for entry in entries
    ]


def estimate_source_height(image: WiderImage, detections: Sequence[Detection], side: int = 416) -> int | None:
    """The original height of a squashed 416×416 WIDER image, recovered from its official boxes.

    The width is known (1024), so detections map onto the official boxes horizontally; the vertical scale is
    the one that makes the most detections overlap their official box (IoU ≥ 0.5). None when fewer than
    faces agree.
    """
    if not detections or len(image.boxes) == 0:
        return None
    sx = side / WIDER_SOURCE_WIDTH
    truth = image.boxes
    best: tuple[int, float, int] | None = None
    for height in range(int(max(side, (truth[:, 1] + truth[:, 3]).max())), 3001, 4):
        sy = side / height
        gx, gy, gw, gh = truth[:, 0] * sx, truth[:, 1] * sy, truth[:, 2] * sx, truth[:, 3] * sy
        matched, total = 0, 0.0
        for d in detections:
            ix = np.clip(np.minimum(gx + gw, d.x + d.w) - np.maximum(gx, d.x), 0, None)
            iy = np.clip(np.minimum(gy + gh, d.y + d.h) - np.maximum(gy, d.y), 0, None)
            inter = ix * iy
            iou = inter / (gw * gh + d.w * d.h - inter)
            top = float(iou.max())
            if top >= 0.5:
                matched += 1
                total += top
        if matched and (best is None or (matched, total) > (best[0], best[1])):
            best = (matched, total, height)
    return None if best is None else best[2]


def chosen_face(
    engine: FaceEngine, image: Image, pair_set: PairSet, detections: list[Detection] | None = None
) -> Detection | None:
    """The face an image of ``pair_set`` is labelled for: the centred one (LFW, chips) or the largest."""
    detections = engine.find_faces(image) if detections is None else detections
    if pair_set.central:
        return central_face(detections, image.width, image.height)
    return detections[0] if detections else None


def embed_set(engine: FaceEngine, pair_set: PairSet, *, reduced: bool = False) -> npt.NDArray[np.float32]:
    """One vector per image of ``pair_set`` (its centred or largest face); a row of NaN where none was found.

    ``reduced``: decode as ``engine.analyze`` does (``FaceEngine.locate``: at a reduced size where the faces
    allow it); otherwise always at full size."""
    vectors = np.full((len(pair_set.images), engine.model.dim), np.nan, dtype=np.float32)
    for index, path in enumerate(pair_set.images):
        if reduced:
            image, found = engine.locate(path)
            chosen = chosen_face(engine, image, pair_set, found)
        else:
            image = engine.load(path)
            chosen = chosen_face(engine, image, pair_set)
        if chosen is None:
            continue
        face = engine.describe(image, [chosen])[0]
        assert face.vector is not None
        vectors[index] = face.vector
    return vectors


def cache_dir() -> Path:
    path = Path(os.environ.get("FACETRACE_BENCH_CACHE", Path.home() / ".cache" / "facetrace" / "bench"))
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- synthetic clips (bench_video, bench_streams) ----------------------------------------------------------


def noise_canvas(size: tuple[int, int], seed: int) -> npt.NDArray[np.uint8]:
    """A still, dim background of coarse random texture (width × height): encoded, it carries real H.264
    noise, so a detector and a motion gate see what a quiet camera gives rather than a flat colour."""
    import cv2

    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    return np.ascontiguousarray(cv2.resize(noise, size, interpolation=cv2.INTER_CUBIC) * 0.4 + 50).astype(np.uint8)


def write_clip(path: Path, frames: Iterable[npt.NDArray[np.uint8]], fps: int, size: tuple[int, int]) -> Path:
    """Encode BGR ``frames`` (each ``size``) at ``fps`` as H.264 at 1.5 Mbit/s (MPEG-4 part 2 where FFmpeg
    has no libx264), frame ``i`` at pts ``i``."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.bit_rate = 1_500_000
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="bgr24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
