"""Bring the separate files of facetrace before schema 3 into the home's database, once, at open.

- ``audit.db``: verified, copied row for row, renamed ``audit.db.imported`` (``SQLiteAuditTrail.import_file``).
- ``keys.json``: keys not yet in ``access_keys`` are added; the file (it holds secrets) is then deleted.
- ``video/processors.db``, ``video/jobs.db``, ``video/sightings.db``: rows copied into ``stream_processors``,
  ``video_jobs`` and ``sightings`` (existing rows win), each file renamed ``*.imported``. Old jobs and
  sightings did not record who started them or which collection they searched: imported jobs name the
  principal ``unknown``, and sightings take the collection of the processor or job that made them when it is
  known.

Each file is imported in one transaction and renamed only after it committed, so an interrupted import is
simply done again at the next open (rows already there are skipped).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import zlib
from pathlib import Path
from typing import Any

from facetrace.errors import StoreError
from facetrace.store.sqlite import SQLiteStore
from facetrace.store.sqlite_db import translate

__all__ = ["LEGACY_FILES", "import_legacy_files"]

log = logging.getLogger(__name__)

LEGACY_FILES = ("audit.db", "keys.json", "video/processors.db", "video/jobs.db", "video/sightings.db")


def import_legacy_files(store: SQLiteStore, home: Path) -> None:
    """Import every old file found in ``home`` (see the module doc); ``StoreError`` when one cannot be."""
    store.audit.import_file(home / "audit.db")
    _import_keys(store, home / "keys.json")
    video = home / "video"
    if video.is_dir():
        _import_table(store, video / "processors.db", "processors", _processor_rows)
        _import_table(store, video / "jobs.db", "jobs", _job_rows)
        _import_table(store, video / "sightings.db", "sightings", _sighting_rows)
        with contextlib.suppress(OSError):
            video.chmod(0o700)  # what stays there (renamed files) is private too


def _import_keys(store: SQLiteStore, path: Path) -> None:
    if not path.is_file():
        return
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        rows = [_key_row(k) for k in raw.get("keys", [])]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StoreError(f"cannot import the access keys in {path}: {exc}; fix or move the file away") from None
    with translate(f"importing the access keys in {path}", path), store.database.transaction() as conn:
        conn.executemany("INSERT OR IGNORE INTO access_keys VALUES (?, ?, ?, ?, ?, ?)", rows)
    path.unlink()  # the secrets now live in the database only
    log.info("imported %d access key(s) from %s into the database", len(rows), path)


def _key_row(key: dict[str, Any]) -> tuple[object, ...]:
    collections = key.get("Collections")
    return (
        str(key["AccessKeyId"]),
        str(key["SecretAccessKey"]),
        str(key["Permission"]).lower(),
        None if collections is None else json.dumps([str(c) for c in collections]),
        str(key.get("Description", "")),
        float(key.get("CreatedAt", 0.0)),
    )


def _import_table(store: SQLiteStore, path: Path, table: str, convert: Any) -> None:
    if not path.is_file():
        return
    with translate(f"importing {path}", path):
        old = sqlite3.connect(path)
        try:
            names = {r[0] for r in old.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if table not in names:
                raise StoreError(f"{path} is not a facetrace {table} database; move it away to open this home")
            with store.database.transaction() as conn:
                count = convert(old, conn)
        finally:
            old.close()
    os.replace(path, path.with_name(path.name + ".imported"))
    for extra in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + extra).unlink()
    log.info("imported %d row(s) from %s into the database", count, path)


def _processor_rows(old: sqlite3.Connection, conn: sqlite3.Connection) -> int:
    count = 0
    for name, definition, desired, updated in old.execute(
        "SELECT name, definition, desired, updated_at FROM processors"
    ):
        try:
            collection = str(json.loads(definition)["face_search"]["collection_id"])
        except (ValueError, KeyError, TypeError):
            continue  # unreadable then, unreadable now
        conn.execute(
            "INSERT OR IGNORE INTO stream_processors VALUES (?, ?, ?, ?, ?)",
            (name, collection, definition, desired, updated),
        )
        count += 1
    return count


def _job_rows(old: sqlite3.Connection, conn: sqlite3.Connection) -> int:
    rows = old.execute(
        "SELECT job_id, kind, video, collection_id, threshold, job_tag, camera, status, message, created_at,"
        " finished_at, metadata, results FROM jobs"
    ).fetchall()
    for row in rows:
        conn.execute(
            "INSERT OR IGNORE INTO video_jobs(job_id, kind, video, collection_id, threshold, job_tag, camera,"
            " status, message, created_at, finished_at, metadata, results, principal)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'unknown')",
            row,
        )
        if row[12] is not None:
            with contextlib.suppress(ValueError, zlib.error):
                results = json.loads(zlib.decompress(row[12]).decode("utf-8"))
                faces = {m["Face"]["FaceId"] for item in results for m in item.get("FaceMatches", ())}
                conn.executemany(
                    "INSERT OR IGNORE INTO video_job_faces(job_id, face_id) VALUES (?, ?)",
                    [(row[0], face) for face in faces],
                )
    return len(rows)


def _sighting_rows(old: sqlite3.Connection, conn: sqlite3.Connection) -> int:
    rows = old.execute(
        "SELECT sighting_id, source, camera, track_id, started_at, ended_at, start_stream_ms, end_stream_ms,"
        " face_id, user_id, external_image_id, similarity, box_left, box_top, box_width, box_height, snapshot,"
        " expires_at FROM sightings"
    ).fetchall()
    for row in rows:
        conn.execute(
            "INSERT OR IGNORE INTO sightings (sighting_id, source, camera, track_id, started_at, ended_at,"
            " start_stream_ms, end_stream_ms, face_id, user_id, external_image_id, similarity, box_left, box_top,"
            " box_width, box_height, snapshot, expires_at, collection_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
            " COALESCE((SELECT collection_id FROM stream_processors WHERE name=?),"
            " (SELECT collection_id FROM video_jobs WHERE job_id=?)))",
            (*row, row[1], row[1]),
        )
    return len(rows)
