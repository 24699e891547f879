"""What only the SQLite store promises: persistence across reopen, clear errors on bad files, WAL settings,
and an in-memory index that stays equal to the database when other processes write."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest

from facetrace.errors import NotFoundError, StoreError
from facetrace.store import DB_FILENAME, SQLiteStore, open_store, sqlite_index
from facetrace.store.sqlite_db import MIGRATIONS, SCHEMA_VERSION
from tests.store.conftest import MODEL, faces_with_vectors, unit_vectors


def test_everything_survives_reopen(db_path: Path) -> None:
    faces = faces_with_vectors(30)
    store = SQLiteStore(db_path)
    store.create_collection("c", MODEL)
    store.add_faces("c", faces)
    store.create_user("c", "alice")
    store.associate_faces("c", "alice", [faces[3][0].face_id])
    store.delete_faces("c", [faces[0][0].face_id])
    before = (store.describe_collection("c"), store.list_faces("c", limit=100), store.list_users("c", limit=10))
    store.close()

    reopened = SQLiteStore(db_path)
    try:
        after = (
            reopened.describe_collection("c"),
            reopened.list_faces("c", limit=100),
            reopened.list_users("c", limit=10),
        )
        assert after == before
        np.testing.assert_array_equal(reopened.get_vector("c", faces[5][0].face_id), faces[5][1])
        hit = reopened.search_users("c", faces[3][1], limit=1, min_cosine=0.9)
        assert (hit[0].user.user_id, hit[0].face_id) == ("alice", faces[3][0].face_id)
        assert reopened.search("c", faces[0][1], limit=1, min_cosine=0.9) == []
    finally:
        reopened.close()


def test_wal_and_full_sync(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    try:
        with sqlite3.connect(db_path) as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._db._writer.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        store.close()


@pytest.mark.parametrize(
    "content",
    [b"this is not a database at all" * 100, b"SQLite format 3\x00" + os.urandom(8192)],
    ids=["text", "garbled-sqlite"],
)
def test_corrupt_file_is_a_clear_store_error(db_path: Path, content: bytes) -> None:
    db_path.write_bytes(content)
    with pytest.raises(StoreError, match=r"corrupt|not a database|malformed"):
        SQLiteStore(db_path)


def test_corrupted_pages_after_writes_give_store_error(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    store.create_collection("c", MODEL)
    store.add_faces("c", faces_with_vectors(2000))
    store.close()
    data = bytearray(db_path.read_bytes())
    for offset in range(4096 * 3, len(data) - 4096, 4096):  # scribble over every b-tree page header
        data[offset : offset + 16] = b"\xff" * 16
    db_path.write_bytes(bytes(data))

    def use() -> None:
        broken = SQLiteStore(db_path)
        try:
            broken.search("c", unit_vectors(1)[0], limit=5, min_cosine=0.0)
            broken.list_faces("c", limit=5000)
        finally:
            broken.close()

    with pytest.raises(StoreError):
        use()


def test_foreign_sqlite_database_is_refused(db_path: Path) -> None:
    with sqlite3.connect(db_path) as raw:
        raw.execute("CREATE TABLE invoices(id INTEGER)")
    with pytest.raises(StoreError, match="not facetrace"):
        SQLiteStore(db_path)


def test_database_from_a_newer_facetrace_is_refused(db_path: Path) -> None:
    SQLiteStore(db_path).close()
    with sqlite3.connect(db_path) as raw:
        raw.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreError, match="newer"):
        SQLiteStore(db_path)


def test_unopenable_path_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        SQLiteStore(tmp_path / "missing-dir" / DB_FILENAME)


def test_closed_store_raises_store_error(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    store.create_collection("c", MODEL)
    store.close()
    store.close()
    with pytest.raises(StoreError):
        store.describe_collection("c")
    with pytest.raises(StoreError):
        store.create_collection("d", MODEL)


def test_open_store_uses_private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "nested" / "home"
    monkeypatch.setenv("FACETRACE_HOME", str(home))
    store = open_store()
    try:
        store.create_collection("c", MODEL)
    finally:
        store.close()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / DB_FILENAME).stat().st_mode) == 0o600
    explicit = open_store(home)
    try:
        assert explicit.list_collections(limit=5).items == ("c",)
    finally:
        explicit.close()


def test_index_follows_writes_of_another_store_on_the_same_file(db_path: Path) -> None:
    """Two handles on one file behave like two processes (server + CLI): each sees the other's commits."""
    first, second = SQLiteStore(db_path), SQLiteStore(db_path)
    try:
        first.create_collection("c", MODEL)
        faces = faces_with_vectors(40)
        first.add_faces("c", faces[:20])
        assert second.search("c", faces[5][1], limit=1, min_cosine=0.9)[0].face.face_id == faces[5][0].face_id
        first.add_faces("c", faces[20:])  # second's index is now stale
        first.delete_faces("c", [faces[5][0].face_id])
        assert second.search("c", faces[30][1], limit=1, min_cosine=0.9)[0].face.face_id == faces[30][0].face_id
        assert second.search("c", faces[5][1], limit=1, min_cosine=0.9) == []
        second.add_faces("c", faces_with_vectors(3, seed=9))  # second writes on top of a reloaded index
        assert first.describe_collection("c").face_count == 42
        first.delete_collection("c")
        with pytest.raises(NotFoundError):
            second.search("c", faces[30][1], limit=1, min_cosine=0.9)
        first.create_collection("c", MODEL)  # same name, new collection: the old index must not be reused
        assert second.search("c", faces[30][1], limit=5, min_cosine=-1.0) == []
        newcomer = faces_with_vectors(1, seed=10)
        first.add_faces("c", newcomer)
        hits = second.search("c", newcomer[0][1], limit=5, min_cosine=-1.0)
        assert [h.face.face_id for h in hits] == [newcomer[0][0].face_id]
    finally:
        first.close()
        second.close()


def test_incremental_index_equals_a_fresh_load(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    store.create_collection("c", MODEL)
    faces = faces_with_vectors(400, seed=3)
    store.add_faces("c", faces[:100])
    probe = unit_vectors(1, seed=4)[0]
    store.search("c", probe, limit=1, min_cosine=-1.0)  # index loaded; everything below is incremental
    store.add_faces("c", faces[100:])
    store.delete_faces("c", [f.face_id for f, _ in faces[50:150]])
    store.create_user("c", "u1")
    store.create_user("c", "u2")
    store.associate_faces("c", "u1", [f.face_id for f, _ in faces[200:210]])
    store.associate_faces("c", "u2", [f.face_id for f, _ in faces[210:220]])
    store.disassociate_faces("c", "u1", [faces[200][0].face_id])
    store.delete_user("c", "u2")
    incremental = (
        store.search("c", probe, limit=50, min_cosine=-1.0),
        store.search_users("c", probe, limit=5, min_cosine=-1.0),
    )
    store.close()
    fresh = SQLiteStore(db_path)
    try:
        loaded = (
            fresh.search("c", probe, limit=50, min_cosine=-1.0),
            fresh.search_users("c", probe, limit=5, min_cosine=-1.0),
        )
    finally:
        fresh.close()
    assert [(n.face.face_id, n.face.user_id) for n in loaded[0]] == [
        (n.face.face_id, n.face.user_id) for n in incremental[0]
    ]
    assert [(u.user.user_id, u.face_id) for u in loaded[1]] == [
        (u.user.user_id, u.face_id) for u in incremental[1]
    ]
    assert [u.user.user_id for u in loaded[1]] == ["u1"]


_V1_FACES = """CREATE TABLE faces(
    fid INTEGER PRIMARY KEY, cid INTEGER NOT NULL, face_id TEXT NOT NULL, image_id TEXT NOT NULL,
    external_image_id TEXT, user_id TEXT, confidence REAL NOT NULL, bb_left REAL NOT NULL, bb_top REAL NOT NULL,
    bb_width REAL NOT NULL, bb_height REAL NOT NULL, created_at REAL NOT NULL)"""


def test_a_database_from_before_face_quality_is_upgraded_at_open(db_path: Path) -> None:
    """A store written before faces had a quality opens, keeps its faces (quality unknown) and takes new ones."""
    faces = faces_with_vectors(3)
    store = SQLiteStore(db_path)
    store.create_collection("c", MODEL)
    store.add_faces("c", faces[:2])
    store.close()
    before_quality = next(i for i, step in enumerate(MIGRATIONS) if "quality" in step.sql)
    with sqlite3.connect(db_path) as raw:  # turn it back into a file of the step before: faces without quality
        raw.execute("ALTER TABLE faces RENAME TO faces_v2")
        raw.execute(_V1_FACES)
        raw.execute("INSERT INTO faces SELECT fid, cid, face_id, image_id, external_image_id, user_id, confidence,"
                    " bb_left, bb_top, bb_width, bb_height, created_at FROM faces_v2")  # fmt: skip
        raw.execute("DROP TABLE faces_v2")
        # and undo every later step (they run again): drop what a file of that step did not have
        reference = sqlite3.connect(":memory:")
        for step in MIGRATIONS[:before_quality]:
            reference.executescript(step.sql)
        kept = {row[0] for row in reference.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        tables = [row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            if table in ("meta", "faces") or table.startswith("sqlite_"):
                continue
            if table not in kept:
                raw.execute(f"DROP TABLE {table}")
                continue
            columns = {row[1] for row in reference.execute(f"PRAGMA table_info({table})")}
            for row in list(raw.execute(f"PRAGMA table_info({table})")):
                if row[1] not in columns:
                    raw.execute(f"ALTER TABLE {table} DROP COLUMN {row[1]}")
        raw.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(before_quality),))
    with sqlite3.connect(db_path) as raw:
        assert "quality" not in {row[1] for row in raw.execute("PRAGMA table_info(faces)")}

    upgraded = SQLiteStore(db_path)
    try:
        old = upgraded.get_faces("c", [faces[0][0].face_id, faces[1][0].face_id])
        assert [f.quality for f in old] == [None, None]
        upgraded.add_faces("c", [(dataclasses.replace(faces[2][0], quality=64.0), faces[2][1])])
        assert upgraded.get_faces("c", [faces[2][0].face_id])[0].quality == 64.0
        assert upgraded.search("c", faces[0][1], limit=1, min_cosine=0.9)[0].face.face_id == faces[0][0].face_id
    finally:
        upgraded.close()
    with sqlite3.connect(db_path) as raw:
        assert raw.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(
            SCHEMA_VERSION
        )
    SQLiteStore(db_path).close()  # opening an upgraded file again changes nothing


def test_preload_loads_every_collection_before_the_first_search(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``facetrace serve`` preloads: the first searches must not all wait for a collection to load."""
    store = SQLiteStore(db_path)
    faces = {"a": faces_with_vectors(20, seed=1), "b": faces_with_vectors(7, seed=2)}
    for name, rows in faces.items():
        store.create_collection(name, MODEL)
        store.add_faces(name, rows)
    store.create_collection("empty", MODEL)
    store.close()

    reopened = SQLiteStore(db_path)
    try:
        assert reopened.preload() == 27

        def no_load(self: object, collection_id: str) -> object:
            raise AssertionError(f"{collection_id} was loaded by a search, not by preload")

        monkeypatch.setattr(sqlite_index.IndexCache, "_load", no_load)
        for name, rows in faces.items():
            hit = reopened.search(name, rows[3][1], limit=1, min_cosine=0.9)
            assert hit[0].face.face_id == rows[3][0].face_id
    finally:
        reopened.close()
