"""``facetrace migrate``: copy an embedded home (SQLite) into an empty PostgreSQL database, then check the copy.

What is copied: every collection (name, model, dimension, creation time), every face with its metadata and
its vector bytes unchanged, every user, the audit chain record for record (seq, payload and hash
verbatim, so the chain and its head hash stay the same and a head saved before the move still verifies),
and the rest of the system of record row for row (``RECORD_TABLES``: access keys, so the same keys work on
every server; ClientRequestToken answers; video jobs with the faces their results name; stream processors;
sightings with their snapshots). The dashboard's face thumbnails go with their faces (they are keyed by the
collection's internal id, which differs on the target, so they are copied per collection, not row for row),
and a collection created without thumbnails stays so. Dashboard sessions are deliberately left behind: they
are bearer credentials of a moment, and a move with every server stopped only asks operators to sign in again. A home whose older separate files (``keys.json``, ``video/*.db``) were not
yet imported is refused: opening it once with this facetrace imports them.

The source is only read: the SQLite files are opened read-only (``mode=ro``), in one snapshot each, so a
server still writing to the home cannot tear the copy (what it writes afterwards is not copied: stop it
first). The target must be empty (no collection, no audit record), and everything is written in ONE
PostgreSQL transaction: a failed copy leaves the target as it was. After COMMIT the copy is read back and
compared: faces and users per collection, a SHA-256 over every vector in order, the audit chain (verified,
same count, same head), and the rows of every record table (same count; access keys: the same ids).
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facetrace.audit import GENESIS_HASH, load_audit_key, verify_rows
from facetrace.errors import ConflictError, NotFoundError, StoreError
from facetrace.store.postgres_audit import PostgresAuditTrail, copy_records
from facetrace.store.postgres_db import PgDatabase, translate

__all__ = ["RECORD_TABLES", "CollectionCopy", "MigrationReport", "migrate_home"]

_CHUNK = 5000
_AUDIT_FILE = "audit.db"

RECORD_TABLES: tuple[tuple[str, str], ...] = (
    ("access_keys", "access_key_id, secret, permission, collections, description, created_at"),
    ("request_tokens", "principal, operation, token, fingerprint, response, created_at"),
    ("video_jobs", "job_id, kind, video, collection_id, threshold, job_tag, camera, status, message, created_at,"
                   " finished_at, metadata, results, principal, purpose, request"),
    ("video_job_faces", "job_id, face_id"),
    ("stream_processors", "name, collection_id, definition, desired, updated_at"),
    ("sightings", "sighting_id, source, camera, track_id, started_at, ended_at, start_stream_ms, end_stream_ms,"
                  " face_id, user_id, external_image_id, similarity, box_left, box_top, box_width, box_height,"
                  " snapshot, expires_at, collection_id, confirmed_by"),
    ("review_items", "item_id, collection_id, source, camera, track_id, started_at, ended_at, start_stream_ms,"
                     " end_stream_ms, box_left, box_top, box_width, box_height, candidates, review_threshold,"
                     " match_threshold, template_quality, vector, vector_quality, vector_confidence, created_at,"
                     " expires_at, status, decided_at, decided_by, confirmed_person, sighting_id, enrolled_face_id"),
    ("review_thumbnails", "item_id, rank, jpeg"),
    ("review_decisions", "item_id, source, track_id, action, person, reviewer, reason, decided_at"),
    ("unknown_people", "unknown_id, number, collection_id, first_seen, last_seen, seen, cameras, expires_at,"
                       " named_user"),
    ("unknown_faces", "face_id, unknown_id, collection_id, source, camera, track_id, seen_at, vector, quality,"
                      " weight, thumbnail, expires_at"),
)  # fmt: skip
"""The tables of ``store/records.py`` (the same columns on both backends), in an order that keeps foreign keys
valid; ``video_jobs.owner`` (PostgreSQL only) stays NULL: no server runs a copied job."""
_NOT_IMPORTED = ("keys.json", "video/processors.db", "video/jobs.db", "video/sightings.db")


@dataclass(frozen=True, slots=True)
class CollectionCopy:
    collection_id: str
    faces: int
    users: int
    vectors_sha256: str  # over every vector's bytes in insertion order, equal on both sides
    thumbnails: int = 0  # dashboard face thumbnails copied with the faces


@dataclass(frozen=True, slots=True)
class MigrationReport:
    target: str  # the URL with its password masked
    collections: tuple[CollectionCopy, ...]
    audit_records: int
    audit_head: str
    records: tuple[tuple[str, int], ...] = ()  # (table, rows copied) for RECORD_TABLES


@contextlib.contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only SQLite connection in one snapshot (the source is never written)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path} read-only: {exc}") from exc
    try:
        conn.execute("BEGIN")
        yield conn
    except sqlite3.Error as exc:
        raise StoreError(f"reading {path} failed: {exc}") from exc
    finally:
        conn.close()


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")}


def _audit_source(home: Path, db: sqlite3.Connection) -> Path | None:
    """Where the home's audit chain is: a table in facetrace.db (newer homes) or audit.db beside it."""
    if "audit" in {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}:
        return home / "facetrace.db"
    return home / _AUDIT_FILE if (home / _AUDIT_FILE).exists() else None


def _ensure_empty(conn: Any, safe_url: str) -> None:
    counts = conn.execute("SELECT (SELECT count(*) FROM collections), (SELECT count(*) FROM audit)").fetchone()
    if counts is not None and (counts[0] or counts[1]):
        raise ConflictError(
            f"the target {safe_url} is not empty ({counts[0]} collections, {counts[1]} audit records); "
            "migrate only into a new database"
        )
    for table, _ in RECORD_TABLES:
        row = conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()  # noqa: S608 (fixed names)
        if row is not None and row[0]:
            raise ConflictError(
                f"the target {safe_url} is not empty (it has {table}); migrate only into a new database"
            )


def _ensure_imported(home: Path) -> None:
    """The older separate files of a home are imported when the home is opened; migrate only reads, so it
    asks for that first rather than leave their keys, jobs or sightings behind."""
    left = [name for name in _NOT_IMPORTED if (home / name).exists()]
    if left:
        raise ConflictError(
            f"{home} still has files of an older facetrace ({', '.join(left)}); open it once with this version "
            f"(e.g. `facetrace keys list --home {home}`) to import them, then migrate"
        )


def _copy_records(src: sqlite3.Connection, dst: Any) -> tuple[tuple[str, int], ...]:
    """Every row of the record tables, copied as it is (a source without them, schema < 3, has none)."""
    present = {str(r[0]) for r in src.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    copied = []
    for table, columns in RECORD_TABLES:
        count = 0
        if table in present:
            rows = src.execute(f"SELECT {columns} FROM {table}")  # noqa: S608 (fixed names)
            with dst.cursor() as cur, cur.copy(f"COPY {table}({columns}) FROM STDIN") as copy:
                while chunk := rows.fetchmany(_CHUNK):
                    for row in chunk:
                        copy.write_row(row)
                    count += len(chunk)
        copied.append((table, count))
    return tuple(copied)


def _check_records(db: PgDatabase, src: sqlite3.Connection, expected: tuple[tuple[str, int], ...]) -> None:
    with db.transaction("checking the copy", snapshot=True) as conn:
        for table, count in expected:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608 (fixed names)
            if row is None or int(row[0]) != count:
                raise StoreError(
                    f"check failed: {table} has {row and row[0]} rows in the target, {count} in the source"
                )
        keys = {str(r[0]) for r in conn.execute("SELECT access_key_id FROM access_keys")}
    present = {str(r[0]) for r in src.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    source_keys = (
        {str(r[0]) for r in src.execute("SELECT access_key_id FROM access_keys")}
        if "access_keys" in present
        else set()
    )
    if keys != source_keys:
        raise StoreError("check failed: the access keys in the target differ from the source")


def _copy_collection(src: sqlite3.Connection, dst: Any, row: tuple[Any, ...], quality: bool) -> CollectionCopy:
    cid, name, model, dim, created = row
    new = dst.execute(
        "INSERT INTO collections(name, model, dim, created_at) VALUES (%s, %s, %s, %s) RETURNING cid",
        (name, model, dim, created),
    ).fetchone()[0]
    digest = hashlib.sha256()
    faces = 0
    quality_column = "f.quality" if quality else "NULL"
    rows = src.execute(
        "SELECT f.face_id, f.image_id, f.external_image_id, f.user_id, f.confidence, f.bb_left, f.bb_top,"  # noqa: S608 (fixed names)
        f" f.bb_width, f.bb_height, f.created_at, {quality_column}, v.vector"
        " FROM faces f JOIN vectors v ON v.fid=f.fid WHERE f.cid=? ORDER BY f.fid",
        (cid,),
    )
    with (
        dst.cursor() as cur,
        cur.copy(
            "COPY faces(cid, face_id, image_id, external_image_id, user_id, confidence, bb_left, bb_top, bb_width,"
            " bb_height, created_at, quality, vector) FROM STDIN"
        ) as copy,
    ):
        while chunk := rows.fetchmany(_CHUNK):
            for face in chunk:
                vector = bytes(face[11])
                digest.update(vector)
                copy.write_row((new, *face[:11], vector))
            faces += len(chunk)
    dst.execute("UPDATE collections SET face_count=%s WHERE cid=%s", (faces, new))
    users = src.execute("SELECT user_id, created_at FROM users WHERE cid=? ORDER BY user_id", (cid,)).fetchall()
    with dst.cursor() as cur:
        cur.executemany(
            "INSERT INTO users(cid, user_id, created_at) VALUES (%s, %s, %s)", [(new, *u) for u in users]
        )
    if _columns(src, "indexed_images"):  # the content hashes of a resumable import go along
        hashes = src.execute(
            "SELECT content_hash, image_id, faces, created_at FROM indexed_images WHERE cid=?", (cid,)
        ).fetchall()
        with dst.cursor() as cur:
            cur.executemany(
                "INSERT INTO indexed_images(cid, content_hash, image_id, faces, created_at)"
                " VALUES (%s, %s, %s, %s, %s)",
                [(new, *h) for h in hashes],
            )
    thumbnails = _copy_thumbnails(src, dst, cid, new)
    return CollectionCopy(str(name), faces, len(users), digest.hexdigest(), thumbnails)


def _copy_thumbnails(src: sqlite3.Connection, dst: Any, cid: int, new: int) -> int:
    """The collection's face thumbnails under its new internal id, and its opt-out (a source older than the
    dashboard, schema < 4, has neither). Only thumbnails of faces that exist: the target's foreign key."""
    if not _columns(src, "face_thumbnails"):
        return 0
    if src.execute("SELECT 1 FROM thumbnail_opt_out WHERE cid=?", (cid,)).fetchone() is not None:
        dst.execute("INSERT INTO thumbnail_opt_out(cid) VALUES (%s)", (new,))
    rows = src.execute(
        "SELECT t.face_id, t.jpeg FROM face_thumbnails t JOIN faces f ON f.cid=t.cid AND f.face_id=t.face_id"
        " WHERE t.cid=?",
        (cid,),
    )
    count = 0
    with dst.cursor() as cur, cur.copy("COPY face_thumbnails(cid, face_id, jpeg) FROM STDIN") as copy:
        while chunk := rows.fetchmany(_CHUNK):
            for face_id, jpeg in chunk:
                copy.write_row((new, face_id, bytes(jpeg)))
            count += len(chunk)
    return count


def _check_copy(db: PgDatabase, expected: CollectionCopy) -> None:
    with db.transaction("checking the copy", snapshot=True) as conn:
        row = conn.execute(
            "SELECT cid, face_count, (SELECT count(*) FROM users u WHERE u.cid=c.cid),"
            " (SELECT count(*) FROM faces f WHERE f.cid=c.cid),"
            " (SELECT count(*) FROM face_thumbnails t WHERE t.cid=c.cid) FROM collections c WHERE name=%s",
            (expected.collection_id,),
        ).fetchone()
        if row is None:
            raise StoreError(f"check failed: collection {expected.collection_id!r} is missing in the target")
        cid, face_count, users, faces, thumbnails = (int(v) for v in row)
        if (face_count, faces, users, thumbnails) != (
            expected.faces, expected.faces, expected.users, expected.thumbnails,
        ):  # fmt: skip
            raise StoreError(
                f"check failed: {expected.collection_id!r} has {faces} faces, {users} users and {thumbnails} "
                f"thumbnails in the target, {expected.faces}, {expected.users} and {expected.thumbnails} in the "
                "source"
            )
        digest = hashlib.sha256()
        with conn.cursor(name="facetrace_check") as cur:
            cur.execute("SELECT vector FROM faces WHERE cid=%s ORDER BY fid", (cid,))
            while chunk := cur.fetchmany(_CHUNK):
                for (vector,) in chunk:
                    digest.update(bytes(vector))
        if digest.hexdigest() != expected.vectors_sha256:
            raise StoreError(f"check failed: the vectors of {expected.collection_id!r} differ from the source")


def migrate_home(home: Path, url: str) -> MigrationReport:
    """Copy the embedded store and audit chain of ``home`` into the empty PostgreSQL database at ``url``.

    ``NotFoundError`` if the home has no database; ``ConflictError`` if the target is not empty;
    ``StoreError`` if reading, writing or the final check fails (nothing is left half-copied).
    """
    source = home / "facetrace.db"
    if not source.is_file():
        raise NotFoundError(f"there is no facetrace database at {source}")
    _ensure_imported(home)
    target = PgDatabase(url, max_connections=2)
    try:
        with _read_only(source) as src:
            audit_path = _audit_source(home, src)
            quality = "quality" in _columns(src, "faces")
            collections = src.execute(
                "SELECT cid, name, model, dim, created_at FROM collections ORDER BY name"
            ).fetchall()
            with target.transaction(f"copying into {target.safe_url}") as dst:
                _ensure_empty(dst, target.safe_url)
                copies = tuple(_copy_collection(src, dst, tuple(row), quality) for row in collections)
                audit_count, audit_head = _copy_audit(audit_path, src, dst)
                records = _copy_records(src, dst)
            for copy in copies:
                _check_copy(target, copy)
            _check_records(target, src, records)
        result = PostgresAuditTrail(target).verify()
        if not result.ok or result.count != audit_count or result.head != audit_head:
            raise StoreError(
                f"check failed: the audit chain in the target has {result.count} records, head {result.head[:16]}"
                f" ({result.reason or 'ok'}); the source has {audit_count}, head {audit_head[:16]}"
            )
        return MigrationReport(target.safe_url, copies, audit_count, audit_head, records)
    finally:
        target.close()


def _copy_audit(path: Path | None, src: sqlite3.Connection, dst: Any) -> tuple[int, str]:
    """Check the source chain while copying it verbatim, in chunks (a long chain never sits in memory);
    returns (records, head hash). A broken chain is refused, and the transaction rolls back, rather than
    carried over as if it were whole."""
    if path is None:
        return 0, GENESIS_HASH
    if path.name == _AUDIT_FILE:
        with _read_only(path) as conn:
            rows = conn.execute("SELECT seq, payload, hash FROM audit ORDER BY seq").fetchall()
    else:
        rows = src.execute("SELECT seq, payload, hash FROM audit ORDER BY seq").fetchall()
    # keyed records are authenticated with the home's audit key (the PostgreSQL servers need the same key,
    # FACETRACE_AUDIT_KEY, to go on appending keyed records)
    checked = verify_rows(
        ((int(s), str(p), str(h)) for s, p, h in rows), key=load_audit_key(path.parent, create=False)
    )
    if not checked.ok:
        raise StoreError(f"the source audit log is broken at record {checked.broken_seq}: {checked.reason}")
    prev = checked.head
    with translate("copying the audit chain"):
        for start in range(0, len(rows), _CHUNK):
            copy_records(dst, [(int(s), str(p), str(h)) for s, p, h in rows[start : start + _CHUNK]])
    return len(rows), prev
