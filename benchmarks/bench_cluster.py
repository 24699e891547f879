"""Ray cluster benchmarks (docs/scale.md), on a local ``ray.cluster_utils.Cluster`` in this machine.

    python benchmarks/bench_cluster.py [--streams 2] [--seconds 20] [--skip overhead,recovery] [--json out.json]

1. overhead: the same live work — N simulated 640×360 cameras (the Hamilton clip looped at its own pace,
   detection on every 2nd frame, the ``cast`` collection) — run side by side (a) in this process as threads
   (``video.Pipeline``) and (b) as N Ray actors on one node, each running one ``StreamWorker``. Reported: analysed
   fps per stream, dropped frames, CPU seconds per analysed frame (process CPU time, so other processes on the
   machine do not count), and Ray's overhead = Ray's CPU per analysed frame / in-process's − 1.
2. recovery: a detached actor with ``max_restarts=-1`` on a node that is then killed; the time until it
   answers again from another node, with Ray's default node health checks and with the fast ones of
   tests/cluster. A stream processor adds to this its lease wait (at most ``ACTOR_LEASE_TTL``) and its start.

Every figure is printed with the machine's load: other processes share these cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import load_average, machine_info, require_data
from facetrace.engine import FaceEngine
from facetrace.gallery import Gallery
from facetrace.store import MemoryStore
from facetrace.video import CollectionMatcher, Pipeline, SourceSettings, StreamConfig

CLIP = "face_recognition/examples/short_hamilton_clip.mp4"
CAST = ("lin-manuel-miranda", "alex-lacamoire")


def _gallery(engine: FaceEngine, examples: Path) -> Gallery:
    gallery = Gallery(engine, MemoryStore())
    gallery.create_collection("cast")
    for name in CAST:
        gallery.index_faces("cast", examples / f"{name}.png", external_image_id=name, max_faces=1)
    return gallery


def _config(clip: Path, i: int) -> StreamConfig:
    return StreamConfig(name=f"cam{i}", source=SourceSettings(str(clip), realtime=True, loop=True), detect_every=2)


def _row(kind: str, streams: int, seconds: float, cpu: float, metrics: list[dict[str, Any]]) -> dict[str, Any]:
    decoded = sum(m["FramesDecoded"] for m in metrics)
    analysed = sum(m["FramesAnalysed"] for m in metrics)
    dropped = sum(m["FramesDropped"] for m in metrics)
    row = {
        "kind": kind, "streams": streams,
        "analysed_fps_per_stream": round(analysed / seconds / streams, 2),
        "dropped_pct": round(100 * dropped / max(1, decoded / 2), 1),
        "cpu_cores": round(cpu / seconds, 2),
        "cpu_ms_per_analysed_frame": round(1000 * cpu / max(1, analysed), 1),
        "load": load_average(),
    }  # fmt: skip
    print(f"  {kind:<10} {streams} stream(s): {row['analysed_fps_per_stream']:.1f} analysed fps each, dropped "
          f"{row['dropped_pct']:.0f}%, {row['cpu_cores']:.2f} cores, {row['cpu_ms_per_analysed_frame']:.1f} ms CPU "
          f"per analysed frame, load {row['load']}")  # fmt: skip
    return row


def in_process(gallery: Gallery, clip: Path, streams: int, seconds: float) -> dict[str, Any]:
    pipeline = Pipeline(gallery.engine)
    matcher = CollectionMatcher(gallery, "cast", 99.0)
    for i in range(streams):
        pipeline.add(_config(clip, i), matcher=matcher)
    pipeline.start()
    time.sleep(3.0)  # models built, sources open: measure the steady state only
    before, cpu0 = pipeline.metrics(), time.process_time()
    time.sleep(seconds)
    after, cpu1 = pipeline.metrics(), time.process_time()
    pipeline.stop()
    return _row("in-process", streams, seconds, cpu1 - cpu0, [_delta(before[k], after[k]) for k in after])


def _delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: after[k] - before[k] for k in ("FramesDecoded", "FramesAnalysed", "FramesDropped")}


class StreamActor:
    """One stream worker in its own Ray actor process, like a processor actor (without the database)."""

    def __init__(self, clip: str, examples: str, i: int) -> None:
        self.gallery = _gallery(FaceEngine.create(), Path(examples))
        matcher = CollectionMatcher(self.gallery, "cast", 99.0)
        from facetrace.video.pipeline import StreamWorker

        self.worker = StreamWorker(_config(Path(clip), i), self.gallery.engine, matcher=matcher)
        self.worker.start()

    def sample(self) -> tuple[float, dict[str, Any]]:
        return time.process_time(), self.worker.metrics.snapshot()

    def stop(self) -> None:
        self.worker.stop()


def on_ray(examples: Path, clip: Path, streams: int, seconds: float) -> dict[str, Any]:
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": streams, "include_dashboard": False})
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1)(StreamActor)
        actors = [remote.remote(str(clip), str(examples), i) for i in range(streams)]  # type: ignore[attr-defined]
        ray.get([a.sample.remote() for a in actors])
        time.sleep(3.0)
        before = ray.get([a.sample.remote() for a in actors])
        time.sleep(seconds)
        after = ray.get([a.sample.remote() for a in actors])
        ray.get([a.stop.remote() for a in actors])
        cpu = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
        return _row("ray", streams, seconds, cpu, [_delta(b[1], a[1]) for a, b in zip(after, before, strict=True)])
    finally:
        ray.shutdown()
        cluster.shutdown()


class Pinger:
    def node(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())


def recovery(fast: bool) -> dict[str, Any]:
    import ray
    from ray.cluster_utils import Cluster

    system = (
        {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500, "health_check_timeout_ms": 500,
         "health_check_failure_threshold": 3}
        if fast else {}
    )  # fmt: skip
    head = {"num_cpus": 0, "include_dashboard": False}
    if system:
        head["_system_config"] = system
    cluster = Cluster(initialize_head=True, head_node_args=head)
    nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    try:
        actor = (
            ray.remote(Pinger)
            .options(lifetime="detached", name="p", max_restarts=-1, max_task_retries=-1)
            .remote()
        )  # type: ignore[attr-defined]
        first = ray.get(actor.node.remote())
        doomed = next(n for n in nodes if n.node_id == first)
        began = time.perf_counter()
        cluster.remove_node(doomed, allow_graceful=False)
        second = first
        while second == first and time.perf_counter() - began < 180:  # the old copy may answer once more
            second = ray.get(actor.node.remote(), timeout=180)
            time.sleep(0.05)
        took = time.perf_counter() - began
        row = {"health_checks": "fast" if fast else "default", "seconds": round(took, 1), "moved": second != first,
               "load": load_average()}  # fmt: skip
        print(f"  {row['health_checks']:<7} health checks: actor answering from another node after {took:.1f} s, "
              f"load {row['load']}")  # fmt: skip
        return row
    finally:
        ray.shutdown()
        cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--skip", default="", help="comma-separated: overhead,recovery")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    skip = set(filter(None, args.skip.split(",")))
    data = require_data()
    examples = data / "face_recognition/examples"
    clip = data / CLIP
    print(machine_info())
    result: dict[str, Any] = {"machine": machine_info()}
    if "overhead" not in skip:
        print(f"overhead ({args.streams} streams, {args.seconds:.0f} s each way):")
        local = in_process(_gallery(FaceEngine.create(), examples), clip, args.streams, args.seconds)
        remote = on_ray(examples, clip, args.streams, args.seconds)
        overhead = remote["cpu_ms_per_analysed_frame"] / local["cpu_ms_per_analysed_frame"] - 1
        print(f"  Ray overhead in CPU per analysed frame: {100 * overhead:+.0f}%")
        result["overhead"] = {"in_process": local, "ray": remote, "ray_overhead": round(overhead, 3)}
    if "recovery" not in skip:
        print("node-loss recovery of a detached, restartable actor:")
        result["recovery"] = [recovery(fast=True), recovery(fast=False)]
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
