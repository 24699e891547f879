"""Readers keep working while a large indexing job writes: searches and listings run between (and during)
the job's many transactions, never fail, and always see every face acknowledged before they started."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import pytest

from facetrace.store import FaceStore, SQLiteStore
from facetrace.store.sqlite_index import IndexCache
from tests.store.conftest import MODEL, faces_with_vectors

BATCHES = 300
PER_BATCH = 10


def test_readers_progress_during_a_large_index_job(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    store.add_faces("c", faces_with_vectors(2000, seed=1))  # something to search from the start
    job = faces_with_vectors(BATCHES * PER_BATCH, seed=2)
    acknowledged = 0  # batches the writer has been told are stored
    writer_done = threading.Event()
    errors: list[BaseException] = []
    seen_counts: set[int] = set()
    progress = threading.Condition()

    def writer() -> None:
        nonlocal acknowledged
        try:
            for b in range(BATCHES):
                store.add_faces("c", job[b * PER_BATCH : (b + 1) * PER_BATCH])
                acknowledged = b + 1
                if acknowledged % 30 == 0:
                    # Mid-job, a reader must get through a whole round of reads and see this batch. If reads
                    # queued behind the job, this would never happen (the wait is a deadlock guard).
                    target = 2000 + acknowledged * PER_BATCH
                    with progress:
                        if not progress.wait_for(lambda t=target: max(seen_counts, default=0) >= t, timeout=60):
                            raise AssertionError(f"no reader got through while batch {acknowledged} was current")
        except BaseException as exc:
            errors.append(exc)
        finally:
            writer_done.set()

    def reader() -> None:
        try:
            while not writer_done.is_set():
                done = acknowledged
                if done:
                    record, vector = job[done * PER_BATCH - 1]
                    hits = store.search("c", vector, limit=3, min_cosine=0.5)
                    assert hits, f"face of acknowledged batch {done} not found"
                    assert hits[0].face.face_id == record.face_id
                count = store.describe_collection("c").face_count
                assert count >= 2000 + done * PER_BATCH
                page = store.list_faces("c", limit=50)
                assert len(page.items) == 50
                assert page.next_token is not None
                with progress:
                    seen_counts.add(count)
                    progress.notify_all()
        except BaseException as exc:
            errors.append(exc)
            writer_done.set()

    threads = [threading.Thread(target=writer), threading.Thread(target=reader), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # The readers observed the collection at many points of the job, not just before and after it.
    assert len(seen_counts) >= BATCHES // 30
    assert store.describe_collection("c").face_count == 2000 + BATCHES * PER_BATCH


def test_reads_do_not_wait_for_an_open_write_transaction(db_path: Path) -> None:
    """WAL: while a writer holds its transaction open (as a big IndexFaces batch does), reads answer from the
    last committed state instead of queueing behind it."""
    store = SQLiteStore(db_path)
    store.create_collection("c", MODEL)
    faces = faces_with_vectors(100)
    store.add_faces("c", faces)
    in_transaction, release = threading.Event(), threading.Event()
    results: list[object] = []

    class Abort(Exception):
        pass

    def long_writer() -> None:
        with contextlib.suppress(Abort), store._db.transaction() as conn:
            conn.execute("UPDATE collections SET face_count=face_count+1000")  # never committed
            in_transaction.set()
            release.wait(60)
            raise Abort  # roll back

    def reads() -> None:
        results.append(store.describe_collection("c").face_count)
        results.append(store.search("c", faces[7][1], limit=1, min_cosine=0.9)[0].face.face_id)
        results.append(len(store.list_faces("c", limit=1000).items))
        results.append(store.get_faces("c", [faces[1][0].face_id])[0].face_id)

    writer = threading.Thread(target=long_writer)
    writer.start()
    try:
        assert in_transaction.wait(60)
        reader = threading.Thread(target=reads)
        reader.start()
        reader.join(60)  # a deadlock guard, not a timing measurement
        finished_while_writer_held_the_lock = not reader.is_alive()
    finally:
        release.set()
        writer.join()
    assert finished_while_writer_held_the_lock
    assert results == [100, faces[7][0].face_id, 100, faces[1][0].face_id]
    assert store.describe_collection("c").face_count == 100
    store.close()


def test_opening_does_not_wait_for_another_writer(db_path: Path) -> None:
    """Every CLI command opens the store; it must not queue behind the server's long write transaction."""
    server = SQLiteStore(db_path)
    server.create_collection("c", MODEL)
    in_transaction, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def long_writer() -> None:
        with server._db.transaction():
            in_transaction.set()
            release.wait(60)

    def cli() -> None:
        store = SQLiteStore(db_path)
        try:
            seen.append(store.describe_collection("c").face_count)
        finally:
            store.close()

    writer = threading.Thread(target=long_writer)
    writer.start()
    try:
        assert in_transaction.wait(60)
        opener = threading.Thread(target=cli)
        opener.start()
        opener.join(60)  # a deadlock guard, not a timing measurement
        opened_while_writer_held_the_lock = not opener.is_alive()
    finally:
        release.set()
        writer.join()
        server.close()
    assert opened_while_writer_held_the_lock
    assert seen == [0]


def test_index_is_loaded_once_during_a_stream_of_writes(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A load that races writes catches up with them instead of being thrown away and redone: with a writer
    committing all the time, a naive cache would reload the whole collection on almost every search."""
    loads = 0
    original = IndexCache._load

    def counting(self: IndexCache, collection_id: str, base: object) -> object:
        nonlocal loads
        loads += 1
        return original(self, collection_id, base)  # type: ignore[arg-type]

    monkeypatch.setattr(IndexCache, "_load", counting)
    store = SQLiteStore(db_path)
    store.create_collection("c", MODEL)
    store.add_faces("c", faces_with_vectors(20_000, seed=1))
    job = faces_with_vectors(2000, seed=2)
    done = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for b in range(200):
                store.add_faces("c", job[b * 10 : (b + 1) * 10])
                if b % 20 == 0:
                    store.delete_faces("c", [job[b * 10][0].face_id])
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    def reader() -> None:
        try:
            while not done.is_set():
                store.search("c", job[5][1], limit=3, min_cosine=-1.0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert loads == 1
    # And the index that was kept up to date by the writes equals the database.
    deleted = {record.face_id for record, _ in job[::200]}
    for record, vector in job[::47]:
        hits = [h.face.face_id for h in store.search("c", vector, limit=1, min_cosine=0.99)]
        assert hits == ([] if record.face_id in deleted else [record.face_id])
    assert store.describe_collection("c").face_count == 20_000 + 2000 - 10
    store.close()
