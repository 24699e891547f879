"""Composition: build a ready-to-use ``Gallery`` over the store of a facetrace home or a PostgreSQL database,
and the ``Video`` services (jobs, stream processors, sightings, event bus) over the same database.

This is the one place that decides which concrete store and engine the CLI and the server use by default;
everything else takes them as arguments. The audit trail is the store's own (``store.audit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from facetrace.engine import FaceEngine
from facetrace.gallery import Gallery
from facetrace.home import ensure_home, private_dir, resolve_home
from facetrace.store import DB_FILENAME, FaceStore, open_store, records_of

if TYPE_CHECKING:  # video pulls in PyAV: imported when video is opened, not for every CLI command
    from facetrace.video.jobs import JobSettings, VideoJobs
    from facetrace.video.processors import StreamProcessors
    from facetrace.video.sightings import RetentionSweeper, SightingStore
    from facetrace.video.sinks import EventBus

__all__ = ["Video", "open_gallery", "open_video"]

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
class Video:
    """The video services of one gallery, sharing its database: stored-video ``jobs``, live stream
    ``processors`` (publishing to ``bus``), the ``sightings`` both make, and the retention ``sweeper``."""

    jobs: VideoJobs
    processors: StreamProcessors
    sightings: SightingStore
    bus: EventBus
    sweeper: RetentionSweeper | None

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
) -> Video:
    """Jobs, processors and sightings kept in ``gallery``'s database (a store without record tables —
    ``MemoryStore`` — keeps jobs and processors in memory and sightings in ``home``'s database).
    ``resume`` starts the processors that were running when the last process stopped; ``sweep`` runs the
    hourly retention sweep in the background."""
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
    jobs = VideoJobs(gallery, repository=records.jobs if records else None, sightings=sightings, settings=settings)
    processors = StreamProcessors(
        gallery,
        repository=records.processors if records else None,
        sightings=sightings,
        bus=bus,
        leases=records.leases if records else None,
    )
    if resume:
        processors.resume()
        if records is not None and records.leases is not None:  # several servers: take over dead ones
            processors.watch(PROCESSOR_WATCH_INTERVAL)
    sweeper = RetentionSweeper(sightings).start() if sweep else None
    return Video(jobs, processors, sightings, bus, sweeper)
