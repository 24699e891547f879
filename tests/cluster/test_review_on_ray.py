"""A stream processor as a Ray actor feeds the review queue and unknown people, as one in-process does: on a
real local cluster and real PostgreSQL, a borderline track (Obama at 40 px, ~96 against another photo of him)
becomes one review item, never an event or a sighting, and both faces become unknown people. Killed, the
actor is restarted by Ray and replays the clip (a file starts over; a camera would show new footage): its
tracks are numbered above the first copy's, and every review item and unknown face is written once per track,
each claimed once and audited once."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from facetrace.app import open_gallery
from facetrace.cluster.processors import ACTOR_PREFIX, TRACK_BLOCK, RayStreamProcessors
from facetrace.cluster.review import REVIEW_KIND, UNKNOWN_KIND
from facetrace.cluster.runtime import NAMESPACE
from facetrace.engine import FaceEngine
from facetrace.gallery import Gallery
from facetrace.review import ReviewQueue, UnknownPeople
from facetrace.store import records_of
from tests.cluster.raycluster import local_cluster
from tests.review.conftest import clips  # noqa: F401 (fixture)
from tests.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with local_cluster() as address:
        yield address


@pytest.fixture
def pg_gallery(engine: FaceEngine, photos: dict[str, Path], pg_url: str, tmp_path: Path) -> Iterator[Gallery]:
    gallery = open_gallery(tmp_path / "home", engine=engine, database_url=pg_url)
    gallery.create_collection("people")
    gallery.index_faces("people", photos["obama3.jpg"], external_image_id="obama", max_faces=1)
    gallery.index_faces("people", photos["biden.jpg"], external_image_id="biden", max_faces=1)
    yield gallery
    gallery.store.close()


def test_a_ray_processor_feeds_review_and_unknowns_once_across_a_restart(
    cluster: str,
    pg_gallery: Gallery,
    pg_url: str,
    clips: dict[str, Path],  # noqa: F811
) -> None:
    import ray

    records = records_of(pg_gallery.store)
    assert records is not None
    queue = ReviewQueue(pg_gallery, records.reviews)
    people = UnknownPeople(pg_gallery, records.unknowns)
    processors = RayStreamProcessors(pg_gallery, repository=records.processors, database_url=pg_url, lease_ttl=3.0)
    processors.create({
        "name": "door", "source": str(clips["borderline"]), "keep_unidentified": True, "cpus": 0.5,
        "face_search": {"collection_id": "people", "face_match_threshold": 99.0},
    })  # fmt: skip

    def played(restarted: bool) -> bool:
        """The copy's stream worker ended with the clip (its observers ran in that thread, before)."""
        info = processors.info("door", timeout=2)
        return info is not None and info["Restarted"] is restarted and info["State"] == "STOPPED"

    try:
        processors.start("door")
        assert wait_for(lambda: played(False), 150, interval=0.25), processors.info("door")
        (item,) = queue.items()
        assert (item.source, item.camera, item.candidates[0].external_image_id) == ("door", "door", "obama")
        assert item.track_id < TRACK_BLOCK
        assert len(people.people()) == 2  # Obama and the stranger, apart

        actor = ray.get_actor(ACTOR_PREFIX + "door", namespace=NAMESPACE)
        ray.kill(actor, no_restart=False)  # Ray starts it again; it waits for the dead copy's lease to expire
        assert wait_for(lambda: played(True), 150, interval=0.25), processors.info("door")
    finally:
        processors.stop("door")
        processors.close()

    items = queue.items()
    assert sorted(i.track_id // TRACK_BLOCK for i in items) == [0, 1]  # one per copy's track, numbered apart
    assert all(i.candidates[0].external_image_id == "obama" for i in items)
    assert len(people.people()) == 2  # the replayed faces joined their groups
    faces = [f for p in people.people() for f in people.faces(p.unknown_id)]
    with psycopg.connect(pg_url) as conn:
        claims = conn.execute("SELECT kind, track_id, done FROM stream_events").fetchall()
        sightings = conn.execute("SELECT face_id FROM sightings").fetchall()
    kinds = collections.Counter(str(kind) for kind, _, _ in claims)
    assert kinds["TrackIdentified"] == 0  # review is not identification
    assert all(face_id is None for (face_id,) in sightings)
    review = [int(t) for kind, t, done in claims if kind == REVIEW_KIND and done]
    unknown = [int(t) for kind, t, done in claims if kind == UNKNOWN_KIND and done]
    assert {i.track_id for i in items} <= set(review)
    assert sorted(f.track_id for f in faces) == sorted(unknown)  # one face per claim: none twice, none lost
    audited = pg_gallery.store.audit.records(operation="ReviewItemCreated")  # type: ignore[attr-defined]
    assert sorted(int(a.event.detail["track_id"] or 0) for a in audited) == sorted(i.track_id for i in items)
