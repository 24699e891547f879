# ruff: noqa: S608  (statements are built from fixed column lists; values always go as parameters)
"""The records of ``store/records.py`` as SQL, once for SQLite and PostgreSQL.

Each repository writes its statements once with ``?`` markers and borrows connections from a backend
(``sql_dialect.SqlBackend``); what the two databases say differently is named in its ``Dialect``. What only
a database shared by several servers needs stays with PostgreSQL (``postgres_records``: advisory locks on
request tokens, instance leases) and enters here through small, named seams.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from facetrace.store.records import (
    JobRecord,
    KeyRecord,
    ProcessorRecord,
    Sighting,
    SightingQuery,
    TokenRecord,
    redact_results,
)
from facetrace.store.sql_dialect import Dialect, SqlBackend, executemany
from facetrace.types import BoundingBox

__all__ = [
    "ORPHANED",
    "SIGHTING_COLUMNS",
    "TOKEN_REUSE_AFTER",
    "InstanceLeases",
    "SqlJobs",
    "SqlKeys",
    "SqlProcessors",
    "SqlSightings",
    "SqlTokens",
    "cascade_collection",
    "cascade_faces",
    "cascade_user",
    "sighting_from_row",
    "sighting_values",
    "upsert_sighting",
]


class SqlKeys:
    """``KeyRepository`` over the ``access_keys`` table."""

    def __init__(self, backend: SqlBackend) -> None:
        self._b = backend

    def list(self) -> list[KeyRecord]:
        with self._b.read("reading the access keys") as conn:
            rows = conn.execute(f"SELECT {_KEY_COLUMNS} FROM access_keys ORDER BY created_at, access_key_id")
            return [_key(row) for row in rows]

    def get(self, access_key_id: str) -> KeyRecord | None:
        sql = self._b.dialect.sql
        with self._b.read("reading an access key") as conn:
            row = conn.execute(
                sql(f"SELECT {_KEY_COLUMNS} FROM access_keys WHERE access_key_id=?"), (access_key_id,)
            ).fetchone()
        return None if row is None else _key(row)

    def add(self, key: KeyRecord) -> None:
        collections = None if key.collections is None else json.dumps(list(key.collections))
        with self._b.write("saving an access key") as conn:
            conn.execute(
                self._b.dialect.sql(f"INSERT INTO access_keys({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"),
                (key.access_key_id, key.secret, key.permission, collections, key.description, key.created_at),
            )

    def delete(self, access_key_id: str) -> bool:
        with self._b.write("deleting an access key") as conn:
            cursor = conn.execute(
                self._b.dialect.sql("DELETE FROM access_keys WHERE access_key_id=?"), (access_key_id,)
            )
            return int(cursor.rowcount) > 0


_KEY_COLUMNS = "access_key_id, secret, permission, collections, description, created_at"


def _key(row: Sequence[Any]) -> KeyRecord:
    collections = None if row[3] is None else tuple(str(c) for c in json.loads(row[3]))
    return KeyRecord(str(row[0]), str(row[1]), str(row[2]), collections, str(row[4]), float(row[5]))


TOKEN_REUSE_AFTER = 24 * 3600.0
"""``service.idempotency.TOKEN_TTL``: an answer older than this no longer binds its token (``SqlTokens.put``)."""


class SqlTokens:
    """``TokenRepository`` over the ``request_tokens`` table; ``exclusive`` is a no-op here (one server per
    database: the caller's in-process lock is enough). ``postgres_records.PostgresTokens`` adds the lock that
    servers sharing a database need."""

    def __init__(self, backend: SqlBackend) -> None:
        self._b = backend

    def get(self, principal: str, operation: str, token: str, *, newer_than: float) -> TokenRecord | None:
        with self._b.read("reading a request token") as conn:
            row = conn.execute(
                self._b.dialect.sql(
                    "SELECT fingerprint, response, created_at FROM request_tokens"
                    " WHERE principal=? AND operation=? AND token=? AND created_at > ?"
                ),
                (principal, operation, token, newer_than),
            ).fetchone()
        if row is None:
            return None
        return TokenRecord(principal, operation, token, str(row[0]), str(row[1]), float(row[2]))

    def put(self, record: TokenRecord) -> TokenRecord:
        """Store ``record`` unless a live answer for its token is stored already; return the one that stands.
        An expired answer (older than ``TOKEN_REUSE_AFTER``, not swept yet) is replaced: the token may be used
        again."""
        sql = self._b.dialect.sql
        with self._b.write("saving a request token") as conn:
            stored = conn.execute(
                sql(
                    "INSERT INTO request_tokens VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (principal, operation, token) DO UPDATE SET"
                    " fingerprint=excluded.fingerprint, response=excluded.response, created_at=excluded.created_at"
                    " WHERE request_tokens.created_at <= excluded.created_at - ?"
                    " RETURNING fingerprint, response, created_at"
                ),
                (
                    record.principal,
                    record.operation,
                    record.token,
                    record.fingerprint,
                    record.response,
                    record.created_at,
                    TOKEN_REUSE_AFTER,
                ),
            ).fetchall()  # fmt: skip  (all: SQLite finishes a RETURNING statement only once it is read out)
            row = stored[0] if stored else None
            if row is None:  # another request's answer was stored first: that one stands
                row = conn.execute(
                    sql(
                        "SELECT fingerprint, response, created_at FROM request_tokens"
                        " WHERE principal=? AND operation=? AND token=?"
                    ),
                    (record.principal, record.operation, record.token),
                ).fetchone()
        return TokenRecord(
            record.principal, record.operation, record.token, str(row[0]), str(row[1]), float(row[2])
        )

    def sweep(self, older_than: float) -> int:
        with self._b.write("sweeping request tokens") as conn:
            sql = self._b.dialect.sql("DELETE FROM request_tokens WHERE created_at <= ?")
            return int(conn.execute(sql, (older_than,)).rowcount)

    def exclusive(self, principal: str, operation: str, token: str) -> AbstractContextManager[None]:
        return contextlib.nullcontext()


class SqlProcessors:
    """``ProcessorRepository`` over the ``stream_processors`` table."""

    def __init__(self, backend: SqlBackend) -> None:
        self._b = backend

    def list(self) -> list[ProcessorRecord]:
        with self._b.read("reading stream processors") as conn:
            rows = conn.execute(f"SELECT {_PROCESSOR_COLUMNS} FROM stream_processors ORDER BY name").fetchall()
        return [_processor(r) for r in rows]

    def get(self, name: str) -> ProcessorRecord | None:
        with self._b.read("reading a stream processor") as conn:
            row = conn.execute(
                self._b.dialect.sql(f"SELECT {_PROCESSOR_COLUMNS} FROM stream_processors WHERE name=?"), (name,)
            ).fetchone()
        return None if row is None else _processor(row)

    def put(self, record: ProcessorRecord) -> None:
        with self._b.write("saving a stream processor") as conn:
            conn.execute(
                self._b.dialect.sql(
                    f"INSERT INTO stream_processors({_PROCESSOR_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET collection_id=excluded.collection_id,"
                    " definition=excluded.definition, desired=excluded.desired, updated_at=excluded.updated_at"
                ),
                (record.name, record.collection_id, record.definition, record.desired, record.updated_at),
            )

    def delete(self, name: str) -> None:
        with self._b.write("deleting a stream processor") as conn:
            conn.execute(self._b.dialect.sql("DELETE FROM stream_processors WHERE name=?"), (name,))


_PROCESSOR_COLUMNS = "name, collection_id, definition, desired, updated_at"


def _processor(r: Sequence[Any]) -> ProcessorRecord:
    return ProcessorRecord(str(r[0]), str(r[1]), str(r[2]), str(r[3]), float(r[4]))


ORPHANED = "interrupted: the server running it stopped"


class InstanceLeases(Protocol):
    """What ``SqlJobs`` needs of a database shared by several servers (``postgres_records.PostgresLeases``):
    this instance's id, and the heartbeat that keeps its ``instance:<owner>`` lease alive while it runs a job."""

    @property
    def owner(self) -> str: ...

    def start(self) -> None: ...


class SqlJobs:
    """``JobRepository`` over the ``video_jobs`` and ``video_job_faces`` tables.

    With ``leases`` (a database several servers share) an IN_PROGRESS job carries its server's instance id
    (``owner``) and is failed only once that server's lease expired: ``fail_interrupted`` leaves the jobs of
    live servers alone, and ``get`` fails an orphan first, so a server reading another's job learns of its end
    even while no server restarts. Without (one server per database) every IN_PROGRESS job at start-up is one
    that server was running when it stopped."""

    def __init__(self, backend: SqlBackend, leases: InstanceLeases | None = None) -> None:
        self._b = backend
        self._leases = leases
        self._columns = _JOB_COLUMNS if leases is None else f"{_JOB_COLUMNS}, owner"

    def save(self, job: JobRecord) -> None:
        values: tuple[object, ...] = (
            job.job_id, job.kind, job.video, job.collection_id, job.threshold, job.job_tag, job.camera, job.status,
            job.message, job.created_at, job.finished_at, job.metadata, job.results, job.principal, job.purpose,
            job.request,
        )  # fmt: skip
        if self._leases is not None:
            running = job.status == "IN_PROGRESS"
            if running:
                self._leases.start()  # this instance's heartbeat says the job's runner is alive
            values += (self._leases.owner if running else None,)
        names = [c.strip() for c in self._columns.split(",")]
        update = ", ".join(f"{c}=excluded.{c}" for c in names[1:])
        sql = self._b.dialect.sql
        with self._b.write(f"saving video job {job.job_id}") as conn:
            conn.execute(
                sql(
                    f"INSERT INTO video_jobs({self._columns}) VALUES ({', '.join('?' * len(names))})"
                    f" ON CONFLICT (job_id) DO UPDATE SET {update}"
                ),
                values,
            )
            conn.execute(sql("DELETE FROM video_job_faces WHERE job_id=?"), (job.job_id,))
            if job.face_ids:
                executemany(
                    conn,
                    sql("INSERT INTO video_job_faces(job_id, face_id) VALUES (?, ?) ON CONFLICT DO NOTHING"),
                    [(job.job_id, face_id) for face_id in job.face_ids],
                )

    def get(self, job_id: str) -> JobRecord | None:
        job = self._read(job_id)
        if (
            self._leases is not None
            and job is not None
            and job.status == "IN_PROGRESS"
            and self._fail_orphans(ORPHANED, time.time(), job_id)
        ):
            job = self._read(job_id)
        return job

    def _read(self, job_id: str) -> JobRecord | None:
        sql = self._b.dialect.sql
        with self._b.read(f"reading video job {job_id}", snapshot=True) as conn:
            row = conn.execute(sql(f"SELECT {_JOB_COLUMNS} FROM video_jobs WHERE job_id=?"), (job_id,)).fetchone()
            if row is None:
                return None
            faces = tuple(
                str(r[0])
                for r in conn.execute(
                    sql("SELECT face_id FROM video_job_faces WHERE job_id=? ORDER BY face_id"), (job_id,)
                )
            )
        (job_id_, kind, video, collection_id, threshold, job_tag, camera, status, message, created_at, finished_at,
         metadata, results, principal, purpose, request) = row  # fmt: skip
        return JobRecord(
            str(job_id_), str(kind), str(video), collection_id, threshold, job_tag, camera, str(status), message,
            float(created_at), finished_at, metadata, None if results is None else bytes(results), str(principal),
            purpose, request, faces,
        )  # fmt: skip

    def fail_interrupted(self, message: str, now: float) -> int:
        """Fail the IN_PROGRESS jobs whose server is gone (with leases: whose instance lease expired or was
        never taken; the jobs other live servers are running are theirs)."""
        return self._fail_orphans(message, now)

    def _fail_orphans(self, message: str, now: float, job_id: str | None = None) -> int:
        dialect = self._b.dialect
        orphaned, disown = "", ""
        if self._leases is not None:
            orphaned = (
                " AND (owner IS NULL OR NOT EXISTS (SELECT 1 FROM leases l"
                f" WHERE l.resource = 'instance:' || video_jobs.owner AND l.expires_at > {dialect.clock}))"
            )
            disown = ", owner=NULL"
        only = "" if job_id is None else " AND job_id = ?"
        with self._b.write("marking interrupted video jobs") as conn:
            return int(
                conn.execute(
                    dialect.sql(
                        f"UPDATE video_jobs SET status='FAILED', message=?, finished_at=?{disown}"
                        f" WHERE status='IN_PROGRESS'{only}{orphaned}"
                    ),
                    (message, now) if job_id is None else (message, now, job_id),
                ).rowcount
            )


_JOB_COLUMNS = (
    "job_id, kind, video, collection_id, threshold, job_tag, camera, status, message, created_at, finished_at,"
    " metadata, results, principal, purpose, request"
)


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


# --- cascades, run by the stores inside the transaction of a delete -----------------------------------------


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
