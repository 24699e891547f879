"""A live stream processor: a borderline track goes to the review queue, never to the events or sightings as
an identification; its unidentified faces are grouped into unknown people."""

from __future__ import annotations

import time
from pathlib import Path

from facetrace.audit import Caller
from facetrace.gallery import Gallery
from facetrace.review import ReviewQueue, UnknownPeople
from facetrace.store.records import Records
from facetrace.video.events import TrackIdentified
from facetrace.video.processors import StreamProcessors
from facetrace.video.sightings import SightingStore


def test_a_processor_offers_borderline_tracks_for_review_and_groups_unknowns(
    database: tuple[Gallery, Records], clips: dict[str, Path]
) -> None:
    gallery, records = database
    sightings = SightingStore(records.sightings)
    queue = ReviewQueue(gallery, records.reviews)
    processors = StreamProcessors(
        gallery, repository=records.processors, sightings=sightings, review=queue,
        unknowns=UnknownPeople(gallery, records.unknowns),
    )  # fmt: skip
    processors.create(
        {
            "name": "door-cam", "source": str(clips["borderline"]), "keep_unidentified": True,
            "face_search": {"collection_id": "people", "face_match_threshold": 99.0},
        }
    )  # fmt: skip
    events = []
    try:
        with processors.bus.subscribe(processor="door-cam") as feed:
            processors.start("door-cam")
            deadline = time.monotonic() + 30
            while processors.status("door-cam") != "STOPPED" and time.monotonic() < deadline:
                events.extend(feed.events(timeout=0.1, until=time.monotonic() + 0.5))
        worker = processors.worker("door-cam")
        assert worker is not None
        assert worker.join(30)
    finally:
        processors.close()
    assert not any(isinstance(e, TrackIdentified) for e in events)
    assert all(s.face_id is None for s in sightings.query())  # kept, but naming nobody

    (item,) = queue.items()
    assert (item.source, item.camera, item.candidates[0].external_image_id) == ("door-cam", "door-cam", "obama")
    assert len(UnknownPeople(gallery, records.unknowns).people()) == 2  # Obama and the stranger, apart

    queue.confirm(item.item_id, caller=Caller("FTREVIEWER0000000002"))
    (named,) = sightings.query(external_image_id="obama")
    assert named.track_id == item.track_id
    assert named.confirmed_by == "FTREVIEWER0000000002"
