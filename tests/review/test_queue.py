"""The review queue on a clip whose Obama scores between 90 and 99 against another photo of him."""

from __future__ import annotations

from pathlib import Path

import pytest

from facetrace.audit import Caller
from facetrace.errors import ConflictError, InvalidParameterError
from facetrace.gallery import Gallery
from facetrace.review import ReviewObserver, ReviewQueue
from facetrace.store.records import Records
from facetrace.video.analysis import UnresolvedTrack
from facetrace.video.identity import CollectionMatcher
from facetrace.video.jobs import VideoJobs
from facetrace.video.sightings import SightingStore

REVIEWER = Caller("FTREVIEWER0000000001")


def _operations(gallery: Gallery) -> list[str]:
    return [record.event.operation for record in gallery.store.audit.records()]


@pytest.mark.slow
def test_a_borderline_track_becomes_a_review_item_not_a_sighting_then_confirm_and_enrol(
    database: tuple[Gallery, Records], clips: dict[str, Path]
) -> None:
    gallery, records = database
    sightings = SightingStore(records.sightings)
    queue = ReviewQueue(gallery, records.reviews)
    jobs = VideoJobs(gallery, repository=records.jobs, sightings=sightings, review=queue)
    try:
        job = jobs.wait(jobs.start_face_search(clips["borderline"], "people", review_threshold=90.0), 240)
        assert job.status.value == "SUCCEEDED", job.message
        assert jobs.get_face_search(job.job_id).items == ()  # nobody named at 99: no result, no sighting
        assert sightings.count() == 0

        (item,) = queue.items()  # Obama's track; the stranger's best (~50) is far below 90
        assert item.source == job.job_id
        assert item.camera == "door.mp4"
        assert item.status == "PENDING"
        assert [c.external_image_id for c in item.candidates] == ["obama"]
        assert 90.0 <= item.candidates[0].similarity < 99.0
        shown = queue.get(item.item_id, thumbnails=True)
        assert shown.thumbnails
        assert all(t.startswith(b"\xff\xd8") for t in shown.thumbnails)
        assert "ReviewItemCreated" in _operations(gallery)

        confirmed = queue.confirm(item.item_id, enrol=True, caller=REVIEWER)
        assert confirmed.status == "CONFIRMED"
        assert confirmed.enrolled_face_id is not None
        (sighting,) = sightings.query(external_image_id="obama")
        assert sighting.confirmed_by == REVIEWER.principal
        assert sighting.sighting_id == confirmed.sighting_id
        assert sighting.similarity == item.candidates[0].similarity
        assert "ConfirmReviewItem" in _operations(gallery)
        with pytest.raises(ConflictError):
            queue.confirm(item.item_id, caller=REVIEWER)
        enrolled = gallery.store.get_faces("people", [confirmed.enrolled_face_id])[0]
        assert enrolled.external_image_id == "obama"

        # With the reviewed face enrolled, the same footage now names him at 99 with no review.
        again = jobs.wait(jobs.start_face_search(clips["borderline"], "people", review_threshold=90.0), 240)
        persons = jobs.get_face_search(again.job_id).items
        assert persons
        assert {p["FaceMatches"][0]["Face"]["ExternalImageId"] for p in persons} == {"obama"}
        assert len(queue.items()) == 0
    finally:
        jobs.close(wait=True)


def test_reject_strikes_the_person_for_that_track_only(
    database: tuple[Gallery, Records], borderline_tracks: list[UnresolvedTrack]
) -> None:
    gallery, records = database
    queue = ReviewQueue(gallery, records.reviews)
    tracks = borderline_tracks
    observer = ReviewObserver(queue, "people", source="door", review_threshold=90.0, match_threshold=99.0)
    for track in tracks:
        observer.observe(track)
    (item,) = observer.offered
    with pytest.raises(InvalidParameterError):
        queue.reject(item.item_id, person="external:biden", caller=REVIEWER)  # not a candidate
    rejected = queue.reject(item.item_id, person="external:obama", reason="different ears", caller=REVIEWER)
    assert rejected.status == "REJECTED"
    assert rejected.candidates[0].rejected_by == REVIEWER.principal
    (decision,) = queue.decisions(item.item_id)
    assert (decision.action, decision.person, decision.reviewer) == (
        "REJECT",
        "external:obama",
        REVIEWER.principal,
    )
    assert "RejectReviewItem" in _operations(gallery)
    assert queue.items() == []
    assert [i.item_id for i in queue.items(status="REJECTED")] == [item.item_id]

    matcher = CollectionMatcher(gallery, "people", 90.0)
    obama = next(t for t in tracks if t.track_id == item.track_id)
    assert queue.offer(obama, matcher, source="door", match_threshold=99.0) is None  # never offered again
    later = queue.offer(
        obama, matcher, source="door-tomorrow", match_threshold=99.0
    )  # another track: new evidence
    assert later is not None
    assert later.candidates[0].person == "external:obama"


def test_review_scopes_and_bad_input(
    database: tuple[Gallery, Records], borderline_tracks: list[UnresolvedTrack]
) -> None:
    gallery, records = database
    gallery.create_collection("other")
    queue = ReviewQueue(gallery, records.reviews)
    observer = ReviewObserver(queue, "people", source="door", review_threshold=90.0, match_threshold=99.0)
    for track in borderline_tracks:
        observer.observe(track)
    assert len(queue.items(collection_ids=("people",))) == 1
    assert queue.items(collection_ids=("other",)) == []
    assert queue.items(collection_ids=()) == []
    with pytest.raises(InvalidParameterError):
        queue.get("not-a-uuid")
    with pytest.raises(InvalidParameterError):
        queue.items(status="MAYBE")
    with pytest.raises(InvalidParameterError):
        ReviewObserver(queue, "people", source="x", review_threshold=99.0, match_threshold=99.0)
