"""Live streams on loopback: MPEG-TS over UDP from a PyAV sender thread, bounded in time."""

from __future__ import annotations

import contextlib
import queue
import threading
import time

from facetrace.engine import FaceEngine
from facetrace.errors import SourceOpenError, StreamError
from facetrace.gallery import Gallery
from facetrace.video.events import Event, StreamState, StreamStatus, TrackEnded, TrackIdentified
from facetrace.video.identity import CollectionMatcher
from facetrace.video.pipeline import StreamConfig, StreamWorker
from facetrace.video.sinks import CallbackSink
from facetrace.video.source import SourceSettings, VideoSource
from tests.video.conftest import THRESHOLD, Actor, UdpSender, free_udp_port


def _worker(
    engine: FaceEngine, gallery: Gallery, port: int, **source: float
) -> tuple[StreamWorker, queue.Queue[Event]]:
    events: queue.Queue[Event] = queue.Queue()
    config = StreamConfig(
        name="door",
        camera="front-door",
        source=SourceSettings(f"udp://127.0.0.1:{port}", **source),  # type: ignore[arg-type]
        detect_every=1,
    )
    worker = StreamWorker(
        config, engine, matcher=CollectionMatcher(gallery, "people", THRESHOLD), sinks=[CallbackSink(events.put)]
    )
    return worker, events


def _collect(events: queue.Queue[Event], until: threading.Event | None, seconds: float, stop_when) -> list[Event]:
    seen: list[Event] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            seen.append(events.get(timeout=0.1))
        if stop_when(seen):
            break
    return seen


def test_live_stream_events_arrive_with_the_right_identity(
    engine: FaceEngine, gallery: Gallery, actors: list[Actor]
) -> None:
    port = free_udp_port()
    worker, events = _worker(engine, gallery, port, open_timeout=5.0, stall_timeout=2.0)
    worker.start()
    assert worker.wait_ready(30)
    try:
        with UdpSender(port, actors, seconds=8.0):
            seen = _collect(
                events,
                None,
                15.0,
                lambda got: (
                    {e.match.face.external_image_id for e in got if isinstance(e, TrackIdentified)}
                    >= {"obama", "biden"}
                ),
            )
    finally:
        worker.stop()
        assert worker.join(10)
    identified = [e for e in seen if isinstance(e, TrackIdentified)]
    names = {e.match.face.external_image_id for e in identified}
    assert names == {"obama", "biden"}  # and never the stranger
    for event in identified:
        assert event.camera == "front-door"
        assert event.processor == "door"
        assert event.match.similarity >= THRESHOLD
        assert event.snapshot is not None
        assert event.snapshot[:2] == b"\xff\xd8"  # a JPEG
        assert event.frame_time <= event.wall_time
        data = event.to_dict()
        assert data["Type"] == "TrackIdentified"
        assert data["ExternalImageId"] in ("obama", "biden")
    assert any(isinstance(e, StreamStatus) and e.state is StreamState.CONNECTED for e in seen)
    metrics = worker.metrics.snapshot()
    assert metrics["FramesAnalysed"] > 0
    assert metrics["EventLatencyMillis"]["p95"] is not None


def test_reconnects_after_the_stream_is_cut(engine: FaceEngine, gallery: Gallery, actors: list[Actor]) -> None:
    port = free_udp_port()
    worker, events = _worker(
        engine, gallery, port, open_timeout=4.0, stall_timeout=0.5, backoff_initial=0.1, backoff_max=0.5
    )
    worker.start()
    assert worker.wait_ready(30)
    try:
        with UdpSender(port, actors, seconds=1.5) as first:
            first.wait()
        before = worker.source.counters.decoded
        time.sleep(1.0)  # the cut: nothing arrives
        with UdpSender(port, actors, seconds=2.0) as second:
            seen = _collect(
                events,
                None,
                10.0,
                lambda got: any(
                    isinstance(e, StreamStatus) and e.state is StreamState.CONNECTED and e.attempt > 0 for e in got
                ),
            )
            second.wait()
        time.sleep(0.3)
        after = worker.source.counters.decoded
    finally:
        worker.stop()
        assert worker.join(10)
    states = [e.state for e in seen if isinstance(e, StreamStatus)]
    assert StreamState.STALLED in states or StreamState.DISCONNECTED in states
    assert any(isinstance(e, StreamStatus) and e.state is StreamState.CONNECTED and e.attempt > 0 for e in seen)
    assert worker.metrics.reconnects >= 1
    assert before > 0
    assert after > before  # frames flow again after the reconnection
    assert worker.source.counters.connections >= 2


def test_a_silent_source_fails_instead_of_hanging() -> None:
    port = free_udp_port()  # nobody sends here
    statuses: list[StreamState] = []
    source = VideoSource(
        SourceSettings(f"udp://127.0.0.1:{port}", open_timeout=0.3, stall_timeout=0.3, reconnect=False),
        on_status=lambda state, message, attempt: statuses.append(state),
    )
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            list(source.frames())
        except StreamError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(20)
    assert not reader.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], SourceOpenError)
    assert statuses == [StreamState.FAILED]


def test_reconnection_gives_up_after_max_attempts() -> None:
    port = free_udp_port()
    statuses: list[tuple[StreamState, int]] = []
    source = VideoSource(
        SourceSettings(
            f"udp://127.0.0.1:{port}", open_timeout=0.2, stall_timeout=0.2, backoff_initial=0.05, max_attempts=2
        ),
        on_status=lambda state, message, attempt: statuses.append((state, attempt)),
    )
    outcome: list[BaseException] = []
    reader = threading.Thread(target=lambda: _drain(source, outcome), daemon=True)
    reader.start()
    reader.join(20)
    assert not reader.is_alive()
    assert isinstance(outcome[0], StreamError)
    assert statuses[-1][0] is StreamState.FAILED
    assert [s for s in statuses if s[0] is StreamState.DISCONNECTED] == [
        (StreamState.DISCONNECTED, 1),
        (StreamState.DISCONNECTED, 2),
        (StreamState.DISCONNECTED, 3),
    ]


def _drain(source: VideoSource, outcome: list[BaseException]) -> None:
    try:
        list(source.frames())
    except StreamError as exc:
        outcome.append(exc)


def test_stopping_a_worker_on_a_dead_source_does_not_hang(engine: FaceEngine) -> None:
    port = free_udp_port()
    config = StreamConfig(
        name="dead", source=SourceSettings(f"udp://127.0.0.1:{port}", open_timeout=0.5, stall_timeout=0.5)
    )
    worker = StreamWorker(config, engine)
    worker.start()
    time.sleep(0.8)
    assert worker.metrics.state in ("STARTING", "RECONNECTING")
    worker.stop()
    assert worker.join(10)
    assert worker.metrics.state == "STOPPED"


def test_track_ended_follows_identification(engine: FaceEngine, gallery: Gallery, actors: list[Actor]) -> None:
    """Obama leaves the picture at 2.6 s: his track ends (after max_lost_seconds) with his identity.

    The 6-second scene repeats until that happens: a live worker drops the frames it cannot analyse in time,
    so on a busy machine one pass may show Obama in too few analysed frames to name him. Each pass is a new
    chance; on a quiet machine the first one does it."""
    port = free_udp_port()
    worker, events = _worker(engine, gallery, port, open_timeout=5.0, stall_timeout=2.0)
    worker.start()
    assert worker.wait_ready(30)
    try:
        with UdpSender(port, actors, seconds=120.0, loop=6.0):
            seen = _collect(
                events,
                None,
                120.0,
                lambda got: any(
                    isinstance(e, TrackEnded) and e.match and e.match.face.external_image_id == "obama"
                    for e in got
                ),
            )
    finally:
        worker.stop()
        worker.join(10)
    ended = [e for e in seen if isinstance(e, TrackEnded) and e.match is not None]
    obama = [e for e in ended if e.match.face.external_image_id == "obama"]
    assert len(obama) == 1
    identified = [e for e in seen if isinstance(e, TrackIdentified) and e.track_id == obama[0].track_id]
    assert len(identified) == 1  # one stable identification, no flicker
    assert obama[0].end_stream_ms > obama[0].start_stream_ms
