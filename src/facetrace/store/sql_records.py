# ruff: noqa: S608  (statements are built from fixed column lists; values always go as parameters)
"""The records of ``store/records.py`` as SQL, once for SQLite and PostgreSQL: access keys, request tokens,
video jobs and stream processors (sightings and the delete cascades: ``sql_sightings``; the review queue:
``review_sql``; the dashboard's: ``ui_records``).

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

from facetrace.store.records import JobRecord, KeyRecord, ProcessorRecord, TokenRecord
from facetrace.store.sql_dialect import SqlBackend, executemany

__all__ = [
    "ORPHANED",
    "TOKEN_REUSE_AFTER",
    "InstanceLeases",
    "SqlJobs",
    "SqlKeys",
    "SqlProcessors",
    "SqlTokens",
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
