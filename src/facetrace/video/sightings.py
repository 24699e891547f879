"""Sightings: where and when each person was seen, kept for a limited time.

Every identified track — from a live stream processor or a stored-video job — becomes one sighting: camera,
source (processor or job), start and end time, the matched face (FaceId, UserId, ExternalImageId), the best
similarity and a small JPEG snapshot. ``SightingStore.query`` answers "where and when has this person been
seen?" by face id, user id or external image id and a time range, across every processor and job.

Privacy: each sighting carries its own expiry (``retention_days`` of the processor that made it; default
30 days), and ``sweep`` deletes what has expired — ``RetentionSweeper`` runs it in the background.
Unidentified tracks are stored only when the processor is told to keep them (``keep_unidentified``).
The database is one SQLite file (default ``$FACETRACE_HOME/video/sightings.db``).
"""

from __future__ import annotations

import base64
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facetrace import shapes
from facetrace.errors import InvalidParameterError, StoreError
from facetrace.home import ensure_home
from facetrace.types import BoundingBox
from facetrace.video.events import Event, TrackEnded, TrackEvent, TrackIdentified, TrackStarted

__all__ = [
    "DEFAULT_RETENTION_DAYS",
    "RetentionSweeper",
    "Sighting",
    "SightingSink",
    "SightingStore",
    "default_sightings_path",
]

DEFAULT_RETENTION_DAYS = 30.0
DAY = 86400.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sightings (
    sighting_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,            -- processor name or job id
    camera TEXT NOT NULL,
    track_id INTEGER NOT NULL,
    started_at REAL NOT NULL,        -- unix seconds
    ended_at REAL NOT NULL,
    start_stream_ms INTEGER NOT NULL,
    end_stream_ms INTEGER NOT NULL,
    face_id TEXT,
    user_id TEXT,
    external_image_id TEXT,
    similarity REAL,
    box_left REAL, box_top REAL, box_width REAL, box_height REAL,
    snapshot BLOB,
    expires_at REAL NOT NULL,
    UNIQUE (source, track_id)
);
CREATE INDEX IF NOT EXISTS sightings_face ON sightings (face_id, started_at);
CREATE INDEX IF NOT EXISTS sightings_user ON sightings (user_id, started_at);
CREATE INDEX IF NOT EXISTS sightings_external ON sightings (external_image_id, started_at);
CREATE INDEX IF NOT EXISTS sightings_expiry ON sightings (expires_at);
"""


def default_sightings_path(home: Path | None = None) -> Path:
    return ensure_home(home) / "video" / "sightings.db"


@dataclass(frozen=True, slots=True)
class Sighting:
    sighting_id: str
    source: str
    camera: str
    track_id: int
    started_at: float
    ended_at: float
    start_stream_ms: int
    end_stream_ms: int
    face_id: str | None
    user_id: str | None
    external_image_id: str | None
    similarity: float | None
    bounding_box: BoundingBox | None
    expires_at: float
    snapshot: bytes | None = None

    def to_dict(self, *, snapshot: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "SightingId": self.sighting_id,
            "Source": self.source,
            "Camera": self.camera,
            "TrackId": self.track_id,
            "StartedAt": round(self.started_at, 3),
            "EndedAt": round(self.ended_at, 3),
            "StartStreamTimeMillis": self.start_stream_ms,
            "EndStreamTimeMillis": self.end_stream_ms,
            "FaceId": self.face_id,
            "UserId": self.user_id,
            "ExternalImageId": self.external_image_id,
            "Similarity": self.similarity,
            "ExpiresAt": round(self.expires_at, 3),
        }
        if self.bounding_box is not None:
            data["BoundingBox"] = shapes.bounding_box(self.bounding_box)
        if snapshot and self.snapshot is not None:
            data["Snapshot"] = base64.b64encode(self.snapshot).decode("ascii")
        return data


class SightingStore:
    """The sightings database. Thread-safe (one connection behind a lock; writes are small)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the sightings database {self.path}: {exc}") from None

    @contextmanager
    def _cursor(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            try:
                yield self._db.cursor()
            except sqlite3.Error as exc:
                raise StoreError(f"sightings database error: {exc}") from None

    def record(self, event: TrackEvent, source: str, *, retention_days: float = DEFAULT_RETENTION_DAYS) -> None:
        """Insert or update the sighting of ``event``'s track (identified, changed or ended)."""
        match = event.match
        face = match.face if match is not None else None
        ended_at = event.ended_at if isinstance(event, TrackEnded) else event.frame_time
        end_ms = event.end_stream_ms if isinstance(event, TrackEnded) else event.stream_time_ms
        box = event.bounding_box
        with self._cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO sightings (sighting_id, source, camera, track_id, started_at, ended_at,
                    start_stream_ms, end_stream_ms, face_id, user_id, external_image_id, similarity,
                    box_left, box_top, box_width, box_height, snapshot, expires_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (source, track_id) DO UPDATE SET
                    ended_at = MAX(ended_at, excluded.ended_at),
                    end_stream_ms = MAX(end_stream_ms, excluded.end_stream_ms),
                    face_id = COALESCE(excluded.face_id, face_id),
                    user_id = CASE WHEN excluded.face_id IS NULL THEN user_id ELSE excluded.user_id END,
                    external_image_id = CASE WHEN excluded.face_id IS NULL THEN external_image_id
                                             ELSE excluded.external_image_id END,
                    similarity = MAX(COALESCE(similarity, 0), COALESCE(excluded.similarity, 0)),
                    box_left = excluded.box_left, box_top = excluded.box_top,
                    box_width = excluded.box_width, box_height = excluded.box_height,
                    snapshot = COALESCE(excluded.snapshot, snapshot)
                """,
                (
                    str(uuid.uuid4()), source, event.camera, event.track_id, event.started_at, ended_at,
                    event.start_stream_ms, end_ms,
                    face.face_id if face else None, face.user_id if face else None,
                    face.external_image_id if face else None, match.similarity if match else None,
                    box.left, box.top, box.width, box.height, event.snapshot,
                    event.started_at + retention_days * DAY,
                ),
            )  # fmt: skip

    def add(self, sighting: Sighting) -> None:
        """Store a ready-made sighting (jobs, imports)."""
        box = sighting.bounding_box
        with self._cursor() as cursor:
            cursor.execute(
                "INSERT OR REPLACE INTO sightings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sighting.sighting_id, sighting.source, sighting.camera, sighting.track_id,
                    sighting.started_at, sighting.ended_at, sighting.start_stream_ms, sighting.end_stream_ms,
                    sighting.face_id, sighting.user_id, sighting.external_image_id, sighting.similarity,
                    box.left if box else None, box.top if box else None,
                    box.width if box else None, box.height if box else None,
                    sighting.snapshot, sighting.expires_at,
                ),
            )  # fmt: skip

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
        clauses: list[str] = ["expires_at > ?"]
        values: list[object] = [time.time()]
        for column, value in (
            ("face_id", face_id),
            ("user_id", user_id),
            ("external_image_id", external_image_id),
            ("camera", camera),
            ("source", source),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                values.append(value)
        if since is not None:
            clauses.append("ended_at >= ?")
            values.append(since)
        if until is not None:
            clauses.append("started_at <= ?")
            values.append(until)
        columns = _COLUMNS.format(snapshot="snapshot" if snapshots else "NULL")
        sql = f"SELECT {columns} FROM sightings WHERE {' AND '.join(clauses)} ORDER BY started_at DESC LIMIT ? OFFSET ?"  # noqa: S608
        with self._cursor() as cursor:
            rows = cursor.execute(sql, (*values, limit, offset)).fetchall()
        return [_sighting(row, snapshots) for row in rows]

    def count(self) -> int:
        with self._cursor() as cursor:
            return int(cursor.execute("SELECT COUNT(*) FROM sightings").fetchone()[0])

    def sweep(self, now: float | None = None) -> int:
        """Delete every expired sighting (and its snapshot); returns how many."""
        now = time.time() if now is None else now
        with self._cursor() as cursor:
            cursor.execute("DELETE FROM sightings WHERE expires_at <= ?", (now,))
            return int(cursor.rowcount)

    def delete_source(self, source: str) -> int:
        with self._cursor() as cursor:
            cursor.execute("DELETE FROM sightings WHERE source = ?", (source,))
            return int(cursor.rowcount)

    def close(self) -> None:
        with self._lock:
            self._db.close()


_COLUMNS = (
    "sighting_id, source, camera, track_id, started_at, ended_at, start_stream_ms, end_stream_ms, face_id, "
    "user_id, external_image_id, similarity, box_left, box_top, box_width, box_height, {snapshot}, expires_at"
)


def _sighting(row: tuple[Any, ...], snapshots: bool) -> Sighting:
    box = None if row[12] is None else BoundingBox(left=row[12], top=row[13], width=row[14], height=row[15])
    return Sighting(
        sighting_id=row[0], source=row[1], camera=row[2], track_id=row[3], started_at=row[4], ended_at=row[5],
        start_stream_ms=row[6], end_stream_ms=row[7], face_id=row[8], user_id=row[9], external_image_id=row[10],
        similarity=row[11], bounding_box=box, snapshot=row[16] if snapshots else None, expires_at=row[17],
    )  # fmt: skip


class SightingSink:
    """An event sink that turns a processor's track events into sightings."""

    def __init__(
        self,
        store: SightingStore,
        source: str,
        *,
        retention_days: float = DEFAULT_RETENTION_DAYS,
        keep_unidentified: bool = False,
    ) -> None:
        if not 0.0 < retention_days <= 36500:
            raise InvalidParameterError("retention must be more than 0 and at most 36500 days")
        self.store = store
        self.source = source
        self.retention_days = retention_days
        self.keep_unidentified = keep_unidentified

    def publish(self, event: Event) -> None:
        if not isinstance(event, TrackIdentified | TrackEnded | TrackStarted):
            return
        if event.match is None and not self.keep_unidentified:
            return
        self.store.record(event, self.source, retention_days=self.retention_days)

    def close(self) -> None:
        return None


class RetentionSweeper:
    """Runs ``store.sweep()`` every ``interval`` seconds in a daemon thread until ``stop``."""

    def __init__(self, store: SightingStore, interval: float = 3600.0) -> None:
        if interval <= 0:
            raise InvalidParameterError("the sweep interval must be positive")
        self.store = store
        self.interval = interval
        self.swept = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="facetrace-retention", daemon=True)

    def start(self) -> RetentionSweeper:
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            with suppress(StoreError):
                self.swept += self.store.sweep()
            if self._stop.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
