"""Stream processors on a Ray cluster: one named, detached, restartable actor per started processor.

Placement and recovery are Ray's: each processor is an actor ``processor:<name>`` in the ``facetrace``
namespace, created with ``lifetime="detached"`` (it outlives the server that started it: a server restart does
not interrupt a camera) and ``max_restarts=-1`` (when its node dies, Ray starts it again on another node), and
reserving ``num_cpus`` from ``cpu_reservation`` — the measured cost of a stream at its resolution and
analysis rate — so Ray never packs more cameras on a node than its cores analyse in real time.

*Never two copies.* A named actor is unique while the cluster's control plane sees it, but a node cut off
from the network may still run the old copy while Ray restarts it elsewhere. The fence is the processor's
lease in the shared PostgreSQL database (``processor:<name>``, ``LeaseRepository``), exactly as between
several servers (docs/deploy.md): each incarnation takes the lease under an owner of its own before it reads
a frame, waits while a previous incarnation's lease is still alive (at most ``ACTOR_LEASE_TTL`` seconds
after that copy's last heartbeat), and stops its stream when its heartbeat finds the lease taken.

*Exactly-once writes.* Every event is first *claimed* in ``stream_events`` under the key (processor, type,
track, stream time) with ``ON CONFLICT DO NOTHING``; only an event claimed now is audited, stored as a
sighting and marked done. A restarted incarnation numbers its tracks above every track of the processor
(``TRACK_BLOCK``), so its new tracks never merge into the sightings of the previous incarnation's tracks.

*Review and unknown people.* Tracks that end unidentified go to the review queue and (``keep_unidentified``)
to unknown people as in-process, each write claimed first in ``stream_events`` under a kind of its own and
only while the actor holds its lease (``ClaimObserver``, ``cluster/review.py``).

*The ``/events`` feed.* Servers relay events through PostgreSQL: an actor marks an audited event done and
sends ``NOTIFY facetrace_stream_events, '<event id>'`` in the same transaction; every server LISTENs and
publishes the row to its in-process ``EventBus``. NOTIFY is delivered at commit, so only audited events
reach the feed, and needs nothing new (every server already holds a PostgreSQL connection; a Ray-side
channel would add an actor to keep alive). A server that is reconnecting misses the live feed meanwhile;
the durable record — events, sightings, audit — is in the database.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import math
import os
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

from facetrace.errors import ConflictError, FacetraceError, InvalidParameterError, NotFoundError, StoreError
from facetrace.gallery import Gallery
from facetrace.store.postgres_db import PgDatabase
from facetrace.store.postgres_records import PostgresLeases
from facetrace.store.records import ProcessorRepository
from facetrace.store.sql_dialect import POSTGRES
from facetrace.video.analysis import TrackObserver
from facetrace.video.events import Event, EventType, StreamState, StreamStatus, TrackEvent
from facetrace.video.processors import ProcessorDefinition, ProcessorStatus, StreamProcessors
from facetrace.video.sightings import SightingStore
from facetrace.video.sinks import EventBus, EventSink, is_required

__all__ = [
    "ACTOR_LEASE_TTL",
    "EVENTS_CHANNEL",
    "STREAM_EVENT_RETENTION",
    "TRACK_BLOCK",
    "ClaimSink",
    "EventLog",
    "EventRelay",
    "Fence",
    "RayStreamProcessors",
    "StreamCost",
    "WriteClaim",
    "cpu_reservation",
    "render_metrics",
]

log = logging.getLogger(__name__)

ACTOR_LEASE_TTL = 8.0
"""Seconds a processor actor's lease lives without renewal (renewed every third). A copy on a dead node
blocks its successor at most this long after its last renewal; Ray itself takes several seconds to declare
the node dead, so recovery stays within 30 s."""
EVENTS_CHANNEL = "facetrace_stream_events"
TRACK_BLOCK = 1_000_000
"""Track ids of one incarnation of a processor: the first numbers its tracks 1, 2, …; each later one starts
at the next multiple of ``TRACK_BLOCK`` above every track the processor made before."""
ACTOR_PREFIX = "processor:"
STREAM_EVENT_RETENTION = 86400.0
"""Seconds an event's claim is kept in ``stream_events`` (then the server's hourly retention sweep deletes it,
``app.stream_event_sweep``): a claim only has to outlive the replays of its own incarnation (seconds) and the
relays reading its payload after the NOTIFY (milliseconds); the sightings and audit records it led to keep
their own retention."""


# -- cost model --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamCost:
    """Core-seconds per unit of work of one stream, measured by ``benchmarks/bench_video.py`` on the 2-core
    development machine (YuNet + SFace, one ORT thread per model; docs/video.md "Live capacity"): at 640×360,
    30 decoded and 15 analysed fps, detection took ~0.12 core, embedding ~0.15 core at ~5.5 faces/s, decoding
    ~0.035 core and tracking/quality/Python ~0.03 core.

    Decoding scales with the pixels of *every* frame (a decoder cannot skip frames); detection runs on a copy
    of at most ``max_side`` (640) pixels, so it costs the same per analysed frame at 1080p; embedding scales
    with the faces per second. ``headroom`` covers bursts (more faces in view) and noisy neighbours."""

    decode_per_megapixel_frame: float = 0.035 / (30 * 0.2304)  # ≈ 5.1 ms per megapixel decoded
    analyse_per_frame: float = (0.12 + 0.03) / 15  # detection + tracking ≈ 10 ms per analysed frame
    embed_per_face: float = 0.15 / 5.5  # ≈ 27 ms per face embedded
    faces_per_analysed_frame: float = 5.5 / 15  # the benchmark clip's rate of new appearances
    headroom: float = 1.25

    def cores(self, width: int, height: int, source_fps: float, analysed_fps: float) -> float:
        """Cores one stream needs (before headroom)."""
        decode = source_fps * width * height / 1e6 * self.decode_per_megapixel_frame
        analyse = analysed_fps * self.analyse_per_frame
        embed = analysed_fps * self.faces_per_analysed_frame * self.embed_per_face
        return decode + analyse + embed


DEFAULT_COST = StreamCost()
DEFAULT_SOURCE = (1920, 1080, 30.0)
"""Assumed when a processor says nothing of its source (``source_size``): a 1080p 30 fps camera."""


def cpu_reservation(definition: ProcessorDefinition, cost: StreamCost = DEFAULT_COST) -> float:
    """The CPU a processor's actor reserves: the operator's ``cpus`` if set, else the cost model at the
    source's size and rate (``source_size`` ``WIDTHxHEIGHT[@FPS]``, default 1080p30) analysing every
    ``detect_every``-th frame, with headroom, rounded up to a twentieth of a core."""
    if definition.cpus is not None:
        return definition.cpus
    width, height, fps = DEFAULT_SOURCE
    if definition.source_size:
        size, _, rate = definition.source_size.partition("@")
        w, _, h = size.partition("x")
        width, height, fps = int(w), int(h), float(rate) if rate else fps
    need = cost.cores(width, height, fps, fps / definition.detect_every) * cost.headroom
    return max(0.05, math.ceil(need * 20) / 20)


# -- events in the database ------------------------------------------------------------------------------


class EventLog:
    """The ``stream_events`` table: claim (idempotent), finish (+NOTIFY), read, sweep."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def claim(self, event: Event, node: str, fence: Fence | None = None) -> int | None:
        """Insert the event under its key; its id, or None when it was claimed before (a duplicate).

        With ``fence``, a track's event is claimed only while that lease is held, as ``claim_write`` does: a
        copy cut off from the cluster names nobody once its lease has expired. A processor's status events
        are not fenced: a copy losing its lease must still be able to say so."""
        track, at_ms = _key(event)
        if fence is not None and isinstance(event, TrackEvent):
            claim = WriteClaim(event.processor, event.type.value, track, at_ms, event.wall_time, event.to_dict())
            return self.claim_write(claim, node, fence)
        with self._db.transaction("claiming a stream event") as conn:
            row = conn.execute(
                "INSERT INTO stream_events(processor, kind, track_id, at_ms, wall_time, node, payload)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING event_id",
                (event.processor, event.type.value, track, at_ms, event.wall_time, node,
                 json.dumps(event.to_dict(), separators=(",", ":"))),
            ).fetchone()  # fmt: skip
        return None if row is None else int(row[0])

    def claim_write(self, claim: WriteClaim, node: str, fence: Fence) -> int | None:
        """Claim one write that is not an event (a review item, an unknown face: ``cluster/review.py``) under
        its key, only while ``fence``'s lease is held (by the database's clock, in the same statement: a copy
        cut off from the cluster claims nothing once its lease has expired, even between two heartbeats);
        its id, or None when it was claimed before or the lease is not this copy's."""
        payload = json.dumps(claim.payload, separators=(",", ":"))
        with self._db.transaction("claiming a processor's write") as conn:
            row = conn.execute(
                _CLAIM_WRITE,
                (claim.processor, claim.kind, claim.track_id, claim.at_ms, claim.wall_time, node, payload,
                 fence.resource, fence.owner),
            ).fetchone()  # fmt: skip
        return None if row is None else int(row[0])

    def finish(self, event_id: int, *, relay: bool = True) -> None:
        """Mark a claim done, and with ``relay`` (an event) NOTIFY the servers in the same transaction; a write
        that is not an event (``claim_write``) is not relayed."""
        with self._db.transaction("publishing a stream event") as conn:
            conn.execute("UPDATE stream_events SET done=true WHERE event_id=%s", (event_id,))
            if relay:
                conn.execute("SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, str(event_id)))

    def abandon(self, event_id: int) -> None:
        """Forget a claim whose audit failed (so the event is not recorded as made)."""
        with contextlib.suppress(StoreError), self._db.transaction("abandoning a stream event") as conn:
            conn.execute("DELETE FROM stream_events WHERE event_id=%s", (event_id,))

    def payload(self, event_id: int) -> dict[str, Any] | None:
        with self._db.read("reading a stream event") as conn:
            row = conn.execute(
                "SELECT payload FROM stream_events WHERE event_id=%s AND done", (event_id,)
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def track_base(self, processor: str) -> int:
        """Where the next incarnation of ``processor`` starts numbering its tracks."""
        with self._db.read("reading a processor's tracks") as conn:
            row = conn.execute(
                "SELECT max(track_id) FROM stream_events WHERE processor=%s", (processor,)
            ).fetchone()
        top = int(row[0]) if row is not None and row[0] is not None else 0
        return (top // TRACK_BLOCK + 1) * TRACK_BLOCK if top > 0 else 0

    def sweep(self, older_than: float) -> int:
        """Delete the claims made before ``older_than`` (unix seconds) but those of each processor's highest
        track (a few rows): ``track_base`` numbers the next incarnation's tracks from it, so a swept log must
        not let track ids (the key of review decisions and sightings) start over."""
        with self._db.transaction("sweeping stream events") as conn:
            return conn.execute(
                "DELETE FROM stream_events WHERE wall_time < %s AND (track_id = 0 OR (processor, track_id)"
                " NOT IN (SELECT processor, max(track_id) FROM stream_events GROUP BY processor))",
                (older_than,),
            ).rowcount


# the clock is a fixed SQL expression; every value goes as a parameter
_CLAIM_WRITE = (
    "INSERT INTO stream_events(processor, kind, track_id, at_ms, wall_time, node, payload)"  # noqa: S608
    " SELECT %s, %s, %s, %s, %s, %s, %s WHERE EXISTS (SELECT 1 FROM leases WHERE resource=%s AND owner=%s"
    f" AND expires_at > {POSTGRES.clock}) ON CONFLICT DO NOTHING RETURNING event_id"
)


@dataclass(frozen=True, slots=True)
class Fence:
    """The lease a write is made under: ``resource`` held by ``owner`` (one incarnation of an actor)."""

    resource: str
    owner: str


@dataclass(frozen=True, slots=True)
class WriteClaim:
    """The key of one write in ``stream_events`` (``kind`` names what is written) and a small payload."""

    processor: str
    kind: str
    track_id: int
    at_ms: int
    wall_time: float
    payload: dict[str, Any]


def _key(event: Event) -> tuple[int, int]:
    if isinstance(event, TrackEvent):
        return event.track_id, event.stream_time_ms
    return 0, int(event.wall_time * 1000)


class ClaimSink:
    """The one required sink of a processor actor: rebases track ids above the previous incarnations',
    claims each event in ``stream_events`` (a track's events under ``fence``, the processor's lease) and hands
    only newly claimed ones to ``sinks`` — required ones
    (the audit trail) first, whose failure abandons the claim and stops the stream (fail closed) — then
    marks it done, which relays it to the servers' ``/events`` feeds."""

    required = True

    def __init__(
        self,
        log_: EventLog,
        sinks: builtins.list[EventSink],
        node: str,
        track_base: int,
        fence: Fence | None = None,
    ) -> None:
        self._log = log_
        self._sinks = sorted(sinks, key=lambda sink: not is_required(sink))
        self._node = node
        self._base = track_base
        self._fence = fence

    def publish(self, event: Event) -> None:
        if isinstance(event, TrackEvent):
            event = replace(event, track_id=self._base + event.track_id)
        event_id = self._log.claim(event, self._node, self._fence)
        if event_id is None:
            return  # made before, or this copy lost its lease: nothing to audit or store
        for sink in self._sinks:
            if is_required(sink):
                try:
                    sink.publish(event)
                except BaseException:
                    self._log.abandon(event_id)
                    raise
            else:
                try:
                    sink.publish(event)
                except Exception:
                    log.exception("event sink %s failed", type(sink).__name__)
        self._log.finish(event_id)

    def close(self) -> None:
        for sink in self._sinks:
            sink.close()


class _ActorProcessors(StreamProcessors):
    """The processors of one actor (one processor): its events go through a ``ClaimSink``, its review items
    and unknown faces through ``ClaimObserver`` s (``cluster/review.py``)."""

    def __init__(self, *args: Any, claim: Any, claim_writes: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._claim = claim
        self._claim_writes = claim_writes

    def _sinks(self, definition: ProcessorDefinition) -> builtins.list[EventSink]:
        inner = [s for s in super()._sinks(definition) if s is not self.bus]
        return [self._claim(inner)]

    def _observers(self, definition: ProcessorDefinition) -> builtins.list[TrackObserver]:
        return [self._claim_writes(observer) for observer in super()._observers(definition)]


class ProcessorHost:
    """The body of a processor actor (wrapped by ``ray.remote`` in ``RayStreamProcessors``): runs one
    processor of the database at ``database_url`` once it holds the processor's lease."""

    def __init__(self, name: str, database_url: str, lease_ttl: float = ACTOR_LEASE_TTL) -> None:
        import ray

        context = ray.get_runtime_context()
        self.name = name
        self.node = context.get_node_id()
        self.restarted = bool(context.was_current_actor_reconstructed)
        self.reserved = float(context.get_assigned_resources().get("CPU", 0.0))  # type: ignore[no-untyped-call]
        self.state = "WAITING"
        self.message = "waiting for the processor's lease"
        self.created = time.monotonic()
        self.phases: dict[str, float] = {}  # seconds from the actor's start to: opened, leased, running
        self._url = database_url
        self._ttl = lease_ttl
        self._closing = threading.Event()
        self._processors: StreamProcessors | None = None
        self._cpu = (time.monotonic(), time.process_time(), 0.0)
        self._thread = threading.Thread(target=self._run, name=f"facetrace-host-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from facetrace.app import open_gallery
        from facetrace.cluster.review import ClaimObserver
        from facetrace.review import ReviewQueue, UnknownPeople
        from facetrace.store import records_of

        try:
            home = tempfile.mkdtemp(prefix="facetrace-actor-")
            gallery = open_gallery(home, database_url=self._url, listen=True)
            records = records_of(gallery.store)
            if records is None:
                raise InvalidParameterError("stream processors on Ray need a PostgreSQL database")
            db = PgDatabase(self._url, max_connections=2)
            events = EventLog(db)
            leases = PostgresLeases(db, owner=f"ray:{self.name}:{uuid.uuid4().hex[:12]}", ttl=self._ttl)
            base = events.track_base(self.name)
            fence = Fence(f"processor:{self.name}", leases.owner)
            processors = _ActorProcessors(
                gallery, repository=records.processors, sightings=SightingStore(records.sightings),
                bus=EventBus(), leases=leases, review=ReviewQueue(gallery, records.reviews),
                unknowns=UnknownPeople(gallery, records.unknowns),
                claim=lambda sinks: ClaimSink(events, sinks, self.node, base, fence),
                claim_writes=lambda observer: ClaimObserver(
                    observer, events, node=self.node, track_base=base, fence=fence
                ),
            )  # fmt: skip
            self._processors = processors
            self.phases["opened"] = round(time.monotonic() - self.created, 2)
            while not self._closing.is_set():
                try:
                    processors.start(self.name)
                    break
                except ConflictError as exc:  # a previous copy's lease is still alive: wait for it to expire
                    self.message = exc.message
                    self._closing.wait(1.0)
            else:
                return
            self.phases["running"] = round(time.monotonic() - self.created, 2)
            self.state = "RUNNING"
            self.message = f"running on node {self.node[:12]}" + (" after a restart" if self.restarted else "")
            worker = processors.worker(self.name)
            camera = worker.config.camera if worker is not None else self.name
            events_sink = ClaimSink(events, [], self.node, 0)
            events_sink.publish(
                StreamStatus(processor=self.name, camera=camera, state=StreamState.CONNECTED, message=self.message)
            )
        except FacetraceError as exc:
            self.state, self.message = "FAILED", exc.message
            log.error("processor %s cannot start: %s", self.name, exc.message)

    # -- remote methods ------------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """Where it runs, its state, CPU reserved and used (this process, since the last call) and metrics."""
        now, cpu = time.monotonic(), time.process_time()
        then, cpu_then, used = self._cpu
        if now - then >= 0.5:
            used = (cpu - cpu_then) / (now - then)
            self._cpu = (now, cpu, used)
        data: dict[str, Any] = {
            "Name": self.name, "Node": self.node, "State": self.state, "Message": self.message,
            "Restarted": self.restarted, "CpuReserved": self.reserved, "CpuUsed": round(used, 3),
            "Pid": os.getpid(), "StartSeconds": dict(self.phases),
        }  # fmt: skip
        processors = self._processors
        if processors is not None and self.state == "RUNNING":
            with contextlib.suppress(FacetraceError):
                status = processors.status(self.name)
                data["State"] = status
                worker = processors.worker(self.name)
                if worker is not None:
                    data["Metrics"] = worker.metrics.snapshot()
                    data["Message"] = worker.metrics.message or self.message
        return data

    def stop(self) -> None:
        """Stop the stream and give its lease up (the caller then kills the actor for good)."""
        self._closing.set()
        processors = self._processors
        if processors is not None:
            with contextlib.suppress(FacetraceError):
                processors.stop(self.name)
            processors.close()


# -- the server's side -----------------------------------------------------------------------------------


class RayStreamProcessors(StreamProcessors):
    """``StreamProcessors`` whose started processors run as Ray actors (``ProcessorHost``) instead of
    threads here; definitions and desired states stay in the shared database, so every server (and
    ``facetrace ray status``) sees the same processors. ``close`` leaves the actors running."""

    def __init__(
        self,
        gallery: Gallery,
        *,
        repository: ProcessorRepository,
        database_url: str,
        sightings: SightingStore | None = None,
        bus: EventBus | None = None,
        cost: StreamCost = DEFAULT_COST,
        lease_ttl: float = ACTOR_LEASE_TTL,
        namespace: str | None = None,
        relay: bool = False,
    ) -> None:
        """``relay``: publish every actor's events on ``bus`` (a server's ``/events`` feed), see
        ``EventRelay``; a one-shot command (``facetrace ray status``) leaves it off."""
        import ray

        from facetrace.cluster.runtime import NAMESPACE

        super().__init__(gallery, repository=repository, sightings=sightings, bus=bus)
        self._url = database_url
        self._cost = cost
        self._ttl = lease_ttl
        self._namespace = namespace or NAMESPACE
        self._host = ray.remote(ProcessorHost)
        self._relay = EventRelay(database_url, self.bus).start() if relay else None

    def _actor(self, name: str) -> Any | None:
        import ray

        try:
            return ray.get_actor(ACTOR_PREFIX + name, namespace=self._namespace)
        except ValueError:
            return None

    def start(self, name: str) -> None:
        with self._lock:
            definition = self._get(name)
            if self._actor(name) is not None:
                raise ConflictError(f"stream processor {name} is already running")
            self._host.options(
                name=ACTOR_PREFIX + name, namespace=self._namespace, lifetime="detached",
                max_restarts=-1, max_task_retries=-1, num_cpus=cpu_reservation(definition, self._cost),
            ).remote(name, self._url, self._ttl)  # fmt: skip
            self._failed.pop(name, None)
            self._set_desired(name, "RUNNING")

    def stop(self, name: str, timeout: float = 10.0) -> None:
        import ray

        with self._lock:
            self._get(name)
            self._failed.pop(name, None)
            self._set_desired(name, "STOPPED")
            actor = self._actor(name)
        if actor is not None:
            with contextlib.suppress(Exception):  # a dead or restarting actor: killed all the same
                ray.get(actor.stop.remote(), timeout=timeout)
            ray.kill(actor, no_restart=True)

    def resume(self) -> builtins.list[str]:
        """Start an actor for every processor that should run and has none (a detached actor outlives the
        server that started it, so after a server restart this is usually nothing)."""
        with self._lock:
            self._refresh()
            wanted = [n for n, state in self._desired.items() if state == "RUNNING" and self._actor(n) is None]
        started = []
        for name in wanted:
            try:
                self.start(name)
                started.append(name)
            except (ConflictError, NotFoundError):
                continue
        return started

    def info(self, name: str, timeout: float = 5.0) -> dict[str, Any] | None:
        """The actor's ``ProcessorHost.info``, or None when there is no actor or it does not answer in time
        (restarting after its node died)."""
        import ray

        actor = self._actor(name)
        if actor is None:
            return None
        try:
            return dict(ray.get(actor.info.remote(), timeout=timeout))
        except Exception:  # GetTimeoutError, RayActorError: restarting or gone
            return None

    def status(self, name: str) -> ProcessorStatus:
        with self._lock:
            self._get(name)
            desired = self._desired.get(name, "STOPPED")
            if name in self._failed:
                return "FAILED"
        if self._actor(name) is None:
            return "STOPPED" if desired == "STOPPED" else "FAILED"
        info = self.info(name)
        if info is None or info["State"] == "WAITING":
            return "STARTING"
        state = str(info["State"])
        return state if state in ("RUNNING", "STARTING", "FAILED", "STOPPED") else "STARTING"  # type: ignore[return-value]

    def describe(self, name: str) -> dict[str, Any]:
        data = super().describe(name)
        info = self.info(name)
        if info is not None:
            data["Node"] = info["Node"]
            data["CpuReserved"] = info["CpuReserved"]
            if "Metrics" in info:
                data["Metrics"] = info["Metrics"]
            if info.get("Message") and data["Status"] != "RUNNING":
                data["StatusMessage"] = info["Message"]
        return data

    def close(self, timeout: float = 10.0) -> None:
        """Nothing runs here; the actors go on (stop them with ``stop``). Stops relaying their events."""
        self._closing.set()
        if self._relay is not None:
            self._relay.close()

    def running(self, timeout: float = 5.0) -> builtins.list[dict[str, Any]]:
        """``info`` of every processor actor of this database's processors that answers."""
        with self._lock:
            self._refresh()
            names = sorted(self._definitions)
        return [info for info in (self.info(n, timeout) for n in names) if info is not None]

    def cluster_status(self, timeout: float = 2.0) -> dict[str, Any]:
        """Nodes (alive or dead, CPUs), and per node the processors running there, the CPU they reserved and
        use (measured in each actor's process), and their frames analysed and dropped."""
        import ray

        infos = self.running(timeout)
        nodes = []
        for node in ray.nodes():  # type: ignore[no-untyped-call]
            node_id = str(node["NodeID"])
            here = [i for i in infos if i["Node"] == node_id]
            metrics = [i.get("Metrics", {}) for i in here]
            nodes.append({
                "NodeId": node_id, "Address": node.get("NodeManagerAddress", ""), "Alive": bool(node["Alive"]),
                "Cpus": float(node.get("Resources", {}).get("CPU", 0.0)),
                "Processors": sorted(str(i["Name"]) for i in here),
                "CpuReserved": round(sum(float(i["CpuReserved"]) for i in here), 3),
                "CpuUsed": round(sum(float(i["CpuUsed"]) for i in here), 3),
                "FramesAnalysed": sum(int(m.get("FramesAnalysed", 0)) for m in metrics),
                "FramesDropped": sum(int(m.get("FramesDropped", 0)) for m in metrics),
            })  # fmt: skip
        placed = {i["Name"] for i in infos}
        waiting = sorted(n for n, state in self._desired.items() if state == "RUNNING" and n not in placed)
        return {"Nodes": nodes, "Unplaced": waiting}


def render_metrics(status: dict[str, Any]) -> str:
    """``cluster_status`` as Prometheus text, one series per node (``/metrics`` of a server on Ray)."""
    series = (
        ("up", "gauge", "1 while the node is alive", lambda n: int(n["Alive"])),
        ("cpus", "gauge", "logical CPUs of the node", lambda n: n["Cpus"]),
        ("processors", "gauge", "stream processors running on the node", lambda n: len(n["Processors"])),
        ("cpu_reserved", "gauge", "CPU reserved by its stream processors", lambda n: n["CpuReserved"]),
        ("cpu_used", "gauge", "CPU its stream processors used (cores)", lambda n: n["CpuUsed"]),
        ("frames_analysed", "gauge", "frames its running processors analysed", lambda n: n["FramesAnalysed"]),
        ("frames_dropped", "gauge", "frames its running processors dropped", lambda n: n["FramesDropped"]),
    )
    lines: list[str] = []
    for name, kind, text, value in series:
        lines += [f"# HELP facetrace_node_{name} {text}.", f"# TYPE facetrace_node_{name} {kind}"]
        for node in status["Nodes"]:
            lines.append(f'facetrace_node_{name}{{node="{node["NodeId"][:16]}"}} {value(node)}')
    lines += [
        "# HELP facetrace_processors_unplaced Processors that should run and have no running actor.",
        "# TYPE facetrace_processors_unplaced gauge",
        f"facetrace_processors_unplaced {len(status['Unplaced'])}",
    ]
    return "\n".join(lines) + "\n"


class EventRelay:
    """Relays the events processor actors publish (``EventLog.finish``'s NOTIFY) to a server's ``EventBus``,
    from a thread with a dedicated LISTEN connection, reconnecting after a failure. Stop with ``close``."""

    def __init__(self, database_url: str, bus: EventBus) -> None:
        self._db = PgDatabase(database_url, max_connections=1)
        self._log = EventLog(self._db)
        self._bus = bus
        self._stop = threading.Event()
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="facetrace-event-relay", daemon=True)

    def start(self) -> EventRelay:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self._db.connect() as conn:
                    conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    self.ready.set()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.5):
                            self._relay(note.payload)
            except Exception as exc:  # connection lost: reconnect after a pause
                if self._stop.is_set():
                    return
                log.warning("event relay: %s; reconnecting", exc)
                self._stop.wait(1.0)

    def _relay(self, payload: str) -> None:
        if not payload.isdigit():
            return
        data = self._log.payload(int(payload))
        if data is not None:
            self._bus.publish(RelayedEvent.of(data))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._db.close()


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayedEvent(Event):
    """An event made by an actor elsewhere, as its JSON form (what every sink writes anyway)."""

    data: dict[str, Any]

    @classmethod
    def of(cls, data: dict[str, Any]) -> RelayedEvent:
        return cls(
            processor=str(data.get("Processor", "")), camera=str(data.get("Camera", "")),
            wall_time=float(data.get("WallTime", time.time())), data=data,
        )  # fmt: skip

    @property
    def type(self) -> EventType:
        return EventType(str(self.data.get("Type")))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)
