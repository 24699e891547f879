"""Stored-video search and face detection jobs against a clip whose ground truth is known."""

from __future__ import annotations

from pathlib import Path

import pytest

from facetrace.errors import InvalidParameterError, NotFoundError
from facetrace.gallery import Gallery
from facetrace.store import SQLiteStore
from facetrace.store.records import JobRepository
from facetrace.video.jobs import JobSettings, JobStatus, VideoJobs
from facetrace.video.sightings import SightingStore
from tests.video.conftest import FPS, SECONDS, SIZE, THRESHOLD, Actor


def _spans(results: list[dict], key: str) -> dict[str, tuple[int, int]]:
    spans: dict[str, list[int]] = {}
    for item in results:
        name = item["FaceMatches"][0]["Face"]["ExternalImageId"] if key == "name" else item["Person"]["Index"]
        spans.setdefault(name, []).append(item["Timestamp"])
    return {name: (min(times), max(times)) for name, times in spans.items()}


def _repository(folder: Path) -> JobRepository:
    """The jobs table of a facetrace database in ``folder`` (a new connection each time, as a restart)."""
    return SQLiteStore(folder / "facetrace.db").records.jobs


@pytest.fixture
def jobs(gallery: Gallery, tmp_path: Path) -> VideoJobs:
    manager = VideoJobs(
        gallery, repository=_repository(tmp_path), sightings=SightingStore(tmp_path / "facetrace.db")
    )
    yield manager
    manager.close(wait=True)


def test_face_search_finds_each_person_where_and_when_they_are(
    jobs: VideoJobs, scene: Path, actors: list[Actor]
) -> None:
    job_id = jobs.start_face_search(scene, "people", threshold=THRESHOLD)
    job = jobs.wait(job_id, timeout=60)
    assert job.status is JobStatus.SUCCEEDED, job.message
    page = jobs.get_face_search(job_id)
    spans = _spans(list(page.items), "name")
    assert set(spans) == {"obama", "biden"}  # the stranger is never matched
    for actor in actors[:2]:
        first, last = spans[actor.name]
        # seen from (nearly) the start of its span to (nearly) the end, never outside it
        assert actor.start * 1000 <= first <= actor.start * 1000 + 500
        assert actor.end * 1000 - 500 <= last < actor.end * 1000
    # one person index per person: the tracks are not fragmented
    indexes = {item["FaceMatches"][0]["Face"]["ExternalImageId"]: set() for item in page.items}
    for item in page.items:
        indexes[item["FaceMatches"][0]["Face"]["ExternalImageId"]].add(item["Person"]["Index"])
    assert all(len(found) == 1 for found in indexes.values())
    # boxes follow the actor: the face centre is inside the pasted sprite at that time
    for item in page.items:
        name = item["FaceMatches"][0]["Face"]["ExternalImageId"]
        actor = next(a for a in actors if a.name == name)
        x, y = actor.position(item["Timestamp"] / 1000.0)
        box = item["Person"]["BoundingBox"]
        cx, cy = (box["Left"] + box["Width"] / 2) * SIZE[0], (box["Top"] + box["Height"] / 2) * SIZE[1]
        h, w = actor.sprite.shape[:2]
        assert x - 10 <= cx <= x + w + 10
        assert y - 10 <= cy <= y + h + 10
        assert item["FaceMatches"][0]["Similarity"] >= THRESHOLD
        assert item["Person"]["Face"]["Confidence"] > 50
    meta = job.describe()["VideoMetadata"]
    assert (meta["FrameWidth"], meta["FrameHeight"]) == SIZE
    assert meta["FrameRate"] == pytest.approx(FPS, rel=0.01)
    assert meta["DurationMillis"] == pytest.approx(SECONDS * 1000, abs=150)


def test_face_search_sorts_and_pages(jobs: VideoJobs, scene: Path) -> None:
    job_id = jobs.start_face_search(scene, "people", threshold=THRESHOLD)
    jobs.wait(job_id, timeout=60)
    everything = list(jobs.get_face_search(job_id).items)
    by_time = [item["Timestamp"] for item in everything]
    assert by_time == sorted(by_time)
    by_index = list(jobs.get_face_search(job_id, sort_by="INDEX").items)
    keys = [(item["Person"]["Index"], item["Timestamp"]) for item in by_index]
    assert keys == sorted(keys)
    assert sorted(map(str, by_index)) == sorted(map(str, everything))
    pages, token = [], None
    while True:
        page = jobs.get_face_search(job_id, max_results=4, next_token=token)
        pages.extend(page.items)
        token = page.next_token
        assert len(page.items) <= 4
        if token is None:
            break
    assert pages == everything
    with pytest.raises(InvalidParameterError):
        jobs.get_face_search(job_id, next_token="not-a-token")
    with pytest.raises(InvalidParameterError):
        jobs.get_face_search(job_id, sort_by="NAME")


def test_face_detection_reports_every_face(jobs: VideoJobs, scene: Path, actors: list[Actor]) -> None:
    job_id = jobs.start_face_detection(scene)
    job = jobs.wait(job_id, timeout=60)
    assert job.status is JobStatus.SUCCEEDED, job.message
    faces = list(jobs.get_face_detection(job_id).items)
    step = 1000 / JobSettings().sample_fps
    for timestamp in sorted({face["Timestamp"] for face in faces}):
        expected = sum(1 for actor in actors if actor.position(timestamp / 1000.0) is not None)
        found = sum(1 for face in faces if face["Timestamp"] == timestamp)
        assert found == expected, f"at {timestamp} ms"
    assert len({face["Timestamp"] for face in faces}) >= SECONDS * 1000 / step - 1
    assert {"BoundingBox", "Landmarks", "Pose", "Quality", "Confidence"} <= set(faces[0]["Face"])


def test_jobs_survive_a_restart_and_record_sightings(gallery: Gallery, scene: Path, tmp_path: Path) -> None:
    sightings = SightingStore(tmp_path / "facetrace.db")
    first = VideoJobs(gallery, repository=_repository(tmp_path), sightings=sightings)
    job_id = first.start_face_search(scene, "people", threshold=THRESHOLD, job_tag="case-7")
    first.wait(job_id, timeout=60)
    results = list(first.get_face_search(job_id).items)
    first.close(wait=True)
    second = VideoJobs(gallery, repository=_repository(tmp_path))
    job = second.get(job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert job.job_tag == "case-7"
    assert list(second.get_face_search(job_id).items) == results
    second.close()
    seen = sightings.query(external_image_id="obama")
    assert len(seen) == 1
    assert seen[0].source == job_id
    assert seen[0].end_stream_ms - seen[0].start_stream_ms > 1500
    assert {s.external_image_id for s in sightings.query(source=job_id)} == {"obama", "biden"}


def test_job_errors(jobs: VideoJobs, scene: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        jobs.get("0" * 32)
    with pytest.raises(NotFoundError):
        jobs.start_face_search(scene, "nobody-here")
    with pytest.raises(InvalidParameterError):
        jobs.start_face_search("udp://127.0.0.1:9", "people")
    missing = jobs.wait(jobs.start_face_detection(tmp_path / "missing.mp4"), timeout=10)
    assert missing.status is JobStatus.FAILED
    assert "no such video file" in (missing.message or "")
    detection = jobs.start_face_detection(scene)
    with pytest.raises(NotFoundError):
        jobs.get_face_search(detection)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    failed = jobs.wait(jobs.start_face_detection(broken), timeout=10)
    assert failed.status is JobStatus.FAILED
    assert "cannot open" in (failed.message or "")
