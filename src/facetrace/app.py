"""Composition: build a ready-to-use ``Gallery`` over the store of a facetrace home or a PostgreSQL database,
and the ``Video`` services (jobs, stream processors, sightings, event bus) over the same database.

This is the one place that decides which concrete store and engine the CLI and the server use by default;
everything else takes them as arguments. The audit trail is the store's own (``store.audit``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facetrace.calibration import Calibration, calibration_from_json
from facetrace.engine import DetectionSettings, FaceEngine
from facetrace.errors import InvalidParameterError, ModelError, ModelMismatchError
from facetrace.gallery import Gallery
from facetrace.home import ensure_home, private_dir, resolve_home
from facetrace.store import DB_FILENAME, FaceStore, open_store, records_of

if TYPE_CHECKING:  # video pulls in PyAV: imported when video is opened, not for every CLI command
    from facetrace.review import ReviewQueue, UnknownPeople
    from facetrace.video.jobs import JobSettings, VideoJobs
    from facetrace.video.processors import StreamProcessors
    from facetrace.video.segments import SegmentExecutor
    from facetrace.video.sightings import RetentionSweeper, SightingStore
    from facetrace.video.sinks import EventBus

__all__ = [
    "Recognizer",
    "Video",
    "load_calibration_file",
    "open_engine",
    "open_gallery",
    "open_recognizer",
    "open_video",
    "stream_event_sweep",
]

IMAGES_DIR = "images"
PROCESSOR_WATCH_INTERVAL = 15.0
"""Seconds between a server's looks for stream processors whose server died (their lease expired: at most
``postgres_records.LEASE_TTL`` after the death), on a database shared by several servers."""


def open_gallery(
    home: Path | str | None = None,
    *,
    engine: FaceEngine | None = None,
    database_url: str | None = None,
    listen: bool = True,
    store: FaceStore | None = None,
) -> Gallery:
    """A gallery on ``home`` (default ``$FACETRACE_HOME`` or the user data dir), or on the PostgreSQL database
    at ``database_url`` (default ``$FACETRACE_DATABASE_URL``, see ``open_store``), audited in that database
    (``store.audit``). ``listen``: see ``open_store``. ``store``: an already opened store to use instead."""
    root = ensure_home(Path(home) if home is not None else None)
    if store is None:
        store = open_store(root, url=database_url, listen=listen)
    try:
        return Gallery(engine or FaceEngine.create(), store, image_dir=private_dir(root / IMAGES_DIR))
    except BaseException:
        store.close()
        raise


@dataclass(frozen=True, slots=True)
class Recognizer:
    """A user's own ONNX recognizer: where it is and how to feed it (``OnnxEmbedder``'s options).

    ``facetrace calibrate`` writes this into the calibration document (key ``recognizer``, with the file's
    sha256) so that the calibration, not the command line, says which file and preprocessing it was fitted
    for: a calibration only holds for the exact weights and input normalisation it was measured on.
    """

    path: Path
    name: str
    version: str
    mean: float = 127.5
    std: float = 127.5
    swap_rb: bool = True
    input_size: int = 112

    @property
    def key(self) -> str:
        return f"{self.name}-{self.version}"

    def options(self) -> dict[str, object]:
        """``embedder_options`` for ``FaceEngine.create(embedder="onnx", ...)``."""
        return {
            "model_path": self.path, "name": self.name, "version": self.version, "mean": self.mean,
            "std": self.std, "swap_rb": self.swap_rb, "input_size": self.input_size,
        }  # fmt: skip

    def describe(self) -> dict[str, object]:
        """The document's ``recognizer`` section (the file by name and sha256, not by path)."""
        from facetrace.models.assets import sha256_file

        return {
            "name": self.name, "version": self.version, "file": self.path.name, "sha256": sha256_file(self.path),
            "mean": self.mean, "std": self.std, "swap_rb": self.swap_rb, "input_size": self.input_size,
        }  # fmt: skip


def load_calibration_file(path: Path | str) -> tuple[Calibration, dict[str, Any]]:
    """A calibration written by ``facetrace calibrate`` (or ``benchmarks/calibrate.py``), and its whole
    document (for its ``recognizer`` section). ``InvalidParameterError`` when it is missing or malformed."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidParameterError(f"calibration file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidParameterError(f"calibration file {path} is not readable JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidParameterError(f"calibration file {path} is not a calibration document")
    try:
        return calibration_from_json(document), document
    except ModelError as exc:
        raise InvalidParameterError(f"calibration file {path}: {exc.message}") from None


def open_recognizer(
    recognizer: Recognizer,
    calibration: Calibration,
    settings: DetectionSettings | None = None,
    *,
    embed_runners: int | None = None,
    embed_batch: int = 1,
) -> FaceEngine:
    """An engine over a user's ONNX recognizer; a file that is not a usable recognizer (missing, not ONNX,
    wrong input or output shape) is ``InvalidParameterError``: the caller named it and can fix it."""
    if not recognizer.path.is_file():
        raise InvalidParameterError(f"recognizer {recognizer.path} does not exist")
    try:
        return FaceEngine.create(
            embedder="onnx", embedder_options=recognizer.options(), settings=settings, calibration=calibration,
            embed_runners=embed_runners, embed_batch=embed_batch,
        )  # fmt: skip
    except ModelMismatchError:
        raise
    except ModelError as exc:
        raise InvalidParameterError(f"{recognizer.path} is not a usable face recognizer: {exc.message}") from None


def open_engine(
    recognizer: Path | str | None = None,
    calibration: Path | str | None = None,
    *,
    settings: DetectionSettings | None = None,
    embed_runners: int | None = None,
    embed_batch: int = 1,
) -> FaceEngine:
    """The engine the CLI and the server run: YuNet with SFace and its shipped calibration by default;
    ``calibration`` alone re-calibrates SFace (e.g. on a deployment's own people, ``facetrace calibrate``);
    ``recognizer`` runs a user's ONNX recognizer with the calibration fitted for it.

    A recognizer without a calibration is refused, not run on a provisional scale: a threshold of 99 would
    then mean nothing, yet read like the calibrated one in every log and audit record. The calibration's
    ``recognizer`` section names the recognizer, its version and preprocessing, and the sha256 of the file
    it was fitted on; another file is ``ModelMismatchError``.
    """
    if recognizer is None:  # (embed_runners, embed_batch: see FaceEngine.create)
        fitted = None if calibration is None else load_calibration_file(calibration)[0]
        return FaceEngine.create(
            settings=settings, calibration=fitted, embed_runners=embed_runners, embed_batch=embed_batch
        )
    path = Path(recognizer)
    if calibration is None:
        raise InvalidParameterError(
            "--recognizer needs --calibration FILE (fit one with `facetrace calibrate`): an uncalibrated "
            "recognizer's similarities carry no false-match guarantee"
        )
    fitted, document = load_calibration_file(calibration)
    section = document.get("recognizer")
    if not isinstance(section, dict):
        raise InvalidParameterError(
            f"calibration {calibration} names no recognizer (it is for {fitted.model}); "
            "fit one for this recognizer with `facetrace calibrate --model`"
        )
    try:
        spec = Recognizer(
            path=path, name=str(section["name"]), version=str(section["version"]), mean=float(section["mean"]),
            std=float(section["std"]), swap_rb=bool(section["swap_rb"]), input_size=int(section["input_size"]),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidParameterError(f"calibration {calibration}: malformed recognizer section ({exc})") from None
    if spec.key != fitted.model:
        raise InvalidParameterError(
            f"calibration {calibration} is for {fitted.model}, its recognizer section for {spec.key}"
        )
    if not path.is_file():
        raise InvalidParameterError(f"recognizer {path} does not exist")
    from facetrace.models.assets import sha256_file

    expected = section.get("sha256")
    if expected is not None and sha256_file(path) != expected:
        raise ModelMismatchError(
            f"{path} is not the file calibration {calibration} was fitted on ({section.get('file')}, "
            f"sha256 {str(expected)[:12]}…): recalibrate it with `facetrace calibrate --model {path}`"
        )
    return open_recognizer(spec, fitted, settings, embed_runners=embed_runners, embed_batch=embed_batch)


@dataclass(frozen=True, slots=True)
class Video:
    """The video services of one gallery, sharing its database: stored-video ``jobs``, live stream
    ``processors`` (publishing to ``bus``), the ``sightings`` both make, and the retention ``sweeper``."""

    jobs: VideoJobs
    processors: StreamProcessors
    sightings: SightingStore
    bus: EventBus
    sweeper: RetentionSweeper | None
    review: ReviewQueue | None = None  # None: a store without record tables (no review queue)
    unknowns: UnknownPeople | None = None

    def close(self) -> None:
        """Stop the processors (keeping which should run), the jobs' pool and the sweeper."""
        self.processors.close()
        self.jobs.close()
        if self.sweeper is not None:
            self.sweeper.stop()
        self.sightings.close()


def open_video(
    gallery: Gallery,
    *,
    home: Path | None = None,
    settings: JobSettings | None = None,
    resume: bool = False,
    sweep: bool = True,
    segments: SegmentExecutor | None = None,
) -> Video:
    """Jobs, processors and sightings kept in ``gallery``'s database (a store without record tables —
    ``MemoryStore`` — keeps jobs and processors in memory and sightings in ``home``'s database).
    ``resume`` starts the processors that were running when the last process stopped; ``sweep`` runs the
    hourly retention sweep in the background. ``segments``: where stored-video jobs analyse their segments;
    by default on the Ray cluster of ``$FACETRACE_RAY_ADDRESS`` when it is set, else in one pass."""
    from facetrace.video.jobs import VideoJobs
    from facetrace.video.processors import StreamProcessors
    from facetrace.video.sightings import RetentionSweeper, SightingStore
    from facetrace.video.sinks import EventBus

    records = records_of(gallery.store)
    if records is not None:
        sightings = SightingStore(records.sightings)
    else:
        sightings = SightingStore(resolve_home(home) / DB_FILENAME)
    bus = EventBus()
    from facetrace.cluster.runtime import configured_address  # imports no ray
    from facetrace.review import ReviewQueue, UnknownPeople

    review = ReviewQueue(gallery, records.reviews) if records else None
    unknowns = UnknownPeople(gallery, records.unknowns) if records else None
    if segments is None and os.environ.get("FACETRACE_RAY_ADDRESS"):
        from facetrace.cluster.jobs import RaySegmentExecutor

        segments = RaySegmentExecutor()
    jobs = VideoJobs(
        gallery,
        repository=records.jobs if records else None,
        sightings=sightings,
        settings=settings,
        review=review,
        executor=segments,
    )
    address = configured_address()
    if address is not None:  # FACETRACE_RAY_ADDRESS (`serve --ray`): processors run as Ray actors
        processors = _ray_processors(gallery, address, sightings, bus)
        if resume:
            processors.resume()  # Ray restarts them when nodes die; this starts those that have no actor
    else:
        processors = StreamProcessors(
            gallery,
            repository=records.processors if records else None,
            sightings=sightings,
            bus=bus,
            leases=records.leases if records else None,
            review=review,
            unknowns=unknowns,
        )
        if resume:
            processors.resume()
            if records is not None and records.leases is not None:  # several servers: take over dead ones
                processors.watch(PROCESSOR_WATCH_INTERVAL)
    also = _retention_sweeps(gallery, review, unknowns, on_ray=address is not None)
    sweeper = RetentionSweeper(sightings, also=also).start() if sweep else None
    return Video(jobs, processors, sightings, bus, sweeper, review, unknowns)


def _retention_sweeps(
    gallery: Gallery, review: ReviewQueue | None, unknowns: UnknownPeople | None, *, on_ray: bool
) -> list[Callable[[], int]]:
    """What the retention sweeper runs beside the sightings' sweep: the review queue's and unknown people's
    expired rows, and on Ray the old claims in ``stream_events`` (only processor actors make them)."""
    sweeps: list[Callable[[], int]] = [part.sweep for part in (review, unknowns) if part is not None]
    if on_ray:
        sweeps.append(stream_event_sweep(gallery.store))
    return sweeps


def stream_event_sweep(store: FaceStore) -> Callable[[], int]:
    """The retention sweep of ``stream_events`` (the claims of Ray processor actors' events) in ``store``'s
    PostgreSQL database: claims older than ``STREAM_EVENT_RETENTION`` go (``EventLog.sweep``), on one
    connection opened for the sweep and closed after it (it runs hourly)."""
    from facetrace.cluster.processors import STREAM_EVENT_RETENTION, EventLog
    from facetrace.store.postgres_db import PgDatabase

    url = getattr(store, "connection_url", None)
    if not isinstance(url, str):
        raise InvalidParameterError("stream events live only in a PostgreSQL database (--database-url)")

    def sweep_stream_events() -> int:
        db = PgDatabase(url, max_connections=1)
        try:
            return EventLog(db).sweep(time.time() - STREAM_EVENT_RETENTION)
        finally:
            db.close()

    return sweep_stream_events


def _ray_processors(gallery: Gallery, address: str, sightings: SightingStore, bus: EventBus) -> StreamProcessors:
    """Stream processors as actors on the Ray cluster at ``address``, over the gallery's PostgreSQL database
    (every node reaches it; an embedded SQLite file is on one machine only), with their events relayed to
    ``bus`` (``cluster/processors.py``)."""
    from facetrace.cluster.processors import RayStreamProcessors
    from facetrace.cluster.runtime import connect

    records = records_of(gallery.store)
    url = getattr(gallery.store, "connection_url", None)
    if records is None or not isinstance(url, str):
        raise InvalidParameterError(
            "stream processors on a Ray cluster need a PostgreSQL database every node reaches (--database-url)"
        )
    connect(address)
    return RayStreamProcessors(
        gallery, repository=records.processors, database_url=url, sightings=sightings, bus=bus, relay=True
    )
