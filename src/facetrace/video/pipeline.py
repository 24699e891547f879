"""Live analysis: one worker per stream, a shared stop event, bounded queues that drop frames, metrics.

Each ``StreamWorker`` runs two threads. The *reader* decodes every frame of its source (a video decoder
cannot skip the frames others depend on) and offers every ``detect_every``-th one to a queue of
``queue_size`` frames; when the queue is full the oldest waiting frame is dropped and counted, so analysis
always works on the freshest picture and memory stays bounded however far behind it falls. The *analyser*
builds its models in its own thread (the engine keeps them per thread), runs ``FrameAnalyzer`` on each
frame — holding one of the process's analysis slots (``analysis_slots``: one per core, shared by every
worker, so 8 cameras on 2 cores analyse 2 frames at a time rather than 8 time-sliced) — and hands the
events to the sinks, required sinks (the audit trail) first: when one of those fails,
the worker stops with state FAILED and publishes a ``StreamStatus`` saying why to the other sinks — a live
stream never identifies people it cannot audit. Stored-video jobs use the same worker with ``drop_when_behind``
off: the reader then waits for the analyser instead of dropping.

``StreamMetrics`` counts frames received (packets read), decoded, analysed, skipped (not selected by
``detect_every``) and dropped (selected, but analysis was behind), frames whose detection was skipped
(``GatingSettings``: the picture had not changed, or the stream's detection rate was not due), the analysed
frame rate over the last few seconds, and the frame→event latency from the moment a frame was decoded to the moment its event was
published, as p50/p95.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facetrace.engine import FaceEngine
from facetrace.errors import FacetraceError, InvalidParameterError, StreamError
from facetrace.video.analysis import AnalysisSettings, FrameAnalyzer, FrameResult, GatingSettings, TrackObserver
from facetrace.video.events import Event, StreamState, StreamStatus, TrackEvent
from facetrace.video.identity import Matcher
from facetrace.video.sinks import EventSink, is_required
from facetrace.video.source import Frame, SourceSettings, VideoSource

__all__ = ["AuditStop", "Pipeline", "StreamConfig", "StreamMetrics", "StreamWorker", "analysis_slots"]

log = logging.getLogger(__name__)

_END = object()  # the reader's last word: the source ended or failed
_SLOTS: threading.BoundedSemaphore | None = None
_SLOTS_LOCK = threading.Lock()


def analysis_slots() -> threading.BoundedSemaphore:
    """The process-wide limit on frames analysed at once: one per core this process may run on.

    Every stream worker holds a slot while it analyses a frame. Without it, 8 analysers on 2 cores are
    time-sliced by the OS, each pre-empted in the middle of a model pass and its working set (models,
    frame, activations) pushed out of the caches by the next: 8 live busy cameras took ~4% more CPU per
    analysed frame and dropped more frames that way (``benchmarks/bench_streams.py``, section live). The
    waiters are woken in turn (``threading.Condition`` is first in, first out)."""
    global _SLOTS
    with _SLOTS_LOCK:
        if _SLOTS is None:
            try:
                cores = len(os.sched_getaffinity(0))
            except AttributeError:  # pragma: no cover - not Linux
                cores = os.cpu_count() or 1
            _SLOTS = threading.BoundedSemaphore(max(1, cores))
        return _SLOTS


class AuditStop(StreamError):
    """A required sink (the audit trail) failed: the worker stopped rather than identify people unaudited."""


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """Everything one stream worker needs besides the shared engine, matcher, sinks and stop event.

    ``gating``: when to skip detection on an offered frame (``GatingSettings``: the picture has not changed,
    or the scene is settled); None detects on every offered frame, as before gating existed.
    ``queue_size``: offered frames that may wait for analysis (4: about 0.27 s at 15 offered fps). A busy
    moment — a full-scale detection and an embedding, ~65 ms of CPU for one frame — on several cameras at
    once is absorbed rather than dropped: 8 live busy cameras on 2 cores dropped 8–12% of their frames
    with a queue of 2 and 1–3% with 4 (``benchmarks/bench_streams.py``); the price is latency in bursts.
    """

    name: str
    source: SourceSettings
    camera: str = ""
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    detect_every: int = 2
    queue_size: int = 4
    drop_when_behind: bool = True
    gating: GatingSettings | None = field(default_factory=GatingSettings)

    def __post_init__(self) -> None:
        if not 1 <= self.detect_every <= 300 or not 1 <= self.queue_size <= 1000:
            raise InvalidParameterError("detect_every must be 1-300 and queue_size 1-1000")


class StreamMetrics:
    """Counters and latencies of one worker. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received = 0
        self.decoded = 0
        self.analysed = 0
        self.skipped = 0
        self.dropped = 0
        self.embedded = 0
        self.gated = 0
        self.events = 0
        self.reconnects = 0
        self.state = "STARTING"
        self.message = ""
        self.started = time.time()
        self._analysed_at: collections.deque[float] = collections.deque(maxlen=600)
        self._event_latency: collections.deque[float] = collections.deque(maxlen=2000)
        self._frame_latency: collections.deque[float] = collections.deque(maxlen=2000)
        self._busy = 0.0

    def frame_done(self, frame: Frame, result: FrameResult, busy: float) -> None:
        now = time.time()
        with self._lock:
            self.analysed += 1
            self.embedded += result.embedded
            self.gated += not result.detected
            self._busy += busy
            self._analysed_at.append(time.monotonic())
            self._frame_latency.append(now - frame.arrived)

    def event_published(self, event: Event) -> None:
        with self._lock:
            self.events += 1
            if isinstance(event, TrackEvent):
                self._event_latency.append(event.latency)

    def set_state(self, state: str, message: str = "") -> None:
        with self._lock:
            self.state, self.message = state, message

    @property
    def event_latencies(self) -> list[float]:
        with self._lock:
            return list(self._event_latency)

    def snapshot(self) -> dict[str, Any]:
        """The numbers as a JSON-ready dict (latencies in milliseconds)."""
        with self._lock:
            now = time.monotonic()
            recent = [t for t in self._analysed_at if now - t <= 5.0]
            fps = (
                (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
            )
            return {
                "State": self.state,
                "Message": self.message,
                "FramesReceived": self.received,
                "FramesDecoded": self.decoded,
                "FramesAnalysed": self.analysed,
                "FramesSkipped": self.skipped,
                "FramesDropped": self.dropped,
                "FacesEmbedded": self.embedded,
                "DetectionsSkipped": self.gated,
                "Events": self.events,
                "Reconnects": self.reconnects,
                "AnalysedFps": round(fps, 2),
                "AnalysisSeconds": round(self._busy, 3),
                "EventLatencyMillis": _percentiles(self._event_latency),
                "FrameLatencyMillis": _percentiles(self._frame_latency),
            }


def _percentiles(values: collections.deque[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "max": None}
    array = np.asarray(values, dtype=np.float64) * 1000.0
    return {
        "p50": round(float(np.percentile(array, 50)), 1),
        "p95": round(float(np.percentile(array, 95)), 1),
        "max": round(float(array.max()), 1),
    }


class StreamWorker:
    """Reads one source and analyses it until the source ends, it fails for good, or ``stop`` is set."""

    def __init__(
        self,
        config: StreamConfig,
        engine: FaceEngine,
        *,
        matcher: Matcher | None = None,
        sinks: Sequence[EventSink] = (),
        stop: threading.Event | None = None,
        observers: Sequence[TrackObserver] = (),
        slots: threading.Semaphore | None = None,
    ) -> None:
        """``observers`` receive the tracks that end unidentified (``AnalysisSettings.report_unresolved``): the
        review queue and unknown people. They are not sinks: nothing of theirs is an event. ``slots``: held
        while a frame is analysed (None: the process-wide ``analysis_slots``)."""
        self.config = config
        self._slots = slots if slots is not None else analysis_slots()
        self.observers = list(observers)
        self.engine = engine
        self.matcher = matcher
        # Required sinks (the audit trail) first, so no other sink sees an event that was not audited.
        self.sinks = sorted(sinks, key=lambda sink: not is_required(sink))
        self.stop_event = stop or threading.Event()
        self.metrics = StreamMetrics()
        self.error: FacetraceError | None = None
        self._halt = threading.Event()
        self._ready = threading.Event()
        self._queue: queue.Queue[Any] = queue.Queue(config.queue_size)
        self._source = VideoSource(config.source, stop=self.stop_event, on_status=self._on_status)
        self._analyser = threading.Thread(
            target=self._analyse, name=f"facetrace-analyse-{config.name}", daemon=True
        )
        self._reader = threading.Thread(target=self._read, name=f"facetrace-read-{config.name}", daemon=True)
        self._latest: tuple[Frame, FrameResult] | None = None  # the last analysed frame, for live views

    def latest_frame(self) -> tuple[Frame, FrameResult] | None:
        """The last frame the analyser finished and what it found there (None before the first). A live view
        draws from this instead of opening the camera a second time: one decoder per camera."""
        return self._latest

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def source(self) -> VideoSource:
        return self._source

    def start(self) -> None:
        """Start the analyser; it builds its models, then starts the reader (no frames dropped meanwhile)."""
        self._analyser.start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until the models are built and the source is being read; True when it is."""
        return self._ready.wait(timeout)

    def stop(self) -> None:
        """Ask this worker alone to stop (the shared stop event stops them all)."""
        self._halt.set()
        self._source.close()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the analyser to finish; True when it did."""
        self._analyser.join(timeout)
        return not self._analyser.is_alive()

    def is_alive(self) -> bool:
        return self._analyser.is_alive()

    def _stopping(self) -> bool:
        return self.stop_event.is_set() or self._halt.is_set()

    # -- reader ------------------------------------------------------------------------------------------

    def _read(self) -> None:
        config, metrics, counters = self.config, self.metrics, self._source.counters
        try:
            for frame in self._source.frames():
                metrics.received, metrics.decoded = counters.received, counters.decoded
                if frame.index % config.detect_every:
                    metrics.skipped += 1
                    continue
                if config.drop_when_behind:
                    self._offer(frame)
                elif not self._put(frame):
                    return
        except FacetraceError as exc:
            self.error = exc
            metrics.set_state("FAILED", exc.message)
        except Exception as exc:  # a bug or an unexpected PyAV failure: report it, never hang the analyser
            log.exception("reader of %s failed", config.name)
            self.error = FacetraceError(f"unexpected error reading the source: {type(exc).__name__}: {exc}")
            metrics.set_state("FAILED", self.error.message)
        finally:
            metrics.received, metrics.decoded = counters.received, counters.decoded
            self._put(_END, force=True)

    def _offer(self, frame: Frame) -> None:
        """Queue ``frame``; if analysis is behind, drop the oldest waiting frame instead of growing."""
        while True:
            try:
                self._queue.put_nowait(frame)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.metrics.dropped += 1
                except queue.Empty:
                    pass

    def _put(self, item: object, *, force: bool = False) -> bool:
        while True:
            if self._stopping() and not force:
                return False
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                if force and self._stopping():
                    self._offer_end()
                    return True

    def _offer_end(self) -> None:
        with contextlib.suppress(queue.Empty):
            self._queue.get_nowait()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_END)

    # -- analyser ----------------------------------------------------------------------------------------

    def _analyse(self) -> None:
        config, metrics = self.config, self.metrics
        analyzer = FrameAnalyzer(
            self.engine,
            matcher=self.matcher,
            settings=config.analysis,
            processor=config.name,
            camera=config.camera or config.name,
            gating=config.gating,
        )
        try:
            analyzer.warm_up()
            if not self._stopping():
                self._reader.start()
            self._ready.set()
            while True:
                try:
                    item = self._queue.get(timeout=0.2)
                except queue.Empty:
                    if self._stopping() and not self._reader.is_alive():
                        break
                    continue
                if item is _END or self._stopping():
                    break
                frame: Frame = item
                with self._slots:
                    began = time.perf_counter()
                    result = analyzer.process(frame)
                metrics.frame_done(frame, result, time.perf_counter() - began)
                self._latest = (frame, result)  # one reference swap: readers see a whole pair
                for event in result.events:
                    self._publish(event)
                self._hand_over(analyzer)
            for event in analyzer.finish():
                self._publish(event)
            self._hand_over(analyzer)
        except FacetraceError as exc:
            self.error = exc
            metrics.set_state("FAILED", exc.message)
            self._publish(self._status_event(StreamState.FAILED, exc.message, 0), fail_closed=False)
        except Exception as exc:
            log.exception("analysis of %s failed", config.name)
            self.error = FacetraceError(f"unexpected analysis error: {type(exc).__name__}: {exc}")
            metrics.set_state("FAILED", self.error.message)
        finally:
            stopped = self._stopping()
            self._halt.set()  # releases a reader waiting on a full queue
            if not self._reader.is_alive() and not self._reader.ident:
                self._put(_END, force=True)  # never started: nobody else will say the end
            self._source.close()
            if metrics.state != "FAILED":
                metrics.set_state("STOPPED" if stopped else "ENDED")

    def _publish(self, event: Event, *, fail_closed: bool = True) -> None:
        """Hand ``event`` to every sink. A failing required sink raises ``StreamError`` (the worker stops)
        before any later sink sees the event; other sinks' failures are logged and the stream goes on.
        ``fail_closed=False`` is for the last word of a worker that is already failing."""
        self.metrics.event_published(event)
        for sink in self.sinks:
            try:
                sink.publish(event)
            except Exception as exc:
                if fail_closed and is_required(sink):
                    reason = exc.message if isinstance(exc, FacetraceError) else f"{type(exc).__name__}: {exc}"
                    raise StreamError(
                        f"stopped: the audit trail failed, nothing more is identified ({reason})"
                    ) from exc
                log.exception("sink %s failed on an event", type(sink).__name__)

    def _hand_over(self, analyzer: FrameAnalyzer) -> None:
        """Give the tracks that just ended unidentified to the observers; a failing observer is logged (a
        review item or an unknown face lost is not an identification made unaudited)."""
        for track in analyzer.take_unresolved():
            for observer in self.observers:
                try:
                    observer.observe(track)
                except Exception:
                    log.exception("observer %s failed on track %d", type(observer).__name__, track.track_id)

    def _status_event(self, state: StreamState, message: str, attempt: int) -> StreamStatus:
        config = self.config
        return StreamStatus(
            processor=config.name,
            camera=config.camera or config.name,
            state=state,
            message=message,
            attempt=attempt,
        )

    def _on_status(self, state: StreamState, message: str, attempt: int) -> None:
        if state is StreamState.CONNECTED:
            self.metrics.set_state("RUNNING")
            if attempt:
                self.metrics.reconnects += 1
        elif state in (StreamState.DISCONNECTED, StreamState.STALLED):
            self.metrics.set_state("RECONNECTING", message)
        elif state is StreamState.FAILED:
            self.metrics.set_state("FAILED", message)
        self._publish(self._status_event(state, message, attempt))


class Pipeline:
    """Several stream workers sharing one engine and one stop event (and, by default, the process's
    ``analysis_slots``; ``slots`` gives them another limit)."""

    def __init__(
        self,
        engine: FaceEngine,
        *,
        sinks: Sequence[EventSink] = (),
        stop: threading.Event | None = None,
        slots: threading.Semaphore | None = None,
    ):
        self.engine = engine
        self.sinks = list(sinks)
        self.stop_event = stop or threading.Event()
        self.slots = slots
        self.workers: dict[str, StreamWorker] = {}

    def add(
        self, config: StreamConfig, *, matcher: Matcher | None = None, sinks: Sequence[EventSink] = ()
    ) -> StreamWorker:
        if config.name in self.workers:
            raise InvalidParameterError(f"a stream named {config.name!r} is already in this pipeline")
        worker = StreamWorker(
            config,
            self.engine,
            matcher=matcher,
            sinks=[*self.sinks, *sinks],
            stop=self.stop_event,
            slots=self.slots,
        )
        self.workers[config.name] = worker
        return worker

    def start(self) -> None:
        for worker in self.workers.values():
            if not worker.is_alive():
                worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every worker and wait (at most ``timeout`` seconds in all) for them to finish."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for worker in self.workers.values():
            worker.stop()
        for worker in self.workers.values():
            worker.join(max(0.0, deadline - time.monotonic()))

    def join(self, timeout: float | None = None) -> bool:
        """Wait for every worker to end by itself (files); True when all did."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in self.workers.values():
            worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(worker.is_alive() for worker in self.workers.values())

    def metrics(self) -> dict[str, dict[str, Any]]:
        return {name: worker.metrics.snapshot() for name, worker in self.workers.items()}

    def __enter__(self) -> Pipeline:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
