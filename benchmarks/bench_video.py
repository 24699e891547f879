"""Video benchmarks on ../shared/data/face_recognition/examples/short_hamilton_clip.mp4 (640×360, 29.97 fps).

    python benchmarks/bench_video.py [--seconds 15] [--streams 1,2,4,6] [--max-side 640] [--json out.json]

1. accuracy: a collection of the two reference photos (lin-manuel-miranda.png, alex-lacamoire.png); the clip
   searched at several thresholds; who is named, in how many tracks, and whether any name lands outside that
   person's known on-screen spans (a wrong identity). Plus every track's best evidence, whatever the threshold.
2. stored-video search speed: a face-search job over the clip, × real time.
3. live capacity: N simulated cameras (the clip looped at its own pace, decoded like a live source), detection
   on every 2nd frame; per-stream analysed fps, dropped frames, CPU seconds, and where the time goes.
4. live latency: the clip streamed as MPEG-TS over UDP on loopback; frame→event latency p50/p95.

Report ``uptime`` load with the numbers: other processes share these cores.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import load_average, machine_info, require_data
from facetrace.engine import DetectionSettings, FaceEngine
from facetrace.gallery import Gallery
from facetrace.imaging import Image
from facetrace.store import MemoryStore
from facetrace.video import (
    CallbackSink,
    CollectionMatcher,
    JobSettings,
    Pipeline,
    SourceSettings,
    StreamConfig,
    TrackIdentified,
    VideoJobs,
)
from facetrace.video.identity import IdentitySettings
from facetrace.video.source import VideoSource

LIN, ALEX = "lin-manuel-miranda", "alex-lacamoire"
# Where each person is on screen (seconds of the clip, from looking at it): Lin on stage right in the first
# shot and centre stage in the third; Alex at the piano in the first shot and in profile in the second.
SPANS = {LIN: [(0.0, 0.75), (2.7, 7.1)], ALEX: [(0.0, 1.75)]}


def _gallery(engine: FaceEngine, examples: Path) -> Gallery:
    gallery = Gallery(engine, MemoryStore())
    gallery.create_collection("cast")
    for name in (LIN, ALEX):
        gallery.index_faces("cast", examples / f"{name}.png", external_image_id=name, max_faces=1)
    return gallery


def _wrong(name: str, seconds: float) -> bool:
    return not any(start <= seconds < end for start, end in SPANS[name])


def accuracy(gallery: Gallery, clip: Path) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for threshold in (99.0, 95.0, 90.0, 80.0, 70.0):
        jobs = VideoJobs(gallery, settings=JobSettings(sample_fps=15))
        job = jobs.wait(jobs.start_face_search(clip, "cast", threshold=threshold))
        jobs.close()
        tracks: dict[str, set[int]] = {}
        wrong = 0
        for item in job.results:
            name = item["FaceMatches"][0]["Face"]["ExternalImageId"]
            tracks.setdefault(name, set()).add(item["Person"]["Index"])
            wrong += _wrong(name, item["Timestamp"] / 1000.0)
        report[f"{threshold:g}"] = {
            "named": {name: len(indexes) for name, indexes in sorted(tracks.items())},
            "wrong_frames": wrong,
            "frames_named": len(job.results),
        }
        print(f"  threshold {threshold:>4g}: tracks per person {report[f'{threshold:g}']['named']}, "
              f"frames named {len(job.results)}, wrongly named frames {wrong}")  # fmt: skip
    # every track's best evidence: threshold 0, no evidence floor, so each track is named by its best match
    settings = JobSettings(sample_fps=15)
    loose = JobSettings(
        sample_fps=15,
        analysis=type(settings.analysis)(
            details=False, max_embeds_per_frame=3,
            identity=IdentitySettings(min_evidence=0.0, sample_interval=0.2, recheck_interval=1.0),
        ),
    )  # fmt: skip
    jobs = VideoJobs(gallery, settings=loose)
    job = jobs.wait(jobs.start_face_search(clip, "cast", threshold=0.0))
    jobs.close()
    evidence: dict[int, dict[str, Any]] = {}
    for item in job.results:
        entry = evidence.setdefault(
            item["Person"]["Index"],
            {"best": item["FaceMatches"][0]["Face"]["ExternalImageId"], "similarity": 0.0, "from": 1e9, "to": 0},
        )
        entry["similarity"] = max(entry["similarity"], item["FaceMatches"][0]["Similarity"])
        entry["from"] = min(entry["from"], item["Timestamp"] / 1000)
        entry["to"] = max(entry["to"], item["Timestamp"] / 1000)
    strongest = sorted(evidence.values(), key=lambda e: -e["similarity"])[:8]
    print("  strongest track evidence (template similarity to the closest reference):")
    for entry in strongest:
        print(
            f"    {entry['from']:5.2f}-{entry['to']:5.2f} s  closest {entry['best']:<20} {entry['similarity']:5.1f}"
        )
    report["track_evidence"] = strongest
    return report


def search_speed(gallery: Gallery, clip: Path, duration: float) -> dict[str, Any]:
    """Steady state: the job thread has built its models already (a server's pool threads persist)."""
    report = {}
    for fps in (5.0, 10.0, 15.0):
        jobs = VideoJobs(gallery, settings=JobSettings(sample_fps=fps))
        jobs.wait(jobs.start_face_detection(clip))  # warms the pool thread's models
        began = time.perf_counter()
        job = jobs.wait(jobs.start_face_search(clip, "cast", threshold=99.0))
        elapsed = time.perf_counter() - began
        jobs.close()
        report[f"{fps:g}"] = {"seconds": round(elapsed, 2), "x_real_time": round(duration / elapsed, 2)}
        print(f"  sample_fps {fps:>4g}: {elapsed:5.2f} s for {duration:.1f} s of video = "
              f"{duration / elapsed:4.1f}x real time ({job.status.value})")  # fmt: skip
    return report


def costs(engine: FaceEngine, clip: Path) -> dict[str, float]:
    """Per-operation costs on this machine now (one thread)."""
    source = VideoSource(SourceSettings(str(clip)))
    began = time.perf_counter()
    frames = [frame.bgr() for frame in source.frames()]
    decode = (time.perf_counter() - began) / len(frames)
    sample = frames[::10]
    began = time.perf_counter()
    detections = [engine.find_faces(Image(pixels)) for pixels in sample]
    detect = (time.perf_counter() - began) / len(sample)
    pairs = [(Image(p), d[:1]) for p, d in zip(sample, detections, strict=True) if d]
    began = time.perf_counter()
    for image, found in pairs:
        engine.describe(image, found)
    embed = (time.perf_counter() - began) / max(1, len(pairs))
    result = {"decode_ms": decode * 1000, "detect_ms": detect * 1000, "embed_face_ms": embed * 1000}
    print("  one thread: decode+convert {decode_ms:.1f} ms/frame, detect {detect_ms:.1f} ms/frame, "
          "embed {embed_face_ms:.1f} ms/face".format(**result))  # fmt: skip
    return result


def capacity(gallery: Gallery, clip: Path, streams: int, seconds: float) -> dict[str, Any]:
    pipeline = Pipeline(gallery.engine)
    matcher = CollectionMatcher(gallery, "cast", 99.0)
    for i in range(streams):
        source = SourceSettings(str(clip), realtime=True, loop=True)
        pipeline.add(StreamConfig(name=f"cam{i}", source=source, detect_every=2), matcher=matcher)
    cpu0 = os.times()
    began = time.perf_counter()
    pipeline.start()
    time.sleep(seconds)
    metrics = pipeline.metrics()
    elapsed = time.perf_counter() - began
    cpu1 = os.times()
    pipeline.stop()
    decoded = sum(m["FramesDecoded"] for m in metrics.values())
    analysed = sum(m["FramesAnalysed"] for m in metrics.values())
    dropped = sum(m["FramesDropped"] for m in metrics.values())
    wanted = decoded / 2
    busy = sum(m["AnalysisSeconds"] for m in metrics.values())
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    row = {
        "streams": streams,
        "analysed_fps_per_stream": round(analysed / elapsed / streams, 2),
        "wanted_fps_per_stream": round(wanted / elapsed / streams, 2),
        "dropped_pct": round(100 * dropped / max(1, wanted), 1),
        "embedded": sum(m["FacesEmbedded"] for m in metrics.values()),
        "analysis_seconds": round(busy, 1),
        "cpu_seconds": round(cpu, 1),
        "cpu_cores_used": round(cpu / elapsed, 2),
        "real_time": dropped <= 0.05 * wanted and decoded >= 0.9 * 29.97 * elapsed * streams,
        "event_latency_p95_ms": max((m["EventLatencyMillis"]["p95"] or 0) for m in metrics.values()),
        "load": load_average(),
    }
    print(f"  {streams} stream(s): analysed {row['analysed_fps_per_stream']:.1f}/{row['wanted_fps_per_stream']:.1f} "
          f"fps each, dropped {row['dropped_pct']:.0f}%, {row['cpu_cores_used']:.2f} cores busy, "
          f"{row['embedded']} faces embedded, real time: {row['real_time']}, load {row['load']}")  # fmt: skip
    return row


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _send(clip: Path, port: int, seconds: float, stop: threading.Event) -> None:
    """Re-encode the clip as H.264 MPEG-TS to udp://127.0.0.1:port at its own pace, looping."""
    frames = [frame.to_ndarray(format="bgr24") for frame in av.open(str(clip)).decode(video=0)]
    with av.open(f"udp://127.0.0.1:{port}?pkt_size=1316", mode="w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.options = {"preset": "ultrafast", "tune": "zerolatency", "g": "30"}
        began = time.perf_counter()
        for i in range(int(seconds * 30)):
            if stop.is_set():
                break
            frame = av.VideoFrame.from_ndarray(frames[i % len(frames)], format="bgr24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
            delay = began + (i + 1) / 30 - time.perf_counter()
            if delay > 0:
                time.sleep(delay)


def latency(gallery: Gallery, clip: Path, seconds: float) -> dict[str, Any]:
    port = _free_port()
    latencies: list[float] = []
    named: set[str] = set()

    def on_event(event: Any) -> None:
        if isinstance(event, TrackIdentified):
            latencies.append(event.latency)
            named.add(event.match.face.external_image_id)

    pipeline = Pipeline(gallery.engine, sinks=[CallbackSink(on_event)])
    source = SourceSettings(f"udp://127.0.0.1:{port}", open_timeout=10, stall_timeout=3)
    worker = pipeline.add(
        StreamConfig(name="udp", source=source, detect_every=2), matcher=CollectionMatcher(gallery, "cast", 90.0)
    )
    stop = threading.Event()
    sender = threading.Thread(target=_send, args=(clip, port, seconds, stop), daemon=True)
    pipeline.start()
    sender.start()
    sender.join(seconds + 10)
    stop.set()
    snapshot = worker.metrics.snapshot()
    pipeline.stop()
    events = snapshot["EventLatencyMillis"]
    frames = snapshot["FrameLatencyMillis"]
    print(f"  UDP loopback, 1 stream: {len(latencies)} identifications ({', '.join(sorted(named))}); "
          f"event latency p50 {events['p50']} ms, p95 {events['p95']} ms, max {events['max']} ms; "
          f"frame analysis latency p95 {frames['p95']} ms; dropped {snapshot['FramesDropped']}")  # fmt: skip
    return {"events": events, "frames": frames, "identifications": len(latencies), "metrics": snapshot}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each live run")
    parser.add_argument("--streams", default="1,2,4,6", help="stream counts to try")
    parser.add_argument("--max-side", type=int, default=640, help="detector input size (the engine's max_side)")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: accuracy,speed,live,latency")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()
    examples = require_data() / "face_recognition" / "examples"
    clip = examples / "short_hamilton_clip.mp4"
    engine = FaceEngine.create(settings=DetectionSettings(max_side=args.max_side))
    gallery = _gallery(engine, examples)
    probe = VideoSource(SourceSettings(str(clip)))
    duration = sum(1 for _ in probe.frames()) / (probe.metadata.frame_rate if probe.metadata else 29.97)
    skip = set(args.skip.split(","))
    print(machine_info())
    print(f"load average at start: {load_average()}")
    report: dict[str, Any] = {"load_start": load_average(), "max_side": args.max_side}
    print("\ncosts")
    report["costs"] = costs(engine, clip)
    if "accuracy" not in skip:
        print("\naccuracy (Hamilton clip, collection of the two reference photos)")
        report["accuracy"] = accuracy(gallery, clip)
    if "speed" not in skip:
        print("\nstored-video search speed")
        report["search_speed"] = search_speed(gallery, clip, duration)
    if "live" not in skip:
        print(f"\nlive capacity (simulated 640x360 30 fps cameras, detection every 2nd frame, {args.seconds:g} s)")
        report["capacity"] = [
            capacity(gallery, clip, int(n), args.seconds) for n in args.streams.split(",") if n.strip()
        ]
    if "latency" not in skip:
        print("\nlive latency")
        report["latency"] = latency(gallery, clip, args.seconds)
    report["load_end"] = load_average()
    print(f"\nload average at end: {report['load_end']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
