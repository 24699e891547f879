# ruff: noqa: S608  (statements are built from fixed column lists; values always go as parameters)
"""Sightings as SQL, once for SQLite and PostgreSQL, and the cascades that remove what was derived from
faces, users and collections when they are deleted (run by the stores inside the delete's transaction).

Written like ``sql_records``: ``?`` markers, connections from a ``sql_dialect.SqlBackend``, and the few
differences — ``greatest``, a typed NULL, ``FOR UPDATE``, list parameters, a batch insert's repeats — named in
the ``Dialect``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from facetrace.store.records import Sighting, SightingQuery, redact_results
from facetrace.store.sql_dialect import Dialect, SqlBackend, executemany
from facetrace.types import BoundingBox

__all__ = [
    "SIGHTING_COLUMNS",
    "SqlSightings",
    "cascade_collection",
    "cascade_faces",
    "cascade_user",
    "sighting_from_row",
    "sighting_values",
    "upsert_sighting",
]


class SqlSightings:
    """``SightingRepository`` over the ``sightings`` table."""

    def __init__(self, backend: SqlBackend) -> None:
        self._b = backend

    def upsert_track(self, sighting: Sighting) -> None:
        with self._b.write("saving a sighting") as conn:
            upsert_sighting(self._b.dialect, conn, sighting)

    def add(self, sightings: Sequence[Sighting]) -> None:
        """Insert, replacing a stored sighting with the same id or (source, track): the stored conflicts are
        deleted first, as ``ON CONFLICT`` names one key only (a repeat within the batch: ``insert_replacing``)."""
        if not sightings:
            return
        dialect = self._b.dialect
        insert = dialect.insert_replacing.format(
            table="sightings", columns=SIGHTING_COLUMNS.format(snapshot="snapshot"), marks=_SIGHTING_MARKS,
            key="sighting_id",
        )  # fmt: skip
        with self._b.write("saving sightings") as conn:
            executemany(
                conn,
                dialect.sql("DELETE FROM sightings WHERE sighting_id=? OR (source=? AND track_id=?)"),
                [(s.sighting_id, s.source, s.track_id) for s in sightings],
            )
            executemany(conn, dialect.sql(insert), [sighting_values(s) for s in sightings])

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
        dialect = self._b.dialect
        columns = SIGHTING_COLUMNS.format(snapshot="snapshot" if query.snapshots else dialect.null_blob)
        sql = (
            f"SELECT {columns} FROM sightings WHERE {' AND '.join(clauses)}"
            " ORDER BY started_at DESC, sighting_id LIMIT ? OFFSET ?"
        )
        with self._b.read("reading sightings") as conn:
            rows = conn.execute(dialect.sql(sql), (*values, query.limit, query.offset)).fetchall()
        return [sighting_from_row(row) for row in rows]

    def count(self) -> int:
        with self._b.read("counting sightings") as conn:
            return int(conn.execute("SELECT COUNT(*) FROM sightings").fetchone()[0])

    def sweep(self, now: float) -> int:
        with self._b.write("sweeping sightings") as conn:
            sql = self._b.dialect.sql("DELETE FROM sightings WHERE expires_at <= ?")
            return int(conn.execute(sql, (now,)).rowcount)

    def delete_source(self, source: str) -> int:
        with self._b.write("deleting sightings") as conn:
            sql = self._b.dialect.sql("DELETE FROM sightings WHERE source = ?")
            return int(conn.execute(sql, (source,)).rowcount)


SIGHTING_COLUMNS = (
    "sighting_id, source, camera, track_id, started_at, ended_at, start_stream_ms, end_stream_ms, face_id, "
    "user_id, external_image_id, similarity, box_left, box_top, box_width, box_height, {snapshot}, expires_at, "
    "collection_id, confirmed_by"
)
_SIGHTING_MARKS = ", ".join(["?"] * 20)


def upsert_sighting(dialect: Dialect, conn: Any, sighting: Sighting) -> None:
    """Insert, or merge into the sighting of the same (source, track_id), inside the caller's transaction."""
    greatest = dialect.greatest
    conn.execute(
        dialect.sql(
            f"""
            INSERT INTO sightings AS s ({SIGHTING_COLUMNS.format(snapshot="snapshot")})
            VALUES ({_SIGHTING_MARKS})
            ON CONFLICT (source, track_id) DO UPDATE SET
                ended_at = {greatest}(s.ended_at, excluded.ended_at),
                end_stream_ms = {greatest}(s.end_stream_ms, excluded.end_stream_ms),
                face_id = COALESCE(excluded.face_id, s.face_id),
                user_id = CASE WHEN excluded.face_id IS NULL THEN s.user_id ELSE excluded.user_id END,
                external_image_id = CASE WHEN excluded.face_id IS NULL THEN s.external_image_id
                                         ELSE excluded.external_image_id END,
                similarity = {greatest}(COALESCE(s.similarity, 0), COALESCE(excluded.similarity, 0)),
                box_left = excluded.box_left, box_top = excluded.box_top,
                box_width = excluded.box_width, box_height = excluded.box_height,
                snapshot = COALESCE(excluded.snapshot, s.snapshot),
                confirmed_by = COALESCE(excluded.confirmed_by, s.confirmed_by)
            """
        ),
        sighting_values(sighting),
    )


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


# --- cascades, run by the stores inside the transaction of a delete ------------------------------------------


def cascade_faces(dialect: Dialect, conn: Any, face_ids: Sequence[str]) -> None:
    """Faces are gone: their sightings (with snapshots) go, and job results stop naming them."""
    if not face_ids:
        return
    listed, gone = dialect.list_value(face_ids), set(face_ids)
    sql = dialect.sql
    conn.execute(sql(f"DELETE FROM sightings WHERE {dialect.in_list('face_id')}"), (listed,))
    jobs = [
        str(r[0])
        for r in conn.execute(
            sql(
                "SELECT job_id FROM video_jobs WHERE job_id IN"
                f" (SELECT job_id FROM video_job_faces WHERE {dialect.in_list('face_id')})"
                f" ORDER BY job_id{dialect.for_update}"
            ),
            (listed,),
        ).fetchall()
    ]
    for job_id in jobs:
        row = conn.execute(sql("SELECT results FROM video_jobs WHERE job_id=?"), (job_id,)).fetchone()
        if row is not None and row[0] is not None:
            redacted = redact_results(bytes(row[0]), gone)
            conn.execute(sql("UPDATE video_jobs SET results=? WHERE job_id=?"), (redacted, job_id))
    conn.execute(sql(f"DELETE FROM video_job_faces WHERE {dialect.in_list('face_id')}"), (listed,))


def cascade_user(dialect: Dialect, conn: Any, collection_id: str, user_id: str) -> None:
    """A user is gone (its faces stay): sightings stop naming it."""
    conn.execute(
        dialect.sql("UPDATE sightings SET user_id=NULL WHERE collection_id=? AND user_id=?"),
        (collection_id, user_id),
    )


def cascade_collection(dialect: Dialect, conn: Any, collection_id: str) -> None:
    """A collection is gone: its jobs (with results), every sighting made against it, the review items
    offered against it and the unknown people grouped for it (review decisions stay: they are the record of
    what reviewers said)."""
    for statement in _COLLECTION_CASCADE:
        conn.execute(dialect.sql(statement), (collection_id,))


_COLLECTION_CASCADE = (
    "DELETE FROM video_job_faces WHERE job_id IN (SELECT job_id FROM video_jobs WHERE collection_id=?)",
    "DELETE FROM video_jobs WHERE collection_id=?",
    "DELETE FROM sightings WHERE collection_id=?",
    "DELETE FROM review_thumbnails WHERE item_id IN (SELECT item_id FROM review_items WHERE collection_id=?)",
    "DELETE FROM review_items WHERE collection_id=?",
    "DELETE FROM unknown_faces WHERE collection_id=?",
    "DELETE FROM unknown_people WHERE collection_id=?",
)
