"""Where the time goes: per-stage medians, tiling, indexing throughput, large images, runtime options.

    python benchmarks/bench_pipeline.py                      # every section
    python benchmarks/bench_pipeline.py --section stages     # stages | tiling | throughput | large | runtime

All timings are wall-clock medians, one inference thread per model (``FACETRACE_THREADS=1``, OpenCV limited to
one thread). Other processes share the machine: the load average is printed before and after each section;
compare figures only within one run.

Sections:
  stages      decode, detect (the ≤640 px copy), align, embed, pose+quality, end to end, on ~640×480 photos and
              on multi-megapixel photos from ../shared/data (falls back to the registry photos)
  tiling      the cost of DetectionSettings(small_faces=True) against the default, and how many more faces it
              finds on wider_val200 (416×416 crowds), also with upscale 2
  throughput  indexing rate (photos/s, analyze with vectors) with 1 and 2 worker threads, each its own models
  large       does YuNet at full resolution miss faces? detection at full resolution (max_side=4096) against the
              ≤640 px copy, on the Obama 240p…1080p series and LFW upscaled ×4 and ×8
  runtime     onnxruntime graph-optimisation levels for YuNet and SFace; YuNet through OpenCV's DNN module
  overhead    a photo end to end (``engine.analyze``, or ``locate`` + ``describe`` for the reduced decode:
              every face with its vector and details) against the bare model time (full decode + YuNet on the ≤640 px copy + SFace on the faces' crops), in CPU
              time of this one thread (robust to other load), with the reduced decode on and off
  batching    SFace CPU time per face by batch size on real aligned crops (``models/batching.py``)
  sessions    onnxruntime session options (optimisation level, denormals, memory arena/pattern) for YuNet and
              SFace on real photos' views and real aligned crops
  decode      JPEG decode by Pillow against OpenCV (``imaging._opencv_jpeg``), full and reduced, and whether the
              pixels are identical
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("FACETRACE_THREADS", "1")

import cv2
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import DATA, central_face, load_average, machine_info, median_ms, timed
from facetrace import geometry, quality
from facetrace.engine import DetectionSettings, FaceEngine
from facetrace.imaging import Image, load_image

cv2.setNumThreads(1)

SMALL_PHOTOS = ["dlib_faces/2007_007763.jpg", "dlib_faces/2008_001322.jpg", "dlib_faces/2008_002506.jpg",
                "dlib_faces/2009_004587.jpg", "dlib_faces/2008_004176.jpg"]  # fmt: skip
LARGE_PHOTOS = ["dlib_faces/bald_guys.jpg", "face_recognition/tests/test_images/obama3.jpg",
                "face_recognition/examples/knn_examples/test/obama_and_biden.jpg",
                "face_recognition/examples/obama-1080p.jpg", "face_recognition/examples/biden.jpg"]  # fmt: skip


def section(title: str) -> None:
    print(f"\n## {title}  (load {load_average()})", flush=True)


def photo_sets() -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """(~640×480 photos, multi-megapixel photos) as encoded bytes."""
    if DATA.is_dir():
        small = [(name, (DATA / name).read_bytes()) for name in SMALL_PHOTOS]
        large = [(name, (DATA / name).read_bytes()) for name in LARGE_PHOTOS]
        return small, large
    from tests.photos import photo  # the registry photos, on a machine without ../shared

    large = [(name, photo(name).read_bytes()) for name in ("t1.jpg", "obama.jpg", "biden.jpg")]
    small = []
    for name, data in large:
        pixels = load_image(data).pixels
        scale = 640 / max(pixels.shape[:2])
        _, encoded = cv2.imencode(
            ".jpg", cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        )
        small.append((name + "@640", encoded.tobytes()))
    return small, large


def stages(engine: FaceEngine, photos: list[tuple[str, bytes]], repeat: int) -> None:
    print("| photo | size | faces | decode | detect | align / face | embed / face | pose+quality / face "
          "| end to end |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    embedder = engine._embedder()
    totals: dict[str, list[float]] = {"detect": [], "align": [], "embed": [], "detail": []}
    for name, data in photos:
        image = load_image(data)
        decode = median_ms(timed(lambda data=data: load_image(data), repeat))
        detect = median_ms(timed(lambda image=image: engine.find_faces(image), repeat))
        detections = engine.find_faces(image)
        faces = max(1, len(detections))
        align = (
            median_ms(
                timed(
                    lambda image=image, d=detections: [geometry.align_face(image.pixels, x.landmarks) for x in d],
                    repeat,
                )
            )
            / faces
        )
        crops = (
            np.stack([geometry.align_face(image.pixels, d.landmarks) for d in detections]) if detections else None
        )
        embed = median_ms(timed(lambda c=crops: embedder.embed(c), repeat)) / faces if crops is not None else 0.0

        def detail(image: Image = image, d: list = detections, c: npt.NDArray[np.uint8] | None = crops) -> None:
            for index, detection in enumerate(d):
                quality.estimate_pose(detection.landmarks, image.width, image.height)
                assert c is not None
                quality.estimate_quality(image.pixels, detection, c[index])

        pose = median_ms(timed(detail, repeat)) / faces
        total = median_ms(timed(lambda data=data: engine.analyze(data), repeat))
        totals["detect"].append(detect)
        if detections:
            totals["align"].append(align)
            totals["embed"].append(embed)
            totals["detail"].append(pose)
        print(f"| {Path(name).name} | {image.width}×{image.height} | {len(detections)} | {decode:.1f} | {detect:.1f} "
              f"| {align:.2f} | {embed:.1f} | {pose:.2f} | {total:.1f} |")  # fmt: skip
    print("medians over photos (ms): " + ", ".join(f"{k} {np.median(v):.2f}" for k, v in totals.items() if v))


def run_stages(repeat: int) -> None:
    engine = FaceEngine.create()
    small, large = photo_sets()
    section("stages, ~640×480 photos (ms, medians)")
    stages(engine, small, repeat)
    section("stages, multi-megapixel photos (ms, medians)")
    stages(engine, large, repeat)
    section("model construction")
    samples = timed(FaceEngine.create, 5)
    print(f"FaceEngine.create(): {median_ms(samples):.0f} ms median (per worker thread, once)")
    detector = engine._detector()
    frame = np.ascontiguousarray(cv2.resize(load_image(large[0][1]).pixels, (640, 480)))
    print(
        f"YuNet forward+decode at 640×480: {median_ms(timed(lambda: detector.detect(frame), repeat * 3)):.1f} ms"
    )


def run_tiling(repeat: int) -> None:
    section("tiling: cost on single photos (find_faces, ms)")
    variants = {
        "default": DetectionSettings(),
        "small_faces": DetectionSettings(small_faces=True),
        "small_faces upscale 2": DetectionSettings(small_faces=True, upscale=2.0),
    }
    engines = {name: FaceEngine.create(settings=s) for name, s in variants.items()}
    small, large = photo_sets()
    print("| photo | size | " + " | ".join(f"{n} (faces, ms)" for n in variants) + " |")
    print("|---|---|" + "---|" * len(variants))
    for name, data in [small[0], large[0], large[1]]:
        image = load_image(data)
        cells = []
        for engine in engines.values():
            ms = median_ms(timed(lambda engine=engine, image=image: engine.find_faces(image), max(2, repeat // 3)))
            cells.append(f"{len(engine.find_faces(image))}, {ms:.0f}")
        print(f"| {Path(name).name} | {image.width}×{image.height} | " + " | ".join(cells) + " |")
    folder = DATA / "wider_val200" / "images"
    if not folder.is_dir():
        print("(wider_val200 not present: skipped the crowd count)")
        return
    section("tiling on wider_val200 (200 crowd photos, 416×416, 4,372 official faces in the originals)")
    images = [load_image(p) for p in sorted(folder.glob("*.jpg"))]
    print("| settings | faces found | ≥ 24 px tall | ms / photo (median) |")
    print("|---|---|---|---|")
    for name, engine in engines.items():
        counts, tall, times = 0, 0, []
        for image in images:
            start = time.perf_counter()
            found = engine.find_faces(image)
            times.append(time.perf_counter() - start)
            counts += len(found)
            tall += sum(1 for d in found if d.h >= 24)
        print(f"| {name} | {counts} | {tall} | {median_ms(times):.1f} |")


def throughput_photos() -> dict[str, list[bytes]]:
    sets: dict[str, list[bytes]] = {}
    if DATA.is_dir():
        sets["lfw_subset (250×250, 1+ faces)"] = [
            p.read_bytes() for p in sorted((DATA / "lfw_subset").glob("*/*.jpg"))
        ]
        small = [p.read_bytes() for p in sorted((DATA / "dlib_faces").glob("20*.jpg"))]
        sets["VOC photos (500×375, 1–6 faces)"] = small * 8
        sets["wider_val200 (416×416 crowds)"] = [
            p.read_bytes() for p in sorted((DATA / "wider_val200" / "images").glob("*.jpg"))
        ]
        large = [(DATA / name).read_bytes() for name in LARGE_PHOTOS]
        sets["multi-megapixel (2–3.3 MP)"] = large * 4
    else:
        from tests.photos import photo

        sets["registry photos"] = [photo(n).read_bytes() for n in ("obama.jpg", "obama2.jpg", "biden.jpg")] * 10
    return sets


def index_rate(engine: FaceEngine, photos: list[bytes], workers: int) -> tuple[float, int]:
    """Photos per second and faces embedded, ``workers`` threads pulling from one list."""
    lock = threading.Lock()
    position = [0]
    faces = [0]

    def work() -> None:
        engine.analyze(photos[0])  # build this thread's models before the clock starts
        barrier.wait()
        while True:
            with lock:
                index = position[0]
                position[0] += 1
            if index >= len(photos):
                return
            try:
                _, found = engine.analyze(photos[index])
            except Exception:
                continue
            with lock:
                faces[0] += len(found)

    barrier = threading.Barrier(workers + 1)
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    return len(photos) / (time.perf_counter() - start), faces[0]


def run_throughput(repeat: int) -> None:
    section("indexing throughput (analyze + vectors; photos/s)")
    engine = FaceEngine.create()
    print("| photos | count | faces | 1 thread | 2 threads |")
    print("|---|---|---|---|---|")
    for name, photos in throughput_photos().items():
        one, faces = index_rate(engine, photos, 1)
        two, _ = index_rate(engine, photos, 2)
        print(f"| {name} | {len(photos)} | {faces} | {one:.1f} | {two:.1f} |", flush=True)


def run_large(repeat: int) -> None:
    section("large images: detect on a ≤640 px copy (default) or at full resolution (max_side=4096)")
    copy = FaceEngine.create()
    full = FaceEngine.create(settings=DetectionSettings(max_side=4096))
    if not DATA.is_dir():
        print("(../shared/data not present: skipped)")
        return
    reference = copy.largest_face(DATA / "face_recognition/examples/obama.jpg")[1].vector
    assert reference is not None
    print("| photo | size | faces (copy) | faces (full res) | similarity to obama.jpg (copy / full) "
          "| detect ms (copy / full) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for height in (240, 480, 720, 1080):
        image = copy.load(DATA / f"face_recognition/examples/obama-{height}p.jpg")
        cells = []
        for engine in (copy, full):
            _, faces = engine.analyze(image)
            best = max(
                (engine.similarity(reference, f.vector) for f in faces if f.vector is not None), default=0.0
            )
            cells.append((len(faces), best, median_ms(timed(lambda e=engine, i=image: e.find_faces(i), 3))))
        print(f"| obama-{height}p | {image.width}×{image.height} | {cells[0][0]} | {cells[1][0]} "
              f"| {cells[0][1]:.1f} / {cells[1][1]:.1f} | {cells[0][2]:.0f} / {cells[1][2]:.0f} |")  # fmt: skip
    paths = sorted((DATA / "lfw_subset").glob("*/*.jpg"))
    print("\nLFW (100 photos, 250×250) upscaled: the labelled (centred) face found, and its box height")
    print("| scale | size | found (copy) | found (full res) | median box h / image h (copy / full) |")
    print("|---|---|---|---|---|")
    for factor in (1, 4, 8):
        found = {"copy": 0, "full": 0}
        heights: dict[str, list[float]] = {"copy": [], "full": []}
        for path in paths:
            pixels = copy.load(path).pixels
            big = Image(pixels=cv2.resize(pixels, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC))
            for name, engine in (("copy", copy), ("full", full)):
                detections = engine.find_faces(big)
                face = central_face(detections, big.width, big.height)
                if face is not None and face.x <= big.width / 2 <= face.x + face.w:
                    found[name] += 1
                    heights[name].append(face.h / big.height)
        side = 250 * factor
        print(f"| ×{factor} | {side}×{side} | {found['copy']}/100 | {found['full']}/100 "
              f"| {np.median(heights['copy']):.2f} / {np.median(heights['full'] or [0]):.2f} |", flush=True)  # fmt: skip


def run_runtime(repeat: int) -> None:
    import onnx
    import onnxruntime as ort

    from facetrace.models.assets import ARTIFACTS, artifact_path

    section("onnxruntime optimisation levels (forward pass only, ms)")
    inputs = {
        "face_detection_yunet_2023mar.onnx": np.random.default_rng(0).uniform(0, 255, (1, 3, 480, 640)),
        "face_recognition_sface_2021dec.onnx": np.random.default_rng(0).uniform(0, 255, (1, 3, 112, 112)),
    }
    print("| model | input | BASIC | EXTENDED | ALL |")
    print("|---|---|---|---|---|")
    for name, blob in inputs.items():
        model = onnx.load(str(artifact_path(ARTIFACTS[name])))
        initializers = {t.name for t in model.graph.initializer}
        real = [i for i in model.graph.input if i.name not in initializers]
        del model.graph.input[:]
        model.graph.input.extend(real)
        dims = model.graph.input[0].type.tensor_type.shape.dim
        dims[2].dim_param, dims[3].dim_param = "H", "W"
        for output in model.graph.output:
            for dim in output.type.tensor_type.shape.dim:
                dim.dim_param = dim.dim_param or "D"
        serialized = model.SerializeToString()
        cells = []
        for level in ("ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL"):
            options = ort.SessionOptions()
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
            options.log_severity_level = 3
            session = ort.InferenceSession(serialized, options, providers=["CPUExecutionProvider"])
            feed = {session.get_inputs()[0].name: blob.astype(np.float32)}
            cells.append(f"{median_ms(timed(lambda s=session, f=feed: s.run(None, f), repeat * 2)):.1f}")
        print(f"| {name} | {'×'.join(map(str, blob.shape))} | " + " | ".join(cells) + " |")
    path = artifact_path(ARTIFACTS["face_detection_yunet_2023mar.onnx"])
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    yunet_cv = cv2.FaceDetectorYN.create(str(path), "", (640, 480), 0.5, 0.3, 5000)
    ms = median_ms(timed(lambda: yunet_cv.detect(frame), repeat * 2))
    print(f"YuNet via cv2.FaceDetectorYN (OpenCV DNN, 1 thread) at 640×480: {ms:.1f} ms")


def cpu_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median CPU time of ``fn`` on this thread, in ms (other processes' load does not count)."""
    fn()
    samples = []
    for _ in range(repeat):
        start = time.thread_time()
        fn()
        samples.append(time.thread_time() - start)
    return float(np.median(samples)) * 1000.0


def overhead_photos() -> list[tuple[str, bytes]]:
    if not DATA.is_dir():
        from tests.photos import photo

        return [(n, photo(n).read_bytes()) for n in ("obama.jpg", "obama3.jpg", "biden.jpg", "t1.jpg")]
    names = LARGE_PHOTOS + SMALL_PHOTOS + [
        "face_recognition/examples/alex-lacamoire.png", "face_recognition/examples/obama-720p.jpg",
        "face_recognition/examples/knn_examples/train/alex_lacamoire/img1.jpg", "lfw_subset/Colin_Powell/Colin_Powell_0001.jpg",
    ]  # fmt: skip
    return [(name, (DATA / name).read_bytes()) for name in names if (DATA / name).is_file()]


def run_overhead(repeat: int) -> None:
    section("a photo end to end against the bare model time (CPU ms of one thread, medians)")
    reduced = FaceEngine.create()
    full = FaceEngine.create(settings=DetectionSettings(reduced_decode=False))
    detector, embedder = full._detector(), full._embedder()
    print("| photo | size | faces | decode | YuNet | SFace | bare model | end to end (full decode) | ratio "
          "| end to end (reduced decode) | ratio |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    ratios: dict[str, list[float]] = {"full": [], "reduced": []}
    for name, data in overhead_photos():
        image = load_image(data)
        scale = min(1.0, 640 / max(image.width, image.height))
        view = np.ascontiguousarray(
            image.pixels
            if scale == 1.0
            else cv2.resize(image.pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        )
        detections = full.find_faces(image)
        crops = (
            np.stack([geometry.align_face(image.pixels, d.landmarks) for d in detections]) if detections else None
        )
        decode = cpu_ms(lambda data=data: load_image(data), repeat)
        yunet = cpu_ms(lambda view=view: detector.detect(view), repeat)
        sface = cpu_ms(lambda crops=crops: embedder.embed(crops), repeat) if crops is not None else 0.0
        bare = decode + yunet + sface
        whole = cpu_ms(lambda data=data: full.analyze(data), repeat)
        small = cpu_ms(lambda data=data: reduced.describe(*reduced.locate(data)), repeat)
        ratios["full"].append(whole / bare)
        ratios["reduced"].append(small / bare)
        print(f"| {Path(name).name} | {image.width}×{image.height} | {len(detections)} | {decode:.1f} | {yunet:.1f} "
              f"| {sface:.1f} | {bare:.1f} | {whole:.1f} | {whole / bare:.2f} | {small:.1f} | {small / bare:.2f} |",
              flush=True)  # fmt: skip
    print("median ratio to the bare model time: "
          + ", ".join(f"{k} decode {np.median(v):.2f} (max {max(v):.2f})" for k, v in ratios.items()))  # fmt: skip


def run_decode(repeat: int) -> None:
    from facetrace import imaging

    section("JPEG decode: Pillow against OpenCV (imaging._opencv_jpeg), CPU ms of one thread, medians")
    print("| photo | size | reduce_to | Pillow | OpenCV | saved | identical pixels |")
    print("|---|---|---|---|---|---|---|")
    saved = []
    for name, data in overhead_photos():
        if not name.endswith(".jpg"):
            continue
        for reduce_to in (None, 640):

            def pillow(data: bytes = data, reduce_to: int | None = reduce_to) -> Image:
                imaging.OPENCV_JPEG = False
                try:
                    return load_image(data, reduce_to=reduce_to)
                finally:
                    imaging.OPENCV_JPEG = True

            def opencv(data: bytes = data, reduce_to: int | None = reduce_to) -> Image:
                return load_image(data, reduce_to=reduce_to)

            same = np.array_equal(pillow().pixels, opencv().pixels)
            slow, fast = cpu_ms(pillow, repeat), cpu_ms(opencv, repeat)
            saved.append(1 - fast / slow)
            size = "×".join(map(str, load_image(data).pixels.shape[1::-1]))
            print(f"| {Path(name).name} | {size} | {reduce_to or 'full'} | {slow:.1f} | {fast:.1f} | "
                  f"{1 - fast / slow:.0%} | {same} |", flush=True)  # fmt: skip
    print(f"median CPU saved: {np.median(saved):.0%}")


def run_sessions(repeat: int) -> None:
    import onnxruntime as ort

    from facetrace.models.assets import ARTIFACTS, artifact_path
    from facetrace.models.runtime import load_onnx_session

    section("onnxruntime session options on real inputs (CPU ms per call of one thread, medians)")
    engine = FaceEngine.create()
    views, crops = [], []
    for _, data in overhead_photos()[:6]:
        image, found = engine.locate(data, 1)
        if found:
            crops.append(geometry.align_face(image.pixels, found[0].landmarks)[None])
        scale = min(1.0, 640 / max(image.width, image.height))
        view = cv2.resize(image.pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        height, width = view.shape[:2]
        blob = np.zeros((1, 3, -(-height // 32) * 32, -(-width // 32) * 32), dtype=np.float32)
        blob[0, :, :height, :width] = view.transpose(2, 0, 1)
        views.append(blob)
    sface = np.concatenate(crops)[..., ::-1].astype(np.float32).transpose(0, 3, 1, 2)

    def level(value: ort.GraphOptimizationLevel) -> Callable[[ort.SessionOptions], None]:
        return lambda options: setattr(options, "graph_optimization_level", value)

    def entry(key: str) -> Callable[[ort.SessionOptions], None]:
        return lambda options: options.add_session_config_entry(key, "1")

    variants: dict[str, Callable[[ort.SessionOptions], None] | None] = {
        "facetrace's (ENABLE_ALL)": None,
        "ENABLE_EXTENDED": level(ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED),
        "denormals as zero": entry("session.set_denormal_as_zero"),
        "no memory arena": lambda options: setattr(options, "enable_cpu_mem_arena", False),
        "no memory pattern": lambda options: setattr(options, "enable_mem_pattern", False),
    }
    files = {
        "YuNet": ("face_detection_yunet_2023mar.onnx", {"dynamic_spatial": True}, views),
        "SFace": ("face_recognition_sface_2021dec.onnx", {"batch_dim": True}, [c[None] for c in sface]),
    }
    print("| model | " + " | ".join(variants) + " |")
    print("|---|" + "---|" * len(variants))
    for model, (file, shape, inputs) in files.items():
        sessions = {
            name: load_onnx_session(artifact_path(ARTIFACTS[file]), threads=1, tune=tune, **shape)  # type: ignore[arg-type]
            for name, tune in variants.items()
        }
        feed = sessions[next(iter(variants))].get_inputs()[0].name
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(repeat):  # interleaved, so drifting load affects every variant alike
            for name, session in sessions.items():
                start = time.thread_time()
                for blob in inputs:
                    session.run(None, {feed: blob})
                samples[name].append((time.thread_time() - start) / len(inputs))
        cells = [f"{np.median(samples[name]) * 1000:.2f}" for name in variants]
        print(f"| {model} | " + " | ".join(cells) + " |", flush=True)


def run_batching(repeat: int) -> None:
    section("SFace CPU time per face by batch size (real aligned crops, one onnxruntime thread)")
    engine = FaceEngine.create()
    folder = DATA / "lfw_subset"
    paths = sorted(folder.glob("*/*.jpg"))[:16] if folder.is_dir() else []
    crops = []
    for path in paths:
        _, faces = engine.analyze(path, max_faces=1, keep_crops=True)
        crops += [f.crop for f in faces if f.crop is not None]
    if len(crops) < 8:
        print("(lfw_subset not present: skipped)")
        return
    batch = np.stack(crops)
    embedder = engine._embedder()
    print("| batch | CPU ms per face | relative to 1 |")
    print("|---|---|---|")
    one = 0.0
    for size in (1, 2, 4, 8, 16):
        per_face = cpu_ms(lambda size=size: embedder.embed(batch[:size]), max(3, repeat * 2 // size)) / size
        one = one or per_face
        print(f"| {size} | {per_face:.2f} | {per_face / one:.2f} |", flush=True)


SECTIONS: dict[str, Callable[[int], None]] = {
    "overhead": run_overhead,
    "decode": run_decode,
    "sessions": run_sessions,
    "batching": run_batching,
    "stages": run_stages,
    "tiling": run_tiling,
    "throughput": run_throughput,
    "large": run_large,
    "runtime": run_runtime,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", choices=sorted(SECTIONS), action="append")
    parser.add_argument("--repeat", type=int, default=15, help="timed repetitions per measurement")
    args = parser.parse_args()
    print(machine_info())
    for name in args.section or list(SECTIONS):
        SECTIONS[name](args.repeat)
    print(f"\nload average at the end: {load_average()}")


if __name__ == "__main__":
    main()
