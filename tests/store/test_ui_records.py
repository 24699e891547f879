"""The dashboard's records in SQLite: face thumbnails live and die with their faces, a collection can opt out,
and sessions end with their key."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facetrace.engine import FaceEngine
from facetrace.gallery import Gallery
from facetrace.service.keys import KeyStore
from facetrace.store import SQLiteStore
from facetrace.store.postgres import PostgresStore
from facetrace.store.ui_records import SessionRecord, ui_records_of


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        opened: Any = SQLiteStore(tmp_path / "facetrace.db")
    else:
        opened = PostgresStore(request.getfixturevalue("pg_url"))
    yield opened
    opened.close()


def _count_thumbnails(store: Any) -> int:
    if isinstance(store, SQLiteStore):
        with store.database.reader() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM face_thumbnails").fetchone()[0])
    with store._db.read("counting") as conn:
        return int(conn.execute("SELECT COUNT(*) FROM face_thumbnails").fetchone()[0])


def test_thumbnails_are_kept_with_faces_and_deleted_with_them(
    store: Any, engine: FaceEngine, photos: dict[str, Path]
) -> None:
    gallery = Gallery(engine, store)
    thumbnails = ui_records_of(store).thumbnails  # type: ignore[union-attr]
    assert thumbnails is not None
    gallery.create_collection("kept")
    gallery.create_collection("bare", thumbnails=False)
    first = gallery.index_faces("kept", photos["obama.jpg"]).indexed[0].record.face_id
    second = gallery.index_faces("kept", photos["biden.jpg"]).indexed[0].record.face_id
    bare = gallery.index_faces("bare", photos["obama.jpg"]).indexed[0].record.face_id
    jpeg = thumbnails.get("kept", first)
    assert jpeg is not None
    assert jpeg[:2] == b"\xff\xd8"
    assert 1000 < len(jpeg) < 20_000
    assert thumbnails.get("bare", bare) is None
    assert not thumbnails.enabled("bare")

    gallery.delete_faces("kept", [first])
    assert thumbnails.get("kept", first) is None
    assert thumbnails.get("kept", second) is not None
    gallery.delete_collection("kept")
    gallery.create_collection("kept")  # a new collection of the same name starts empty
    assert thumbnails.get("kept", second) is None
    assert _count_thumbnails(store) == 0
    gallery.delete_collection("bare")
    gallery.create_collection("bare")
    assert thumbnails.enabled("bare")  # the opt-out went with the old collection


def test_deleting_a_key_ends_its_sessions(store: Any) -> None:
    keys = KeyStore(store.records.keys)
    sessions = ui_records_of(store).sessions  # type: ignore[union-attr]
    key = keys.create("read")
    now = time.time()
    sessions.add(SessionRecord("h1", key.access_key_id, "c", None, now, now + 60))
    sessions.add(SessionRecord("h2", key.access_key_id, "c", None, now - 120, now - 60))
    assert sessions.get("h1", now) is not None
    assert sessions.get("h2", now) is None  # expired
    sessions.set_purpose("h1", "case-9")
    assert sessions.get("h1", now).purpose == "case-9"  # type: ignore[union-attr]
    keys.delete(key.access_key_id)
    assert sessions.get("h1", now) is None


def test_a_thumbnail_is_replaced_and_kept_only_for_a_face_that_exists(
    store: Any, engine: FaceEngine, photos: dict[str, Path]
) -> None:
    gallery = Gallery(engine, store)
    thumbnails = ui_records_of(store).thumbnails  # type: ignore[union-attr]
    gallery.create_collection("kept")
    gallery.create_collection("bare", thumbnails=False)
    face = gallery.index_faces("kept", photos["obama.jpg"]).indexed[0].record.face_id
    bare = gallery.index_faces("bare", photos["obama.jpg"]).indexed[0].record.face_id
    assert thumbnails.put("kept", [(face, b"\xff\xd8second")]) == 1
    assert thumbnails.get("kept", face) == b"\xff\xd8second"
    assert thumbnails.put("kept", [("no-such-face", b"\xff\xd8x")]) == 0
    assert thumbnails.put("bare", [(bare, b"\xff\xd8x")]) == 0
    assert thumbnails.put("kept", []) == 0
    thumbnails.opt_out("kept")
    thumbnails.opt_out("kept")  # twice: still one opt-out
    assert not thumbnails.enabled("kept")
    assert not thumbnails.enabled("no-such-collection")


def test_sessions_end_one_by_one_by_key_and_by_age(store: Any) -> None:
    sessions = ui_records_of(store).sessions  # type: ignore[union-attr]
    keys = KeyStore(store.records.keys)
    first, second = keys.create("read").access_key_id, keys.create("read").access_key_id
    now = time.time()
    for token_hash, key, expires in (("h1", first, now + 60), ("h2", first, now + 60), ("h3", second, now - 1)):
        sessions.add(SessionRecord(token_hash, key, "c", None, now - 10, expires))
    sessions.delete("h1")
    assert sessions.get("h1", now) is None
    assert sessions.get("h2", now) is not None
    assert sessions.sweep(now) == 1  # h3 had expired
    assert sessions.delete_key(first) == 1
    assert sessions.get("h2", now) is None
    assert sessions.sweep(now) == 0
