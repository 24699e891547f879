"""Video benchmarks on ../shared/data/face_recognition/examples/short_hamilton_clip.mp4 (640×360, 29.97 fps).

    python benchmarks/bench_video.py [--seconds 15] [--streams 1,2,4,6] [--max-side 640] [--json out.json]

1. accuracy: a collection of the two reference photos (lin-manuel-miranda.png, alex-lacamoire.png); the clip
   searched at several thresholds; who is named, in how many tracks, and whether any name lands outside that
   person's known on-screen spans (a wrong identity). Plus every track's best evidence, whatever the threshold.
2. stored-video search speed: a face-search job over the clip, × real time.
3. live capacity: N simulated cameras (the clip looped at its own pace, decoded like a live source), detection
   on every 2nd frame; per-stream analysed fps, dropped frames, CPU seconds, and where the time goes.
4. live latency: the clip streamed as MPEG-TS over UDP on loopback; frame→event latency p50/p95.
5. recall (``--section recall`` alone: ``--skip accuracy,speed,live,latency``): who is named, how soon, and
   who is named wrongly, at 99 and 95, with every track scored on the cautious calibration band and with the
   band of the track template's quality (``identity.template_quality``, the default), in one run:
   the Hamilton clip (each person's on-screen spans are the appearances) and generated clips (``lfw_clip``):
   slow pans and zooms over LFW photos of people of the *test* half of ``bench_users.half_of`` (people no
   policy was tuned on), each shown in two shots from photos that are not enrolled, with shots of strangers
   (people in no collection) between them. People are enrolled as users from one photo and from three.

Report ``uptime`` load with the numbers: other processes share these cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import load_average, machine_info, noise_canvas, require_data, write_clip
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
from facetrace.video.analysis import AnalysisSettings, FrameAnalyzer
from facetrace.video.events import TrackEnded, TrackEvent
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


# -- recall: who is named, how soon, and wrongly -------------------------------------------------------

CLIP_SIZE, CLIP_FPS, SHOT_SECONDS = (640, 360), 15, 2.0
Appearance = tuple[str, float, float]  # (person; "" for a stranger, start s, end s)


@dataclass(frozen=True)
class Variant:
    """One way of identifying tracks: ``cautious`` is facetrace's behaviour until this change."""

    name: str
    user_templates: bool
    identity: IdentitySettings


VARIANTS = (
    # the identification changes measured earlier (docs/video.md keeps their figures) were: users by template
    # and better-sample re-checks (``users+recheck``), then template weights squared; both are defaults now.
    Variant("cautious", True, IdentitySettings(template_quality=False)),  # every track on the cautious band
    Variant("banded", True, IdentitySettings()),  # the template's quality picks its band (the default)
)


def _lfw_cast(clips: int) -> tuple[list[tuple[str, list[Path]]], list[tuple[str, list[Path]]]]:
    """(people to enrol: ≥ 5 photos, strangers: 2–3 photos), from the test half, in a fixed pseudo-random order."""
    from benchmarks.bench_users import half_of

    root = require_data() / "lfw_calibration"
    folders = sorted(
        (f for f in root.iterdir() if f.is_dir() and half_of(f.name) == "test"),
        key=lambda f: hashlib.sha256(f.name.encode()).hexdigest(),
    )
    photos = [(f.name, sorted(f.glob("*.jpg"))) for f in folders]
    known = [(n, p) for n, p in photos if len(p) >= 5][: 3 * clips]
    strangers = [(n, p) for n, p in photos if 2 <= len(p) <= 3][: 2 * clips]
    return known, strangers


def _render_shot(
    photo: npt.NDArray[np.uint8], k: float, canvas: npt.NDArray[np.uint8], seed: int
) -> npt.NDArray[np.uint8]:
    """One frame of a pan and zoom over ``photo`` (k: 0→1 through the shot): the person walks towards the
    camera, the face growing from ~25–35 px to ~85–100 px (LFW faces are ~110 px tall in the 250 px photo),
    slowly at first and faster as they come closer (apparent size ~ 1 / distance)."""
    rng = np.random.default_rng(seed)
    zoom0, zoom1 = rng.uniform(0.22, 0.32), rng.uniform(0.75, 0.9)
    x0, x1 = rng.uniform(20, 200), rng.uniform(300, 420)
    y0, y1 = rng.uniform(20, 60), rng.uniform(20, 80)
    zoom = zoom0 + k * k * (zoom1 - zoom0)
    sprite = cv2.resize(photo, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_AREA)
    frame = canvas.copy()
    x, y = int(x0 + k * (x1 - x0)), int(y0 + k * (y1 - y0))
    if k < 0.3:  # walking in: motion blur while the person is far and moving across
        sprite = cv2.blur(sprite, (5, 1))
    h, w = sprite.shape[:2]
    h, w = min(h, CLIP_SIZE[1] - y), min(w, CLIP_SIZE[0] - x)
    frame[y : y + h, x : x + w] = sprite[:h, :w]
    return frame


def lfw_clip(path: Path, shots: list[tuple[str, Path]], seed: int) -> list[Appearance]:
    """Write a clip of ``shots`` (person, photo), ``SHOT_SECONDS`` each, cut between; returns the appearances."""
    canvas = noise_canvas(CLIP_SIZE, seed)
    per_shot = int(SHOT_SECONDS * CLIP_FPS)
    appearances: list[Appearance] = [
        (person, shot * per_shot / CLIP_FPS, (shot + 1) * per_shot / CLIP_FPS)
        for shot, (person, _) in enumerate(shots)
    ]

    def frames() -> Iterator[npt.NDArray[np.uint8]]:
        for shot, (_, photo_path) in enumerate(shots):
            photo = cv2.imread(str(photo_path))
            for i in range(per_shot):
                yield _render_shot(photo, i / (per_shot - 1), canvas, seed * 100 + shot)

    write_clip(path, frames(), CLIP_FPS, CLIP_SIZE)
    return appearances


def _identify(
    gallery: Gallery, collection: str, clip: Path, threshold: float, variant: Variant, every: int = 1
) -> list[tuple[str, float, float]]:
    """Every naming of a track in the clip (every ``every``-th frame analysed, as a job sampling at 15 fps
    does on a 30 fps clip): (person, stream time of the naming, track start)."""
    matcher = CollectionMatcher(gallery, collection, threshold, user_templates=variant.user_templates)
    analyzer = FrameAnalyzer(
        gallery.engine,
        matcher=matcher,
        settings=AnalysisSettings(max_embeds_per_frame=1, identity=variant.identity),
    )
    namings: list[tuple[str, float, float]] = []

    def note(events: Sequence[TrackEvent]) -> None:
        for event in events:
            if event.match is None:
                continue
            face = event.match.face
            name = face.user_id or face.external_image_id or face.face_id
            at = (event.end_stream_ms if isinstance(event, TrackEnded) else event.stream_time_ms) / 1000
            namings.append((name, at, event.start_stream_ms / 1000))

    for frame in VideoSource(SourceSettings(str(clip))).frames():
        if frame.index % every == 0:
            note(analyzer.process(frame).events)
    note(analyzer.finish())
    return namings


def score_appearances(
    appearances: Sequence[Appearance], namings: Sequence[tuple[str, float, float]], slack: float = 0.3
) -> dict[str, Any]:
    """Per person: appearances during which the person was named (a track carried over an edit by appearance
    counts in the shot where it is named), and the delay from the appearance's start to the first naming.
    Wrong: a naming while that person is not on screen, or of a track that started while they were not."""
    people: dict[str, dict[str, Any]] = {}
    for person, start, end in appearances:
        if not person:
            continue
        entry = people.setdefault(person, {"appearances": 0, "named": 0, "delays": []})
        entry["appearances"] += 1
        times = [at for name, at, _ in namings if name == person and start - slack <= at < end + slack]
        if times:
            entry["named"] += 1
            entry["delays"].append(max(0.0, min(times) - start))

    def on_screen(name: str, t: float) -> bool:
        return any(p == name and s - slack <= t < e + slack for p, s, e in appearances)

    wrong = [(name, at) for name, at, began in namings if not (on_screen(name, at) and on_screen(name, began))]
    return {"people": people, "wrong": sorted(set(wrong)), "namings": [list(n) for n in namings]}


def _summary(scored: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Recall per person averaged over people (and over appearances), median delay, wrong names."""
    per_person: dict[str, list[int]] = {}
    delays: list[float] = []
    wrong = 0
    for result in scored:
        for person, entry in result["people"].items():
            total = per_person.setdefault(person, [0, 0])
            total[0] += entry["named"]
            total[1] += entry["appearances"]
            delays.extend(entry["delays"])
        wrong += len(result["wrong"])
    fractions = [named / seen for named, seen in per_person.values()]
    return {
        "people": len(per_person),
        "appearances": sum(seen for _, seen in per_person.values()),
        "named": sum(named for named, _ in per_person.values()),
        "recall_per_person": float(np.mean(fractions)) if fractions else 0.0,
        "delay_median_s": float(np.median(delays)) if delays else None,
        "delay_p90_s": float(np.percentile(delays, 90)) if delays else None,
        "wrong": wrong,
    }


def recall(engine: FaceEngine, examples: Path, clips: int, work: Path) -> dict[str, Any]:
    report: dict[str, Any] = {"load_start": load_average()}
    # Hamilton: the reference photos, one each (users of one face)
    gallery = Gallery(engine, MemoryStore())
    gallery.create_collection("cast")
    for name in (LIN, ALEX):
        indexed = gallery.index_faces("cast", examples / f"{name}.png", external_image_id=name, max_faces=1)
        gallery.create_user("cast", name)
        gallery.associate_faces("cast", name, [f.record.face_id for f in indexed.indexed])
    hamilton = [(person, start, end) for person, spans in SPANS.items() for start, end in spans]
    clip = examples / "short_hamilton_clip.mp4"
    rows = []
    for threshold in (99.0, 95.0):
        for variant in VARIANTS:
            result = score_appearances(hamilton, _identify(gallery, "cast", clip, threshold, variant, 2))
            rows.append({"clip": "hamilton", "enrolled": 1, "threshold": threshold, "variant": variant.name,
                         **_summary([result]), "detail": result})  # fmt: skip
            print(f"  hamilton @{threshold:g} {variant.name:13}: {_line(rows[-1])}; {result['people']}")
    # generated LFW clips
    known, strangers = _lfw_cast(clips)
    galleries = {}
    for enrolled in (1, 3):
        gallery = Gallery(engine, MemoryStore())
        gallery.create_collection("people")
        for person, photos in known:
            gallery.create_user("people", person)
            ids = []
            for photo in photos[:enrolled]:
                indexed = gallery.index_faces("people", photo, external_image_id=person, max_faces=1)
                ids.extend(f.record.face_id for f in indexed.indexed)
            if ids:  # IndexFaces' default quality filter may refuse a photo: that person is then a miss
                gallery.associate_faces("people", person, ids)
        galleries[enrolled] = gallery
    generated = []
    for c in range(clips):
        cast = known[3 * c : 3 * c + 3]
        extra = strangers[2 * c : 2 * c + 2]
        shots = [(cast[0][0], cast[0][1][3]), (cast[1][0], cast[1][1][3]), ("", extra[0][1][0]),
                 (cast[2][0], cast[2][1][3]), (cast[0][0], cast[0][1][4]), (cast[1][0], cast[1][1][4]),
                 ("", extra[1][1][0]), (cast[2][0], cast[2][1][4])]  # fmt: skip
        path = work / f"lfw_clip_{c}.mp4"
        generated.append((path, lfw_clip(path, shots, seed=c)))
    for enrolled, gallery in galleries.items():
        for threshold in (99.0, 95.0):
            for variant in VARIANTS:
                results = [
                    score_appearances(appearances, _identify(gallery, "people", path, threshold, variant))
                    for path, appearances in generated
                ]
                rows.append({"clip": f"lfw x{clips}", "enrolled": enrolled, "threshold": threshold,
                             "variant": variant.name, **_summary(results), "wrong_names": [r["wrong"] for r in results]})  # fmt: skip
                print(f"  lfw x{clips}, {enrolled} photo(s) @{threshold:g} {variant.name:13}: {_line(rows[-1])}")
    report["rows"] = rows
    report["load_end"] = load_average()
    return report


def _line(row: dict[str, Any]) -> str:
    delay = (
        "-" if row["delay_median_s"] is None else f"{row['delay_median_s']:.2f} s (p90 {row['delay_p90_s']:.2f})"
    )
    return (f"{row['named']}/{row['appearances']} appearances of {row['people']} people named, "
            f"per-person recall {100 * row['recall_per_person']:.0f}%, first naming after {delay}, "
            f"wrong names {row['wrong']}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each live run")
    parser.add_argument("--streams", default="1,2,4,6", help="stream counts to try")
    parser.add_argument("--max-side", type=int, default=640, help="detector input size (the engine's max_side)")
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: accuracy,speed,live,latency")
    parser.add_argument("--clips", type=int, default=4, help="generated LFW clips for the recall section")
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
    if "recall" not in skip:
        print("\nrecall (Hamilton clip; generated LFW clips, people of the test half)")
        with tempfile.TemporaryDirectory() as work:
            report["recall"] = recall(engine, examples, args.clips, Path(work))
    report["load_end"] = load_average()
    print(f"\nload average at end: {report['load_end']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
