"""Versioned schema: a database written by the first facetrace (schema 1) is upgraded at open with its data
intact, a newer one is refused, a failing step changes nothing, and the files are private."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest

from facetrace.audit import AuditEvent
from facetrace.errors import StoreError
from facetrace.store import SQLiteStore, open_store, sqlite_db
from facetrace.store.sqlite_db import MIGRATIONS, SCHEMA_VERSION, Migration

# The schema exactly as facetrace wrote it before versioned migrations (schema_version 1), copied here on
# purpose: the test must keep describing the old files even if the first step were ever edited.
V1_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE collections(
    cid INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, model TEXT NOT NULL, dim INTEGER,
    created_at REAL NOT NULL, face_count INTEGER NOT NULL DEFAULT 0, generation INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE faces(
    fid INTEGER PRIMARY KEY, cid INTEGER NOT NULL, face_id TEXT NOT NULL, image_id TEXT NOT NULL,
    external_image_id TEXT, user_id TEXT, confidence REAL NOT NULL, bb_left REAL NOT NULL, bb_top REAL NOT NULL,
    bb_width REAL NOT NULL, bb_height REAL NOT NULL, created_at REAL NOT NULL
);
CREATE UNIQUE INDEX faces_by_id ON faces(cid, face_id);
CREATE INDEX faces_by_user ON faces(cid, user_id, face_id) WHERE user_id IS NOT NULL;
CREATE INDEX faces_load ON faces(cid, fid, face_id, user_id);
CREATE TABLE vectors(fid INTEGER PRIMARY KEY, cid INTEGER NOT NULL, vector BLOB NOT NULL);
CREATE INDEX vectors_by_collection ON vectors(cid, fid);
CREATE TABLE users(
    cid INTEGER NOT NULL, user_id TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY(cid, user_id)
) WITHOUT ROWID;
INSERT INTO meta VALUES ('schema_version', '1');
"""

FACE_ID = "11111111-2222-3333-4444-555555555555"


def _v1_database(path: Path) -> np.ndarray:
    """A schema-1 file with one collection, one user and one face (mode 0644 as the old code left it)."""
    vector = np.random.default_rng(7).standard_normal(128).astype(np.float32)
    vector /= np.linalg.norm(vector)
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.execute(
        "INSERT INTO collections(cid, name, model, dim, created_at, face_count) VALUES (1, 'old', 'sface-2021dec', 128, 1.0, 1)"
    )
    db.execute("INSERT INTO users VALUES (1, 'ann', 2.0)")
    db.execute(
        "INSERT INTO faces VALUES (1, 1, ?, 'img-1', 'ann.jpg', 'ann', 99.0, 0.1, 0.2, 0.3, 0.4, 3.0)", (FACE_ID,)
    )
    db.execute("INSERT INTO vectors VALUES (1, 1, ?)", (vector.astype("<f4").tobytes(),))
    db.commit()
    db.close()
    os.chmod(path, 0o644)
    return vector


def _version(path: Path) -> int:
    db = sqlite3.connect(path)
    (value,) = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    db.close()
    return int(value)


def test_a_v1_database_is_upgraded_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "facetrace.db"
    vector = _v1_database(path)
    store = SQLiteStore(path)
    assert _version(path) == SCHEMA_VERSION == len(MIGRATIONS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    info = store.describe_collection("old")
    assert (info.face_count, info.user_count) == (1, 1)
    face = store.get_faces("old", [FACE_ID])[0]
    assert (face.user_id, face.external_image_id, face.created_at) == ("ann", "ann.jpg", 3.0)
    hit = store.search("old", vector, limit=1, min_cosine=0.99)[0]
    assert hit.face.face_id == FACE_ID
    store.create_user("old", "bob", audit=AuditEvent("CreateUser", "local"))  # and the new parts work
    assert [r.event.operation for r in store.audit.records()] == ["CreateUser"]
    store.close()
    assert _version(path) == SCHEMA_VERSION  # reopening a current file changes nothing
    SQLiteStore(path).close()


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "facetrace.db"
    SQLiteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer facetrace"):
        SQLiteStore(path)


def test_a_failing_step_leaves_the_old_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "facetrace.db"
    _v1_database(path)
    broken = (*MIGRATIONS, Migration("broken step", "CREATE TABLE extra(x INTEGER); SELECT * FROM no_such_table"))
    monkeypatch.setattr(sqlite_db, "MIGRATIONS", broken)
    monkeypatch.setattr(sqlite_db, "SCHEMA_VERSION", len(broken))
    with pytest.raises(StoreError, match=f"schema {len(broken)} \\(broken step\\)"):
        SQLiteStore(path)
    assert _version(path) == 1  # all steps in one transaction: none of them stayed
    db = sqlite3.connect(path)
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    assert "audit" not in tables
    assert "extra" not in tables


def test_home_folders_are_private(tmp_path: Path) -> None:
    from facetrace.home import private_dir

    home = tmp_path / "home"
    open_store(home).close()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "facetrace.db").stat().st_mode) == 0o600
    old = home / "images"
    old.mkdir(mode=0o755)
    os.chmod(old, 0o755)
    assert stat.S_IMODE(private_dir(old).stat().st_mode) == 0o700
