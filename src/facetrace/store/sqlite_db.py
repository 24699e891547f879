"""The SQLite side of ``SQLiteStore``: schema, connections, transactions and error translation.

Durability: WAL journal with ``synchronous=FULL``, so ``COMMIT`` returns only after the WAL is fsynced and an
acknowledged write survives ``kill -9`` and power loss; WAL also lets readers run on their own snapshot while
one writer commits, which is what keeps searches and listings going during a large IndexFaces job.

Every ``sqlite3.Error`` is turned into ``StoreError`` here (``translate``), so no raw sqlite3 traceback ever
reaches a caller; a file that is not a facetrace database, or comes from a newer facetrace, is refused at open.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from facetrace.errors import FacetraceError, NotFoundError, StoreError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Database", "collection_row", "translate"]

SCHEMA_VERSION = 2

# One row per face in ``faces`` (metadata, narrow so listings read few pages) and ``vectors`` (the float32
# little-endian bytes). ``fid`` orders both by insertion so the index loads with two sequential scans;
# ``faces_load`` covers the loading scan. ``generation`` counts committed changes to a collection's vectors
# and users: an in-memory index built at generation g is fresh while the database is still at g. ``cid`` is
# AUTOINCREMENT so a deleted collection's id is never reused: (cid, generation) names one state for good.
_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE collections(
    cid INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL,
    dim INTEGER,
    created_at REAL NOT NULL,
    face_count INTEGER NOT NULL DEFAULT 0,
    generation INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE faces(
    fid INTEGER PRIMARY KEY,
    cid INTEGER NOT NULL,
    face_id TEXT NOT NULL,
    image_id TEXT NOT NULL,
    external_image_id TEXT,
    user_id TEXT,
    confidence REAL NOT NULL,
    bb_left REAL NOT NULL,
    bb_top REAL NOT NULL,
    bb_width REAL NOT NULL,
    bb_height REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE UNIQUE INDEX faces_by_id ON faces(cid, face_id);
CREATE INDEX faces_by_user ON faces(cid, user_id, face_id) WHERE user_id IS NOT NULL;
CREATE INDEX faces_load ON faces(cid, fid, face_id, user_id);
CREATE TABLE vectors(fid INTEGER PRIMARY KEY, cid INTEGER NOT NULL, vector BLOB NOT NULL);
CREATE INDEX vectors_by_collection ON vectors(cid, fid);
CREATE TABLE users(
    cid INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY(cid, user_id)
) WITHOUT ROWID;
"""

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    # v2: each face's 0–100 quality, which picks its calibration band (NULL: unknown, the cautious band).
    (2, ("ALTER TABLE faces ADD COLUMN quality REAL",)),
)
"""Ordered schema steps: (version reached, statements that take the schema there from the version before).

``_SCHEMA`` is version 1; a new file gets it and then every step, an older file the steps it lacks, all in
one transaction, so a store is never left half-upgraded. Append steps; never edit one that has shipped."""


@contextlib.contextmanager
def translate(action: str, path: Path) -> Iterator[None]:
    """Turn sqlite3 errors raised while doing ``action`` into ``StoreError`` with a message a person can act on."""
    try:
        yield
    except FacetraceError:
        raise
    except sqlite3.DatabaseError as exc:
        text = str(exc)
        if "not a database" in text or "malformed" in text:
            text = f"the database {path} is corrupt or not a facetrace database ({text})"
        raise StoreError(f"{action} failed: {text}") from exc
    except sqlite3.Error as exc:
        raise StoreError(f"{action} failed: {exc}") from exc
    except OSError as exc:
        raise StoreError(f"{action} failed: {exc.strerror or exc} ({path})") from exc


def collection_row(conn: sqlite3.Connection, collection_id: str) -> tuple[int, str, int | None, int]:
    """(cid, model, dim, generation) of a collection, or ``NotFoundError``."""
    row = conn.execute(
        "SELECT cid, model, dim, generation FROM collections WHERE name=?", (collection_id,)
    ).fetchone()
    if row is None:
        raise NotFoundError(f"collection {collection_id!r} does not exist")
    return int(row[0]), str(row[1]), row[2], int(row[3])


class Database:
    """One writer connection behind a lock, and a pool of reader connections, over one database file."""

    def __init__(self, path: Path, *, timeout: float = 30.0) -> None:
        self.path = path
        self._timeout = timeout
        self.write_lock = threading.RLock()
        self._pool_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        with translate("opening the store", path):
            if not path.exists():
                # Private from the start: SQLite gives the -wal and -shm files the database's permissions.
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            self._writer = self._connect()
            try:
                mode = self._writer.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"cannot put {path} in WAL mode (got {mode!r})")
                self._writer.execute("PRAGMA synchronous=FULL")
                # After a big import the WAL is checkpointed; do not keep a huge file around afterwards.
                self._writer.execute("PRAGMA journal_size_limit=67108864")
                self._init_schema()
            except BaseException:
                self._writer.close()
                raise

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
        return conn

    def _init_schema(self) -> None:
        """Create the schema in an empty file, or check an existing one. Checking only reads, so opening a
        store (every CLI command does) never waits for another process's long write transaction."""
        if self._check_schema(self._writer) == SCHEMA_VERSION:
            return
        with self.transaction() as conn:
            version = self._check_schema(conn)  # again: another process may have created or upgraded it
            if version == SCHEMA_VERSION:
                return
            if version == 0:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
                version = 1
            for target, statements in MIGRATIONS:
                if target > version:
                    for statement in statements:
                        conn.execute(statement)
            conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))

    def _check_schema(self, conn: sqlite3.Connection) -> int:
        """The facetrace schema version the file holds (0 if it is empty); refuses foreign or newer files."""
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables:
            if tables:
                raise StoreError(f"{self.path} is an SQLite database, but not facetrace's")
            return 0
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None or not str(row[0]).isdigit():
            raise StoreError(f"{self.path} has no facetrace schema version")
        if int(row[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer facetrace (schema {row[0]}, this one reads {SCHEMA_VERSION})"
            )
        return int(row[0])

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``: it takes the database's write lock up front, so checks
        made inside it stay true until ``COMMIT``). Committed only if the block finishes without error."""
        with self.write_lock:
            self._check_open()
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    @contextlib.contextmanager
    def reader(self, *, snapshot: bool = False) -> Iterator[sqlite3.Connection]:
        """A pooled read connection; with ``snapshot`` every statement in the block sees one committed state."""
        with self._pool_lock:
            self._check_open()
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            if snapshot:
                conn.execute("BEGIN")
            yield conn
        finally:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("COMMIT")
            with self._pool_lock:
                if self._closed:
                    conn.close()
                else:
                    self._idle.append(conn)

    def close(self) -> None:
        """Close every connection. Reads in flight finish on their connection, which is closed after them."""
        with self.write_lock, self._pool_lock:
            if self._closed:
                return
            self._closed = True
            for conn in self._idle:
                conn.close()
            self._idle.clear()
            # The writer checkpoints the WAL into the database as it closes (it is the last connection).
            self._writer.close()
