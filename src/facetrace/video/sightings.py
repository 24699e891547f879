"""Sightings: where and when each person was seen, kept for a limited time.

Every identified track — from a live stream processor or a stored-video job — becomes one sighting: camera,
source (processor or job), start and end time, the matched face (FaceId, UserId, ExternalImageId), the best
similarity and a small JPEG snapshot. ``SightingStore.query`` answers "where and when has this person been
seen?" by face id, user id or external image id and a time range, across every processor and job.

Privacy: each sighting carries its own expiry (``retention_days`` of the processor that made it; default
30 days), and ``sweep`` deletes what has expired — ``RetentionSweeper`` runs it in the background.
Unidentified tracks are stored only when the processor is told to keep them (``keep_unidentified``).
Sightings live in the store's database (the ``sightings`` table of ``$FACETRACE_HOME/facetrace.db``), and
go with the faces, users and collections they name (``docs/video.md``).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facetrace import shapes
from facetrace.errors import InvalidParameterError, StoreError
from facetrace.home import ensure_home
from facetrace.store.records import Sighting, SightingQuery, SightingRepository
from facetrace.video.events import Event, TrackEnded, TrackEvent, TrackIdentified, TrackStarted

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "RetentionSweeper",
    "Sighting",
    "SightingSink",
    "SightingStore",
    "default_sightings_path",
    "sighting_dict",
]

if TYPE_CHECKING:
    from facetrace.store import FaceStore

DEFAULT_RETENTION_DAYS = 30.0
DAY = 86400.0


def default_sightings_path(home: Path | None = None) -> Path:
    """The database that holds the sightings of ``home``: its facetrace.db (schema 3 and later)."""
    return ensure_home(home) / "facetrace.db"


def sighting_dict(sighting: Sighting, *, snapshot: bool = False) -> dict[str, Any]:
    """A sighting in the JSON shape of ``facetrace sightings --json``."""
    data: dict[str, Any] = {
        "SightingId": sighting.sighting_id,
        "Source": sighting.source,
        "Camera": sighting.camera,
        "TrackId": sighting.track_id,
        "StartedAt": round(sighting.started_at, 3),
        "EndedAt": round(sighting.ended_at, 3),
        "StartStreamTimeMillis": sighting.start_stream_ms,
        "EndStreamTimeMillis": sighting.end_stream_ms,
        "FaceId": sighting.face_id,
        "UserId": sighting.user_id,
        "ExternalImageId": sighting.external_image_id,
        "Similarity": sighting.similarity,
        "ExpiresAt": round(sighting.expires_at, 3),
    }
    if sighting.collection_id is not None:
        data["CollectionId"] = sighting.collection_id
    if sighting.bounding_box is not None:
        data["BoundingBox"] = shapes.bounding_box(sighting.bounding_box)
    if snapshot and sighting.snapshot is not None:
        data["Snapshot"] = base64.b64encode(sighting.snapshot).decode("ascii")
    return data


class SightingStore:
    """Sightings over a ``SightingRepository`` (the ``sightings`` table of the store's database).

    Given a path instead, it opens the facetrace database there (created if missing) and closes it on
    ``close``. Thread-safe.
    """

    def __init__(self, repository: SightingRepository | Path | str) -> None:
        self._owned: FaceStore | None = None
        if isinstance(repository, str | Path):
            from facetrace.store import SQLiteStore

            owned = SQLiteStore(Path(repository))
            self._owned, repository = owned, owned.records.sightings
        self.repository: SightingRepository = repository

    @classmethod
    def owning(cls, store: FaceStore) -> SightingStore:
        """The sightings in ``store``'s database (SQLite or PostgreSQL); ``close`` closes ``store``."""
        from facetrace.store import records_of

        records = records_of(store)
        if records is None:
            store.close()
            raise StoreError("this store keeps no sightings")
        sightings = cls(records.sightings)
        sightings._owned = store
        return sightings

    def record(
        self,
        event: TrackEvent,
        source: str,
        *,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        collection_id: str | None = None,
    ) -> None:
        """Insert or update the sighting of ``event``'s track (identified, changed or ended)."""
        match = event.match
        face = match.face if match is not None else None
        ended_at = event.ended_at if isinstance(event, TrackEnded) else event.frame_time
        end_ms = event.end_stream_ms if isinstance(event, TrackEnded) else event.stream_time_ms
        self.repository.upsert_track(
            Sighting(
                sighting_id=str(uuid.uuid4()), source=source, camera=event.camera, track_id=event.track_id,
                started_at=event.started_at, ended_at=ended_at, start_stream_ms=event.start_stream_ms,
                end_stream_ms=end_ms, face_id=face.face_id if face else None,
                user_id=face.user_id if face else None, external_image_id=face.external_image_id if face else None,
                similarity=match.similarity if match else None, bounding_box=event.bounding_box,
                expires_at=event.started_at + retention_days * DAY, snapshot=event.snapshot,
                collection_id=collection_id,
            )
        )  # fmt: skip

    def add(self, sighting: Sighting) -> None:
        """Store a ready-made sighting (jobs, imports)."""
        self.repository.add([sighting])

    def add_many(self, sightings: Sequence[Sighting]) -> None:
        """Store several sightings in one transaction."""
        self.repository.add(sightings)

    def query(
        self,
        *,
        face_id: str | None = None,
        user_id: str | None = None,
        external_image_id: str | None = None,
        camera: str | None = None,
        source: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        offset: int = 0,
        snapshots: bool = False,
    ) -> list[Sighting]:
        """Sightings overlapping [since, until] (unix seconds), newest first, filtered by who and where."""
        if not 1 <= limit <= 10000 or offset < 0:
            raise InvalidParameterError("limit must be 1-10000 and offset >= 0")
        query = SightingQuery(
            face_id=face_id, user_id=user_id, external_image_id=external_image_id, camera=camera, source=source,
            since=since, until=until, limit=limit, offset=offset, snapshots=snapshots,
        )  # fmt: skip
        return self.repository.query(query, time.time())

    def count(self) -> int:
        return self.repository.count()

    def sweep(self, now: float | None = None) -> int:
        """Delete every expired sighting (and its snapshot); returns how many."""
        return self.repository.sweep(time.time() if now is None else now)

    def delete_source(self, source: str) -> int:
        return self.repository.delete_source(source)

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()


class SightingSink:
    """An event sink that turns a processor's track events into sightings."""

    def __init__(
        self,
        store: SightingStore,
        source: str,
        *,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        keep_unidentified: bool = False,
        collection_id: str | None = None,
    ) -> None:
        if not 0.0 < retention_days <= 36500:
            raise InvalidParameterError("retention must be more than 0 and at most 36500 days")
        self.store = store
        self.source = source
        self.retention_days = retention_days
        self.keep_unidentified = keep_unidentified
        self.collection_id = collection_id  # the collection searched: deleting it deletes these sightings

    def publish(self, event: Event) -> None:
        if not isinstance(event, TrackIdentified | TrackEnded | TrackStarted):
            return
        if event.match is None and not self.keep_unidentified:
            return
        self.store.record(event, self.source, retention_days=self.retention_days, collection_id=self.collection_id)

    def close(self) -> None:
        return None


class RetentionSweeper:
    """Runs ``store.sweep()`` and every sweep of ``also`` (each deleting what outlived its retention and
    returning how many rows) every ``interval`` seconds in a daemon thread until ``stop``. One thread for every
    retention the server keeps (sightings, review items, unknown people, Ray's event claims): a sweep that
    fails (the database away) is retried next round and does not keep the others from running."""

    def __init__(
        self, store: SightingStore, interval: float = 3600.0, also: Sequence[Callable[[], int]] = ()
    ) -> None:
        if interval <= 0:
            raise InvalidParameterError("the sweep interval must be positive")
        self.store = store
        self.interval = interval
        self.sweeps: tuple[Callable[[], int], ...] = (store.sweep, *also)
        self.swept = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="facetrace-retention", daemon=True)

    def start(self) -> RetentionSweeper:
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            for sweep in self.sweeps:
                try:
                    self.swept += sweep()
                except StoreError as exc:
                    log.warning("retention sweep %s failed (retried in %g s): %s", _name(sweep), self.interval,
                                exc.message)  # fmt: skip
            if self._stop.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)


def _name(sweep: Callable[[], int]) -> str:
    return str(getattr(sweep, "__qualname__", sweep))
