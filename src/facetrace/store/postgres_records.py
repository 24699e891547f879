"""The records of ``store/records.py`` in the PostgreSQL database every server shares.

The repositories are the shared SQL of ``sql_records``, ``sql_sightings`` and ``review_sql`` (keys, request
tokens, video jobs, stream processors, sightings, the review queue), written once for both databases; this
module lends them PostgreSQL's connections (``PostgresBackend``), so a key created through one server
authenticates on every other, a video job started on one is read on another, and ``facetrace migrate``
copies them row for row. What only a shared database needs is here:

- ``PostgresTokens.exclusive``: a transaction-level advisory lock per (principal, operation, token), held on a
  connection of its own while the request runs, so two servers given one ClientRequestToken act once.
- ``PostgresLeases``: lease rows renewed by one heartbeat thread per process; a stream processor runs where
  its lease is held, and an IN_PROGRESS video job belongs to a live instance (``instance:<id>``) or is failed
  (``SqlJobs`` given these leases). Expiry times come from the database's clock, so servers with skewed
  clocks agree.
- ``cascade_*``: ``sql_sightings``' cascades in PostgreSQL's dialect, run by ``PostgresStore`` inside the
  transaction of a delete.

Errors become ``StoreError`` (``postgres_db.translate``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from facetrace.errors import StoreError
from facetrace.store import sql_sightings
from facetrace.store.postgres_db import PgDatabase, translate
from facetrace.store.review_sql import SqlReviews, SqlUnknowns
from facetrace.store.sql_dialect import POSTGRES
from facetrace.store.sql_records import SqlJobs, SqlKeys, SqlProcessors, SqlTokens
from facetrace.store.sql_sightings import SqlSightings

__all__ = [
    "LEASE_TTL",
    "PostgresLeases",
    "PostgresProcessors",
    "PostgresRecords",
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


class PostgresBackend:
    """Lends this database's connections to the shared SQL (``sql_records``, ``review_sql``)."""

    dialect = POSTGRES

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def write(self, action: str) -> AbstractContextManager[psycopg.Connection[Any]]:
        return self._db.transaction(action)

    def read(self, action: str, *, snapshot: bool = False) -> AbstractContextManager[psycopg.Connection[Any]]:
        return self._db.transaction(action, snapshot=True) if snapshot else self._db.read(action)


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
    sightings: SqlSightings
    reviews: SqlReviews
    unknowns: SqlUnknowns
    leases: PostgresLeases

    @classmethod
    def of(cls, db: PgDatabase, *, owner: str | None = None, ttl: float = LEASE_TTL) -> PostgresRecords:
        leases = PostgresLeases(db, owner=owner, ttl=ttl)
        backend = PostgresBackend(db)
        return cls(
            SqlKeys(backend), PostgresTokens(db), SqlJobs(backend, leases), PostgresProcessors(db),
            SqlSightings(backend), SqlReviews(backend), SqlUnknowns(backend), leases,
        )  # fmt: skip

    def close(self) -> None:
        self.leases.close()
        self.tokens.close()


# Run inside PostgresStore's delete transactions (``sql_sightings`` says what each removes).
cascade_faces = functools.partial(sql_sightings.cascade_faces, POSTGRES)
cascade_user = functools.partial(sql_sightings.cascade_user, POSTGRES)
cascade_collection = functools.partial(sql_sightings.cascade_collection, POSTGRES)
