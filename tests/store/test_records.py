"""One database for the rest: keys, tokens, jobs, processors and sightings live in the store's database
(the same contract on SQLite and PostgreSQL); deleting faces, users and collections removes what was derived
from them; the separate files of older versions are imported (SQLite homes)."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import stat
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from facetrace.audit import AuditEvent
from facetrace.errors import StoreError
from facetrace.store import FaceStore, SQLiteStore, open_store, records_of
from facetrace.store.records import (
    JobRecord,
    KeyRecord,
    ProcessorRecord,
    Records,
    Sighting,
    SightingQuery,
    TokenRecord,
)
from facetrace.types import BoundingBox
from tests.store.conftest import MODEL, faces_with_vectors

EVENT = AuditEvent("Test", "local:tester")


def _sighting(face_id: str, *, user_id: str | None = None, collection: str = "c", track: int = 1) -> Sighting:
    now = time.time()
    return Sighting(
        sighting_id=f"s-{face_id}-{track}", source="door", camera="lobby", track_id=track, started_at=now,
        ended_at=now + 1, start_stream_ms=0, end_stream_ms=1000, face_id=face_id, user_id=user_id,
        external_image_id=None, similarity=99.5, bounding_box=BoundingBox(0.1, 0.1, 0.2, 0.2),
        expires_at=now + 3600, snapshot=b"\xff\xd8jpeg", collection_id=collection,
    )  # fmt: skip


def _job(job_id: str, faces: list[str], collection: str = "c") -> JobRecord:
    results = [
        {
            "Timestamp": i * 100,
            "Person": {"Index": i},
            "FaceMatches": [{"Similarity": 99.0, "Face": {"FaceId": f}}],
        }
        for i, f in enumerate(faces)
    ]
    return JobRecord(
        job_id=job_id, kind="FaceSearch", video="v.mp4", collection_id=collection, threshold=90.0, job_tag=None,
        camera=None, status="SUCCEEDED", message=None, created_at=1.0, finished_at=2.0, metadata=None,
        results=zlib.compress(json.dumps(results).encode()), principal="local:tester", purpose=None, request=None,
        face_ids=tuple(dict.fromkeys(faces)),
    )  # fmt: skip


class Backend:
    """One database of either kind: ``open()`` gives a store over it (a reopen is a restart), ``sql()`` runs a
    statement on it directly (to inject failures)."""

    def __init__(self, kind: str, path: Path, url: str) -> None:
        self.kind, self.path, self.url = kind, path, url
        self.opened: list[FaceStore] = []

    def open(self) -> FaceStore:
        store: FaceStore
        if self.kind == "sqlite":
            store = SQLiteStore(self.path)
        else:
            from facetrace.store.postgres import PostgresStore

            store = PostgresStore(self.url, listen=False)
        self.opened.append(store)
        return store

    def sql(self, sqlite: str, postgres: str) -> None:
        if self.kind == "sqlite":
            conn = sqlite3.connect(self.path)
            conn.executescript(sqlite)
            conn.close()
        else:
            import psycopg

            with psycopg.connect(self.url, autocommit=True) as pg:
                pg.execute(postgres.encode())


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else ""
    made = Backend(request.param, tmp_path / "facetrace.db", url)
    yield made
    for store in made.opened:
        store.close()


@pytest.fixture
def db(backend: Backend) -> Callable[[], FaceStore]:
    return backend.open


def _records(store: FaceStore) -> Records:
    records = records_of(store)
    assert records is not None
    return records


def _results(records: Records, job_id: str) -> list[str]:
    job = records.jobs.get(job_id)
    assert job is not None
    assert job.results is not None
    return [m["Face"]["FaceId"] for item in json.loads(zlib.decompress(job.results)) for m in item["FaceMatches"]]


def test_deleting_faces_users_and_collections_takes_derived_data_along(db: Callable[[], FaceStore]) -> None:
    store = db()
    records = _records(store)
    store.create_collection("c", MODEL)
    store.create_collection("other", MODEL)
    faces = faces_with_vectors(3, seed=4)
    a, b, c = (record.face_id for record, _ in faces)
    store.add_faces("c", faces)
    store.create_user("c", "ann")
    store.associate_faces("c", "ann", [b])
    sightings = records.sightings
    sightings.add([_sighting(a), _sighting(b, user_id="ann", track=2), _sighting(c, track=3)])
    sightings.add([_sighting("f-other", collection="other", track=9)])
    records.jobs.save(_job("job-1", [a, b, a, c]))
    records.jobs.save(_job("job-2", ["f-other"], collection="other"))

    store.delete_faces("c", [a], audit=EVENT)
    assert {s.face_id for s in sightings.query(SightingQuery(limit=100), time.time())} == {b, c, "f-other"}
    assert _results(records, "job-1") == [b, c]  # the deleted face is gone from the stored results
    assert set(records.jobs.get("job-1").face_ids) == {b, c}  # type: ignore[union-attr]

    store.delete_user("c", "ann", audit=EVENT)
    found = sightings.query(SightingQuery(face_id=b), time.time())
    assert [s.user_id for s in found] == [None]  # the face stays, the user it named does not

    store.delete_collection("c", audit=EVENT)
    assert [s.face_id for s in sightings.query(SightingQuery(limit=100), time.time())] == ["f-other"]
    assert records.jobs.get("job-1") is None
    assert records.jobs.get("job-2") is not None
    assert store.audit.verify().count == 3


def test_a_failed_delete_keeps_the_derived_data(backend: Backend) -> None:
    """The cascade is part of the delete's transaction: a delete that fails (here: its audit record cannot be
    written) leaves the sightings and job results as they were."""
    store = backend.open()
    records = _records(store)
    store.create_collection("c", MODEL)
    faces = faces_with_vectors(1, seed=5)
    (a,) = (record.face_id for record, _ in faces)
    store.add_faces("c", faces)
    records.sightings.add([_sighting(a)])
    records.jobs.save(_job("job-1", [a]))
    backend.sql(
        "CREATE TRIGGER inject_full BEFORE INSERT ON audit BEGIN SELECT RAISE(FAIL, 'disk is full'); END",
        "CREATE FUNCTION inject_full() RETURNS trigger LANGUAGE plpgsql AS $$"
        " BEGIN RAISE EXCEPTION 'disk is full'; END $$;"
        " CREATE TRIGGER inject_full BEFORE INSERT ON audit FOR EACH ROW EXECUTE FUNCTION inject_full()",
    )
    with pytest.raises(StoreError, match="audit store unavailable"):
        store.delete_faces("c", [a], audit=EVENT)
    assert [f.face_id for f in store.get_faces("c", [a])] == [a]
    assert [s.face_id for s in records.sightings.query(SightingQuery(), time.time())] == [a]
    assert _results(records, "job-1") == [a]


def test_keys_persist(db: Callable[[], FaceStore]) -> None:
    key = KeyRecord("FTKEY", "s3cr3t-value", "write", ("a",), "ingest", 1.0)
    _records(db()).keys.add(key)
    assert "s3cr3t" not in repr(key)
    again = _records(db())
    assert again.keys.get("FTKEY") == key
    assert again.keys.list() == [key]
    with pytest.raises(StoreError):
        again.keys.add(key)  # an id is never silently overwritten
    assert again.keys.delete("FTKEY")
    assert not again.keys.delete("FTKEY")
    assert again.keys.list() == []
    assert again.keys.get("FTKEY") is None


def test_request_tokens_keep_the_first_answer(db: Callable[[], FaceStore]) -> None:
    tokens = _records(db()).tokens
    first = TokenRecord("key", "CreateUser", "tok", "fp-1", '{"a":1}', 100.0)
    assert tokens.put(first) == first
    assert tokens.put(TokenRecord("key", "CreateUser", "tok", "fp-2", '{"b":2}', 101.0)) == first
    assert tokens.get("key", "CreateUser", "tok", newer_than=50.0) == first
    assert tokens.get("key", "CreateUser", "tok", newer_than=100.0) is None  # too old for the caller
    assert tokens.get("other", "CreateUser", "tok", newer_than=0.0) is None  # per access key
    assert tokens.get("key", "DeleteUser", "tok", newer_than=0.0) is None  # and per operation
    with tokens.exclusive("key", "CreateUser", "tok"):
        pass
    assert tokens.sweep(100.0) == 1
    assert tokens.get("key", "CreateUser", "tok", newer_than=0.0) is None


def test_an_expired_token_answer_gives_way_to_a_new_one(db: Callable[[], FaceStore]) -> None:
    """An answer older than the tokens' lifetime, not swept yet, no longer binds its token (both backends)."""
    tokens = _records(db()).tokens
    old = TokenRecord("key", "CreateUser", "tok", "fp-1", '{"a":1}', 100.0)
    assert tokens.put(old) == old
    live = TokenRecord("key", "CreateUser", "tok", "fp-2", '{"b":2}', 100.0 + 24 * 3600.0 + 1)
    assert tokens.put(live) == live
    assert tokens.put(dataclasses.replace(live, fingerprint="fp-3", created_at=live.created_at + 5)) == live
    assert tokens.get("key", "CreateUser", "tok", newer_than=0.0) == live


def test_jobs_round_trip_and_interrupted_ones_fail(db: Callable[[], FaceStore]) -> None:
    first = db()
    jobs = _records(first).jobs
    done = _job("job-done", ["f1", "f2"])
    jobs.save(done)
    assert jobs.get("job-done") == done
    running = dataclasses.replace(
        _job("job-run", []), status="IN_PROGRESS", finished_at=None, results=None, face_ids=(), request='{"S3":1}'
    )
    jobs.save(running)
    assert jobs.get("job-run") == running
    assert jobs.get("nope") is None
    # The process running it is gone (a restart: a new store over the same database).
    first.close()
    jobs = _records(db()).jobs
    assert jobs.fail_interrupted("interrupted", 9.0) == 1
    failed = jobs.get("job-run")
    assert failed is not None
    assert (failed.status, failed.message, failed.finished_at) == ("FAILED", "interrupted", 9.0)
    assert jobs.get("job-done") == done


def test_processors_round_trip(db: Callable[[], FaceStore]) -> None:
    processors = _records(db()).processors
    door = ProcessorRecord("door", "c", '{"name":"door"}', "RUNNING", 5.0)
    processors.put(ProcessorRecord("yard", "c", '{"name":"yard"}', "STOPPED", 4.0))
    processors.put(dataclasses.replace(door, desired="STOPPED"))
    processors.put(door)  # replaces
    assert processors.get("door") == door
    assert [p.name for p in processors.list()] == ["door", "yard"]
    processors.delete("door")
    assert processors.get("door") is None
    assert [p.name for p in _records(db()).processors.list()] == ["yard"]


def test_sightings_merge_query_and_expire(db: Callable[[], FaceStore]) -> None:
    sightings = _records(db()).sightings
    now = time.time()
    first = _sighting("f1", track=1)
    sightings.upsert_track(dataclasses.replace(first, similarity=90.0, snapshot=None))
    sightings.upsert_track(
        dataclasses.replace(first, sighting_id="ignored", ended_at=first.ended_at + 5, end_stream_ms=6000,
                            similarity=80.0, face_id=None, user_id=None, snapshot=None)
    )  # fmt: skip
    (merged,) = sightings.query(SightingQuery(source="door", snapshots=True), now)
    assert (merged.sighting_id, merged.face_id, merged.similarity) == (first.sighting_id, "f1", 90.0)
    assert (merged.ended_at, merged.end_stream_ms, merged.snapshot) == (first.ended_at + 5, 6000, None)
    sightings.upsert_track(dataclasses.replace(first, snapshot=b"jpeg", similarity=95.0))
    (merged,) = sightings.query(SightingQuery(face_id="f1", snapshots=True), now)
    assert (merged.snapshot, merged.similarity, merged.bounding_box) == (b"jpeg", 95.0, first.bounding_box)
    assert sightings.query(SightingQuery(face_id="f1"), now)[0].snapshot is None  # only when asked for

    old = dataclasses.replace(
        _sighting("f2", track=2), camera="yard", started_at=now - 100, ended_at=now - 99, expires_at=now + 1
    )
    sightings.add([old, dataclasses.replace(_sighting("f3", track=3), source="gate")])
    sightings.add([dataclasses.replace(old, user_id="bob")])  # the same sighting again: replaced
    assert sightings.count() == 3
    assert [s.face_id for s in sightings.query(SightingQuery(camera="yard"), now)] == ["f2"]
    assert [s.user_id for s in sightings.query(SightingQuery(user_id="bob"), now)] == ["bob"]
    assert {s.face_id for s in sightings.query(SightingQuery(until=now - 50), now)} == {"f2"}
    assert {s.face_id for s in sightings.query(SightingQuery(since=now + 0.5), now)} == {"f1", "f3"}
    page = sightings.query(SightingQuery(limit=2), now) + sightings.query(SightingQuery(limit=2, offset=2), now)
    assert sorted(s.face_id or "" for s in page) == ["f1", "f2", "f3"]
    later = {s.face_id for s in sightings.query(SightingQuery(), now + 2)}
    assert later == {"f1", "f3"}  # expired ones are not shown before the sweep
    assert sightings.sweep(now + 2) == 1
    assert sightings.delete_source("gate") == 1
    assert [s.face_id for s in sightings.query(SightingQuery(), now)] == ["f1"]


def _old_video_files(video: Path) -> None:
    """video/*.db as facetrace before schema 3 wrote them (schemas copied from that version)."""
    video.mkdir(mode=0o755)
    db = sqlite3.connect(video / "processors.db")
    db.execute("CREATE TABLE processors (name TEXT PRIMARY KEY, definition TEXT NOT NULL, desired TEXT NOT NULL,"
               " updated_at REAL NOT NULL)")  # fmt: skip
    definition = {"name": "door", "source": "rtsp://cam/1", "face_search": {"collection_id": "c"}}
    db.execute("INSERT INTO processors VALUES ('door', ?, 'RUNNING', 5.0)", (json.dumps(definition),))
    db.commit()
    db.close()
    db = sqlite3.connect(video / "jobs.db")
    db.execute(
        "CREATE TABLE jobs (job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, video TEXT NOT NULL, collection_id TEXT,"
        " threshold REAL, job_tag TEXT, camera TEXT, status TEXT NOT NULL, message TEXT, created_at REAL NOT NULL,"
        " finished_at REAL, metadata TEXT, results BLOB)"
    )
    old = _job("job-old", ["f1"])
    db.execute(
        "INSERT INTO jobs VALUES ('job-old', 'FaceSearch', 'v.mp4', 'c', 90.0, NULL, NULL, 'SUCCEEDED', NULL,"
        " 1.0, 2.0, NULL, ?)",
        (old.results,),
    )
    db.commit()
    db.close()
    db = sqlite3.connect(video / "sightings.db")
    db.execute(
        "CREATE TABLE sightings (sighting_id TEXT PRIMARY KEY, source TEXT NOT NULL, camera TEXT NOT NULL,"
        " track_id INTEGER NOT NULL, started_at REAL NOT NULL, ended_at REAL NOT NULL,"
        " start_stream_ms INTEGER NOT NULL, end_stream_ms INTEGER NOT NULL, face_id TEXT, user_id TEXT,"
        " external_image_id TEXT, similarity REAL, box_left REAL, box_top REAL, box_width REAL, box_height REAL,"
        " snapshot BLOB, expires_at REAL NOT NULL, UNIQUE (source, track_id))"
    )
    far = time.time() + 3600
    db.execute(
        "INSERT INTO sightings VALUES ('s1', 'door', 'lobby', 1, 1.0, 2.0, 0, 1000, 'f1', NULL, 'ann', 99.0,"
        " 0.1, 0.1, 0.2, 0.2, x'ffd8', ?)",
        (far,),
    )
    db.commit()
    db.close()


def test_an_old_home_is_imported_into_one_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    keys = {"keys": [{"AccessKeyId": "FTOLD", "SecretAccessKey": "old-secret", "Permission": "admin",
                      "Collections": None, "Description": "from keys.json", "CreatedAt": 3.0}]}  # fmt: skip
    (home / "keys.json").write_text(json.dumps(keys))
    os.chmod(home / "keys.json", 0o600)
    _old_video_files(home / "video")

    store = open_store(home)
    records = store.records  # type: ignore[attr-defined]
    assert records.keys.get("FTOLD").secret == "old-secret"
    assert not (home / "keys.json").exists()  # the secrets are in the database only
    assert [(p.name, p.collection_id, p.desired) for p in records.processors.list()] == [("door", "c", "RUNNING")]
    job = records.jobs.get("job-old")
    assert (job.status, job.principal, job.face_ids) == ("SUCCEEDED", "unknown", ("f1",))
    (sighting,) = records.sightings.query(SightingQuery(face_id="f1", snapshots=True), time.time())
    assert (sighting.collection_id, sighting.snapshot) == ("c", b"\xff\xd8")  # the processor's collection
    for name in ("processors.db", "jobs.db", "sightings.db"):
        assert not (home / "video" / name).exists()
        assert (home / "video" / f"{name}.imported").exists()
    assert stat.S_IMODE((home / "video").stat().st_mode) == 0o700
    store.close()
    open_store(home).close()  # nothing left to import: opening again changes nothing


# --- what only a database shared by several servers needs (PostgreSQL) -------------------------------------


def test_a_live_servers_jobs_are_not_failed_by_another_starting(pg_url: str) -> None:
    from facetrace.store.postgres import PostgresStore

    a, b = PostgresStore(pg_url, listen=False), PostgresStore(pg_url, listen=False)
    try:
        running = dataclasses.replace(_job("job-a", []), status="IN_PROGRESS", finished_at=None, results=None)
        _records(a).jobs.save(running)  # A runs it, its heartbeat says it is alive
        assert _records(b).jobs.fail_interrupted("interrupted by a restart", 9.0) == 0
        assert _records(b).jobs.get("job-a") == running  # B reads it as it is
        a.close()  # A is gone: its instance lease with it
        orphan = _records(b).jobs.get("job-a")  # read through B while no server restarts: it will never end
        assert orphan is not None
        assert (orphan.status, orphan.message) == ("FAILED", "interrupted: the server running it stopped")
        _records(b).jobs.save(running)  # (as if it were still running, for the restart case)
        assert _records(b).jobs.fail_interrupted("interrupted by a restart", 9.0) == 0  # B's own: B is alive
        b.close()
        c = PostgresStore(pg_url, listen=False)
        try:
            assert _records(c).jobs.fail_interrupted("interrupted by a restart", 9.0) == 1
            assert _records(c).jobs.get("job-a").status == "FAILED"  # type: ignore[union-attr]
        finally:
            c.close()
    finally:
        a.close()
        b.close()


def test_one_token_sent_to_two_servers_at_once_acts_once(pg_url: str) -> None:
    """The same ClientRequestToken reaching two servers at the same instant: one runs the request, the other
    waits for it and returns its answer (an advisory lock per token in the shared database)."""
    from facetrace.service.idempotency import Idempotency
    from facetrace.store.postgres import PostgresStore

    stores = [PostgresStore(pg_url, listen=False) for _ in range(2)]
    acted: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(2)
    answers: list[bytes] = []

    def request(server: int) -> None:
        def act() -> bytes:
            with lock:
                acted.append(server)
            time.sleep(0.5)  # long enough for the other server's request to arrive meanwhile
            return f'{{"by":{server}}}'.encode()

        barrier.wait()
        idempotency = Idempotency(_records(stores[server]).tokens)
        answers.append(idempotency.run("key", "CreateUser", {"UserId": "u", "ClientRequestToken": "t"}, act))

    try:
        threads = [threading.Thread(target=request, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        for store in stores:
            store.close()
    assert len(acted) == 1
    assert answers == [f'{{"by":{acted[0]}}}'.encode()] * 2


def test_review_items_and_unknown_people_round_trip(db: Callable[[], FaceStore]) -> None:
    """The review queue's and unknown people's SQL, the same on both backends (``store/review_sql.py``)."""
    from facetrace.store.records import ReviewCandidate, ReviewDecision, ReviewItem, ReviewQuery, UnknownFace

    store = db()
    store.create_collection("c", MODEL)
    records = _records(store)
    now = time.time()
    candidate = ReviewCandidate("f1", "u1", None, 96.5, "user:u1")
    item = ReviewItem(
        item_id="00000000-0000-4000-8000-000000000001", collection_id="c", source="door", camera="lobby",
        track_id=7, started_at=now, ended_at=now + 2, start_stream_ms=0, end_stream_ms=2000,
        bounding_box=BoundingBox(0.1, 0.2, 0.3, 0.4), candidates=(candidate,), review_threshold=90.0,
        match_threshold=99.0, template_quality=80.0, vector=b"\x00" * 8, vector_quality=70.0,
        vector_confidence=95.0, created_at=now, expires_at=now + 100, thumbnails=(b"jpeg1", b"jpeg2"),
    )  # fmt: skip
    records.reviews.add(item)
    assert records.reviews.get(item.item_id, thumbnails=True) == item
    assert records.reviews.get(item.item_id).thumbnails == ()  # type: ignore[union-attr]
    assert [i.item_id for i in records.reviews.find(ReviewQuery(collection_ids=("c",)), now)] == [item.item_id]
    assert records.reviews.find(ReviewQuery(collection_ids=("d",)), now) == []
    assert records.reviews.find(ReviewQuery(), now + 200) == []  # expired
    confirmed = dataclasses.replace(item, status="CONFIRMED", decided_at=now, decided_by="k", sighting_id="s1")
    decision = ReviewDecision(item.item_id, "CONFIRM", "user:u1", "k", None, now)
    sighting = dataclasses.replace(_sighting("f1", user_id="u1"), sighting_id="s1", confirmed_by="k")
    assert records.reviews.decide(confirmed, [decision], sighting)
    assert not records.reviews.decide(confirmed, [decision])  # answered already: nothing written
    assert records.reviews.decisions(item.item_id) == [decision]
    assert records.reviews.rejected("door", 7) == set()
    (stored,) = records.sightings.query(SightingQuery(face_id="f1"), now)
    assert stored.confirmed_by == "k"
    assert records.reviews.sweep(now + 200) == 1
    assert records.reviews.decisions(item.item_id) == [decision]  # answers outlive their items

    face = UnknownFace("face-1", "00000000-0000-4000-8000-0000000000aa", "c", "door", "lobby", 1, now,
                       b"\x00" * 8, 70.0, 0.8, b"thumb", now + 100)  # fmt: skip
    first = records.unknowns.add_face(face, None)
    second = records.unknowns.add_face(
        dataclasses.replace(face, face_id="face-2", camera="yard", seen_at=now + 50), first
    )
    assert (second.number, second.seen, second.cameras, second.last_seen) == (
        first.number,
        2,
        ("lobby", "yard"),
        now + 50,
    )
    ((group, faces),) = records.unknowns.groups("c", now)
    assert group == second
    assert [f.thumbnail for f in faces] == [None, None]  # grouping never reads the thumbnails
    assert [f.thumbnail for f in records.unknowns.faces(group.unknown_id, thumbnails=True)] == [b"thumb", b"thumb"]
    records.unknowns.mark_named(group.unknown_id, "barack")
    assert records.unknowns.groups("c", now) == []  # a named group no longer grows
    assert records.unknowns.find(("c",), now, 10, 0)[0].named_user == "barack"
    store.delete_collection("c")
    assert records.unknowns.find(None, now, 10, 0) == []
