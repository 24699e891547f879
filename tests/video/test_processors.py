"""Stream processors: lifecycle, events with identity, persistence across a restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from facetrace.errors import AlreadyExistsError, ConflictError, InvalidParameterError, NotFoundError
from facetrace.gallery import Gallery
from facetrace.store import SQLiteStore
from facetrace.store.records import ProcessorRepository
from facetrace.video.events import TrackIdentified
from facetrace.video.processors import StreamProcessors
from facetrace.video.sightings import SightingStore
from tests.video.conftest import THRESHOLD
from tests.waiting import wait_for


def definition(name: str, scene: Path, **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "source": str(scene),
        "camera": "lobby",
        "face_search": {"collection_id": "people", "face_match_threshold": THRESHOLD},
        **extra,
    }


def _repository(folder: Path) -> ProcessorRepository:
    """The processors table of a facetrace database in ``folder`` (a new connection each time, as a restart)."""
    return SQLiteStore(folder / "facetrace.db").records.processors


def test_lifecycle_events_and_sightings(gallery: Gallery, scene: Path, tmp_path: Path) -> None:
    sightings = SightingStore(tmp_path / "sightings.db")
    processors = StreamProcessors(gallery, repository=_repository(tmp_path), sightings=sightings)
    processors.create(definition("lobby-cam", scene, jsonl=str(tmp_path / "events.jsonl"), retention_days=7))
    assert processors.status("lobby-cam") == "STOPPED"
    with processors.bus.subscribe(processor="lobby-cam") as feed:
        processors.start("lobby-cam")
        with pytest.raises(ConflictError):
            processors.start("lobby-cam")
        with pytest.raises(ConflictError):
            processors.delete("lobby-cam")
        names: set[str] = set()
        for event in feed.events(timeout=0.1, until=time.monotonic() + 20):
            if isinstance(event, TrackIdentified):
                names.add(event.match.face.external_image_id)
                assert event.camera == "lobby"
            if names == {"obama", "biden"}:
                break
    assert names == {"obama", "biden"}
    described = processors.describe("lobby-cam")
    assert described["Settings"]["FaceSearch"] == {"CollectionId": "people", "FaceMatchThreshold": THRESHOLD}
    assert described["Metrics"]["FramesAnalysed"] > 0
    assert wait_for(lambda: processors.status("lobby-cam") == "STOPPED")  # a file source ends by itself
    processors.stop("lobby-cam")
    assert (tmp_path / "events.jsonl").read_text().count("TrackIdentified") >= 2
    seen = sightings.query(external_image_id="obama", source="lobby-cam")
    assert len(seen) == 1
    assert seen[0].expires_at == pytest.approx(seen[0].started_at + 7 * 86400)
    processors.delete("lobby-cam")
    with pytest.raises(NotFoundError):
        processors.describe("lobby-cam")
    processors.close()


def test_definitions_and_running_state_survive_a_restart(gallery: Gallery, scene: Path, tmp_path: Path) -> None:
    first = StreamProcessors(gallery, repository=_repository(tmp_path))
    first.create(definition("looping", str(scene) + "", detect_every=3))
    first.create(definition("idle", scene))
    first.start("looping")
    first.close()  # the process goes away while "looping" runs
    second = StreamProcessors(gallery, repository=_repository(tmp_path))
    listed, token = second.list()
    assert listed == [{"Name": "idle", "Status": "STOPPED"}, {"Name": "looping", "Status": "STOPPED"}]
    assert token is None
    assert second.definition("looping").detect_every == 3
    assert second.resume() == ["looping"]
    assert second.status("looping") in ("STARTING", "RUNNING", "STOPPED")
    assert second.status("idle") == "STOPPED"
    second.stop("looping")
    second.close()
    third = StreamProcessors(gallery, repository=_repository(tmp_path))
    assert third.resume() == []  # stopped on purpose: stays stopped
    third.close()


def test_bad_definitions_are_refused_with_every_problem(gallery: Gallery, scene: Path) -> None:
    processors = StreamProcessors(gallery)
    with pytest.raises(InvalidParameterError) as caught:
        processors.create({"name": "bad name!", "source": "", "face_search": {"collection_id": "people"}, "x": 1})
    message = caught.value.message
    assert "name" in message
    assert "source" in message
    assert "x" in message
    with pytest.raises(NotFoundError):
        processors.create(definition("cam", scene, face_search={"collection_id": "missing"}))
    processors.create(definition("cam", scene))
    with pytest.raises(AlreadyExistsError):
        processors.create(definition("cam", scene))
    page, token = processors.list(max_results=1)
    assert page == [{"Name": "cam", "Status": "STOPPED"}]
    assert token is None


def test_every_identified_track_is_audited(engine, photos, scene: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from facetrace.audit import AuditEvent
    from facetrace.store.memory import MemoryStore

    store = MemoryStore()

    def events() -> list[AuditEvent]:
        return [record.event for record in store.audit.records()]

    audited = Gallery(engine, store)
    audited.create_collection("people")
    audited.index_faces("people", photos["obama2.jpg"], external_image_id="obama", max_faces=1)
    processors = StreamProcessors(audited, repository=_repository(tmp_path))
    processors.create(definition("door", scene))
    processors.start("door")
    assert wait_for(lambda: any(e.operation == "StreamProcessorFaceMatch" for e in events()))
    processors.stop("door")
    match = next(e for e in events() if e.operation == "StreamProcessorFaceMatch")
    assert match.principal == "streamprocessor:door"
    assert match.collection_id == "people"
    assert match.threshold == THRESHOLD
    assert len(match.matched_face_ids) == 1
