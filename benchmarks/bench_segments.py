"""Segmented stored-video jobs and bulk indexing: in-process vs Ray, on this machine.

    python benchmarks/bench_segments.py [--repeats 2] [--photos 200] [--skip segments,indexing]

Segments: one face-search job over a 30 s clip (the Hamilton clip three times over when ../shared is there,
else a generated clip of registry photos), in one pass and in segments on a local Ray cluster of 1, 2 and 3
logical CPUs (one task per CPU, two segments per worker). The machine has 2 cores, so the ceiling is 2×;
efficiency = speed-up / min(workers, cores). Indexing: face crops of the registry photos indexed in-process
(2 threads) and through Ray (2 CPUs), faces per second. Medians of ``--repeats`` runs; the load average is
printed with every figure (other processes share the cores).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import av

from facetrace.engine import FaceEngine
from facetrace.gallery import Gallery
from facetrace.gallery.bulk import ThreadAnalyser, index_files
from facetrace.store import MemoryStore
from facetrace.video.jobs import JobSettings, JobStatus, VideoJobs
from facetrace.video.segments import SegmentExecutor, SegmentSettings, ThreadExecutor
from tests.photos import PHOTOS, photo, shared_data

CLIP_SECONDS = 30


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f}/{five:.1f}"


def long_clip(folder: Path, engine: FaceEngine) -> tuple[Path, Gallery, str]:
    """A 30 s clip and a collection to search it with."""
    gallery = Gallery(engine, MemoryStore())
    gallery.create_collection("cast")
    shared = shared_data()
    out = folder / "long.mp4"
    if shared is not None:
        examples = shared / "face_recognition" / "examples"
        for name in ("lin-manuel-miranda", "alex-lacamoire"):
            gallery.index_faces("cast", examples / f"{name}.png", external_image_id=name, max_faces=1)
        source = examples / "short_hamilton_clip.mp4"
        with av.open(str(source)) as inp, av.open(str(out), "w") as dst:
            stream = dst.add_stream("libx264", rate=30)
            stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
            stream.options = {"preset": "ultrafast", "g": "60"}
            frames = [f.to_ndarray(format="bgr24") for f in inp.decode(video=0)]
            pts = 0
            while pts < CLIP_SECONDS * 30:
                for pixels in frames:
                    frame = av.VideoFrame.from_ndarray(pixels, format="bgr24")
                    frame.pts = pts
                    pts += 1
                    for packet in stream.encode(frame):
                        dst.mux(packet)
            for packet in stream.encode():
                dst.mux(packet)
        return out, gallery, "Hamilton clip ×3"
    from tests.video.conftest import SECONDS, Actor, sprite, write_video

    gallery.index_faces("cast", photo("obama2.jpg"), external_image_id="obama", max_faces=1)
    gallery.index_faces("cast", photo("biden.jpg"), external_image_id="biden", max_faces=1)
    base = [
        Actor("obama", sprite(engine, photo("obama.jpg"), 80), 0.0, 2.6, (40, 20), (300, 30)),
        Actor("biden", sprite(engine, photo("biden.jpg"), 80), 1.4, 4.0, (500, 40), (360, 30)),
    ]
    actors = [
        Actor(a.name, a.sprite, a.start + k * SECONDS, a.end + k * SECONDS, a.origin, a.destination)
        for k in range(int(CLIP_SECONDS / SECONDS))
        for a in base
    ]
    return write_video(out, actors, seconds=CLIP_SECONDS), gallery, "generated clip"


def timed_job(
    gallery: Gallery, clip: Path, executor: SegmentExecutor | None, workers: int, cpu: list[float] | None = None
) -> tuple[float, int]:
    """Wall seconds and person tracks of one face search; ``cpu`` gets this process's CPU seconds (all its
    threads: the whole job when it runs in-process), which other processes' load does not inflate."""
    settings = JobSettings(segments=SegmentSettings(segments=2 * workers, min_seconds=2.0))
    jobs = VideoJobs(gallery, settings=settings, executor=executor)
    began, began_cpu = time.perf_counter(), time.process_time()
    job = jobs.wait(jobs.start_face_search(clip, "cast", threshold=99.0), timeout=900)
    elapsed = time.perf_counter() - began
    if cpu is not None:
        cpu.append(time.process_time() - began_cpu)
    jobs.close(wait=True)
    assert job.status is JobStatus.SUCCEEDED, job.message
    return elapsed, len({item["Person"]["Index"] for item in job.results})


def bench_segments(engine: FaceEngine, repeats: int) -> None:
    import ray

    from facetrace.cluster.jobs import RaySegmentExecutor

    with tempfile.TemporaryDirectory() as tmp:
        clip, gallery, what = long_clip(Path(tmp), engine)
        print(f"\n## Segmented face search, {what}, {CLIP_SECONDS} s at 5 analysed fps, threshold 99")
        timed_job(gallery, clip, None, 1)  # warm the models
        times: list[float] = []
        cpu_single: list[float] = []
        for _ in range(repeats):
            elapsed, persons = timed_job(gallery, clip, None, 1, cpu_single)
            times.append(elapsed)
        single = statistics.median(times)
        print(
            f"one pass (in-process, no segments): {single:.1f} s, {statistics.median(cpu_single):.1f} CPU s, "
            f"{persons} person track(s) ({load()})"
        )
        for workers in (2,):
            cpu_threads: list[float] = []
            threads = statistics.median(
                timed_job(gallery, clip, ThreadExecutor(workers), workers, cpu_threads)[0] for _ in range(repeats)
            )
            work = statistics.median(cpu_threads) / statistics.median(cpu_single)
            print(
                f"threads, {workers} worker(s), {2 * workers} segments: {threads:.1f} s, speed-up "
                f"{single / threads:.2f}×; CPU {statistics.median(cpu_threads):.1f} s = {work:.2f}× the one pass's "
                f"work, so at most {min(workers, os.cpu_count() or 1) / work:.2f}× on idle cores ({load()})"
            )
        for workers in (1, 2, 3):
            ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False)
            try:
                executor = RaySegmentExecutor()
                timed_job(gallery, clip, executor, workers)  # workers build their models
                times = []
                for _ in range(repeats):
                    elapsed, persons = timed_job(gallery, clip, executor, workers)
                    times.append(elapsed)
            finally:
                ray.shutdown()
            took = statistics.median(times)
            speedup = single / took
            efficiency = speedup / min(workers, os.cpu_count() or 1)
            print(
                f"Ray, {workers} worker(s), {2 * workers} segments: {took:.1f} s, speed-up {speedup:.2f}×, "
                f"efficiency {efficiency:.0%} of min(workers, cores), {persons} person track(s) ({load()})"
            )


def bench_indexing(engine: FaceEngine, count: int, repeats: int) -> None:
    import ray

    from facetrace.cluster.indexing import EngineSpec, RayAnalyser
    from tests.cluster.test_indexing import face_photos

    with tempfile.TemporaryDirectory() as tmp:
        photos = {name: photo(name) for name in PHOTOS}
        paths = face_photos(engine, photos, Path(tmp) / "faces", count)
        print(f"\n## Bulk indexing, {count} face crops (112-176 px)")

        def once(analyser: object) -> tuple[float, int]:
            gallery = Gallery(engine, MemoryStore())
            gallery.create_collection("people")
            began = time.perf_counter()
            outcomes = index_files(gallery, "people", paths, analyser)  # type: ignore[arg-type]
            elapsed = time.perf_counter() - began
            return elapsed, sum(len(o.result.indexed) for o in outcomes if o.result)

        local = ThreadAnalyser(engine, workers=2)
        once(local)
        runs = [once(local) for _ in range(repeats)]
        took = statistics.median(t for t, _ in runs)
        faces = runs[0][1]
        print(f"in-process, 2 threads: {faces / took:.1f} faces/s ({faces} faces, {took:.1f} s) ({load()})")
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            remote = RayAnalyser(EngineSpec(), engine.model.key)
            once(remote)
            runs = [once(remote) for _ in range(repeats)]
        finally:
            ray.shutdown()
        took_ray = statistics.median(t for t, _ in runs)
        print(
            f"Ray, 2 CPUs: {runs[0][1] / took_ray:.1f} faces/s ({runs[0][1]} faces, {took_ray:.1f} s); "
            f"Ray / in-process {took / took_ray:.2f} ({load()})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--skip", default="", help="comma-separated: segments, indexing")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    print(f"# bench_segments on {platform.processor() or platform.machine()}, {os.cpu_count()} cores ({load()})")
    engine = FaceEngine.create()
    if "segments" not in skip:
        bench_segments(engine, args.repeats)
    if "indexing" not in skip:
        bench_indexing(engine, args.photos, args.repeats)


if __name__ == "__main__":
    main()
