"""Backups restore to a working system of record: SQLite's online backup of a home that is in use, and
``pg_dump`` / ``pg_restore`` of a PostgreSQL database (docs/deploy.md, "Backups and restore").

A restored copy must hold every face with its vector bit for bit, every user, the records (keys) and an audit
chain that verifies to the same head as the original's.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest

from facetrace.audit import AuditEvent
from facetrace.store import FaceStore, SQLiteStore, records_of
from facetrace.store.records import KeyRecord
from tests.store.conftest import MODEL, faces_with_vectors


def _fill(store: FaceStore) -> list:
    """A collection with faces, a user and audited changes; returns the faces with their vectors."""
    faces = faces_with_vectors(40, seed=11)
    store.create_collection("people", MODEL, audit=AuditEvent("CreateCollection", "admin", "people"))
    store.add_faces("people", faces[:25], audit=AuditEvent("IndexFaces", "admin", "people"))
    store.add_faces("people", faces[25:], audit=AuditEvent("IndexFaces", "admin", "people"))
    store.create_user("people", "ann", audit=AuditEvent("CreateUser", "admin", "people"))
    store.associate_faces("people", "ann", [faces[0][0].face_id], audit=AuditEvent("AssociateFaces", "admin"))
    store.delete_faces("people", [faces[3][0].face_id], audit=AuditEvent("DeleteFaces", "admin", "people"))
    store.audit.record(AuditEvent("SearchFacesByImage", "reader", "people", match_count=1))
    records = records_of(store)
    assert records is not None
    records.keys.add(KeyRecord("FTBACKUPKEY", "s3cret", "read", None, "backup test", 1.0))
    return faces


def _same(original: FaceStore, restored: FaceStore, faces: list) -> None:
    assert restored.describe_collection("people").face_count == 39
    assert restored.list_faces("people", limit=100).items == original.list_faces("people", limit=100).items
    assert restored.list_users("people", limit=10).items == original.list_users("people", limit=10).items
    for record, vector in faces[:3] + faces[4:]:
        assert restored.get_vector("people", record.face_id).tobytes() == np.asarray(vector, np.float32).tobytes()
    hit = restored.search("people", faces[7][1], limit=1, min_cosine=0.99)
    assert hit[0].face.face_id == faces[7][0].face_id
    mine, theirs = original.audit.verify(), restored.audit.verify()
    assert mine.ok
    assert (theirs.ok, theirs.count, theirs.head) == (True, mine.count, mine.head)
    records = records_of(restored)
    assert records is not None
    key = records.keys.get("FTBACKUPKEY")
    assert key is not None
    assert key.secret == "s3cret"


def test_sqlite_online_backup_of_a_home_in_use_restores_everything(tmp_path: Path) -> None:
    home, restored_home = tmp_path / "home", tmp_path / "restored"
    home.mkdir()
    restored_home.mkdir()
    store = SQLiteStore(home / "facetrace.db")
    try:
        faces = _fill(store)
        # The store stays open (a running server): SQLite's backup API copies one consistent snapshot.
        with (
            sqlite3.connect(home / "facetrace.db") as source,
            sqlite3.connect(restored_home / "facetrace.db") as copy,
        ):
            source.backup(copy)
        # The audit key lives beside the database, apart from it; a restore needs both (docs/deploy.md).
        for extra in home.glob("audit.key"):
            shutil.copy2(extra, restored_home / extra.name)
        restored = SQLiteStore(restored_home / "facetrace.db")
        try:
            _same(store, restored, faces)
        finally:
            restored.close()
    finally:
        store.close()


def _pg_tool(name: str) -> str:
    import pgserver

    tool = Path(pgserver.__file__).parent / "pginstall" / "bin" / name
    if tool.exists():
        return str(tool)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not available (neither in pgserver nor on PATH)")
    return found


def test_pg_dump_and_pg_restore_restore_everything(pg_url: str, postgres_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from facetrace.store.postgres import PostgresStore

    store = PostgresStore(pg_url, listen=False)
    try:
        faces = _fill(store)
        dump = tmp_path / "facetrace.dump"
        subprocess.run(
            [_pg_tool("pg_dump"), "--format=custom", f"--file={dump}", pg_url],
            check=True,
            capture_output=True,
            timeout=120,
        )
        target = postgres_server.create_database()
        subprocess.run(
            [_pg_tool("pg_restore"), "--no-owner", f"--dbname={target}", str(dump)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        restored = PostgresStore(target, listen=False)
        try:
            _same(store, restored, faces)
        finally:
            restored.close()
    finally:
        store.close()
