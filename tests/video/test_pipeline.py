"""Stream workers: frames are dropped (and counted) when analysis falls behind, never buffered unboundedly."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from facetrace.engine import FaceEngine
from facetrace.gallery import Gallery
from facetrace.video.analysis import FrameAnalyzer
from facetrace.video.events import Event, TrackIdentified
from facetrace.video.identity import CollectionMatcher
from facetrace.video.pipeline import Pipeline, StreamConfig, analysis_slots
from facetrace.video.sinks import CallbackSink
from facetrace.video.source import SourceSettings
from tests.video.conftest import FPS, SECONDS, THRESHOLD
from tests.waiting import wait_for


def test_frames_are_dropped_when_analysis_falls_behind(engine: FaceEngine, scene: Path) -> None:
    """Decoding runs far ahead of analysis (no pacing), so a one-frame queue must drop most frames."""
    pipeline = Pipeline(engine)
    worker = pipeline.add(
        StreamConfig(name="fast", source=SourceSettings(str(scene)), detect_every=1, queue_size=1)
    )
    pipeline.start()
    assert pipeline.join(60)
    metrics = worker.metrics.snapshot()
    total = int(SECONDS * FPS)
    assert metrics["FramesDecoded"] == total
    assert metrics["FramesDropped"] > 0
    assert metrics["FramesAnalysed"] > 0
    # every decoded frame is accounted for exactly once
    assert metrics["FramesAnalysed"] + metrics["FramesDropped"] + metrics["FramesSkipped"] == total
    assert metrics["State"] == "ENDED"


def test_without_dropping_every_selected_frame_is_analysed(engine: FaceEngine, scene: Path) -> None:
    pipeline = Pipeline(engine)
    worker = pipeline.add(
        StreamConfig(
            name="all", source=SourceSettings(str(scene)), detect_every=3, queue_size=1, drop_when_behind=False
        )
    )
    pipeline.start()
    assert pipeline.join(60)
    metrics = worker.metrics.snapshot()
    total = int(SECONDS * FPS)
    assert metrics["FramesDropped"] == 0
    assert metrics["FramesAnalysed"] == len(range(0, total, 3))
    assert metrics["FramesSkipped"] == total - metrics["FramesAnalysed"]


def test_several_streams_share_one_stop_event(engine: FaceEngine, gallery: Gallery, scene: Path) -> None:
    events: list[Event] = []
    pipeline = Pipeline(engine, sinks=[CallbackSink(events.append)])
    matcher = CollectionMatcher(gallery, "people", THRESHOLD)
    for name in ("a", "b"):
        source = SourceSettings(str(scene), realtime=True, loop=True)
        # Every frame analysed, however slowly: dropping the ones a busy machine cannot analyse in time would
        # leave Obama in too few frames to name him (dropping has its own tests above).
        pipeline.add(StreamConfig(name=name, source=source, drop_when_behind=False), matcher=matcher)
    with pipeline:
        # Looping files never end: both run until the shared event stops them. Wait for what each must have
        # done (named Obama) rather than for a fixed time, so a busy machine only makes the test slower.
        assert wait_for(lambda: _identified(events) >= {("a", "obama"), ("b", "obama")}, 120), _identified(events)
        assert all(worker.is_alive() for worker in pipeline.workers.values())
    assert not any(worker.is_alive() for worker in pipeline.workers.values())
    metrics = pipeline.metrics()
    assert set(metrics) == {"a", "b"}
    assert all(m["State"] == "STOPPED" for m in metrics.values())
    assert all(m["FramesAnalysed"] > 0 for m in metrics.values())


def _identified(events: list[Event]) -> set[tuple[str, str]]:
    """(processor, ExternalImageId) of every identification so far (read while the workers append)."""
    return {(e.processor, e.match.face.external_image_id) for e in list(events) if isinstance(e, TrackIdentified)}


def test_workers_analyse_no_more_frames_at_once_than_their_slots(engine: FaceEngine, scene: Path) -> None:
    """Three workers sharing one analysis slot never analyse two frames at the same time, and all of them
    analyse every frame they select (nothing dropped, nothing starved)."""
    busy, most = [0], [0]
    lock = threading.Lock()
    original = FrameAnalyzer.process

    def counted(self: FrameAnalyzer, frame: object) -> object:
        with lock:
            busy[0] += 1
            most[0] = max(most[0], busy[0])
        try:
            return original(self, frame)  # type: ignore[arg-type]
        finally:
            with lock:
                busy[0] -= 1

    pipeline = Pipeline(engine, slots=threading.Semaphore(1))
    for name in ("a", "b", "c"):
        config = StreamConfig(name=name, source=SourceSettings(str(scene)), detect_every=4, drop_when_behind=False)
        pipeline.add(config)
    FrameAnalyzer.process = counted  # type: ignore[method-assign,assignment]
    try:
        pipeline.start()
        assert pipeline.join(120)
    finally:
        FrameAnalyzer.process = original  # type: ignore[method-assign]
    metrics = pipeline.metrics()
    assert most[0] == 1
    assert all(m["FramesAnalysed"] == len(range(0, int(SECONDS * FPS), 4)) for m in metrics.values()), metrics


def test_the_process_wide_slots_are_one_per_usable_core() -> None:
    slots = analysis_slots()
    assert slots is analysis_slots()
    cores = len(os.sched_getaffinity(0))
    taken = 0
    while slots.acquire(blocking=False):
        taken += 1
    for _ in range(taken):
        slots.release()
    assert taken == cores
