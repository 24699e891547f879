"""Many live 640×360 streams on few cores: where one stream's time goes, CPU per stream, streams in real time,
and identifications kept — session 6's live defaults (*old*: detection at half scale only while every
tracked face is ≥ 48 px, else at full scale; faces of sample weight ≥ 0.1 embedded; a queue of 2 offered
frames per stream; every analyser free to run at once) against today's (*new*: between sweeps, detection at
the smallest scale at which every tracked face still spans 24 px, ``GatingSettings.scale_step``; coarsely
found faces re-located at full resolution only when embedded; ``min_sample_weight`` 0.15; quick samples
0.3 s apart (``sample_interval``, was 0.2); a queue of 4;
at most one frame analysed per core at a time, ``analysis_slots``), side by
side in one run; the ids section also runs *every* (no gating at all, the analysis before issue #13's
busy-scene work) as the reference. Both ways take a skipped frame's grey levels from the decoded luma (no
BGR conversion), which is not a setting.

    python -m benchmarks.bench_streams [--streams 4,6,8] [--seconds 20] [--clips 4] [--skip split,profile,live,batch,ids]
                                       [--in-phase] [--live-repeats 3]

1. profile: one stream of the Hamilton clip (../shared/data, 640×360, 29.97 fps) analysed as fast as it
   decodes, every 2nd frame offered as a live worker does, old and new alternately ``--repeats`` times (the
   median counts): milliseconds per video second in decode, detect (YuNet, including the full-resolution
   re-location of coarsely found faces), embed (landmark refinement + align + quality + SFace), track,
   identity (collection searches), sinks (events to JSON), other (grey levels, BGR conversion of detected
   frames, motion gate, scene cuts, bookkeeping). CPU per stream = process CPU seconds / video seconds; CPU
   ms per offered frame against the real-time budget of N streams on 2 cores (2000 ms / (N × 15 offered
   frames)). Then a quiet camera, both ways.
2. live: N simulated cameras (the clip looped at its own pace through ``Pipeline``, one worker per stream,
   started 1/N of the clip apart so that their busy moments do not coincide; ``--in-phase``: together),
   old then new for each N: process CPU seconds per stream per video second, analysed fps, dropped frames,
   and whether it kept real time (analysed fps ≥ 90% of offered, drops ≤ 5%, decode at the clip's pace).
3. batch: SFace CPU time per face (process CPU, best of 3) with 1, 2, 4, 8, 16 real face crops of the clip
   per call — what batching embeddings across streams would buy — and the largest difference between
   batched and one-by-one vectors; then one face per call with SFace's PRelu nodes in each form of
   ``branchless_prelu`` (four element-wise ops, ``Max(x, slope·x)`` where exact, 1×1 depthwise
   convolutions), alternately.
4. ids: who is named, how soon, and wrongly, at 99 and 95: the Hamilton clip (each person's on-screen spans)
   and generated clips (``bench_video.lfw_clip``: people of the test half walking up to the camera, strangers
   between), every / old / new.

Load (``os.getloadavg``) is printed with every figure: other engineers share these cores.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_video import (
    ALEX,
    CLIP_SIZE,
    LIN,
    SPANS,
    _lfw_cast,
    _summary,
    lfw_clip,
    score_appearances,
)
from benchmarks.common import load_average, machine_info, noise_canvas, require_data, write_clip
from facetrace import geometry
from facetrace.engine import FaceEngine
from facetrace.gallery import Gallery
from facetrace.imaging import Image
from facetrace.models.assets import ARTIFACTS, artifact_path
from facetrace.models.onnx_embedder import SFACE_FILE
from facetrace.models.runtime import PreluForm, load_onnx_session
from facetrace.store import MemoryStore
from facetrace.video import CallbackSink, CollectionMatcher, Pipeline, SourceSettings, StreamConfig
from facetrace.video.analysis import AnalysisSettings, FrameAnalyzer, GatingSettings
from facetrace.video.events import Event, TrackEnded, TrackEvent
from facetrace.video.identity import IdentitySettings
from facetrace.video.source import VideoSource
from facetrace.video.tracker import TrackerSettings


@dataclass(frozen=True)
class Way:
    """One way of running a live stream: its gating and analysis settings, its queue of offered frames and
    whether its analyses take one of the process's ``analysis_slots`` (else they all run at once)."""

    name: str
    gating: GatingSettings | None
    analysis: AnalysisSettings
    queue_size: int = 4
    slots: bool = True


# main before the busy-scene work: gated, but every offered frame detected while tracking is at stake
OLD_ANALYSIS = AnalysisSettings(
    refine_before_looks=True,
    tracker=TrackerSettings(cascade=False),
    identity=IdentitySettings(early_hopeless=False),
)
EVERY = Way("every", None, OLD_ANALYSIS)
# main before session 7 (session 6's defaults): full-scale detection whenever a tracked face is under 48 px,
# faces of weight 0.1 embedded, quick samples 0.2 s apart, a queue of 2, no analysis slots
OLD = Way(
    "old",
    GatingSettings(scale_step=0.0),
    AnalysisSettings(identity=IdentitySettings(min_sample_weight=0.1, sample_interval=0.2)),
    queue_size=2,
    slots=False,
)
NEW = Way("new", GatingSettings(), AnalysisSettings())
WAYS = (OLD, NEW)
OFFERED_FPS = 29.97 / 2


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def _cast_gallery(engine: FaceEngine, examples: Path, users: bool = False) -> Gallery:
    gallery = Gallery(engine, MemoryStore())
    gallery.create_collection("cast")
    for name in (LIN, ALEX):
        indexed = gallery.index_faces("cast", examples / f"{name}.png", external_image_id=name, max_faces=1)
        if users:
            gallery.create_user("cast", name)
            gallery.associate_faces("cast", name, [f.record.face_id for f in indexed.indexed])
    return gallery


class _Timer:
    """Wraps callables and sums their wall time per stage (single-threaded use)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - began

        return timed


def profile(
    gallery: Gallery,
    clip: Path,
    way: Way,
    loops: int = 3,
    every: int = 2,
) -> dict[str, Any]:
    """One stream (the clip looped ``loops`` times, as a camera that keeps showing the stage), as fast as it
    decodes; stage times per video second."""
    engine = gallery.engine
    timer = _Timer()
    matcher = CollectionMatcher(gallery, "cast", 99.0)
    matcher.search = timer.wrap("identity", matcher.search)  # type: ignore[method-assign]
    analyzer = FrameAnalyzer(engine, matcher=matcher, settings=way.analysis, gating=way.gating)
    analyzer.warm_up()
    engine_proxy = _EngineProxy(engine, timer)
    analyzer.engine = engine_proxy  # type: ignore[assignment]
    tracker = analyzer.tracker
    for name in ("match", "reassociate", "apply", "expire"):
        setattr(tracker, name, timer.wrap("track", getattr(tracker, name)))
    published: list[dict[str, Any]] = []

    def sink(event: Event) -> None:
        published.append(event.to_dict())

    publish = timer.wrap("sinks", lambda events: [sink(e) for e in events])
    source = VideoSource(SourceSettings(str(clip), loop=True))
    length = sum(1 for _ in VideoSource(SourceSettings(str(clip))).frames())
    frames = 0
    last_time = 0.0
    costs: list[float] = []  # thread CPU seconds of each offered frame's analysis
    cpu0, began = _cpu(), time.perf_counter()
    iterator = iter(source.frames())
    while True:
        t0 = time.perf_counter()
        frame = next(iterator, None) if frames < loops * length else None
        timer.seconds["decode"] = timer.seconds.get("decode", 0.0) + time.perf_counter() - t0
        if frame is None:
            break
        frames += 1
        last_time = frame.stream_time
        if frame.index % every:
            continue
        t0, c0 = time.perf_counter(), time.thread_time()
        result = analyzer.process(frame)
        costs.append(time.thread_time() - c0)
        timer.seconds["analyse"] = timer.seconds.get("analyse", 0.0) + time.perf_counter() - t0
        publish(result.events)
    publish(analyzer.finish())
    wall, cpu = time.perf_counter() - began, _cpu() - cpu0
    fps = source.metadata.frame_rate if source.metadata and source.metadata.frame_rate > 0 else 29.97
    video = last_time + 1.0 / fps
    stages = dict(timer.seconds)
    inner = sum(stages.get(k, 0.0) for k in ("detect", "embed", "track", "identity"))
    stages["other"] = stages.pop("analyse", 0.0) - inner  # gate, scene cuts, bookkeeping, snapshots
    return {
        "frames": frames,
        "video_seconds": round(video, 2),
        "ms_per_video_second": {k: round(1000 * v / video, 1) for k, v in stages.items()},
        "cpu_per_stream": round(cpu / video, 3),
        "cpu_ms_per_offered_frame": round(1000 * cpu / max(1, frames // every), 1),
        "wall_per_video_second": round(wall / video, 3),
        "detections": analyzer.detections,
        "coarse": analyzer.coarse,
        "gated": analyzer.gated,
        "embedded": analyzer.embedded,
        "events": len(published),
        "load": load_average(),
        "frame_costs": costs,
    }


def queue_model(costs: Sequence[float], streams: int, in_phase: bool, decode: float, cores: float = 2.0) -> float:
    """Per cent of offered frames a live worker would drop (queue of 2, the oldest dropped) with ``streams``
    cameras whose offered frames cost ``costs`` CPU seconds each (a measured stream, looped), sharing
    ``cores`` equally among the analysers at work once ``decode`` cores per stream are taken by the readers.
    ``in_phase``: every camera at the same point of the clip; else each ``1 / streams`` of it further on."""
    step, period, seconds, queue_size = 0.001, 1.0 / OFFERED_FPS, 60.0, 2
    n = len(costs)
    shift = [0 if in_phase else i * n // streams for i in range(streams)]
    queues: list[list[int]] = [[] for _ in range(streams)]
    left = [0.0] * streams
    working = [False] * streams
    arrivals, offered, dropped, t = [0.0] * streams, [0] * streams, 0, 0.0
    capacity = cores - decode * streams
    while t < seconds:
        for i in range(streams):
            while arrivals[i] <= t:
                queues[i].append(offered[i])
                offered[i] += 1
                arrivals[i] += period
                if len(queues[i]) > queue_size:
                    queues[i].pop(0)
                    dropped += 1
            if not working[i] and queues[i]:
                working[i], left[i] = True, costs[(queues[i].pop(0) + shift[i]) % n]
        busy = [i for i in range(streams) if working[i]]
        share = min(1.0, capacity / max(1, len(busy)))
        for i in busy:
            left[i] -= share * step
            working[i] = left[i] > 0
        t += step
    return 100.0 * dropped / max(1, sum(offered))


# cProfile functions whose cumulative time makes up each part of ``split`` (file suffix, function name)
_PARTS: dict[str, tuple[tuple[str, str], ...]] = {
    "decode": (("video/source.py", "_decode"),),
    "grey + BGR conversion, gate, cut": (("video/source.py", "gray"), ("video/source.py", "bgr"), ("video/analysis.py", "changed")),
    "detection (YuNet)": (("models/yunet.py", "detect"),),
    "alignment": (("facetrace/geometry.py", "align_face"),),
    "quality looks (pose, sharpness)": (("facetrace/quality.py", "estimate_quality"),),
    "embedding (SFace)": (("models/onnx_embedder.py", "embed"),),
    "tracking": (("video/tracker.py", "match"), ("video/tracker.py", "apply"), ("video/tracker.py", "expire"), ("video/tracker.py", "reassociate")),
}  # fmt: skip


def split(gallery: Gallery, clip: Path, way: Way, loops: int = 2) -> dict[str, Any]:
    """Where one busy stream's time goes, by cProfile (its overhead inflates the Python part a little):
    each part's share of the profiled run, the rest being Python bookkeeping (analysis, identity, events)."""
    profiler = cProfile.Profile()
    profiler.enable()
    row = profile(gallery, clip, way, loops=loops)
    profiler.disable()
    stats: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = sum(value[2] for value in stats.values())
    parts: dict[str, float] = {}
    for part, functions in _PARTS.items():
        parts[part] = sum(
            value[3]
            for (file, _, name), value in stats.items()
            if any(file.endswith(suffix) and name == fn for suffix, fn in functions)
        )
    parts["Python: analysis, identity, events, the rest"] = total - sum(parts.values())
    video = row["video_seconds"]
    shares = {k: round(100 * v / total, 1) for k, v in parts.items()}
    per_second = {k: round(1000 * v / video, 1) for k, v in parts.items()}
    print(f"  {way.name}: " + ", ".join(f"{k} {shares[k]:.0f}% ({per_second[k]:.0f} ms/s)" for k in parts)
          + f"; load {load_average()}")  # fmt: skip
    return {"share_pct": shares, "ms_per_video_second": per_second, "load": load_average()}


class _EngineProxy:
    """The engine with ``find_faces`` timed (detect) and ``describe`` and ``upright_landmarks`` (landmark
    refinement, quality looks, embeddings) timed as embed."""

    def __init__(self, engine: FaceEngine, timer: _Timer) -> None:
        self._engine = engine
        self.find_faces = timer.wrap("detect", engine.find_faces)
        self.describe = timer.wrap("embed", engine.describe)
        self.upright_landmarks = timer.wrap("embed", engine.upright_landmarks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)


def live(
    gallery: Gallery, clip: Path, streams: int, seconds: float, way: Way, in_phase: bool = False
) -> dict[str, Any]:
    """``streams`` cameras (the clip looped at its pace), one worker each, for ``seconds``. The cameras are
    started a ``1 / streams`` of the clip apart, so their busy moments (edits, a crowd coming into view) fall
    at different times, as on independent cameras; ``in_phase`` starts them together (every camera then
    needs its most CPU at the same moment, and frames are dropped while cores idle between those bursts)."""
    events: list[int] = [0]

    def count(event: Event) -> None:
        events[0] += 1

    matcher = CollectionMatcher(gallery, "cast", 99.0)
    length = _clip_seconds(clip)
    pipelines = []
    unlimited = threading.Semaphore(10**6)
    for i in range(streams):
        pipeline = Pipeline(gallery.engine, sinks=[CallbackSink(count)], slots=None if way.slots else unlimited)
        source = SourceSettings(str(clip), realtime=True, loop=True)
        config = StreamConfig(
            name=f"cam{i}", source=source, analysis=way.analysis, detect_every=2, gating=way.gating,
            queue_size=way.queue_size,
        )  # fmt: skip
        pipeline.add(config, matcher=matcher)
        began = time.perf_counter()
        pipeline.start()
        for worker in pipeline.workers.values():
            worker.wait_ready(60)
        pipelines.append(pipeline)
        if not in_phase and i + 1 < streams:
            time.sleep(max(0.0, length / streams - (time.perf_counter() - began)))
    time.sleep(1.0)  # past start-up
    first = {k: v for p in pipelines for k, v in p.metrics().items()}
    cpu0, began = _cpu(), time.perf_counter()
    time.sleep(seconds)
    cpu, elapsed = _cpu() - cpu0, time.perf_counter() - began
    last = {k: v for p in pipelines for k, v in p.metrics().items()}
    for pipeline in pipelines:
        pipeline.stop()

    def delta(key: str) -> int:
        return sum(last[n][key] - first[n][key] for n in last)

    decoded, analysed, dropped = delta("FramesDecoded"), delta("FramesAnalysed"), delta("FramesDropped")
    offered = decoded / 2
    row = {
        "streams": streams,
        "cpu_per_stream": round(cpu / (elapsed * streams), 3),
        "cores_used": round(cpu / elapsed, 2),
        "cpu_ms_per_analysed_frame": round(1000 * cpu / max(1, analysed), 1),
        "budget_ms_per_frame": round(2000 / (streams * OFFERED_FPS), 1),
        "analysed_fps_per_stream": round(analysed / elapsed / streams, 2),
        "offered_fps_per_stream": round(offered / elapsed / streams, 2),
        "dropped_pct": round(100 * dropped / max(1, offered), 1),
        "detections_skipped_pct": round(100 * delta("DetectionsSkipped") / max(1, analysed), 1),
        # frame decoded → analysis done: the median of the cameras' medians, the worst camera's p95
        "frame_latency_ms_p50": statistics.median(last[n]["FrameLatencyMillis"]["p50"] or 0.0 for n in last),
        "frame_latency_ms_p95": max(last[n]["FrameLatencyMillis"]["p95"] or 0.0 for n in last),
        "embedded": delta("FacesEmbedded"),
        "real_time": analysed >= 0.9 * offered
        and dropped <= 0.05 * offered
        and decoded >= 0.9 * 29.97 * elapsed * streams,
        "load": load_average(),
    }
    return row


def _clip_seconds(clip: Path) -> float:
    source = VideoSource(SourceSettings(str(clip)))
    last = max((frame.stream_time for frame in source.frames()), default=0.0)
    fps = source.metadata.frame_rate if source.metadata and source.metadata.frame_rate > 0 else 29.97
    return last + 1.0 / fps


def doorway_clip(path: Path, seconds: float = 30.0, fps: int = 15) -> Path:
    """A quiet camera: a still scene (real H.264 noise) where one person (an LFW photo of the test half)
    walks in at 8 s, stands for 8 s, and walks out at 18 s."""
    canvas = noise_canvas(CLIP_SIZE, 3)
    known, _ = _lfw_cast(1)
    photo = cv2.imread(str(known[0][1][3]))
    sprite = cv2.resize(photo, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    h, w = sprite.shape[:2]

    def frames() -> Iterator[np.ndarray]:
        for i in range(int(seconds * fps)):
            t, frame = i / fps, canvas.copy()
            x = None
            if 8.0 <= t < 10.0:
                x = int(-w + (t - 8.0) / 2.0 * (w + 240))
            elif 10.0 <= t < 16.0:
                x = 240
            elif 16.0 <= t < 18.0:
                x = int(240 + (t - 16.0) / 2.0 * (CLIP_SIZE[0] - 240))
            if x is not None:
                x0, x1 = max(0, x), min(CLIP_SIZE[0], x + w)
                if x1 > x0:
                    frame[40 : 40 + h, x0:x1] = sprite[:, x0 - x : x1 - x]
            yield frame

    return write_clip(path, frames(), fps, CLIP_SIZE)


def batches(engine: FaceEngine, clip: Path) -> dict[str, Any]:
    crops = []
    for frame in VideoSource(SourceSettings(str(clip))).frames():
        if frame.index % 10 == 0:
            image = Image(frame.bgr())
            crops += [geometry.align_face(image.pixels, d.landmarks, 112) for d in engine.find_faces(image, 5)]
    faces = np.stack(crops[:32])
    report: dict[str, Any] = {"faces": len(faces)}
    for size in (1, 2, 4, 8, 16):
        engine.embed_crops(faces[:size])
        best = min(_cpu_per_face(engine, faces, size) for _ in range(3))
        report[f"ms_per_face_batch_{size}"] = round(1000 * best, 2)
        print(f"  batch {size:>2}: {1000 * best:5.2f} ms CPU per face, load {load_average()}")
    one_by_one = np.concatenate([engine.embed_crops(faces[i : i + 1]) for i in range(len(faces))])
    report["max_difference"] = float(np.abs(engine.embed_crops(faces) - one_by_one).max())
    print(f"  batched vs one by one: largest difference {report['max_difference']:.2e}")
    report["prelu"] = prelu_forms(faces)
    return report


def prelu_forms(faces: np.ndarray, rounds: int = 7) -> dict[str, Any]:
    """SFace CPU per face (one face per call, as streams embed) with its PRelu nodes in each of
    ``branchless_prelu``'s forms (*four-op*: session 5; *max*; *conv*: today), alternately ``rounds`` times
    (medians), and each form's largest vector difference from *four-op* (bit-identical to PRelu)."""
    path = artifact_path(ARTIFACTS[SFACE_FILE])
    forms: tuple[PreluForm, ...] = ("four-op", "max", "conv")
    sessions = {form: load_onnx_session(path, threads=1, batch_dim=True, prelu_form=form) for form in forms}
    blobs = np.ascontiguousarray(faces[..., ::-1].astype(np.float32).transpose(0, 3, 1, 2))  # SFace: RGB 0–255
    name = sessions["conv"].get_inputs()[0].name
    times: dict[str, list[float]] = {form: [] for form in sessions}
    for _ in range(rounds):
        for form, session in sessions.items():
            session.run(None, {name: blobs[:1]})
            began = time.process_time()
            for i in range(len(blobs)):
                session.run(None, {name: blobs[i : i + 1]})
            times[form].append(1000 * (time.process_time() - began) / len(blobs))
    vectors = {form: np.concatenate([s.run(None, {name: blobs[i : i + 1]})[0] for i in range(len(blobs))])
               for form, s in sessions.items()}  # fmt: skip
    report: dict[str, Any] = {}
    base = statistics.median(times["four-op"])
    for form in forms:
        ms = statistics.median(times[form])
        difference = float(np.abs(vectors[form] - vectors["four-op"]).max())
        report[form] = {"ms_per_face": round(ms, 2), "four_op_over_this": round(base / ms, 3),
                        "max_difference": difference}  # fmt: skip
        print(f"  PRelu as {form:7}: {ms:5.2f} ms CPU per face, four-op / this {base / ms:.3f}x (median of "
              f"{rounds}, alternating), largest difference {difference:.1e}, load {load_average()}")  # fmt: skip
    return report


def _cpu_per_face(engine: FaceEngine, faces: np.ndarray, size: int) -> float:
    began = time.process_time()
    for i in range(0, len(faces), size):
        engine.embed_crops(faces[i : i + size])
    return (time.process_time() - began) / len(faces)


def _identify(
    gallery: Gallery, collection: str, clip: Path, threshold: float, way: Way, every: int
) -> tuple[list[tuple[str, float, float]], int]:
    """Every naming of a track (person, stream time, track start) and the number of detections run."""
    matcher = CollectionMatcher(gallery, collection, threshold)
    analyzer = FrameAnalyzer(gallery.engine, matcher=matcher, settings=way.analysis, gating=way.gating)
    namings: list[tuple[str, float, float]] = []

    def note(events: Sequence[TrackEvent]) -> None:
        for event in events:
            if event.match is not None:
                face = event.match.face
                name = face.user_id or face.external_image_id or face.face_id
                at = (event.end_stream_ms if isinstance(event, TrackEnded) else event.stream_time_ms) / 1000
                namings.append((name, at, event.start_stream_ms / 1000))

    for frame in VideoSource(SourceSettings(str(clip))).frames():
        if frame.index % every == 0:
            note([e for e in analyzer.process(frame).events if isinstance(e, TrackEvent)])
    note(analyzer.finish())
    return namings, analyzer.detections


def identifications(engine: FaceEngine, examples: Path, clips: int, work: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    hamilton = [(person, start, end) for person, spans in SPANS.items() for start, end in spans]
    cast = _cast_gallery(engine, examples, users=True)
    known, strangers = _lfw_cast(clips)
    people = Gallery(engine, MemoryStore())
    people.create_collection("people")
    for person, photos in known:
        indexed = people.index_faces("people", photos[0], external_image_id=person, max_faces=1)
        if indexed.indexed:
            people.create_user("people", person)
            people.associate_faces("people", person, [f.record.face_id for f in indexed.indexed])
    generated = []
    for c in range(clips):
        trio, extra = known[3 * c : 3 * c + 3], strangers[2 * c : 2 * c + 2]
        shots = [(trio[0][0], trio[0][1][3]), (trio[1][0], trio[1][1][3]), ("", extra[0][1][0]),
                 (trio[2][0], trio[2][1][3]), (trio[0][0], trio[0][1][4]), (trio[1][0], trio[1][1][4]),
                 ("", extra[1][1][0]), (trio[2][0], trio[2][1][4])]  # fmt: skip
        path = work / f"lfw_clip_{c}.mp4"
        generated.append((path, lfw_clip(path, shots, seed=c)))
    examples_clip = examples / "short_hamilton_clip.mp4"
    for threshold in (99.0, 95.0):
        for way in (EVERY, *WAYS):
            namings, detections = _identify(cast, "cast", examples_clip, threshold, way, 2)
            result = score_appearances(hamilton, namings)
            rows.append({"clip": "hamilton", "threshold": threshold, "way": way.name, "detections": detections,
                         **_summary([result]), "named_people": sorted({n for n, _, _ in namings}),
                         "named_appearances": _named(hamilton, namings, "hamilton")})  # fmt: skip
            print(f"  hamilton   @{threshold:g} {way.name:6}: {_line(rows[-1])}, load {load_average()}")
        _same(rows[-3:])
        for way in (EVERY, *WAYS):
            results, detections, named = [], 0, []
            for c, (path, appearances) in enumerate(generated):
                namings, count = _identify(people, "people", path, threshold, way, 1)
                results.append(score_appearances(appearances, namings))
                named += _named(appearances, namings, f"clip{c}")
                detections += count
            rows.append({"clip": f"lfw x{clips}", "threshold": threshold, "way": way.name, "detections": detections,
                         **_summary(results), "named_people": sorted({n for r in results for n, _, _ in r["namings"]}),
                         "named_appearances": named})  # fmt: skip
            print(f"  lfw x{clips}     @{threshold:g} {way.name:6}: {_line(rows[-1])}, load {load_average()}")
        _same(rows[-3:])
    return rows


def _named(
    appearances: Sequence[tuple[str, float, float]], namings: Sequence[tuple[str, float, float]], clip: str
) -> list[str]:
    """The appearances during which their person was named (as ``score_appearances`` counts them)."""
    slack = 0.3
    return [
        f"{clip}:{person}@{start:.1f}"
        for person, start, end in appearances
        if person and any(name == person and start - slack <= at < end + slack for name, at, _ in namings)
    ]


def _same(rows: Sequence[dict[str, Any]]) -> None:
    """Print whether each way named the same appearances as the first (the reference), and which differ."""
    reference = set(rows[0]["named_appearances"])
    for row in rows[1:]:
        mine = set(row["named_appearances"])
        row["same_as_" + rows[0]["way"]] = mine == reference
        differ = (
            f" (only {rows[0]['way']}: {sorted(reference - mine)}, only {row['way']}: {sorted(mine - reference)})"
        )
        print(f"    {row['way']} names the same appearances as {rows[0]['way']}: {mine == reference}"
              f"{'' if mine == reference else differ}")  # fmt: skip


def _line(row: dict[str, Any]) -> str:
    delay = (
        "-" if row["delay_median_s"] is None else f"{row['delay_median_s']:.2f} s (p90 {row['delay_p90_s']:.2f})"
    )
    return (f"{row['named']}/{row['appearances']} appearances named, first naming after {delay}, "
            f"wrong names {row['wrong']}, {row['detections']} detections")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", default="4,6,8", help="stream counts for the live section")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each live run")
    parser.add_argument("--clips", type=int, default=4, help="generated clips for the ids section")
    parser.add_argument("--repeats", type=int, default=3, help="profile runs of each way (alternating; median)")
    parser.add_argument(
        "--skip", default="", help="comma-separated sections to skip: split,profile,live,batch,ids"
    )
    parser.add_argument("--json", help="write the numbers here")
    parser.add_argument("--in-phase", action="store_true", help="live: start every camera at the same point")
    parser.add_argument("--live-repeats", type=int, default=1, help="live runs of each way (alternating)")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    examples = require_data() / "face_recognition" / "examples"
    clip = examples / "short_hamilton_clip.mp4"
    engine = FaceEngine.create()
    gallery = _cast_gallery(engine, examples)
    print(machine_info())
    report: dict[str, Any] = {"load_start": load_average()}
    print(f"load average at start: {report['load_start']}")
    if "split" not in skip:
        print("\nsplit: one busy stream (the Hamilton clip looped twice) under cProfile, old and new")
        report["split"] = {way.name: split(gallery, clip, way) for way in WAYS}
    if "profile" not in skip:
        print(f"\nprofile: one stream, the Hamilton clip looped 3 times as fast as it decodes, every 2nd frame "
              f"offered; old and new alternately, {args.repeats} runs each")  # fmt: skip
        report["profile"] = _profiles(gallery, clip, args.repeats, loops=3, every=2)
        print("\nprofile: one quiet camera (30 s, 15 fps: a still scene, one person walks in, stands, leaves)")
        with tempfile.TemporaryDirectory() as work:
            door = doorway_clip(Path(work) / "doorway.mp4")
            report["doorway"] = _profiles(gallery, door, 1, loops=1, every=1)
    if "live" not in skip:
        report["live"] = []
        for n in [int(x) for x in args.streams.split(",") if x.strip()]:
            budget = 2000 / (n * OFFERED_FPS)
            print(f"\nlive: {n} simulated 640x360 cameras (the clip looped at 29.97 fps, every 2nd frame offered), "
                  f"{args.seconds:g} s each way; real-time budget on 2 cores {budget:.1f} ms CPU per frame")  # fmt: skip
            runs: dict[str, list[dict[str, Any]]] = {way.name: [] for way in WAYS}
            for r in range(args.live_repeats):  # old and new alternately: a run's drops vary with its bursts
                for way in WAYS:
                    row = live(gallery, clip, n, args.seconds, way, args.in_phase)
                    row["way"], row["run"] = way.name, r + 1
                    runs[way.name].append(row)
                    report["live"].append(row)
                    print(f"  {way.name:4} run {r + 1}: CPU per stream {row['cpu_per_stream']:.3f}, {row['cores_used']:.2f} cores "
                          f"for {n}, {row['cpu_ms_per_analysed_frame']:.1f} ms CPU per analysed frame, "
                          f"analysed {row['analysed_fps_per_stream']:.1f}/{row['offered_fps_per_stream']:.1f} fps each, "
                          f"dropped {row['dropped_pct']:.0f}%, detection skipped on {row['detections_skipped_pct']:.0f}%, "
                          f"frame latency p50 {row['frame_latency_ms_p50']:.0f} ms (worst p95 {row['frame_latency_ms_p95']:.0f}), "
                          f"real time: {row['real_time']}, load {row['load']}")  # fmt: skip
            for name, rows in runs.items():
                kept = sum(row["real_time"] for row in rows)
                drops = ", ".join(f"{row['dropped_pct']:.1f}" for row in rows)
                print(f"  {n} cameras, {name}: real time in {kept} of {len(rows)} runs; median analysed "
                      f"{statistics.median(r['analysed_fps_per_stream'] for r in rows):.1f} fps, dropped "
                      f"{statistics.median(r['dropped_pct'] for r in rows):.1f}% (runs: "
                      f"{drops})")  # fmt: skip
    if "batch" not in skip:
        print("\nembedding batches (SFace, 1 onnxruntime thread, real face crops of the clip)")
        report["batch"] = batches(engine, clip)
    if "ids" not in skip:
        print(
            "\nidentifications (every / old / new; Hamilton: reference photos as users; generated: 1 photo each)"
        )
        with tempfile.TemporaryDirectory() as work:
            report["ids"] = identifications(engine, examples, args.clips, Path(work))
    report["load_end"] = load_average()
    print(f"\nload average at end: {report['load_end']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float))


def _profiles(gallery: Gallery, clip: Path, repeats: int, loops: int, every: int) -> dict[str, Any]:
    """Old and new alternately ``repeats`` times (so both see the same load); each way's median run, the
    ratio of the medians, and the CPU per offered frame against the real-time budget of 8 streams."""
    runs: dict[str, list[dict[str, Any]]] = {way.name: [] for way in WAYS}
    for r in range(repeats):
        for way in WAYS:
            row = profile(gallery, clip, way, loops=loops, every=every)
            runs[way.name].append(row)
            stages = ", ".join(f"{k} {v:.0f}" for k, v in row["ms_per_video_second"].items())
            print(f"  {way.name:4} run {r + 1}: CPU per stream {row['cpu_per_stream']:.3f} (process CPU s / video s), "
                  f"{row['cpu_ms_per_offered_frame']:.1f} ms per offered frame; ms per video second: {stages}; "
                  f"{row['detections']} detections ({row['coarse']} coarse), {row['gated']} skipped, {row['embedded']} faces embedded, "
                  f"{row['events']} events, load {row['load']}")  # fmt: skip
    report: dict[str, Any] = {}
    for name, rows in runs.items():
        median = statistics.median(row["cpu_per_stream"] for row in rows)
        report[name] = {"median_cpu_per_stream": median, "runs": rows}
    old, new = report["old"]["median_cpu_per_stream"], report["new"]["median_cpu_per_stream"]
    report["old_over_new"] = round(old / max(1e-9, new), 2)
    frame_ms = statistics.median(row["cpu_ms_per_offered_frame"] for row in runs["new"])
    report["new_ms_per_offered_frame"] = frame_ms
    for name, rows in runs.items():
        row = sorted(rows, key=lambda r: r["cpu_per_stream"])[len(rows) // 2]
        costs, decode = row["frame_costs"], row["ms_per_video_second"].get("decode", 0.0) / 1000
        model = {
            f"{n}_{phase}": round(queue_model(costs, n, phase == "in_phase", decode), 1)
            for n in (4, 8)
            for phase in ("in_phase", "out_of_phase")
        }
        report[name]["queue_model_dropped_pct"] = model
        print(f"  queue model, {name} (its median run's per-frame CPU, decode {decode:.3f} core per stream): "
              + ", ".join(f"{k.replace('_', ' ')} {v:.0f}% dropped" for k, v in model.items()))  # fmt: skip
    for rows in runs.values():
        for row in rows:
            row.pop("frame_costs", None)
    print(f"  median CPU per stream: old {old:.3f}, new {new:.3f}: old / new {report['old_over_new']:.2f}x; "
          f"new {frame_ms:.1f} ms CPU per offered frame (8 streams at 15 fps on 2 cores: "
          f"{2000 / (8 * OFFERED_FPS):.1f} ms)")  # fmt: skip
    return report


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
