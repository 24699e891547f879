"""Fail closed by construction: a change whose audit record cannot be appended is not saved.

Failures are injected the ways they happen: the audit append itself fails (a trigger raising SQLite's
"database or disk is full" on the audit table only, so the change alone would have succeeded), the database
cannot grow (``PRAGMA max_page_count``: a full disk), and the audit trail of a ``MemoryStore`` refusing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from facetrace.audit import AuditEvent
from facetrace.errors import StoreError
from facetrace.store import FaceStore, MemoryStore, SQLiteStore
from tests.store.conftest import MODEL, accept_audit_appends, faces_with_vectors, refuse_audit_appends

EVENT = AuditEvent("Test", "local:tester", collection_id="c")


def _fail_audit_appends(store: FaceStore, path: Path | None) -> None:
    if isinstance(store, MemoryStore):
        store.audit.fail_with = "injected failure"
        return
    assert path is not None
    refuse_audit_appends(path)


def _heal(store: FaceStore, path: Path | None) -> None:
    if isinstance(store, MemoryStore):
        store.audit.fail_with = None
        return
    assert path is not None
    accept_audit_appends(path)


def _snapshot(store: FaceStore) -> tuple[object, ...]:
    collections = store.list_collections(limit=100).items
    faces = tuple(f.face_id for f in store.list_faces("c", limit=1000).items) if "c" in collections else ()
    users = tuple(u.user_id for u in store.list_users("c", limit=100).items) if "c" in collections else ()
    return collections, faces, users, len(store.audit.records())


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_no_change_without_its_audit_record(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "facetrace.db" if kind == "sqlite" else None
    store: FaceStore = SQLiteStore(path) if path is not None else MemoryStore()
    store.create_collection("c", MODEL, audit=EVENT)
    kept = faces_with_vectors(2, seed=1)
    store.add_faces("c", kept, audit=EVENT)
    store.create_user("c", "ann", audit=EVENT)
    before = _snapshot(store)
    head = store.audit.verify().head

    _fail_audit_appends(store, path)
    attempts = [
        lambda: store.create_collection("d", MODEL, audit=EVENT),
        lambda: store.add_faces("c", faces_with_vectors(3, seed=2), audit=EVENT),
        lambda: store.delete_faces("c", [kept[0][0].face_id], audit=EVENT),
        lambda: store.create_user("c", "bob", audit=EVENT),
        lambda: store.delete_user("c", "ann", audit=EVENT),
        lambda: store.associate_faces("c", "ann", [kept[1][0].face_id], audit=EVENT),
        lambda: store.delete_collection("c", audit=EVENT),
        lambda: store.audit.record(EVENT),
    ]
    for attempt in attempts:
        with pytest.raises(StoreError, match="audit store unavailable"):
            attempt()
    assert _snapshot(store) == before
    assert store.search("c", kept[0][1], limit=5, min_cosine=0.9)[0].face.face_id == kept[0][0].face_id
    assert store.get_faces("c", [kept[1][0].face_id])[0].user_id is None

    _heal(store, path)
    store.delete_faces("c", [kept[0][0].face_id], audit=EVENT)
    assert store.search("c", kept[0][1], limit=5, min_cosine=0.9) == []
    check = store.audit.verify(expect_head=head)
    assert (check.ok, check.count) == (True, before[3] + 1)
    store.close()


def test_a_full_disk_saves_neither_faces_nor_record(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "facetrace.db")
    store.create_collection("c", MODEL, audit=EVENT)
    with store.database.transaction() as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")  # the database may not grow: the disk is full
    with pytest.raises(StoreError, match=r"audit store unavailable.*full"):
        store.add_faces("c", faces_with_vectors(50, seed=3), audit=EVENT)
    assert store.describe_collection("c").face_count == 0
    assert store.list_faces("c", limit=10).items == ()
    assert len(store.audit.records()) == 1
    with store.database.transaction() as conn:
        conn.execute("PRAGMA max_page_count = 1073741823")
    store.add_faces("c", faces_with_vectors(50, seed=3), audit=EVENT)
    assert store.describe_collection("c").face_count == 50
    assert store.audit.verify().count == 2
    store.close()


def test_check_writable_reports_a_locked_database(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "facetrace.db", timeout=0.2)
    store.check_writable()
    other = sqlite3.connect(tmp_path / "facetrace.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="locked"):
            store.check_writable()
        with pytest.raises(StoreError, match="audit store unavailable"):
            store.create_collection("c", MODEL, audit=EVENT)
    finally:
        other.execute("ROLLBACK")
        other.close()
    store.check_writable()
    assert store.list_collections(limit=10).items == ()
    store.close()


def test_a_read_only_database_changes_nothing(tmp_path: Path) -> None:
    """As a write-protected file behaves (``PRAGMA query_only`` on the store's writer: tests run as root,
    for whom chmod does not protect a file)."""
    store = SQLiteStore(tmp_path / "facetrace.db")
    store.create_collection("c", MODEL, audit=EVENT)
    kept = faces_with_vectors(1, seed=5)
    store.add_faces("c", kept, audit=EVENT)
    with store.database.transaction() as conn:
        conn.execute("PRAGMA query_only = 1")
    for attempt in (
        lambda: store.create_collection("d", MODEL, audit=EVENT),
        lambda: store.add_faces("c", faces_with_vectors(2, seed=6), audit=EVENT),
        lambda: store.delete_faces("c", [kept[0][0].face_id], audit=EVENT),
        lambda: store.audit.record(EVENT),
    ):
        with pytest.raises(StoreError, match=r"audit store unavailable.*readonly"):
            attempt()
    with pytest.raises(StoreError, match="readonly"):
        store.check_writable()
    assert store.list_collections(limit=10).items == ("c",)
    assert [f.face_id for f in store.list_faces("c", limit=10).items] == [kept[0][0].face_id]
    check = store.audit.verify()
    assert (check.ok, check.count) == (True, 2)
    store.close()
