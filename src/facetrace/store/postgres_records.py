"""PostgreSQL repositories for the records of ``store/records.py``, in the database every server shares.

The same repositories as ``sqlite_records`` (keys, request tokens, video jobs, stream processors, sightings)
over the tables of schema step 2 (``postgres_db``), so a key created through one server authenticates on
every other, a video job started on one is read on another, and ``facetrace migrate`` copies them row for
row. What only a shared database needs is here too:

- ``PostgresTokens.exclusive``: a transaction-level advisory lock per (principal, operation, token), held on a
  connection of its own while the request runs, so two servers given one ClientRequestToken act once.
- ``PostgresLeases``: lease rows renewed by one heartbeat thread per process; a stream processor runs where
  its lease is held, and an IN_PROGRESS video job belongs to a live instance (``instance:<id>``) or is failed.
  Expiry times come from the database's clock, so servers with skewed clocks agree.
- ``cascade_*``: run by ``PostgresStore`` inside the transaction of a delete (sightings, snapshots and job
  results naming deleted faces, users or collections go with them).

Errors become ``StoreError`` (``postgres_db.translate``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from facetrace.errors import StoreError
from facetrace.store.postgres_db import PgDatabase, translate
from facetrace.store.records import (
    Sighting,
    SightingQuery,
    redact_results,
)
from facetrace.store.review_sql import SqlReviews, SqlUnknowns
from facetrace.store.sql_dialect import POSTGRES
from facetrace.store.sql_records import SqlJobs, SqlKeys, SqlProcessors, SqlTokens
from facetrace.store.sqlite_records import REVIEW_CASCADE, SIGHTING_COLUMNS, sighting_from_row, sighting_values

__all__ = [
    "LEASE_TTL",
    "PostgresLeases",
    "PostgresProcessors",
    "PostgresRecords",
    "PostgresSightings",
    "PostgresTokens",
    "cascade_collection",
    "cascade_faces",
    "cascade_user",
]

log = logging.getLogger(__name__)

LEASE_TTL = 30.0
"""Seconds a lease lives without renewal; the heartbeat renews every third of it. A server that dies holds
its processors for at most this long before another may take them over."""

_NOW = POSTGRES.clock  # the database's clock, one for every server
_TOKEN_LOCK = 0x74_6F_6B  # "tok": first key of the two-key advisory locks of request tokens


class PostgresTokens(SqlTokens):
    """``SqlTokens`` with the lock several servers given one ClientRequestToken need (``exclusive``)."""

    def __init__(self, db: PgDatabase) -> None:
        super().__init__(PostgresBackend(db))
        self._db = db
        self._pool_lock = threading.Lock()
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None

    @contextlib.contextmanager
    def exclusive(self, principal: str, operation: str, token: str) -> Iterator[None]:
        """One request per token at a time across every server: a transaction-level advisory lock, held on a
        connection of a pool of its own (not the store's: the request needs the store's connections while
        another waits for this lock), released by ROLLBACK, or by PostgreSQL when the connection or the
        server holding it dies."""
        key = json.dumps([principal, operation, token])
        with translate("locking a request token"), self._locks().connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_TOKEN_LOCK, key))
            yield

    def _locks(self) -> ConnectionPool[psycopg.Connection[Any]]:
        with self._pool_lock:
            if self._pool is None:
                self._db.check_open()
                self._pool = ConnectionPool(
                    self._db.url, min_size=0, max_size=_LOCK_CONNECTIONS, timeout=30.0, open=True,
                    name="facetrace-token-locks", kwargs={"autocommit": True, "connect_timeout": 10},
                )  # fmt: skip
            return self._pool

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()


_LOCK_CONNECTIONS = 16  # token-bearing requests waiting on or holding a lock at once, per server


class PostgresProcessors(SqlProcessors):
    """``SqlProcessors`` over one PostgreSQL database."""

    def __init__(self, db: PgDatabase) -> None:
        super().__init__(PostgresBackend(db))


class PostgresSightings:
    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def upsert_track(self, sighting: Sighting) -> None:
        with self._db.transaction("saving a sighting") as conn:
            upsert_sighting(conn, sighting)

    def add(self, sightings: Sequence[Sighting]) -> None:
        """Insert, replacing a stored sighting with the same id or (source, track) — SQLite's INSERT OR
        REPLACE, which PostgreSQL's ON CONFLICT (one constraint at a time) cannot say in one statement."""
        if not sightings:
            return
        placeholders = ", ".join(["%s"] * 20)
        with self._db.transaction("saving sightings") as conn, conn.cursor() as cur:
            cur.executemany(
                "DELETE FROM sightings WHERE sighting_id=%s OR (source=%s AND track_id=%s)",
                [(s.sighting_id, s.source, s.track_id) for s in sightings],
            )
            cur.executemany(
                f"INSERT INTO sightings ({SIGHTING_COLUMNS.format(snapshot='snapshot')})"  # noqa: S608
                f" VALUES ({placeholders})"
                " ON CONFLICT (sighting_id) DO NOTHING",  # the same id twice in one batch: the first stands
                [sighting_values(s) for s in sightings],
            )

    def query(self, query: SightingQuery, now: float) -> list[Sighting]:
        clauses: list[str] = ["expires_at > %s"]
        values: list[object] = [now]
        for column, value in (
            ("face_id", query.face_id),
            ("user_id", query.user_id),
            ("external_image_id", query.external_image_id),
            ("camera", query.camera),
            ("source", query.source),
        ):
            if value is not None:
                clauses.append(f"{column} = %s")
                values.append(value)
        if query.since is not None:
            clauses.append("ended_at >= %s")
            values.append(query.since)
        if query.until is not None:
            clauses.append("started_at <= %s")
            values.append(query.until)
        columns = SIGHTING_COLUMNS.format(snapshot="snapshot" if query.snapshots else "NULL::bytea")
        sql = (
            f"SELECT {columns} FROM sightings WHERE {' AND '.join(clauses)}"  # noqa: S608
            " ORDER BY started_at DESC, sighting_id LIMIT %s OFFSET %s"
        )
        with self._db.read("reading sightings") as conn:
            rows = conn.execute(sql, (*values, query.limit, query.offset)).fetchall()
        return [sighting_from_row(row) for row in rows]

    def count(self) -> int:
        with self._db.read("counting sightings") as conn:
            row = conn.execute("SELECT count(*) FROM sightings").fetchone()
        return int(row[0]) if row else 0

    def sweep(self, now: float) -> int:
        with self._db.transaction("sweeping sightings") as conn:
            return conn.execute("DELETE FROM sightings WHERE expires_at <= %s", (now,)).rowcount

    def delete_source(self, source: str) -> int:
        with self._db.transaction("deleting sightings") as conn:
            return conn.execute("DELETE FROM sightings WHERE source = %s", (source,)).rowcount


def upsert_sighting(conn: psycopg.Connection[Any], sighting: Sighting) -> None:
    """Insert, or merge into the sighting of the same (source, track_id), inside the caller's transaction."""
    placeholders = ", ".join(["%s"] * 20)
    conn.execute(
        f"""
        INSERT INTO sightings AS s ({SIGHTING_COLUMNS.format(snapshot="snapshot")})
        VALUES ({placeholders})
        ON CONFLICT (source, track_id) DO UPDATE SET
            ended_at = GREATEST(s.ended_at, excluded.ended_at),
            end_stream_ms = GREATEST(s.end_stream_ms, excluded.end_stream_ms),
            face_id = COALESCE(excluded.face_id, s.face_id),
            user_id = CASE WHEN excluded.face_id IS NULL THEN s.user_id ELSE excluded.user_id END,
            external_image_id = CASE WHEN excluded.face_id IS NULL THEN s.external_image_id
                                     ELSE excluded.external_image_id END,
            similarity = GREATEST(COALESCE(s.similarity, 0), COALESCE(excluded.similarity, 0)),
            box_left = excluded.box_left, box_top = excluded.box_top,
            box_width = excluded.box_width, box_height = excluded.box_height,
            snapshot = COALESCE(excluded.snapshot, s.snapshot),
            confirmed_by = COALESCE(excluded.confirmed_by, s.confirmed_by)
        """,  # noqa: S608 (fixed column names)
        sighting_values(sighting),
    )


class PostgresBackend:
    """Lends this database's connections to the shared review SQL (``store/review_sql.py``)."""

    dialect = POSTGRES

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def write(self, action: str) -> AbstractContextManager[psycopg.Connection[Any]]:
        return self._db.transaction(action)

    def read(self, action: str, *, snapshot: bool = False) -> AbstractContextManager[psycopg.Connection[Any]]:
        return self._db.transaction(action, snapshot=True) if snapshot else self._db.read(action)

    def sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    def insert_sighting(self, conn: Any, sighting: Sighting) -> None:
        upsert_sighting(conn, sighting)

    def lock(self, conn: Any, table: str) -> None:
        if table not in ("unknown_people",):
            raise ValueError(f"no lock for {table}")
        conn.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")


class PostgresLeases:
    """``LeaseRepository`` over the ``leases`` table, with this process's heartbeat.

    The heartbeat (a daemon thread, started by the first lease or running job) renews every lease of
    ``owner`` — its ``instance:<owner>`` row included — every ``ttl / 3`` seconds in one UPDATE, and calls the
    ``on_lost`` callback of any lease it finds taken by another owner (this process was cut off for longer
    than ``ttl``). It stops with ``close()`` or when the database is closed; the leases then expire."""

    def __init__(self, db: PgDatabase, *, owner: str | None = None, ttl: float = LEASE_TTL) -> None:
        if ttl <= 0:
            raise ValueError("a lease needs a positive time to live")
        self._db = db
        self._owner = owner or uuid.uuid4().hex
        self.ttl = ttl
        self._lock = threading.Lock()
        self._held: dict[str, Callable[[str], None] | None] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def owner(self) -> str:
        return self._owner

    def acquire(self, resource: str, on_lost: Callable[[str], None] | None = None) -> bool:
        self.start()
        with self._db.transaction(f"taking the lease of {resource}") as conn:
            row = conn.execute(
                f"INSERT INTO leases(resource, owner, expires_at) VALUES (%s, %s, {_NOW} + %s)"  # noqa: S608
                " ON CONFLICT (resource) DO UPDATE SET owner=excluded.owner, expires_at=excluded.expires_at"
                f" WHERE leases.owner = excluded.owner OR leases.expires_at <= {_NOW}"
                " RETURNING owner",
                (resource, self._owner, self.ttl),
            ).fetchone()
        if row is None:
            return False
        with self._lock:
            self._held[resource] = on_lost
        return True

    def release(self, resource: str) -> None:
        with self._lock:
            self._held.pop(resource, None)
        with self._db.transaction(f"releasing the lease of {resource}") as conn:
            conn.execute("DELETE FROM leases WHERE resource=%s AND owner=%s", (resource, self._owner))

    def revoke(self, resource: str) -> None:
        with self._db.transaction(f"revoking the lease of {resource}") as conn:
            conn.execute("DELETE FROM leases WHERE resource=%s", (resource,))

    def holder(self, resource: str) -> str | None:
        with self._db.read(f"reading the lease of {resource}") as conn:
            row = conn.execute(
                f"SELECT owner FROM leases WHERE resource=%s AND expires_at > {_NOW}",  # noqa: S608
                (resource,),
            ).fetchone()
        return None if row is None else str(row[0])

    def start(self) -> None:
        """Announce this instance (``instance:<owner>``) and start the heartbeat, once."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._beat, name="facetrace-lease-heartbeat", daemon=True)
        self.renew()
        self._thread.start()

    def renew(self) -> None:
        """Renew every lease of this owner now, and report the ones another owner took meanwhile."""
        with self._db.transaction("renewing leases") as conn:
            conn.execute(
                f"INSERT INTO leases(resource, owner, expires_at) VALUES (%s, %s, {_NOW} + %s)"  # noqa: S608
                " ON CONFLICT (resource) DO UPDATE SET expires_at=excluded.expires_at",
                (f"instance:{self._owner}", self._owner, self.ttl),
            )
            kept = {
                str(r[0])
                for r in conn.execute(
                    f"UPDATE leases SET expires_at = {_NOW} + %s WHERE owner=%s RETURNING resource",  # noqa: S608
                    (self.ttl, self._owner),
                )
            }
        with self._lock:
            lost = {r: cb for r, cb in self._held.items() if r not in kept}
            for resource in lost:
                del self._held[resource]
        for resource, callback in lost.items():
            log.warning("lease of %s was taken over by another server", resource)
            if callback is not None:
                try:
                    callback(resource)
                except Exception:  # a callback's failure must not stop the heartbeat
                    log.exception("handling the loss of %s failed", resource)

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.renew()
            except StoreError as exc:
                if "closed" in exc.message:
                    return
                log.warning("cannot renew leases: %s", exc.message)  # retried; they expire if this goes on

    def close(self) -> None:
        """Stop the heartbeat and give up every lease of this owner (another server may take them at once)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5)
        with self._lock:
            self._held.clear()
        with contextlib.suppress(StoreError), self._db.transaction("releasing leases") as conn:
            conn.execute("DELETE FROM leases WHERE owner=%s", (self._owner,))


@dataclass(frozen=True, slots=True)
class PostgresRecords:
    """Every repository of one PostgreSQL database (``records.Records``)."""

    keys: SqlKeys
    tokens: PostgresTokens
    jobs: SqlJobs
    processors: PostgresProcessors
    sightings: PostgresSightings
    reviews: SqlReviews
    unknowns: SqlUnknowns
    leases: PostgresLeases

    @classmethod
    def of(cls, db: PgDatabase, *, owner: str | None = None, ttl: float = LEASE_TTL) -> PostgresRecords:
        leases = PostgresLeases(db, owner=owner, ttl=ttl)
        backend = PostgresBackend(db)
        return cls(
            SqlKeys(backend), PostgresTokens(db), SqlJobs(backend, leases), PostgresProcessors(db),
            PostgresSightings(db), SqlReviews(backend), SqlUnknowns(backend), leases,
        )  # fmt: skip

    def close(self) -> None:
        self.leases.close()
        self.tokens.close()


# --- cascades, run inside PostgresStore's delete transactions --------------------------------------------


def cascade_faces(conn: psycopg.Connection[Any], face_ids: Sequence[str]) -> None:
    """Faces are gone: their sightings (with snapshots) go, and job results stop naming them."""
    listed = list(face_ids)
    if not listed:
        return
    conn.execute("DELETE FROM sightings WHERE face_id = ANY(%s)", (listed,))
    jobs = [
        str(r[0])
        for r in conn.execute(
            "SELECT job_id FROM video_jobs WHERE job_id IN"
            " (SELECT job_id FROM video_job_faces WHERE face_id = ANY(%s)) ORDER BY job_id FOR UPDATE",
            (listed,),
        )
    ]
    gone = set(listed)
    for job_id in jobs:
        row = conn.execute("SELECT results FROM video_jobs WHERE job_id=%s", (job_id,)).fetchone()
        if row is not None and row[0] is not None:
            conn.execute(
                "UPDATE video_jobs SET results=%s WHERE job_id=%s", (redact_results(bytes(row[0]), gone), job_id)
            )
    conn.execute("DELETE FROM video_job_faces WHERE face_id = ANY(%s)", (listed,))


def cascade_user(conn: psycopg.Connection[Any], collection_id: str, user_id: str) -> None:
    """A user is gone (its faces stay): sightings stop naming it."""
    conn.execute(
        "UPDATE sightings SET user_id=NULL WHERE collection_id=%s AND user_id=%s", (collection_id, user_id)
    )


def cascade_collection(conn: psycopg.Connection[Any], collection_id: str) -> None:
    """A collection is gone: its jobs (with results; their face rows cascade), and every sighting made
    against it."""
    conn.execute("DELETE FROM video_jobs WHERE collection_id=%s", (collection_id,))
    conn.execute("DELETE FROM sightings WHERE collection_id=%s", (collection_id,))
    for statement in REVIEW_CASCADE:
        conn.execute(statement.replace("?", "%s"), (collection_id,))
