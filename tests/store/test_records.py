"""One database for the rest: keys, jobs, processors and sightings live in facetrace.db; deleting faces,
users and collections removes what was derived from them; the separate files of older versions are imported."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
import zlib
from pathlib import Path

from facetrace.audit import AuditEvent
from facetrace.store import SQLiteStore, open_store
from facetrace.store.records import JobRecord, KeyRecord, Sighting, SightingQuery
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


def _results(store: SQLiteStore, job_id: str) -> list[str]:
    job = store.records.jobs.get(job_id)
    assert job is not None
    assert job.results is not None
    return [m["Face"]["FaceId"] for item in json.loads(zlib.decompress(job.results)) for m in item["FaceMatches"]]


def test_deleting_faces_users_and_collections_takes_derived_data_along(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "facetrace.db")
    store.create_collection("c", MODEL)
    store.create_collection("other", MODEL)
    faces = faces_with_vectors(3, seed=4)
    a, b, c = (record.face_id for record, _ in faces)
    store.add_faces("c", faces)
    store.create_user("c", "ann")
    store.associate_faces("c", "ann", [b])
    sightings = store.records.sightings
    sightings.add([_sighting(a), _sighting(b, user_id="ann", track=2), _sighting(c, track=3)])
    sightings.add([_sighting("f-other", collection="other", track=9)])
    store.records.jobs.save(_job("job-1", [a, b, a, c]))
    store.records.jobs.save(_job("job-2", ["f-other"], collection="other"))

    store.delete_faces("c", [a], audit=EVENT)
    assert {s.face_id for s in sightings.query(SightingQuery(limit=100), time.time())} == {b, c, "f-other"}
    assert _results(store, "job-1") == [b, c]  # the deleted face is gone from the stored results
    assert set(store.records.jobs.get("job-1").face_ids) == {b, c}  # type: ignore[union-attr]

    store.delete_user("c", "ann", audit=EVENT)
    found = sightings.query(SightingQuery(face_id=b), time.time())
    assert [s.user_id for s in found] == [None]  # the face stays, the user it named does not

    store.delete_collection("c", audit=EVENT)
    assert [s.face_id for s in sightings.query(SightingQuery(limit=100), time.time())] == ["f-other"]
    assert store.records.jobs.get("job-1") is None
    assert store.records.jobs.get("job-2") is not None
    assert store.audit.verify().count == 3
    store.close()


def test_keys_processors_and_tokens_persist(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "facetrace.db")
    key = KeyRecord("FTKEY", "s3cr3t-value", "write", ("a",), "ingest", 1.0)
    store.records.keys.add(key)
    assert "s3cr3t" not in repr(key)
    store.close()
    again = SQLiteStore(tmp_path / "facetrace.db")
    assert again.records.keys.get("FTKEY") == key
    assert again.records.keys.delete("FTKEY")
    assert not again.records.keys.delete("FTKEY")
    assert again.records.keys.list() == []
    again.close()


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
