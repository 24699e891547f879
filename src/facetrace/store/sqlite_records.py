"""SQLite repositories for the records of ``store/records.py``, in the store's own database file.

Every write is one short ``BEGIN IMMEDIATE`` transaction on the store's writer connection (WAL,
``synchronous=FULL``); reads use the pooled readers. Errors become ``StoreError`` (``translate``).
The cascades that remove derived data with faces, users and collections are here too (``cascade_*``), run
by ``SQLiteStore`` inside the transaction of the delete itself.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from facetrace.store.records import (
    Sighting,
    SightingQuery,
    redact_results,
)
from facetrace.store.review_sql import SqlReviews, SqlUnknowns
from facetrace.store.sql_dialect import SQLITE
from facetrace.store.sql_records import SqlJobs, SqlKeys, SqlProcessors, SqlTokens
from facetrace.store.sqlite_db import Database, translate
from facetrace.types import BoundingBox

__all__ = [
    "SIGHTING_COLUMNS",
    "SQLiteBackend",
    "SQLiteRecords",
    "SQLiteSightings",
    "cascade_collection",
    "cascade_faces",
    "cascade_user",
    "sighting_from_row",
    "sighting_values",
    "upsert_sighting",
]


class SQLiteSightings:
    def __init__(self, db: Database) -> None:
        self._db = db

    def upsert_track(self, sighting: Sighting) -> None:
        with translate("saving a sighting", self._db.path), self._db.transaction() as conn:
            upsert_sighting(conn, sighting)

    def add(self, sightings: Sequence[Sighting]) -> None:
        if not sightings:
            return
        with translate("saving sightings", self._db.path), self._db.transaction() as conn:
            conn.executemany(
                f"INSERT OR REPLACE INTO sightings ({SIGHTING_COLUMNS.format(snapshot='snapshot')})"  # noqa: S608
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [sighting_values(s) for s in sightings],
            )

    def query(self, query: SightingQuery, now: float) -> list[Sighting]:
        clauses: list[str] = ["expires_at > ?"]
        values: list[object] = [now]
        for column, value in (
            ("face_id", query.face_id),
            ("user_id", query.user_id),
            ("external_image_id", query.external_image_id),
            ("camera", query.camera),
            ("source", query.source),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                values.append(value)
        if query.since is not None:
            clauses.append("ended_at >= ?")
            values.append(query.since)
        if query.until is not None:
            clauses.append("started_at <= ?")
            values.append(query.until)
        columns = SIGHTING_COLUMNS.format(snapshot="snapshot" if query.snapshots else "NULL")
        sql = (
            f"SELECT {columns} FROM sightings WHERE {' AND '.join(clauses)}"  # noqa: S608
            " ORDER BY started_at DESC LIMIT ? OFFSET ?"
        )
        with translate("reading sightings", self._db.path), self._db.reader() as conn:
            rows = conn.execute(sql, (*values, query.limit, query.offset)).fetchall()
        return [sighting_from_row(row) for row in rows]

    def count(self) -> int:
        with translate("counting sightings", self._db.path), self._db.reader() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM sightings").fetchone()[0])

    def sweep(self, now: float) -> int:
        with translate("sweeping sightings", self._db.path), self._db.transaction() as conn:
            return conn.execute("DELETE FROM sightings WHERE expires_at <= ?", (now,)).rowcount

    def delete_source(self, source: str) -> int:
        with translate("deleting sightings", self._db.path), self._db.transaction() as conn:
            return conn.execute("DELETE FROM sightings WHERE source = ?", (source,)).rowcount


SIGHTING_COLUMNS = (
    "sighting_id, source, camera, track_id, started_at, ended_at, start_stream_ms, end_stream_ms, face_id, "
    "user_id, external_image_id, similarity, box_left, box_top, box_width, box_height, {snapshot}, expires_at, "
    "collection_id, confirmed_by"
)


def upsert_sighting(conn: sqlite3.Connection, sighting: Sighting) -> None:
    """Insert, or merge into the sighting of the same (source, track_id), inside the caller's transaction."""
    conn.execute(
        f"""
        INSERT INTO sightings ({SIGHTING_COLUMNS.format(snapshot="snapshot")})
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
            snapshot = COALESCE(excluded.snapshot, snapshot),
            confirmed_by = COALESCE(excluded.confirmed_by, confirmed_by)
        """,  # noqa: S608 (fixed column names)
        sighting_values(sighting),
    )


class SQLiteBackend:
    """Lends this database's connections to the shared review SQL (``store/review_sql.py``)."""

    dialect = SQLITE

    def __init__(self, db: Database) -> None:
        self._db = db

    @contextlib.contextmanager
    def write(self, action: str) -> Iterator[sqlite3.Connection]:
        with translate(action, self._db.path), self._db.transaction() as conn:
            yield conn

    @contextlib.contextmanager
    def read(self, action: str, *, snapshot: bool = False) -> Iterator[sqlite3.Connection]:
        with translate(action, self._db.path), self._db.reader(snapshot=snapshot) as conn:
            yield conn

    def sql(self, statement: str) -> str:
        return statement

    def insert_sighting(self, conn: Any, sighting: Sighting) -> None:
        upsert_sighting(conn, sighting)

    def lock(self, conn: Any, table: str) -> None:
        return None  # BEGIN IMMEDIATE holds the database's write lock already


def sighting_values(s: Sighting) -> tuple[object, ...]:
    box = s.bounding_box
    return (
        s.sighting_id, s.source, s.camera, s.track_id, s.started_at, s.ended_at, s.start_stream_ms,
        s.end_stream_ms, s.face_id, s.user_id, s.external_image_id, s.similarity,
        box.left if box else None, box.top if box else None, box.width if box else None,
        box.height if box else None, s.snapshot, s.expires_at, s.collection_id, s.confirmed_by,
    )  # fmt: skip


def sighting_from_row(row: Sequence[Any]) -> Sighting:
    box = None if row[12] is None else BoundingBox(left=row[12], top=row[13], width=row[14], height=row[15])
    return Sighting(
        sighting_id=row[0], source=row[1], camera=row[2], track_id=row[3], started_at=row[4], ended_at=row[5],
        start_stream_ms=row[6], end_stream_ms=row[7], face_id=row[8], user_id=row[9], external_image_id=row[10],
        similarity=row[11], bounding_box=box, snapshot=row[16], expires_at=row[17], collection_id=row[18],
        confirmed_by=row[19],
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class SQLiteRecords:
    """Every repository of one database (``records.Records``); no leases: one server per home."""

    keys: SqlKeys
    tokens: SqlTokens
    jobs: SqlJobs
    processors: SqlProcessors
    sightings: SQLiteSightings
    reviews: SqlReviews
    unknowns: SqlUnknowns
    leases: None = None

    @classmethod
    def of(cls, db: Database) -> SQLiteRecords:
        backend = SQLiteBackend(db)
        return cls(
            SqlKeys(backend), SqlTokens(backend), SqlJobs(backend), SqlProcessors(backend), SQLiteSightings(db),
            SqlReviews(backend), SqlUnknowns(backend),
        )  # fmt: skip


# --- cascades, run inside the store's delete transactions ------------------------------------------------


def cascade_faces(conn: sqlite3.Connection, face_ids: Sequence[str]) -> None:
    """Faces are gone: their sightings (with snapshots) go, and job results stop naming them."""
    listed = json.dumps(list(face_ids))
    conn.execute("DELETE FROM sightings WHERE face_id IN (SELECT value FROM json_each(?))", (listed,))
    jobs = [
        str(r[0])
        for r in conn.execute(
            "SELECT DISTINCT job_id FROM video_job_faces WHERE face_id IN (SELECT value FROM json_each(?))",
            (listed,),
        )
    ]
    gone = set(face_ids)
    for job_id in jobs:
        (blob,) = conn.execute("SELECT results FROM video_jobs WHERE job_id=?", (job_id,)).fetchone() or (None,)
        if blob is not None:
            conn.execute("UPDATE video_jobs SET results=? WHERE job_id=?", (redact_results(blob, gone), job_id))
    conn.execute("DELETE FROM video_job_faces WHERE face_id IN (SELECT value FROM json_each(?))", (listed,))


def cascade_user(conn: sqlite3.Connection, collection_id: str, user_id: str) -> None:
    """A user is gone (its faces stay): sightings stop naming it."""
    conn.execute("UPDATE sightings SET user_id=NULL WHERE collection_id=? AND user_id=?", (collection_id, user_id))


def cascade_collection(conn: sqlite3.Connection, collection_id: str) -> None:
    """A collection is gone: its jobs (with results), and every sighting made against it."""
    conn.execute(
        "DELETE FROM video_job_faces WHERE job_id IN (SELECT job_id FROM video_jobs WHERE collection_id=?)",
        (collection_id,),
    )
    conn.execute("DELETE FROM video_jobs WHERE collection_id=?", (collection_id,))
    conn.execute("DELETE FROM sightings WHERE collection_id=?", (collection_id,))
    for statement in REVIEW_CASCADE:
        conn.execute(statement, (collection_id,))


REVIEW_CASCADE = (
    "DELETE FROM review_thumbnails WHERE item_id IN (SELECT item_id FROM review_items WHERE collection_id=?)",
    "DELETE FROM review_items WHERE collection_id=?",
    "DELETE FROM unknown_faces WHERE collection_id=?",
    "DELETE FROM unknown_people WHERE collection_id=?",
)
"""A collection is gone: the review items offered against it and the unknown people grouped for it (decisions
stay: they are the record of what reviewers said)."""
