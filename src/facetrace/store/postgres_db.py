"""The PostgreSQL side of ``PostgresStore``: connections, transactions, schema migrations, error translation.

One database is shared by every facetrace server of a deployment, so this layer is where their writes meet:

- Durability: PostgreSQL's ``COMMIT`` returns after the WAL is flushed (``synchronous_commit`` on, its
  default), so an acknowledged write survives ``kill -9`` of the facetrace process and of PostgreSQL.
- Order: every transaction that appends to the change log (``changes``) or the audit chain (``audit``) takes
  one transaction-level advisory lock (``LOG_LOCK``) just before the append and holds it until ``COMMIT``.
  Sequence numbers are therefore given out in commit order with no gaps, which is what lets every server
  follow the change log with a plain ``seq > cursor`` query, and keeps the audit chain one chain however many
  servers append to it. The lock is taken after the transaction's own row work, so it is held for the append
  and the commit only, and a transaction holding it never waits for a row lock (no deadlock).
- Schema: numbered steps (``MIGRATIONS``) applied at open under another advisory lock, so two servers starting
  together do not race; a database written by a newer facetrace is refused.

Every ``psycopg`` error is turned into ``StoreError`` here (``translate``); passwords in URLs never reach a
message or a log line (``redact_url``).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from facetrace.errors import FacetraceError, NotFoundError, StoreError

__all__ = [
    "LOG_LOCK",
    "MIGRATIONS",
    "NOTIFY_CHANNEL",
    "SCHEMA_VERSION",
    "PgDatabase",
    "collection_row",
    "is_postgres_url",
    "lock_log",
    "redact_url",
    "translate",
]

log = logging.getLogger(__name__)

LOG_LOCK = 0x66_61_63_65  # "face": serialises appends to ``changes`` and ``audit`` (see the module docstring)
_MIGRATE_LOCK = 0x66_61_63_66
NOTIFY_CHANNEL = "facetrace_changes"

# Step n brings a database from schema n-1 to n. Add a step; never edit one that shipped.
# ``faces.vector`` holds the float32 little-endian bytes (kept bit for bit). ``faces.fid`` orders the rows by
# insertion so an index loads in one sequential pass. ``changes`` is the log the servers follow to keep their
# in-memory indexes in step (kind: add, delete, associate, disassociate, delete_user, drop). ``audit`` is the
# hash-chained audit trail (same rows as the embedded AuditLog: seq, canonical JSON payload, hash), append-only.
_V1 = """
CREATE TABLE facetrace_meta(key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE collections(
    cid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text COLLATE "C" NOT NULL UNIQUE,
    model text NOT NULL,
    dim integer,
    created_at double precision NOT NULL,
    face_count bigint NOT NULL DEFAULT 0
);
CREATE TABLE faces(
    fid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cid bigint NOT NULL REFERENCES collections(cid) ON DELETE CASCADE,
    face_id text COLLATE "C" NOT NULL,
    image_id text NOT NULL,
    external_image_id text,
    user_id text COLLATE "C",
    confidence double precision NOT NULL,
    bb_left double precision NOT NULL,
    bb_top double precision NOT NULL,
    bb_width double precision NOT NULL,
    bb_height double precision NOT NULL,
    created_at double precision NOT NULL,
    quality real,
    vector bytea NOT NULL,
    UNIQUE (cid, face_id)
);
CREATE INDEX faces_by_user ON faces(cid, user_id, face_id) WHERE user_id IS NOT NULL;
CREATE INDEX faces_load ON faces(cid, fid);
CREATE TABLE users(
    cid bigint NOT NULL REFERENCES collections(cid) ON DELETE CASCADE,
    user_id text COLLATE "C" NOT NULL,
    created_at double precision NOT NULL,
    PRIMARY KEY (cid, user_id)
);
CREATE TABLE changes(
    seq bigint PRIMARY KEY,
    cid bigint NOT NULL,
    kind text NOT NULL,
    face_ids text[] NOT NULL DEFAULT '{}',
    user_id text,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE audit(seq bigint PRIMARY KEY, payload text NOT NULL, hash text NOT NULL);
CREATE FUNCTION facetrace_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION facetrace_audit_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION facetrace_audit_append_only();
"""

# Step 2: the rest of the system of record (``postgres_records``), the same tables as SQLite's schema 3 so
# ``facetrace migrate`` copies them row for row: access keys, ClientRequestToken answers, video jobs (``owner``:
# the server instance running an IN_PROGRESS job) with the faces their results name, stream processors,
# sightings; and ``leases``: who runs what (``instance:<id>`` is a server's heartbeat, ``processor:<name>`` the
# one server running a stream processor), with expiry times from the database's clock.
_V2_RECORDS = """
CREATE TABLE access_keys(
    access_key_id text PRIMARY KEY,
    secret text NOT NULL,
    permission text NOT NULL,
    collections text,
    description text NOT NULL,
    created_at double precision NOT NULL
);
CREATE TABLE request_tokens(
    principal text NOT NULL,
    operation text NOT NULL,
    token text NOT NULL,
    fingerprint text NOT NULL,
    response text NOT NULL,
    created_at double precision NOT NULL,
    PRIMARY KEY (principal, operation, token)
);
CREATE INDEX request_tokens_by_age ON request_tokens(created_at);
CREATE TABLE video_jobs(
    job_id text PRIMARY KEY,
    kind text NOT NULL,
    video text NOT NULL,
    collection_id text,
    threshold double precision,
    job_tag text,
    camera text,
    status text NOT NULL,
    message text,
    created_at double precision NOT NULL,
    finished_at double precision,
    metadata text,
    results bytea,
    principal text NOT NULL,
    purpose text,
    request text,
    owner text
);
CREATE INDEX video_jobs_by_collection ON video_jobs(collection_id);
CREATE INDEX video_jobs_running ON video_jobs(owner) WHERE status = 'IN_PROGRESS';
CREATE TABLE video_job_faces(
    job_id text NOT NULL REFERENCES video_jobs(job_id) ON DELETE CASCADE,
    face_id text NOT NULL,
    PRIMARY KEY (face_id, job_id)
);
CREATE INDEX video_job_faces_by_job ON video_job_faces(job_id);
CREATE TABLE stream_processors(
    name text PRIMARY KEY,
    collection_id text NOT NULL,
    definition text NOT NULL,
    desired text NOT NULL,
    updated_at double precision NOT NULL
);
CREATE TABLE sightings(
    sighting_id text PRIMARY KEY,
    source text NOT NULL,
    camera text NOT NULL,
    track_id bigint NOT NULL,
    started_at double precision NOT NULL,
    ended_at double precision NOT NULL,
    start_stream_ms bigint NOT NULL,
    end_stream_ms bigint NOT NULL,
    face_id text,
    user_id text,
    external_image_id text,
    similarity double precision,
    box_left double precision, box_top double precision, box_width double precision, box_height double precision,
    snapshot bytea,
    expires_at double precision NOT NULL,
    collection_id text,
    UNIQUE (source, track_id)
);
CREATE INDEX sightings_face ON sightings(face_id, started_at);
CREATE INDEX sightings_user ON sightings(user_id, started_at);
CREATE INDEX sightings_external ON sightings(external_image_id, started_at);
CREATE INDEX sightings_expiry ON sightings(expires_at);
CREATE INDEX sightings_collection ON sightings(collection_id, user_id);
CREATE TABLE leases(
    resource text PRIMARY KEY,
    owner text NOT NULL,
    expires_at double precision NOT NULL
);
CREATE INDEX leases_by_owner ON leases(owner);
"""

# The human in the loop (``facetrace.review``), as step 5 of the SQLite list: the review queue, every reviewer's
# answer, groups of unidentified faces, and who confirmed a sighting.
_V3_REVIEW_UNKNOWNS = """
CREATE TABLE review_items(
    item_id text PRIMARY KEY,
    collection_id text NOT NULL,
    source text NOT NULL,
    camera text NOT NULL,
    track_id bigint NOT NULL,
    started_at double precision NOT NULL,
    ended_at double precision NOT NULL,
    start_stream_ms bigint NOT NULL,
    end_stream_ms bigint NOT NULL,
    box_left double precision, box_top double precision, box_width double precision, box_height double precision,
    candidates text NOT NULL,
    review_threshold double precision NOT NULL,
    match_threshold double precision NOT NULL,
    template_quality double precision,
    vector bytea,
    vector_quality double precision,
    vector_confidence double precision,
    created_at double precision NOT NULL,
    expires_at double precision NOT NULL,
    status text NOT NULL,
    decided_at double precision,
    decided_by text,
    confirmed_person text,
    sighting_id text,
    enrolled_face_id text
);
CREATE INDEX review_items_by_status ON review_items(status, created_at);
CREATE INDEX review_items_by_track ON review_items(source, track_id);
CREATE INDEX review_items_by_collection ON review_items(collection_id);
CREATE INDEX review_items_expiry ON review_items(expires_at);
CREATE TABLE review_thumbnails(
    item_id text NOT NULL, rank integer NOT NULL, jpeg bytea NOT NULL, PRIMARY KEY(item_id, rank)
);
CREATE TABLE review_decisions(
    item_id text NOT NULL,
    source text NOT NULL,
    track_id bigint NOT NULL,
    action text NOT NULL,
    person text NOT NULL,
    reviewer text NOT NULL,
    reason text,
    decided_at double precision NOT NULL
);
CREATE INDEX review_decisions_by_item ON review_decisions(item_id);
CREATE INDEX review_decisions_by_track ON review_decisions(source, track_id);
CREATE TABLE unknown_people(
    unknown_id text PRIMARY KEY,
    number bigint NOT NULL UNIQUE,
    collection_id text NOT NULL,
    first_seen double precision NOT NULL,
    last_seen double precision NOT NULL,
    seen bigint NOT NULL,
    cameras text NOT NULL,
    expires_at double precision NOT NULL,
    named_user text
);
CREATE INDEX unknown_people_by_collection ON unknown_people(collection_id, last_seen);
CREATE TABLE unknown_faces(
    face_id text PRIMARY KEY,
    unknown_id text NOT NULL,
    collection_id text NOT NULL,
    source text NOT NULL,
    camera text NOT NULL,
    track_id bigint NOT NULL,
    seen_at double precision NOT NULL,
    vector bytea NOT NULL,
    quality double precision,
    weight double precision NOT NULL,
    thumbnail bytea,
    expires_at double precision NOT NULL
);
CREATE INDEX unknown_faces_by_person ON unknown_faces(unknown_id);
CREATE INDEX unknown_faces_expiry ON unknown_faces(expires_at);
ALTER TABLE sightings ADD COLUMN confirmed_by text;
"""

# Step 4: the dashboard's records (``store/ui_records.py``), as in SQLite: sessions (only the token's SHA-256),
# ended with their key by a foreign key; a thumbnail per face, deleted with the face (and so with its
# collection); collections created without thumbnails.
_V4_UI = """
CREATE TABLE ui_sessions(
    token_hash text PRIMARY KEY,
    access_key_id text NOT NULL REFERENCES access_keys(access_key_id) ON DELETE CASCADE,
    csrf text NOT NULL,
    purpose text,
    created_at double precision NOT NULL,
    expires_at double precision NOT NULL
);
CREATE INDEX ui_sessions_by_key ON ui_sessions(access_key_id);
CREATE TABLE face_thumbnails(
    cid bigint NOT NULL,
    face_id text COLLATE "C" NOT NULL,
    jpeg bytea NOT NULL,
    PRIMARY KEY (cid, face_id),
    FOREIGN KEY (cid, face_id) REFERENCES faces(cid, face_id) ON DELETE CASCADE
);
CREATE TABLE thumbnail_opt_out(cid bigint PRIMARY KEY REFERENCES collections(cid) ON DELETE CASCADE);
"""

_V5_STREAM_EVENTS = """
CREATE TABLE stream_events(
    event_id bigserial PRIMARY KEY,
    processor text NOT NULL,
    kind text NOT NULL,
    track_id bigint NOT NULL,
    at_ms bigint NOT NULL,
    wall_time double precision NOT NULL,
    node text NOT NULL DEFAULT '',
    payload text NOT NULL,
    done boolean NOT NULL DEFAULT false,
    UNIQUE (processor, kind, track_id, at_ms)
);
CREATE INDEX stream_events_by_processor ON stream_events(processor, event_id);
CREATE INDEX stream_events_by_time ON stream_events(wall_time);
"""
"""Stream processors on Ray (``cluster/processors.py``): every event an actor emits, claimed once by its key
(processor, type, track, stream time) before it is audited, so a write retried after an actor restart or a
dropped connection is not made twice; ``done`` once audited, which is when servers relay it to ``/events``."""

# One row per image file indexed into a collection, by the sha256 of its bytes, written in the transaction that
# adds its faces (also when none was indexed): a bulk import that was killed resumes by skipping them.
_V6_INDEXED_IMAGES = """
CREATE TABLE IF NOT EXISTS indexed_images(
    cid bigint NOT NULL REFERENCES collections(cid) ON DELETE CASCADE,
    content_hash text COLLATE "C" NOT NULL,
    image_id text,
    faces integer NOT NULL,
    created_at double precision NOT NULL,
    PRIMARY KEY (cid, content_hash)
);
"""

MIGRATIONS: tuple[str, ...] = (
    _V1,
    _V2_RECORDS,
    _V3_REVIEW_UNKNOWNS,
    _V4_UI,
    _V5_STREAM_EVENTS,
    _V6_INDEXED_IMAGES,
)
SCHEMA_VERSION = len(MIGRATIONS)

_URL_PASSWORD = re.compile(r"(?P<head>[a-z]+://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)
_PARAM_PASSWORD = re.compile(r"(?P<head>password\s*=\s*)('[^']*'|[^\s&]*)", re.IGNORECASE)


def is_postgres_url(url: str | None) -> bool:
    return url is not None and url.lower().startswith(("postgresql://", "postgres://"))


def redact_url(text: str) -> str:
    """``text`` with every password in a URL (``user:secret@``) or ``password=`` parameter replaced by ***."""
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}***@", text)
    return _PARAM_PASSWORD.sub(lambda m: f"{m.group('head')}***", text)


def _reason(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    return redact_url(
        str(primary or exc).strip().splitlines()[0] if str(primary or exc).strip() else type(exc).__name__
    )


@contextlib.contextmanager
def translate(action: str) -> Iterator[None]:
    """Turn psycopg errors raised while doing ``action`` into ``StoreError`` (keeping the cause, never a password)."""
    try:
        yield
    except FacetraceError:
        raise
    except PoolTimeout as exc:
        raise StoreError(f"{action} failed: the database is unreachable or all connections are busy") from exc
    except psycopg.Error as exc:
        raise StoreError(f"{action} failed: {_reason(exc)}") from exc
    except OSError as exc:
        raise StoreError(f"{action} failed: {exc.strerror or exc}") from exc


def lock_log(conn: psycopg.Connection[Any]) -> None:
    """Take the change-log / audit-chain lock for the rest of the transaction (see the module docstring)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOG_LOCK,))


def collection_row(
    conn: psycopg.Connection[Any], collection_id: str, lock: str = ""
) -> tuple[int, str, int | None]:
    """(cid, model, dim) of a collection, or ``NotFoundError``. ``lock``: "" or a row-lock clause such as
    ``FOR KEY SHARE`` (the collection cannot be deleted meanwhile) or ``FOR NO KEY UPDATE`` (one at a time)."""
    row = conn.execute(
        f"SELECT cid, model, dim FROM collections WHERE name=%s {lock}",  # noqa: S608 (fixed clauses)
        (collection_id,),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"collection {collection_id!r} does not exist")
    return int(row[0]), str(row[1]), None if row[2] is None else int(row[2])


class PgDatabase:
    """A connection pool over one PostgreSQL database holding a facetrace schema (created or upgraded at open)."""

    def __init__(self, url: str, *, max_connections: int = 16, timeout: float = 30.0) -> None:
        self.url = url
        self.safe_url = redact_url(url)
        self._closed = False
        self._close_lock = threading.Lock()
        with translate(f"connecting to {self.safe_url}"):
            # A direct first connection gives a clear reason (bad password, no such database) where a pool
            # would only time out.
            with psycopg.connect(url, connect_timeout=max(1, int(timeout))) as conn:
                self._migrate(conn)
            self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                url,
                min_size=1,
                max_size=max_connections,
                timeout=timeout,
                open=False,
                name="facetrace",
                # Autocommit: a one-statement read is one round trip (no BEGIN/COMMIT around it); writes and
                # snapshot reads open their transaction explicitly (``transaction``).
                kwargs={"connect_timeout": max(1, int(timeout)), "autocommit": True},
            )
            self._pool.open(wait=True, timeout=timeout)

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
            version = self._version(conn)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the database {self.safe_url} was written by a newer facetrace "
                    f"(schema {version}, this one reads {SCHEMA_VERSION})"
                )
            for step in range(version, SCHEMA_VERSION):
                conn.execute(MIGRATIONS[step])  # several statements, no parameters
                log.info("database schema upgraded to version %d", step + 1)
            if version < SCHEMA_VERSION:
                conn.execute(
                    "INSERT INTO facetrace_meta VALUES ('schema_version', %s)"
                    " ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                    (str(SCHEMA_VERSION),),
                )

    def _version(self, conn: psycopg.Connection[Any]) -> int:
        """The schema version in the database, 0 for an empty one; ``StoreError`` for somebody else's tables."""
        if conn.execute("SELECT to_regclass('facetrace_meta')").fetchone() == (None,):
            theirs = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = ANY(current_schemas(false))"
                " AND tablename IN ('collections', 'faces', 'users', 'changes', 'audit')"
            ).fetchone()
            if theirs is not None and theirs[0]:
                raise StoreError(
                    f"the database {self.safe_url} has tables named like facetrace's, but not its schema"
                )
            return 0
        row = conn.execute("SELECT value FROM facetrace_meta WHERE key='schema_version'").fetchone()
        if row is None or not str(row[0]).isdigit():
            raise StoreError(f"the database {self.safe_url} has no facetrace schema version")
        return int(row[0])

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    def check_open(self) -> None:
        """``StoreError`` once the store is closed (for helpers that open connections of their own)."""
        self._check_open()

    @contextlib.contextmanager
    def transaction(
        self, action: str, *, snapshot: bool = False, pipeline: bool = False
    ) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection in one transaction, committed if the block finishes without error.

        ``snapshot``: every statement in the block sees one committed state (REPEATABLE READ).
        ``pipeline``: statements are sent without waiting for each other's results until one is fetched, so
        BEGIN travels with the first statement and COMMIT with the last (no COPY in such a block).
        Errors inside the block are translated (``translate``) with ``action`` in the message.
        """
        self._check_open()
        with (
            translate(action),
            self._pool.connection() as conn,
            conn.pipeline() if pipeline else contextlib.nullcontext(),
            conn.transaction(),
        ):
            if snapshot:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield conn

    @contextlib.contextmanager
    def read(self, action: str) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection outside any transaction: each statement sees the latest committed state.
        For reads of one statement, or whose statements need not agree (else ``transaction(snapshot=True)``)."""
        self._check_open()
        with translate(action), self._pool.connection() as conn:
            yield conn

    def check_connections(self) -> None:
        """Test the idle pooled connections and replace the broken ones (after the database restarted or
        failed over: the follower calls this when its own connection broke, so requests do not meet them)."""
        self._check_open()
        with translate("checking the database connections"):
            self._pool.check()

    def connect(self) -> psycopg.Connection[Any]:
        """A dedicated autocommit connection (for LISTEN); the caller closes it."""
        self._check_open()
        return psycopg.connect(self.url, autocommit=True, connect_timeout=10)

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._pool.close()
