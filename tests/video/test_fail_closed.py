"""Video fails closed: a live stream whose audit trail fails stops (FAILED, with a status event saying why)
instead of identifying people unaudited; other sinks may fail without stopping it; a stored-video job whose
results cannot be audited keeps no results and writes no sightings."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from facetrace.audit import Caller
from facetrace.engine import FaceEngine
from facetrace.gallery import Gallery
from facetrace.store.memory import MemoryStore
from facetrace.video.events import Event, StreamState, StreamStatus, TrackIdentified
from facetrace.video.identity import CollectionMatcher
from facetrace.video.jobs import JobStatus, VideoJobs
from facetrace.video.pipeline import StreamConfig, StreamWorker
from facetrace.video.processors import AuditSink, StreamProcessors
from facetrace.video.sightings import SightingStore
from facetrace.video.sinks import CallbackSink
from facetrace.video.source import SourceSettings
from tests.video.conftest import THRESHOLD
from tests.waiting import wait_for


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def gallery(engine: FaceEngine, photos: dict[str, Path], store: MemoryStore) -> Gallery:
    """A gallery of its own: these tests break its audit trail."""
    gallery = Gallery(engine, store)
    gallery.create_collection("people")
    gallery.index_faces("people", photos["obama2.jpg"], external_image_id="obama", max_faces=1)
    gallery.index_faces("people", photos["biden.jpg"], external_image_id="biden", max_faces=1)
    return gallery


def _operations(store: MemoryStore) -> list[str]:
    return [r.event.operation for r in store.audit.records()]


def test_a_processor_stops_when_its_audit_fails(
    gallery: Gallery, store: MemoryStore, scene: Path, tmp_path: Path
) -> None:
    sightings = SightingStore(tmp_path / "sightings.db")
    processors = StreamProcessors(gallery, sightings=sightings)
    processors.create(
        {
            "name": "door",
            "source": str(scene),
            "face_search": {"collection_id": "people", "face_match_threshold": THRESHOLD},
            "jsonl": str(tmp_path / "events.jsonl"),
        }
    )
    store.audit.fail_with = "disk full"
    with processors.bus.subscribe(processor="door") as feed:
        processors.start("door")
        assert wait_for(lambda: processors.status("door") == "FAILED", 30)
        seen = list(feed.events(timeout=0.1, until=time.monotonic() + 1.0))
    described = processors.describe("door")
    assert "audit" in described["StatusMessage"]
    assert "disk full" in described["StatusMessage"]
    failed = [e for e in seen if isinstance(e, StreamStatus) and e.state is StreamState.FAILED]
    assert failed
    assert "audit" in failed[0].message
    assert not [e for e in seen if isinstance(e, TrackIdentified) and e.match is not None]  # never published
    assert sightings.count() == 0
    assert "StreamProcessorFaceMatch" not in _operations(store)
    jsonl = (tmp_path / "events.jsonl").read_text()
    assert '"FAILED"' in jsonl
    assert "TrackIdentified" not in jsonl
    processors.close()


def test_other_sinks_may_fail_without_stopping_the_stream(
    gallery: Gallery, store: MemoryStore, scene: Path
) -> None:
    delivered: list[Event] = []

    def broken(event: Event) -> None:
        raise OSError("webhook endpoint down")

    config = StreamConfig(
        name="door", source=SourceSettings(str(scene)), detect_every=3, queue_size=1, drop_when_behind=False
    )
    audit = AuditSink(gallery, Caller("local:test"), "people", THRESHOLD, "door")
    worker = StreamWorker(
        config,
        gallery.engine,
        matcher=CollectionMatcher(gallery, "people", THRESHOLD),
        sinks=[CallbackSink(broken), CallbackSink(delivered.append), audit],
    )
    assert worker.sinks[0] is audit  # the audit trail sees every event first
    worker.start()
    assert worker.join(60)
    assert worker.metrics.state == "ENDED", worker.metrics.message
    identified = {e.match.face.external_image_id for e in delivered if isinstance(e, TrackIdentified) and e.match}
    assert identified == {"obama", "biden"}
    assert _operations(store).count("StreamProcessorFaceMatch") >= 2


def test_a_job_whose_results_cannot_be_audited_keeps_nothing(
    gallery: Gallery, store: MemoryStore, scene: Path, tmp_path: Path
) -> None:
    sightings = SightingStore(tmp_path / "sightings.db")
    jobs = VideoJobs(gallery, sightings=sightings)
    job_id = jobs.start_face_search(scene, "people", threshold=THRESHOLD)
    store.audit.fail_with = "disk full"  # the start was audited; its results cannot be
    job = jobs.wait(job_id, timeout=120)
    assert job.status is JobStatus.FAILED
    assert "audit store unavailable" in (job.message or "")
    assert jobs.get_face_search(job_id).items == ()
    assert job.results == []
    assert sightings.count() == 0
    assert _operations(store)[-1] == "StartFaceSearch"
    jobs.close(wait=True)
