"""Stream processors: named, persistent live-stream searches (Rekognition's Create/Start/Stop/Describe/List/
DeleteStreamProcessor with FaceSearch settings).

A processor watches one source against one collection and emits ``TrackIdentified`` / ``TrackEnded`` events
to its sinks: the manager's event bus (the server's SSE feed), the sightings store, and optionally a
JSON-lines file and a webhook. Definitions and the desired state (running or stopped) are stored in the
store's database (``ProcessorRepository``: the ``stream_processors`` table of facetrace.db, or of the shared
PostgreSQL database), so ``resume()`` after a restart starts again every processor that was running.

Several servers on one PostgreSQL database: a processor runs where its lease (``processor:<name>``,
``LeaseRepository``) is held. ``start`` takes it or fails with ``ConflictError`` while another live server
holds it; ``resume`` leaves such processors to their server; when that server dies its lease expires and
the next ``start``/``resume`` elsewhere takes the processor over; a server that finds its lease taken (it was
cut off longer than the lease lives) stops its worker. The audit sink is *required*: when an
identification cannot be audited the processor stops with status FAILED (``video/pipeline.py``).
"""

from __future__ import annotations

import builtins
import json
import logging
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from facetrace.audit import Caller
from facetrace.errors import (
    AlreadyExistsError,
    ConflictError,
    FacetraceError,
    InvalidParameterError,
    NotFoundError,
)
from facetrace.gallery import DEFAULT_MATCH_THRESHOLD, Gallery
from facetrace.store.records import LeaseRepository, ProcessorRecord, ProcessorRepository
from facetrace.validation import check_int
from facetrace.video.analysis import AnalysisSettings, TrackObserver
from facetrace.video.events import Event, TrackIdentified
from facetrace.video.identity import CollectionMatcher
from facetrace.video.pipeline import StreamConfig, StreamWorker
from facetrace.video.sightings import DEFAULT_RETENTION_DAYS, SightingSink, SightingStore
from facetrace.video.sinks import EventBus, EventSink, JsonLinesSink, WebhookSink
from facetrace.video.source import SourceSettings, redact

if TYPE_CHECKING:
    from facetrace.review import ReviewQueue, UnknownPeople

__all__ = ["FaceSearchSettings", "ProcessorDefinition", "ProcessorStatus", "StreamProcessors"]

log = logging.getLogger(__name__)

ProcessorStatus = Literal["STOPPED", "STARTING", "RUNNING", "FAILED", "STOPPING"]


class FaceSearchSettings(BaseModel):
    """Rekognition's FaceSearchSettings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    collection_id: str = Field(pattern=r"^[a-zA-Z0-9_.\-]{1,255}$", description="the collection to search")
    face_match_threshold: float = Field(
        DEFAULT_MATCH_THRESHOLD, ge=0, le=100, description="least similarity for a match"
    )


class ProcessorDefinition(BaseModel):
    """What a stream processor watches, against what, and where its events go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-zA-Z0-9_.\-]{1,128}$", description="unique processor name")
    source: str = Field(min_length=1, max_length=4096, description="URL, path or device of the video source")
    camera: str | None = Field(None, max_length=255, description="camera name in events (default: the name)")
    face_search: FaceSearchSettings
    detect_every: int = Field(2, ge=1, le=300, description="analyse every n-th decoded frame")
    rtsp_transport: Literal["tcp", "udp"] = "tcp"
    stall_timeout: float = Field(5.0, ge=0.5, le=600, description="seconds without data before reconnecting")
    retention_days: float = Field(DEFAULT_RETENTION_DAYS, gt=0, le=36500, description="how long sightings live")
    keep_unidentified: bool = Field(
        False, description="also report and store tracks nobody matched, and group them into unknown people"
    )
    review_threshold: float | None = Field(
        90.0, ge=0, lt=100,
        description="tracks whose best match is at or above this but below face_match_threshold go to the review"
        " queue (None: no review)",
    )  # fmt: skip
    unknown_retention_days: float = Field(7.0, gt=0, le=36500, description="how long unknown people live")
    jsonl: str | None = Field(None, max_length=4096, description="append events to this JSON-lines file")
    webhook: str | None = Field(None, pattern=r"^https?://", max_length=4096, description="POST events here")
    wire: dict[str, Any] | None = Field(
        None,
        description="Rekognition request members kept to describe the processor as created (Input, Output...)",
    )
    created_at: float = Field(default_factory=time.time)

    @property
    def camera_name(self) -> str:
        return self.camera or self.name


class _Running:
    def __init__(self, worker: StreamWorker, sinks: list[EventSink]) -> None:
        self.worker = worker
        self.sinks = sinks


class StreamProcessors:
    """The stream processors of one facetrace home. Thread-safe."""

    def __init__(
        self,
        gallery: Gallery,
        *,
        repository: ProcessorRepository | None = None,
        sightings: SightingStore | None = None,
        bus: EventBus | None = None,
        leases: LeaseRepository | None = None,
        review: ReviewQueue | None = None,
        unknowns: UnknownPeople | None = None,
    ) -> None:
        """``repository`` keeps the definitions across restarts (None: in memory only); ``leases`` (a
        database shared by several servers) makes sure one of them at a time runs each processor.
        ``review`` and ``unknowns`` receive the tracks that end unidentified (None: none are kept)."""
        self.gallery = gallery
        self.review = review
        self.unknowns = unknowns
        self.sightings = sightings
        self.bus = bus or EventBus()
        self._lock = threading.RLock()
        self._definitions: dict[str, ProcessorDefinition] = {}
        self._desired: dict[str, str] = {}
        self._updated: dict[str, float] = {}
        self._running: dict[str, _Running] = {}
        self._failed: dict[str, str] = {}
        self._repository = repository
        self._leases = leases
        self._watcher: threading.Thread | None = None
        self._closing = threading.Event()
        if repository is not None:
            self._load(repository)

    # -- lifecycle ---------------------------------------------------------------------------------------

    def create(self, definition: ProcessorDefinition | dict[str, Any]) -> ProcessorDefinition:
        definition = _definition(definition)
        CollectionMatcher(self.gallery, definition.face_search.collection_id)  # the collection must exist
        SourceSettings(definition.source)  # and the source must be well-formed
        with self._lock:
            if self._known(definition.name):  # here, or (several servers) in the shared database
                raise AlreadyExistsError(f"stream processor {definition.name} already exists")
            self._definitions[definition.name] = definition
            self._set_desired(definition.name, "STOPPED")
        return definition

    def start(self, name: str) -> None:
        with self._lock:
            definition = self._get(name)
            current = self._running.get(name)
            if current is not None and current.worker.is_alive():
                raise ConflictError(f"stream processor {name} is already running")
            leased = self._lease(name)
            try:
                self._start(name, definition)
            except BaseException:
                if leased and self._leases is not None:
                    self._leases.release(_resource(name))
                raise

    def _lease(self, name: str) -> bool:
        """Take the processor's lease (True), or nothing to take (False: one server); ``ConflictError`` while
        another server runs it."""
        if self._leases is None:
            return False
        if not self._leases.acquire(_resource(name), on_lost=self._lost):
            raise ConflictError(f"stream processor {name} is running on another server")
        return True

    def _elsewhere(self, name: str) -> bool:
        """Another live server holds the processor's lease (so it runs there)."""
        if self._leases is None:
            return False
        return self._leases.holder(_resource(name)) not in (None, self._leases.owner)

    def _lost(self, resource: str) -> None:
        """This server's lease is gone: the processor was stopped through another server (its desired state
        says STOPPED), or another server took it over (this one was cut off from the database too long)."""
        name = resource.removeprefix("processor:")
        record = self._repository.get(name) if self._repository is not None else None
        with self._lock:
            running = self._running.pop(name, None)
            if record is not None and record.desired == "STOPPED":
                self._desired[name], self._updated[name] = "STOPPED", record.updated_at
            else:
                self._failed[name] = "taken over by another server"
        if running is not None:
            running.worker.stop()
            for sink in running.sinks:
                if sink is not self.bus:
                    sink.close()

    def _start(self, name: str, definition: ProcessorDefinition) -> None:
        with self._lock:
            settings = definition.face_search
            matcher = CollectionMatcher(self.gallery, settings.collection_id, settings.face_match_threshold)
            sinks = self._sinks(definition)
            config = StreamConfig(
                name=definition.name,
                camera=definition.camera_name,
                source=SourceSettings(
                    definition.source,
                    rtsp_transport=definition.rtsp_transport,
                    stall_timeout=definition.stall_timeout,
                    realtime=True,  # a file is replayed at its own pace, like a camera
                ),
                analysis=AnalysisSettings(keep_unidentified=definition.keep_unidentified, report_unresolved=True),
                detect_every=definition.detect_every,
            )
            observers = self._observers(definition)
            if not observers:
                config = replace(config, analysis=replace(config.analysis, report_unresolved=False))
            worker = StreamWorker(config, self.gallery.engine, matcher=matcher, sinks=sinks, observers=observers)
            worker.start()
            self._running[name] = _Running(worker, sinks)
            self._failed.pop(name, None)
            self._set_desired(name, "RUNNING")

    def stop(self, name: str, timeout: float = 10.0) -> None:
        """Stop the processor here, or (several servers) wherever it runs: its server stops it at its next
        heartbeat, within a third of the lease time."""
        with self._lock:
            self._get(name)
            running = self._running.pop(name, None)
            self._failed.pop(name, None)
            self._set_desired(name, "STOPPED")
        if running is None and self._leases is not None:
            self._leases.revoke(_resource(name))
        if running is not None:
            running.worker.stop()
            running.worker.join(timeout)
            for sink in running.sinks:
                if sink is not self.bus:
                    sink.close()
            if self._leases is not None:
                self._leases.release(_resource(name))

    def delete(self, name: str) -> None:
        with self._lock:
            self._get(name)
            if self._elsewhere(name):
                raise ConflictError(f"stream processor {name} is running on another server")
            if self.status(name) in ("RUNNING", "STARTING"):
                raise ConflictError(f"stream processor {name} is running; stop it before deleting it")
            del self._definitions[name]
            self._desired.pop(name, None)
            self._running.pop(name, None)
            if self._repository is not None:
                self._repository.delete(name)

    def resume(self) -> builtins.list[str]:
        """Start every processor that should be running and runs nowhere (not here, and, several servers,
        on no live server): those running when the process stopped, or whose server died; returns their
        names."""
        with self._lock:
            self._refresh()
            wanted = [n for n, state in self._desired.items() if state == "RUNNING" and n not in self._running]
        started = []
        for name in wanted:
            holder = self._leases.holder(_resource(name)) if self._leases is not None else None
            if holder is not None and self._leases is not None and holder != self._leases.owner:
                continue  # another live server runs it
            try:
                self.start(name)
                started.append(name)
            except ConflictError as exc:
                if "another server" not in exc.message:  # else: taken by another server just now
                    self._failed[name] = exc.message
            except (NotFoundError, InvalidParameterError) as exc:
                self._failed[name] = exc.message
        return started

    def watch(self, interval: float) -> None:
        """Several servers: every ``interval`` seconds, take over the processors whose server died (their
        lease expired) by ``resume``; one server wins each lease. Stopped by ``close``. Idempotent."""
        with self._lock:
            if self._watcher is not None:
                return
            self._watcher = threading.Thread(
                target=self._watch, args=(interval,), name="processor-watch", daemon=True
            )
        self._watcher.start()

    def _watch(self, interval: float) -> None:
        while not self._closing.wait(interval):
            try:
                taken = self.resume()
            except FacetraceError as exc:
                log.warning("cannot look for stream processors to take over: %s", exc.message)
                continue
            if taken:
                log.info("took over stream processors %s", ", ".join(taken))

    def close(self, timeout: float = 10.0) -> None:
        """Stop every worker (keeping their desired state, so ``resume`` restarts them)."""
        self._closing.set()
        watcher = self._watcher
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout)
        with self._lock:
            running, self._running = self._running, {}
        for item in running.values():
            item.worker.stop()
        for name, item in running.items():
            item.worker.join(timeout)
            for sink in item.sinks:
                if sink is not self.bus:
                    sink.close()
            if self._leases is not None:
                self._leases.release(_resource(name))

    # -- reading -----------------------------------------------------------------------------------------

    def status(self, name: str) -> ProcessorStatus:
        with self._lock:
            self._get(name)
            running = self._running.get(name)
            if name in self._failed:
                return "FAILED"
            if running is None:
                return "RUNNING" if self._elsewhere(name) else "STOPPED"
            state = running.worker.metrics.state
        if state == "FAILED":
            return "FAILED"
        if not running.worker.is_alive():
            return "STOPPED"
        return "STARTING" if state == "STARTING" else "RUNNING"

    def describe(self, name: str) -> dict[str, Any]:
        """DescribeStreamProcessor's fields, plus the live metrics of a running processor."""
        with self._lock:
            definition = self._get(name)
            running = self._running.get(name)
            updated = self._updated.get(name, definition.created_at)
        status = self.status(name)
        data: dict[str, Any] = {
            "Name": definition.name,
            "StreamProcessorArn": f"arn:facetrace:rekognition:local:stream-processor/{definition.name}",
            "Status": status,
            "CreationTimestamp": definition.created_at,
            "LastUpdateTimestamp": updated,
            "Input": {"Source": redact(definition.source), "Camera": definition.camera_name},
            "Settings": {
                "FaceSearch": {
                    "CollectionId": definition.face_search.collection_id,
                    "FaceMatchThreshold": definition.face_search.face_match_threshold,
                }
            },
            "RetentionDays": definition.retention_days,
        }
        message = self._failed.get(name) or (running.worker.metrics.message if running else "")
        if message:
            data["StatusMessage"] = message
        if running is not None:
            data["Metrics"] = running.worker.metrics.snapshot()
        return data

    def definition(self, name: str) -> ProcessorDefinition:
        with self._lock:
            return self._get(name)

    def list(
        self, *, max_results: int = 1000, next_token: str | None = None
    ) -> tuple[builtins.list[dict[str, str]], str | None]:
        """Processors by name: ``[{"Name", "Status"}]`` and the token for the next page."""
        check_int(max_results, "max_results", 1, 1000)
        with self._lock:
            self._refresh()
            names = sorted(self._definitions)
        if next_token:
            names = [n for n in names if n > next_token]
        page = names[:max_results]
        token = page[-1] if len(names) > max_results else None
        return [{"Name": name, "Status": self.status(name)} for name in page], token

    def worker(self, name: str) -> StreamWorker | None:
        with self._lock:
            running = self._running.get(name)
        return running.worker if running else None

    # -- internals ---------------------------------------------------------------------------------------

    def _get(self, name: str) -> ProcessorDefinition:
        """The definition, read again from the repository unless it runs here (another server sharing the
        database may have created, changed or deleted it)."""
        if self._repository is not None and name not in self._running:
            record = self._repository.get(name)
            if record is None:
                self._forget(name)
            else:
                self._remember(record)
        definition = self._definitions.get(name)
        if definition is None:
            raise NotFoundError(f"there is no stream processor {name!r}")
        return definition

    def _refresh(self) -> None:
        """Read every definition again (created, changed or deleted through another server meanwhile)."""
        if self._repository is None:
            return
        stored = self._repository.list()
        for record in stored:
            self._remember(record)
        for name in set(self._definitions) - {r.name for r in stored} - set(self._running):
            self._forget(name)

    def _known(self, name: str) -> bool:
        try:
            self._get(name)
        except NotFoundError:
            return False
        return True

    def _forget(self, name: str) -> None:
        for table in (self._definitions, self._desired, self._updated, self._failed):
            table.pop(name, None)

    def _observers(self, definition: ProcessorDefinition) -> builtins.list[TrackObserver]:
        """The review queue (tracks between the review and the match threshold) and, when unidentified
        faces are kept, the grouping of unknown people."""
        from facetrace.review import ReviewObserver, UnknownObserver, UnknownPeople

        settings = definition.face_search
        observers: builtins.list[TrackObserver] = []
        threshold = definition.review_threshold
        if self.review is not None and threshold is not None and threshold < settings.face_match_threshold:
            observers.append(
                ReviewObserver(
                    self.review, settings.collection_id, source=definition.name, review_threshold=threshold,
                    match_threshold=settings.face_match_threshold, retention_days=definition.retention_days,
                    caller=Caller(principal=f"streamprocessor:{definition.name}"),
                )
            )  # fmt: skip
        if self.unknowns is not None and definition.keep_unidentified:
            people = UnknownPeople(
                self.unknowns.gallery,
                self.unknowns.repository,
                replace(self.unknowns.settings, retention_days=definition.unknown_retention_days),
            )
            observers.append(UnknownObserver(people, settings.collection_id, source=definition.name))
        return observers

    def _sinks(self, definition: ProcessorDefinition) -> builtins.list[EventSink]:
        audit = AuditSink(
            self.gallery,
            Caller(principal=f"streamprocessor:{definition.name}"),
            definition.face_search.collection_id,
            definition.face_search.face_match_threshold,
            definition.name,
        )
        sinks: builtins.list[EventSink] = [audit, self.bus]
        if self.sightings is not None:
            sinks.append(
                SightingSink(
                    self.sightings,
                    definition.name,
                    retention_days=definition.retention_days,
                    keep_unidentified=definition.keep_unidentified,
                    collection_id=definition.face_search.collection_id,
                )
            )
        if definition.jsonl:
            sinks.append(JsonLinesSink(definition.jsonl))
        if definition.webhook:
            sinks.append(WebhookSink(definition.webhook))
        return sinks

    def _set_desired(self, name: str, state: str) -> None:
        now = time.time()
        self._desired[name] = state
        self._updated[name] = now
        if self._repository is not None:
            definition = self._definitions[name]
            self._repository.put(
                ProcessorRecord(
                    name, definition.face_search.collection_id, definition.model_dump_json(), state, now
                )
            )

    def _load(self, repository: ProcessorRepository) -> None:
        for record in repository.list():
            self._remember(record)

    def _remember(self, record: ProcessorRecord) -> None:
        try:
            self._definitions[record.name] = ProcessorDefinition.model_validate(json.loads(record.definition))
        except (ValidationError, ValueError):
            return
        self._desired[record.name] = record.desired
        self._updated[record.name] = record.updated_at


def _resource(name: str) -> str:
    return f"processor:{name}"


def _definition(value: ProcessorDefinition | dict[str, Any]) -> ProcessorDefinition:
    if isinstance(value, ProcessorDefinition):
        return value
    try:
        return ProcessorDefinition.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise InvalidParameterError(f"invalid stream processor: {problems}") from None


class AuditSink:
    """Records every identification a processor makes in the gallery's audit trail.

    A live stream searches its collection for every track it follows; the audited act is the answer, one
    record per identified track (a processor's principal is ``streamprocessor:<name>``; ``facetrace watch``
    records the local user), not each frame's search. An event that cannot be audited raises in the worker,
    which stops the stream rather than identify people silently (``required``: the worker stops when it fails).
    """

    required = True

    def __init__(
        self, gallery: Gallery, caller: Caller, collection_id: str, threshold: float, stream: str
    ) -> None:
        self.gallery = gallery
        self.caller = caller
        self.collection_id = collection_id
        self.threshold = threshold
        self.processor = stream

    def publish(self, event: Event) -> None:
        if not isinstance(event, TrackIdentified) or event.match is None:
            return
        self.gallery.record_event(
            self.caller, "StreamProcessorFaceMatch", self.collection_id, threshold=self.threshold,
            match_count=1, matched=(event.match.face.face_id,),
            detail={"processor": self.processor, "track_id": event.track_id, "similarity": event.match.similarity},
        )  # fmt: skip

    def close(self) -> None:
        return None
