"""The SQLite side of ``SQLiteStore``: schema, connections, transactions and error translation.

Durability: WAL journal with ``synchronous=FULL``, so ``COMMIT`` returns only after the WAL is fsynced and an
acknowledged write survives ``kill -9`` and power loss; WAL also lets readers run on their own snapshot while
one writer commits, which is what keeps searches and listings going during a large IndexFaces job.

Every ``sqlite3.Error`` is turned into ``StoreError`` here (``translate``), so no raw sqlite3 traceback ever
reaches a caller; a file that is not a facetrace database, or comes from a newer facetrace, is refused at open.

Schema versions: ``MIGRATIONS`` is the ordered list of steps; step *n* (1-based) takes a database from version
*n-1* to *n*, and ``meta.schema_version`` says how many have been applied. At open, the missing steps run in
one ``BEGIN IMMEDIATE`` transaction (all or none, one process at a time); a database with more steps than
this facetrace knows is refused. Adding a step is appending one entry; steps are never edited once released.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from facetrace.errors import FacetraceError, NotFoundError, StoreError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Database", "Migration", "collection_row", "translate"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: what it does (for messages) and its SQL (statements separated by ``;``, no ``;`` in
    string literals or trigger bodies other than at statement ends — see ``_statements``)."""

    name: str
    sql: str


# One row per face in ``faces`` (metadata, narrow so listings read few pages) and ``vectors`` (the float32
# little-endian bytes). ``fid`` orders both by insertion so the index loads with two sequential scans;
# ``faces_load`` covers the loading scan. ``generation`` counts committed changes to a collection's vectors
# and users: an in-memory index built at generation g is fresh while the database is still at g. ``cid`` is
# AUTOINCREMENT so a deleted collection's id is never reused: (cid, generation) names one state for good.
_V1_BASE = """
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

# The audit chain (rules in facetrace.audit), moved here from the separate audit.db so a change and its audit
# record commit in one transaction. Append-only: the triggers refuse UPDATE and DELETE.
_V2_AUDIT = """
CREATE TABLE audit(seq INTEGER PRIMARY KEY, payload TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

# Everything else facetrace keeps (store/records.py): access keys (were keys.json), ClientRequestToken
# answers (were in memory), video jobs with the faces their results name, stream processors and sightings
# (were video/*.db). ``collection_id`` on jobs and sightings lets deleting a collection take them along.
_V3_RECORDS = """
CREATE TABLE access_keys(
    access_key_id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    permission TEXT NOT NULL,
    collections TEXT,
    description TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE request_tokens(
    principal TEXT NOT NULL,
    operation TEXT NOT NULL,
    token TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY(principal, operation, token)
) WITHOUT ROWID;
CREATE INDEX request_tokens_by_age ON request_tokens(created_at);
CREATE TABLE video_jobs(
    job_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    video TEXT NOT NULL,
    collection_id TEXT,
    threshold REAL,
    job_tag TEXT,
    camera TEXT,
    status TEXT NOT NULL,
    message TEXT,
    created_at REAL NOT NULL,
    finished_at REAL,
    metadata TEXT,
    results BLOB,
    principal TEXT NOT NULL,
    purpose TEXT,
    request TEXT
);
CREATE INDEX video_jobs_by_collection ON video_jobs(collection_id);
CREATE TABLE video_job_faces(job_id TEXT NOT NULL, face_id TEXT NOT NULL, PRIMARY KEY(face_id, job_id)) WITHOUT ROWID;
CREATE TABLE stream_processors(
    name TEXT PRIMARY KEY,
    collection_id TEXT NOT NULL,
    definition TEXT NOT NULL,
    desired TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE sightings(
    sighting_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    camera TEXT NOT NULL,
    track_id INTEGER NOT NULL,
    started_at REAL NOT NULL,
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
    collection_id TEXT,
    UNIQUE(source, track_id)
);
CREATE INDEX sightings_face ON sightings(face_id, started_at);
CREATE INDEX sightings_user ON sightings(user_id, started_at);
CREATE INDEX sightings_external ON sightings(external_image_id, started_at);
CREATE INDEX sightings_expiry ON sightings(expires_at);
CREATE INDEX sightings_collection ON sightings(collection_id);
"""

# The human in the loop (``facetrace.review``): tracks offered to a reviewer, their thumbnails, every answer
# (decisions outlive the items), groups of unidentified faces, and who confirmed a sighting.
_REVIEW_UNKNOWNS = """
CREATE TABLE review_items(
    item_id TEXT PRIMARY KEY,
    collection_id TEXT NOT NULL,
    source TEXT NOT NULL,
    camera TEXT NOT NULL,
    track_id INTEGER NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL NOT NULL,
    start_stream_ms INTEGER NOT NULL,
    end_stream_ms INTEGER NOT NULL,
    box_left REAL, box_top REAL, box_width REAL, box_height REAL,
    candidates TEXT NOT NULL,
    review_threshold REAL NOT NULL,
    match_threshold REAL NOT NULL,
    template_quality REAL,
    vector BLOB,
    vector_quality REAL,
    vector_confidence REAL,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    status TEXT NOT NULL,
    decided_at REAL,
    decided_by TEXT,
    confirmed_person TEXT,
    sighting_id TEXT,
    enrolled_face_id TEXT
);
CREATE INDEX review_items_by_status ON review_items(status, created_at);
CREATE INDEX review_items_by_track ON review_items(source, track_id);
CREATE INDEX review_items_by_collection ON review_items(collection_id);
CREATE INDEX review_items_expiry ON review_items(expires_at);
CREATE TABLE review_thumbnails(
    item_id TEXT NOT NULL, rank INTEGER NOT NULL, jpeg BLOB NOT NULL, PRIMARY KEY(item_id, rank)
) WITHOUT ROWID;
CREATE TABLE review_decisions(
    item_id TEXT NOT NULL,
    source TEXT NOT NULL,
    track_id INTEGER NOT NULL,
    action TEXT NOT NULL,
    person TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    reason TEXT,
    decided_at REAL NOT NULL
);
CREATE INDEX review_decisions_by_item ON review_decisions(item_id);
CREATE INDEX review_decisions_by_track ON review_decisions(source, track_id);
CREATE TABLE unknown_people(
    unknown_id TEXT PRIMARY KEY,
    number INTEGER NOT NULL UNIQUE,
    collection_id TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    seen INTEGER NOT NULL,
    cameras TEXT NOT NULL,
    expires_at REAL NOT NULL,
    named_user TEXT
);
CREATE INDEX unknown_people_by_collection ON unknown_people(collection_id, last_seen);
CREATE TABLE unknown_faces(
    face_id TEXT PRIMARY KEY,
    unknown_id TEXT NOT NULL,
    collection_id TEXT NOT NULL,
    source TEXT NOT NULL,
    camera TEXT NOT NULL,
    track_id INTEGER NOT NULL,
    seen_at REAL NOT NULL,
    vector BLOB NOT NULL,
    quality REAL,
    weight REAL NOT NULL,
    thumbnail BLOB,
    expires_at REAL NOT NULL
);
CREATE INDEX unknown_faces_by_person ON unknown_faces(unknown_id);
CREATE INDEX unknown_faces_expiry ON unknown_faces(expires_at);
ALTER TABLE sightings ADD COLUMN confirmed_by TEXT
"""

# The dashboard (service/ui): sign-in sessions (the token's SHA-256, never the token; a key's deletion ends
# its sessions at once, by trigger) and a small JPEG per indexed face, keyed like the face and deleted with it
# (a collection's deletion deletes its faces row by row, so the trigger covers that too). A collection listed
# in ``thumbnail_opt_out`` was created without thumbnails: none is ever stored for it. IF NOT EXISTS: harmless
# to run again over a file whose version number was set back.
_UI_RECORDS = """
CREATE TABLE IF NOT EXISTS ui_sessions(
    token_hash TEXT PRIMARY KEY,
    access_key_id TEXT NOT NULL,
    csrf TEXT NOT NULL,
    purpose TEXT,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ui_sessions_by_key ON ui_sessions(access_key_id);
CREATE TRIGGER IF NOT EXISTS ui_sessions_key_gone AFTER DELETE ON access_keys
BEGIN DELETE FROM ui_sessions WHERE access_key_id = old.access_key_id; END;
CREATE TABLE IF NOT EXISTS face_thumbnails(cid INTEGER NOT NULL, face_id TEXT NOT NULL, jpeg BLOB NOT NULL,
    PRIMARY KEY(cid, face_id)) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS face_thumbnails_face_gone AFTER DELETE ON faces
BEGIN DELETE FROM face_thumbnails WHERE cid = old.cid AND face_id = old.face_id; END;
CREATE TABLE IF NOT EXISTS thumbnail_opt_out(cid INTEGER PRIMARY KEY);
CREATE TRIGGER IF NOT EXISTS thumbnail_opt_out_gone AFTER DELETE ON collections
BEGIN DELETE FROM thumbnail_opt_out WHERE cid = old.cid; END;
"""

# The change log of every collection's faces (``sqlite_index``): a row per face added, deleted or moved to
# another user, stamped with the collection's generation *before* the transaction's bump (writers bump after
# their face statements), so an index snapshot of generation G replays the rows stamped ≥ G - 1 (replaying one
# generation too many is harmless). Filled by triggers, so no writer can forget it; pruned by the owner of the
# snapshots, which records in ``vector_changes_floor`` below which generation rows are gone.
_VECTOR_CHANGES = """
CREATE TABLE IF NOT EXISTS vector_changes(seq INTEGER PRIMARY KEY AUTOINCREMENT, cid INTEGER NOT NULL,
    face_id TEXT NOT NULL, generation INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS vector_changes_by_collection ON vector_changes(cid, generation);
CREATE TABLE IF NOT EXISTS vector_changes_floor(cid INTEGER PRIMARY KEY, generation INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS vector_changes_add AFTER INSERT ON faces BEGIN INSERT INTO vector_changes(cid,
    face_id, generation) VALUES (new.cid, new.face_id, (SELECT generation FROM collections WHERE cid = new.cid)); END;
CREATE TRIGGER IF NOT EXISTS vector_changes_delete AFTER DELETE ON faces BEGIN INSERT INTO vector_changes(cid,
    face_id, generation) VALUES (old.cid, old.face_id, COALESCE((SELECT generation FROM collections
    WHERE cid = old.cid), 0)); END;
CREATE TRIGGER IF NOT EXISTS vector_changes_user AFTER UPDATE OF user_id ON faces BEGIN INSERT INTO
    vector_changes(cid, face_id, generation) VALUES (new.cid, new.face_id, (SELECT generation FROM collections
    WHERE cid = new.cid)); END;
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration("collections, faces, vectors, users", _V1_BASE),
    Migration("audit chain in the database", _V2_AUDIT),
    Migration("keys, request tokens, video jobs, processors, sightings", _V3_RECORDS),
    # Each face's 0–100 quality, which picks its calibration band (NULL: unknown, the cautious band).
    Migration("face quality for calibration bands", "ALTER TABLE faces ADD COLUMN quality REAL"),
    Migration("review queue, unknown people, confirmed sightings", _REVIEW_UNKNOWNS),
    Migration("dashboard sessions, face thumbnails", _UI_RECORDS),
    # One row per image file indexed into a collection, by the sha256 of its bytes, written in the transaction
    # that adds its faces (also when none was indexed): a bulk import that was killed resumes by skipping them.
    Migration(
        "content hashes of indexed images",
        "CREATE TABLE IF NOT EXISTS indexed_images(cid INTEGER NOT NULL, content_hash TEXT NOT NULL, image_id TEXT,"
        " faces INTEGER NOT NULL, created_at REAL NOT NULL, PRIMARY KEY(cid, content_hash)) WITHOUT ROWID",
    ),  # What index snapshots replay at start-up instead of reading every vector (``sqlite_index``).
    Migration("change log of faces for index snapshots", _VECTOR_CHANGES),
)
"""Every schema step in order; append new steps at the end (one line each)."""

SCHEMA_VERSION = len(MIGRATIONS)


def _statements(sql: str) -> list[str]:
    """Split a step's SQL into statements; a trigger's ``BEGIN ... END;`` stays one statement."""
    out: list[str] = []
    pending = ""
    for part in sql.split(";"):
        pending = f"{pending};{part}" if pending else part
        if sqlite3.complete_statement(pending + ";"):
            if pending.strip():
                out.append(pending.strip())
            pending = ""
    if pending.strip():
        out.append(pending.strip())
    return out


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


def _make_private(path: Path) -> None:
    """Files of older versions were created 0644: take group and other access away (owner's files only)."""
    info = path.stat()
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO) and info.st_uid == os.getuid():
        path.chmod(0o600)
        for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            with contextlib.suppress(FileNotFoundError):
                extra.chmod(0o600)


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
            _make_private(path)
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
        """Create the schema in an empty file, or bring an older one up to date (``MIGRATIONS``). Checking
        only reads, so opening a current store (every CLI command does) never waits for another process's
        long write transaction."""
        if self._schema_version(self._writer) == SCHEMA_VERSION:
            return
        with self.transaction() as conn:
            version = self._schema_version(conn)  # again: another process may have migrated meanwhile
            for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
                try:
                    for statement in _statements(step.sql):
                        conn.execute(statement)
                except sqlite3.Error as exc:
                    raise StoreError(
                        f"upgrading {self.path} to schema {number} ({step.name}) failed: {exc}; nothing was changed"
                    ) from exc
            if version == 0:
                conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif version < SCHEMA_VERSION:
                conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        """The steps applied to the file (0: empty); refuses a foreign database or a newer facetrace's."""
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables:
            if tables:
                raise StoreError(f"{self.path} is an SQLite database, but not facetrace's")
            return 0
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None or not str(row[0]).isdigit() or int(row[0]) < 1:
            raise StoreError(f"{self.path} has no facetrace schema version")
        if int(row[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer facetrace (schema {row[0]}, this one reads {SCHEMA_VERSION});"
                " upgrade facetrace to open it"
            )
        return int(row[0])

    def check_writable(self) -> None:
        """Commit a tiny write (``meta.last_write_check``): ``StoreError`` when the database cannot take
        writes (read-only file or folder, full disk), which also means no audit record can be appended."""
        with translate("writing to the database", self.path), self.transaction() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('last_write_check', ?)", (repr(time.time()),))

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
