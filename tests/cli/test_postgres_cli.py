"""The command line on PostgreSQL: ``--database-url`` on real photos, and ``facetrace migrate`` round trips."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest

from facetrace.audit import AuditEvent
from facetrace.cli import main
from facetrace.store import SQLiteStore
from facetrace.store.postgres import PostgresStore
from facetrace.store.ui_records import SessionRecord, ui_records_of
from tests.store.conftest import MODEL, faces_with_vectors


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, str]:
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def test_cli_on_postgres_indexes_searches_and_audits_in_the_database(
    capsys: pytest.CaptureFixture[str], photos: dict[str, Path], home: Path, pg_url: str
) -> None:
    db = ("--database-url", pg_url)
    assert run(capsys, "collections", "create", "people", *db)[0] == 0
    code, report, _ = run(capsys, "index", "people", str(photos["obama.jpg"]), *db)
    assert (code, report["FacesIndexed"]) == (0, 1)
    code, found, _ = run(capsys, "search", "people", str(photos["obama2.jpg"]), *db)
    assert code == 0
    assert [m["Face"]["ExternalImageId"] for m in found["FaceMatches"]] == ["obama"]
    # Nothing went to the home's embedded store or audit file: the database is the system of record.
    assert not (home / "facetrace.db").exists()
    assert not (home / "audit.db").exists()
    code, verified, _ = run(capsys, "audit", "verify", *db)
    assert (code, verified["Ok"]) == (0, True)
    code, listed, _ = run(capsys, "audit", "list", *db)
    operations = [r["Operation"] for r in listed["Records"]]
    assert "CreateCollection" in operations
    assert "SearchFacesByImage" in operations
    # The environment variable does the same, and a password never shows in an error.
    code, _, err = run(capsys, "collections", "list", "--database-url", "postgresql://u:hunter2@127.0.0.1:1/x")
    assert code == 3
    assert "hunter2" not in err


def _home_with_data(home: Path) -> tuple[list, list]:
    home.mkdir(parents=True)
    store = SQLiteStore(home / "facetrace.db")
    a_faces = faces_with_vectors(120, seed=3)
    b_faces = faces_with_vectors(7, seed=4)
    try:
        store.create_collection("alpha", MODEL)
        store.create_collection("beta", MODEL)
        store.create_collection("empty", MODEL)
        store.add_faces("alpha", a_faces[:60])
        store.add_faces("alpha", a_faces[60:])
        store.add_faces("beta", b_faces)
        store.create_user("alpha", "ann")
        store.associate_faces("alpha", "ann", [a_faces[0][0].face_id, a_faces[1][0].face_id])
        store.create_user("beta", "bob")
        store.delete_faces("alpha", [a_faces[5][0].face_id])
        for i in range(25):
            store.audit.record(
                AuditEvent("SearchFacesByImage", f"key{i % 3}", collection_id="alpha", match_count=i)
            )
    finally:
        store.close()
    return a_faces, b_faces


def _digest(folder: Path) -> dict[str, str]:
    """The content of the home's files. Reading a WAL database, even read-only, makes SQLite create its
    shared-memory index (-shm) and an empty -wal: those carry no data and are left out."""
    files = [p for p in sorted(folder.iterdir()) if p.is_file()]
    assert all(p.stat().st_size == 0 for p in files if p.name.endswith("-wal"))
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files if not p.name.endswith(("-wal", "-shm"))
    }


def test_migrate_copies_a_home_bit_for_bit_and_refuses_a_non_empty_target(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, pg_url: str
) -> None:
    home = tmp_path / "home"
    a_faces, b_faces = _home_with_data(home)
    source = SQLiteStore(home / "facetrace.db")
    head = source.audit.verify().head
    source.close()
    before = _digest(home)

    code, report, _ = run(capsys, "migrate", "--home", str(home), "--to", pg_url)
    assert code == 0
    counts = {c["CollectionId"]: (c["Faces"], c["Users"]) for c in report["Collections"]}
    assert counts == {"alpha": (119, 1), "beta": (7, 1), "empty": (0, 0)}
    assert (report["AuditRecords"], report["AuditHead"]) == (25, head)
    assert _digest(home) == before  # the source is only read

    pg = PostgresStore(pg_url, listen=False)
    sqlite = SQLiteStore(home / "facetrace.db")
    try:
        for name in ("alpha", "beta", "empty"):
            want, got = sqlite.describe_collection(name), pg.describe_collection(name)
            assert (got.model, got.face_count, got.user_count, got.created_at) == (
                want.model, want.face_count, want.user_count, want.created_at,
            )  # fmt: skip
            assert pg.list_faces(name, limit=1000).items == sqlite.list_faces(name, limit=1000).items
            assert pg.list_users(name, limit=100).items == sqlite.list_users(name, limit=100).items
        for record, vector in a_faces[:5] + a_faces[6:] + b_faces:
            collection = "beta" if any(record is r for r, _ in b_faces) else "alpha"
            assert pg.get_vector(collection, record.face_id).tobytes() == np.asarray(vector, np.float32).tobytes()
        hit = pg.search("alpha", a_faces[9][1], limit=1, min_cosine=0.99)
        assert hit[0].face.face_id == a_faces[9][0].face_id
        assert pg.search("alpha", a_faces[5][1], limit=1, min_cosine=0.99) == []  # deleted before the move
        verified = pg.audit.verify(expect_head=head)
        assert (verified.ok, verified.count, verified.head) == (True, 25, head)
        assert [r.event.match_count for r in pg.audit.records()] == list(range(25))
    finally:
        pg.close()
        sqlite.close()

    code, _, err = run(capsys, "migrate", "--home", str(home), "--to", pg_url)
    assert code == 1
    assert "not empty" in err
    assert _digest(home) == before


def test_migrate_refuses_a_broken_source_chain_and_leaves_the_target_empty(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, pg_url: str
) -> None:
    import sqlite3

    home = tmp_path / "home"
    _home_with_data(home)
    conn = sqlite3.connect(home / "facetrace.db")
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET payload=replace(payload, 'key1', 'key9') WHERE seq=5")
    conn.commit()
    conn.close()
    code, _, err = run(capsys, "migrate", "--home", str(home), "--to", pg_url)
    assert code == 3
    assert "broken at record 5" in err
    pg = PostgresStore(pg_url, listen=False)
    try:
        assert pg.list_collections(limit=10).items == ()  # one transaction: nothing half-copied
        assert pg.audit.verify().count == 0
    finally:
        pg.close()


def test_migrate_without_a_home_database(capsys: pytest.CaptureFixture[str], tmp_path: Path, pg_url: str) -> None:
    code, _, err = run(capsys, "migrate", "--home", str(tmp_path / "nothing"), "--to", pg_url)
    assert code == 1
    assert "no facetrace database" in err
    code, _, _ = run(capsys, "migrate", "--home", str(tmp_path), "--to", "mysql://x")
    assert code == 1


def test_migrate_copies_keys_tokens_jobs_processors_and_sightings(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, pg_url: str
) -> None:
    """The rest of the system of record moves too: a key made before the move works against the database
    after it, a job is read back with its results, a sighting with its snapshot."""
    import dataclasses
    import time
    import zlib

    from facetrace.service.keys import KeyStore
    from facetrace.store.records import (
        JobRecord,
        ProcessorRecord,
        ReviewCandidate,
        ReviewItem,
        Sighting,
        SightingQuery,
        TokenRecord,
        UnknownFace,
    )
    from facetrace.types import BoundingBox

    home = tmp_path / "home"
    _home_with_data(home)
    code, key, _ = run(
        capsys, "keys", "create", "--permission", "write", "--collection", "alpha", "--home", str(home)
    )
    assert code == 0
    now = time.time()
    source = SQLiteStore(home / "facetrace.db")
    results = zlib.compress(json.dumps([{"Timestamp": 0, "FaceMatches": [{"Face": {"FaceId": "f1"}}]}]).encode())
    job = JobRecord(
        job_id="job-1", kind="FaceSearch", video="v.mp4", collection_id="alpha", threshold=90.0, job_tag="case",
        camera=None, status="SUCCEEDED", message=None, created_at=1.0, finished_at=2.0, metadata='{"Codec":"h264"}',
        results=results, principal=key["AccessKeyId"], purpose="p", request='{"S3Object":{}}', face_ids=("f1",),
    )  # fmt: skip
    sighting = Sighting(
        sighting_id="s1", source="door", camera="lobby", track_id=3, started_at=now, ended_at=now + 1,
        start_stream_ms=0, end_stream_ms=1000, face_id="f1", user_id="ann", external_image_id="x", similarity=99.5,
        bounding_box=BoundingBox(0.1, 0.2, 0.3, 0.4), expires_at=now + 3600, snapshot=b"\xff\xd8jpeg",
        collection_id="alpha",
    )  # fmt: skip
    processor = ProcessorRecord("door", "alpha", '{"name":"door"}', "RUNNING", 5.0)
    token = TokenRecord(key["AccessKeyId"], "CreateUser", "tok", "fp", '{"ok":1}', now)
    try:
        source.records.jobs.save(job)
        source.records.sightings.add([sighting, dataclasses.replace(sighting, sighting_id="s2", track_id=4)])
        source.records.processors.put(processor)
        source.records.tokens.put(token)
        item = ReviewItem(
            item_id="00000000-0000-4000-8000-000000000001", collection_id="alpha", source="door", camera="lobby",
            track_id=9, started_at=now, ended_at=now + 1, start_stream_ms=0, end_stream_ms=1000, bounding_box=None,
            candidates=(ReviewCandidate("f1", "ann", None, 96.0, "user:ann"),), review_threshold=90.0,
            match_threshold=99.0, template_quality=None, vector=b"\x00" * 8, vector_quality=None,
            vector_confidence=None, created_at=now, expires_at=now + 3600, thumbnails=(b"\xff\xd8jpeg",),
        )  # fmt: skip
        source.records.reviews.add(item)
        unknown = UnknownFace("u-face", "00000000-0000-4000-8000-0000000000aa", "alpha", "door", "lobby", 5, now,
                              b"\x00" * 8, None, 0.5, None, now + 3600)  # fmt: skip
        source.records.unknowns.add_face(unknown, None)
    finally:
        source.close()

    code, report, _ = run(capsys, "migrate", "--home", str(home), "--to", pg_url)
    assert code == 0
    assert report["Records"] == {
        "access_keys": 1, "request_tokens": 1, "video_jobs": 1, "video_job_faces": 1, "stream_processors": 1,
        "sightings": 2, "review_items": 1, "review_thumbnails": 1, "review_decisions": 0, "unknown_people": 1,
        "unknown_faces": 1,
    }  # fmt: skip

    keys = KeyStore.in_home(None, url=pg_url)
    try:
        moved = keys.get(key["AccessKeyId"])
        assert moved is not None
        assert (moved.secret, moved.collections) == (key["SecretAccessKey"], ("alpha",))
    finally:
        keys.close()
    pg = PostgresStore(pg_url, listen=False)
    try:
        assert pg.records.jobs.get("job-1") == job
        (back,) = pg.records.sightings.query(
            SightingQuery(source="door", camera="lobby", limit=1, snapshots=True), now
        )
        assert back in (sighting, dataclasses.replace(sighting, sighting_id="s2", track_id=4))
        assert pg.records.processors.list() == [processor]
        assert pg.records.tokens.get(token.principal, "CreateUser", "tok", newer_than=now - 1) == token
        assert pg.records.reviews.get(item.item_id, thumbnails=True) == item
        assert [f.face_id for f in pg.records.unknowns.faces(unknown.unknown_id)] == ["u-face"]
    finally:
        pg.close()


def test_migrate_copies_face_thumbnails_and_leaves_sessions(
    capsys: pytest.CaptureFixture[str], photos: dict[str, Path], tmp_path: Path, pg_url: str
) -> None:
    """The dashboard's face thumbnails follow their faces into the new collection ids, a collection created
    without thumbnails stays so, and sign-in sessions are left behind on purpose (docs/deploy.md)."""
    home = tmp_path / "home"
    a_faces, b_faces = _home_with_data(home)
    jpegs = {name: photos[name].read_bytes() for name in ("obama.jpg", "biden.jpg")}  # real JPEG bytes
    source = SQLiteStore(home / "facetrace.db")
    ui = ui_records_of(source)
    assert ui is not None
    try:
        kept = [(a_faces[0][0].face_id, jpegs["obama.jpg"]), (a_faces[7][0].face_id, jpegs["biden.jpg"])]
        assert ui.thumbnails.put("alpha", kept) == 2
        ui.thumbnails.opt_out("beta")
        assert ui.thumbnails.put("beta", [(b_faces[0][0].face_id, jpegs["obama.jpg"])]) == 0
        ui.sessions.add(SessionRecord("f" * 64, "FTKEY", "csrf", None, time.time(), time.time() + 3600))
    finally:
        source.close()

    code, report, _ = run(capsys, "migrate", "--home", str(home), "--to", pg_url)
    assert code == 0
    thumbnails = {c["CollectionId"]: c["Thumbnails"] for c in report["Collections"]}
    assert thumbnails == {"alpha": 2, "beta": 0, "empty": 0}
    pg = PostgresStore(pg_url, listen=False)
    try:
        moved = ui_records_of(pg)
        assert moved is not None
        for face_id, jpeg in kept:
            assert moved.thumbnails.get("alpha", face_id) == jpeg  # byte for byte
        assert moved.thumbnails.get("alpha", a_faces[1][0].face_id) is None  # it had none
        assert (moved.thumbnails.enabled("alpha"), moved.thumbnails.enabled("beta")) == (True, False)
        assert moved.thumbnails.put("beta", [(b_faces[1][0].face_id, jpegs["biden.jpg"])]) == 0  # still opted out
        assert moved.sessions.get("f" * 64, time.time()) is None  # sign in again
        pg.delete_faces("alpha", [a_faces[0][0].face_id])  # the copies are tied to the faces like any other
        assert moved.thumbnails.get("alpha", a_faces[0][0].face_id) is None
    finally:
        pg.close()


def test_migrate_refuses_a_home_with_files_not_yet_imported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, pg_url: str
) -> None:
    home = tmp_path / "home"
    _home_with_data(home)
    (home / "keys.json").write_text('{"keys": []}')
    code, _, err = run(capsys, "migrate", "--home", str(home), "--to", pg_url)
    assert code == 1
    assert "keys.json" in err
    assert "import" in err
