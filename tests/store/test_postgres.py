"""PostgreSQL-only behaviour: the audit chain in the same transaction, several stores on one database, the
schema guard and error translation. (The ``FaceStore`` contract itself runs in test_contract.py.)"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator

import numpy as np
import psycopg
import pytest

from facetrace.audit import GENESIS_HASH, AuditEvent
from facetrace.errors import AlreadyExistsError, NotFoundError, StoreError
from facetrace.store import open_store
from facetrace.store.postgres import PostgresStore
from facetrace.store.postgres_db import SCHEMA_VERSION, redact_url
from tests.store.conftest import MODEL, face, faces_with_vectors


@pytest.fixture
def pg(pg_url: str) -> Iterator[PostgresStore]:
    store = PostgresStore(pg_url)
    yield store
    store.close()


def _event(operation: str, principal: str = "test", **detail: object) -> AuditEvent:
    return AuditEvent(operation, principal, collection_id="c", detail=detail)  # type: ignore[arg-type]


# --- audit ----------------------------------------------------------------------------------------------


def test_every_mutation_appends_its_audit_record_in_the_same_transaction(pg: PostgresStore) -> None:
    faces = faces_with_vectors(3)
    ids = [f.face_id for f, _ in faces]
    pg.create_collection("c", MODEL, audit=_event("CreateCollection"))
    pg.add_faces("c", faces, audit=_event("IndexFaces"))
    pg.create_user("c", "u", audit=_event("CreateUser"))
    pg.associate_faces("c", "u", ids[:2], audit=_event("AssociateFaces"))
    pg.disassociate_faces("c", "u", ids[:1], audit=_event("DisassociateFaces"))
    pg.delete_user("c", "u", audit=_event("DeleteUser"))
    pg.delete_faces("c", ids[2:], audit=_event("DeleteFaces"))
    pg.delete_collection("c", audit=_event("DeleteCollection"))
    records = pg.audit.records()
    assert [r.event.operation for r in records] == [
        "CreateCollection", "IndexFaces", "CreateUser", "AssociateFaces", "DisassociateFaces", "DeleteUser",
        "DeleteFaces", "DeleteCollection",
    ]  # fmt: skip
    assert [r.seq for r in records] == list(range(1, 9))
    assert records[0].prev_hash == GENESIS_HASH
    result = pg.audit.verify()
    assert (result.ok, result.count, result.head) == (True, 8, records[-1].hash)


def test_a_failed_audit_append_saves_nothing(pg: PostgresStore) -> None:
    pg.create_collection("c", MODEL)
    unserialisable = AuditEvent("IndexFaces", "test", detail={"bad": object()})  # type: ignore[dict-item]
    faces = faces_with_vectors(2)
    with pytest.raises(StoreError, match="audit store unavailable"):
        pg.add_faces("c", faces, audit=unserialisable)
    assert pg.describe_collection("c").face_count == 0
    assert pg.list_faces("c", limit=10).items == ()
    assert pg.search("c", faces[0][1], limit=1, min_cosine=-1.0) == []
    with pytest.raises(StoreError, match="audit store unavailable"):
        pg.create_user("c", "u", audit=unserialisable)
    assert pg.list_users("c", limit=10).items == ()
    assert pg.audit.records() == []


def test_a_refused_change_leaves_no_audit_record(pg: PostgresStore) -> None:
    pg.create_collection("c", MODEL)
    with pytest.raises(AlreadyExistsError):
        pg.create_collection("c", MODEL, audit=_event("CreateCollection"))
    assert pg.audit.records() == []


def test_audit_rows_are_append_only_and_edits_are_detected(pg: PostgresStore, pg_url: str) -> None:
    for i in range(5):
        pg.audit.record(_event("SearchFaces", n=i))
    head = pg.audit.verify().head
    with psycopg.connect(pg_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("UPDATE audit SET payload=payload WHERE seq=2")
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("DELETE FROM audit WHERE seq=5")
        # Someone who owns the database can switch the trigger off; the chain still shows the edit.
        conn.execute("ALTER TABLE audit DISABLE TRIGGER audit_no_change")
        conn.execute("UPDATE audit SET payload=replace(payload, '\"n\":2', '\"n\":7') WHERE seq=3")
    result = pg.audit.verify()
    assert (result.ok, result.broken_seq) == (False, 3)
    assert "edited" in (result.reason or "")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE audit SET payload=replace(payload, '\"n\":7', '\"n\":2') WHERE seq=3")
        conn.execute("DELETE FROM audit WHERE seq=5")
    assert pg.audit.verify().ok  # dropping the newest record is only visible against a saved head
    truncated = pg.audit.verify(expect_head=head)
    assert not truncated.ok
    assert "truncated" in (truncated.reason or "")


def test_audit_filters(pg: PostgresStore) -> None:
    pg.audit.record(AuditEvent("SearchFaces", "alice", collection_id="a"))
    pg.audit.record(AuditEvent("IndexFaces", "bob", collection_id="b"))
    pg.audit.record(AuditEvent("SearchFaces", "bob", collection_id="a"))
    assert [r.seq for r in pg.audit.records(operation="SearchFaces")] == [1, 3]
    assert [r.seq for r in pg.audit.records(principal="bob")] == [2, 3]
    assert [r.seq for r in pg.audit.records(collection_id="a", after=1)] == [3]
    assert [r.seq for r in pg.audit.records(limit=2)] == [1, 2]


def test_concurrent_audit_writers_on_two_stores_keep_one_chain(pg_url: str) -> None:
    stores = [PostgresStore(pg_url, listen=False) for _ in range(2)]
    errors: list[BaseException] = []

    def work(store: PostgresStore, name: str) -> None:
        try:
            for i in range(40):
                store.audit.record(_event("SearchFaces", principal=name, n=i))
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=work, args=(s, f"w{i}-{j}")) for i, s in enumerate(stores) for j in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        result = stores[0].audit.verify()
        assert (result.ok, result.count) == (True, 240)
        principals = {r.event.principal for r in stores[1].audit.records()}
        assert principals == {f"w{i}-{j}" for i in range(2) for j in range(3)}
    finally:
        for store in stores:
            store.close()


# --- several stores on one database ---------------------------------------------------------------------


def test_a_face_written_through_one_store_is_found_through_another(pg_url: str) -> None:
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    try:
        a.create_collection("c", MODEL)
        base = faces_with_vectors(50, seed=1)
        a.add_faces("c", base)
        assert len(b.search("c", base[0][1], limit=1, min_cosine=0.99)) == 1  # b loads its index
        new = faces_with_vectors(5, seed=2)
        a.add_faces("c", new)
        # b's next search catches up with the log before it scans: read-your-writes across servers.
        assert b.search("c", new[3][1], limit=1, min_cosine=0.99)[0].face.face_id == new[3][0].face_id
        a.delete_faces("c", [new[3][0].face_id])
        assert b.search("c", new[3][1], limit=1, min_cosine=0.99) == []
        a.create_user("c", "u")
        a.associate_faces("c", "u", [base[7][0].face_id])
        hits = b.search_users("c", base[7][1], limit=1, min_cosine=0.99)
        assert [(h.user.user_id, h.face_id) for h in hits] == [("u", base[7][0].face_id)]
        a.delete_user("c", "u")
        assert b.search_users("c", base[7][1], limit=1, min_cosine=0.5) == []
        a.delete_collection("c")
        a.create_collection("c", MODEL)
        assert b.search("c", base[0][1], limit=5, min_cosine=-1.0) == []
    finally:
        a.close()
        b.close()


def test_the_follower_thread_keeps_an_idle_index_current(pg_url: str) -> None:
    a, b = PostgresStore(pg_url, listen=False), PostgresStore(pg_url)
    try:
        a.create_collection("c", MODEL)
        a.add_faces("c", faces_with_vectors(3, seed=5))
        assert b.preload() == 3
        new = faces_with_vectors(2, seed=6)
        a.add_faces("c", new)
        deadline = time.monotonic() + 2.0
        index = b._indexes._loaded["c"].index  # white box: no search, so only the follower can have added it
        while time.monotonic() < deadline and (index is None or new[1][0].face_id not in index):
            time.sleep(0.02)
            index = b._indexes._loaded["c"].index
        assert index is not None
        assert new[1][0].face_id in index
    finally:
        a.close()
        b.close()


def test_a_server_behind_a_pruned_change_log_reloads(pg_url: str) -> None:
    a, b = PostgresStore(pg_url, listen=False), PostgresStore(pg_url, listen=False)
    try:
        a.create_collection("c", MODEL)
        first = faces_with_vectors(5, seed=11)
        a.add_faces("c", first)
        assert b.search("c", first[0][1], limit=1, min_cosine=0.99)  # b's index is loaded here
        later = faces_with_vectors(3, seed=12)
        a.add_faces("c", later[:2])
        a.delete_faces("c", [first[1][0].face_id])
        a.add_faces("c", later[2:])
        assert a._indexes.prune(older_than=0) == 3  # every row but the newest
        # b missed the pruned changes: it notices the gap in the sequence and reloads from the rows.
        assert b.search("c", later[0][1], limit=1, min_cosine=0.99)[0].face.face_id == later[0][0].face_id
        assert b.search("c", first[1][1], limit=1, min_cosine=0.99) == []
        assert len(b.search("c", first[0][1], limit=100, min_cosine=-1.0)) == 7
    finally:
        a.close()
        b.close()


def test_the_store_recovers_by_itself_when_the_database_drops_its_connections(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    try:
        store.create_collection("c", MODEL)
        faces = faces_with_vectors(3)
        store.add_faces("c", faces)
        barrier = threading.Barrier(8)

        def hold_a_connection() -> None:  # grow the pool: several idle connections for the failure to hit
            with store._db.read("test"):
                barrier.wait(timeout=10)

        threads = [threading.Thread(target=hold_a_connection) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with psycopg.connect(pg_url, autocommit=True) as conn:  # what a restart or a failover does to clients
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        # The follower notices its own connection broke, reconnects and has the pool replace the dead ones.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.2)
            with psycopg.connect(pg_url, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND query ILIKE 'LISTEN%%'"
                ).fetchone()
            if row is not None and row[0] == 1:
                break
        time.sleep(0.5)
        for _ in range(20):  # more requests than pooled connections: none meets a dead one
            assert store.search("c", faces[1][1], limit=1, min_cosine=0.99)[0].face.face_id == faces[1][0].face_id
    finally:
        store.close()


def test_vectors_and_quality_round_trip_bit_for_bit(pg: PostgresStore) -> None:
    pg.create_collection("c", MODEL)
    vectors = faces_with_vectors(4, seed=9)
    with_quality = [
        (dataclasses.replace(face(), quality=q), v)
        for (_, v), q in zip(vectors, [None, 0.0, 55.25, 100.0], strict=True)
    ]
    pg.add_faces("c", with_quality)
    for record, vector in with_quality:
        assert pg.get_vector("c", record.face_id).tobytes() == vector.astype(np.float32).tobytes()
        assert pg.get_faces("c", [record.face_id])[0].quality == record.quality


def test_deletes_and_associations_of_the_same_faces_from_two_stores_do_not_deadlock(pg_url: str) -> None:
    a, b = PostgresStore(pg_url, listen=False), PostgresStore(pg_url, listen=False)
    try:
        a.create_collection("c", MODEL)
        faces = faces_with_vectors(120, seed=21)
        a.add_faces("c", faces)
        a.create_user("c", "u")
        ids = [f.face_id for f, _ in faces]
        errors: list[BaseException] = []
        start = threading.Barrier(2)

        def associate() -> None:
            start.wait()
            for i in range(0, len(ids), 2):
                try:
                    a.associate_faces("c", "u", ids[i : i + 2])
                except NotFoundError:  # the other store deleted one of them first: all or nothing
                    pass
                except BaseException as exc:
                    errors.append(exc)

        def delete() -> None:
            start.wait()
            for i in range(0, len(ids), 2):
                try:
                    b.delete_faces("c", [ids[i + 1], ids[i]])
                except BaseException as exc:
                    errors.append(exc)

        threads = [threading.Thread(target=associate), threading.Thread(target=delete)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert a.describe_collection("c").face_count == 0
        assert a.get_user("c", "u").face_count == 0
    finally:
        a.close()
        b.close()


def _add_until_gone(store: PostgresStore, seed: int, added: threading.Event, errors: list[BaseException]) -> None:
    for i in range(60):
        try:
            store.add_faces("c", faces_with_vectors(3, seed=seed + i))
            added.set()
        except NotFoundError:  # deleted: every later add is refused the same way
            return
        except BaseException as exc:
            errors.append(exc)
            return


def test_deleting_a_collection_while_another_store_adds_to_it(pg_url: str) -> None:
    a, b = PostgresStore(pg_url, listen=False), PostgresStore(pg_url, listen=False)
    try:
        for round_ in range(3):
            a.create_collection("c", MODEL)
            errors: list[BaseException] = []
            added = threading.Event()
            thread = threading.Thread(target=_add_until_gone, args=(a, 1000 * round_, added, errors))
            thread.start()
            added.wait(timeout=30)
            b.delete_collection("c")
            thread.join()
            assert errors == []
            with pytest.raises(NotFoundError):
                a.describe_collection("c")
            with psycopg.connect(pg_url) as conn:
                assert conn.execute("SELECT count(*) FROM faces").fetchone() == (0,)  # nothing left behind
    finally:
        a.close()
        b.close()


def test_two_stores_adding_the_same_face_id_one_wins(pg_url: str) -> None:
    a, b = PostgresStore(pg_url, listen=False), PostgresStore(pg_url, listen=False)
    try:
        a.create_collection("c", MODEL)
        record, vector = faces_with_vectors(1)[0]
        a.add_faces("c", [(record, vector)])
        with pytest.raises(AlreadyExistsError):
            b.add_faces("c", [(record, vector)])
        assert b.describe_collection("c").face_count == 1
    finally:
        a.close()
        b.close()


# --- schema and errors -------------------------------------------------------------------------------------


def test_a_newer_schema_is_refused(pg_url: str) -> None:
    PostgresStore(pg_url, listen=False).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE facetrace_meta SET value=%s WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match="newer facetrace"):
        PostgresStore(pg_url)


def test_a_foreign_database_is_refused(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE faces(id int)")
    with pytest.raises(StoreError, match="not its schema"):
        PostgresStore(pg_url)


def test_reopening_keeps_everything(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    store.create_collection("c", MODEL)
    faces = faces_with_vectors(10)
    store.add_faces("c", faces)
    store.audit.record(_event("SearchFaces"))
    store.close()
    again = PostgresStore(pg_url)
    try:
        assert again.describe_collection("c").face_count == 10
        assert again.search("c", faces[4][1], limit=1, min_cosine=0.99)[0].face.face_id == faces[4][0].face_id
        assert again.audit.verify().count == 1
    finally:
        again.close()


def test_unreachable_database_is_a_store_error_without_the_password(tmp_path: object) -> None:
    url = "postgresql://facetrace:s3cret-pw@127.0.0.1:1/facetrace"
    with pytest.raises(StoreError) as info:
        PostgresStore(url, timeout=2)
    assert "s3cret-pw" not in str(info.value)
    assert "***" in str(info.value)


def test_closed_store_raises_store_error(pg: PostgresStore) -> None:
    pg.close()
    with pytest.raises(StoreError, match="closed"):
        pg.describe_collection("c")
    pg.close()


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
        ("postgres://u:p%40w@h:5432/db?sslmode=require", "postgres://u:***@h:5432/db?sslmode=require"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("host=h password=pw dbname=x", "host=h password=*** dbname=x"),
        ("postgresql:///db?password=pw&user=u", "postgresql:///db?password=***&user=u"),
    ],
)
def test_redact_url(raw: str, safe: str) -> None:
    assert redact_url(raw) == safe


def test_open_store_picks_postgres_from_url_or_environment(
    pg_url: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    home = Path(str(tmp_path)) / "home"
    store = open_store(home, url=pg_url)
    try:
        assert isinstance(store, PostgresStore)
    finally:
        store.close()
    monkeypatch.setenv("FACETRACE_DATABASE_URL", pg_url)
    store = open_store(home)
    try:
        assert isinstance(store, PostgresStore)
        assert not (home / "facetrace.db").exists()
    finally:
        store.close()
    monkeypatch.delenv("FACETRACE_DATABASE_URL")
    store = open_store(home)
    try:
        assert not isinstance(store, PostgresStore)
    finally:
        store.close()
