"""``ClaimObserver`` on real PostgreSQL, as a processor actor uses it (no Ray cluster needed): a borderline
track becomes one review item and its faces unknown people, each write made once per track, none from a copy
that lost the processor's lease, and a failed write's claim given back so it can be made again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from facetrace.audit import Caller
from facetrace.cluster.processors import TRACK_BLOCK, EventLog, Fence
from facetrace.cluster.review import REVIEW_KIND, UNKNOWN_KIND, ClaimObserver
from facetrace.engine import FaceEngine
from facetrace.errors import StoreError
from facetrace.gallery import Gallery
from facetrace.review import ReviewObserver, ReviewQueue, UnknownObserver, UnknownPeople
from facetrace.store.postgres import PostgresStore
from facetrace.store.postgres_db import PgDatabase
from facetrace.store.postgres_records import PostgresLeases
from facetrace.types import BoundingBox
from facetrace.video.analysis import TrackObserver, UnresolvedTrack
from facetrace.video.events import StreamState, StreamStatus, TrackStarted
from tests.review.conftest import borderline_tracks, clips  # noqa: F401 (fixtures)

RESOURCE = "processor:door"


@pytest.fixture
def pg(engine: FaceEngine, photos: dict[str, Path], pg_url: str) -> Iterator[tuple[Gallery, PostgresStore]]:
    store = PostgresStore(pg_url, listen=False)
    gallery = Gallery(engine, store)
    gallery.create_collection("people")
    gallery.index_faces("people", photos["obama3.jpg"], external_image_id="obama", max_faces=1)
    gallery.index_faces("people", photos["biden.jpg"], external_image_id="biden", max_faces=1)
    yield gallery, store
    store.close()


class _FailsOnce:
    """The write fails the first time (the store refused it), then is made by ``inner``."""

    def __init__(self, inner: TrackObserver) -> None:
        self.inner = inner
        self.failed = False

    def observe(self, track: UnresolvedTrack) -> None:
        if not self.failed:
            self.failed = True
            raise StoreError("the review store is unavailable")
        self.inner.observe(track)


def _claims(pg_url: str) -> list[tuple[str, int, bool, str]]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT kind, track_id, done, node FROM stream_events WHERE kind IN (%s, %s) ORDER BY event_id",
            (REVIEW_KIND, UNKNOWN_KIND),
        ).fetchall()
    return [(str(k), int(t), bool(d), str(n)) for k, t, d, n in rows]


def test_writes_are_claimed_once_under_the_lease_and_given_back_when_they_fail(
    pg: tuple[Gallery, PostgresStore],
    pg_url: str,
    borderline_tracks: list[UnresolvedTrack],  # noqa: F811
) -> None:
    gallery, store = pg
    queue = ReviewQueue(gallery, store.records.reviews)
    people = UnknownPeople(gallery, store.records.unknowns)
    db = PgDatabase(pg_url, max_connections=2)
    log = EventLog(db)
    first = PostgresLeases(db, owner="ray:door:first", ttl=30.0)
    second = PostgresLeases(db, owner="ray:door:second", ttl=30.0)

    def review() -> ReviewObserver:
        return ReviewObserver(
            queue, "people", source="door", match_threshold=99.0, caller=Caller("streamprocessor:door")
        )

    def copy(owner: str, base: int, node: str) -> list[ClaimObserver]:
        """One incarnation's observers, as ``ProcessorHost`` wraps them."""
        return [
            ClaimObserver(o, log, node=node, track_base=base, fence=Fence(RESOURCE, owner))
            for o in (review(), UnknownObserver(people, "people", source="door"))
        ]

    try:
        assert {t.processor for t in borderline_tracks} == {"door"}
        assert first.acquire(RESOURCE)
        running = copy(first.owner, 0, "node-1")
        for _ in range(2):  # the same tracks offered twice (a retried hand-over): written once
            for track in borderline_tracks:
                for observer in running:
                    observer.observe(track)
        (item,) = queue.items()
        assert (item.source, item.candidates[0].external_image_id) == ("door", "obama")
        assert len(people.people()) == 2  # Obama and the stranger
        faces = sum(len(people.faces(p.unknown_id)) for p in people.people())
        assert faces == 2
        audited = store.audit.records(operation="ReviewItemCreated")  # type: ignore[attr-defined]
        assert len(audited) == 1
        # every track was offered once to each (the stranger's offer makes no item: nobody is plausible)
        assert sorted(_claims(pg_url)) == sorted(
            (kind, t.track_id, True, "node-1") for kind in (REVIEW_KIND, UNKNOWN_KIND) for t in borderline_tracks
        )

        # The actor restarts elsewhere: the new copy takes the lease; the old one, still running on a node cut
        # off from the cluster, writes nothing more (its tracks' keys are new, only the fence stops it).
        first.revoke(RESOURCE)
        assert second.acquire(RESOURCE)
        stale = copy(first.owner, 2 * TRACK_BLOCK, "node-1")
        for track in borderline_tracks:
            for observer in stale:
                observer.observe(track)
        assert len(queue.items()) == 1
        assert sum(len(people.faces(p.unknown_id)) for p in people.people()) == faces

        # The new copy's first review write fails: its claim is given back and the retry makes it.
        successor = ClaimObserver(
            _FailsOnce(review()), log, node="node-2", track_base=TRACK_BLOCK,
            fence=Fence(RESOURCE, second.owner), kind=REVIEW_KIND,
        )  # fmt: skip
        borderline = next(t for t in borderline_tracks if t.track_id == item.track_id)
        with pytest.raises(StoreError):
            successor.observe(borderline)
        assert [c for c in _claims(pg_url) if c[3] == "node-2"] == []
        successor.observe(borderline)
        items = queue.items()
        assert len(items) == 2
        assert sorted(i.track_id for i in items) == [item.track_id, TRACK_BLOCK + item.track_id]
        assert (REVIEW_KIND, TRACK_BLOCK + item.track_id, True, "node-2") in _claims(pg_url)
        assert len(store.audit.records(operation="ReviewItemCreated")) == 2  # type: ignore[attr-defined]
    finally:
        first.close()
        second.close()
        db.close()


def test_a_copy_that_lost_its_lease_claims_no_track_event_but_may_still_report_its_state(pg_url: str) -> None:
    db = PgDatabase(pg_url, max_connections=2)
    log = EventLog(db)
    first = PostgresLeases(db, owner="ray:door:first", ttl=30.0)
    second = PostgresLeases(db, owner="ray:door:second", ttl=30.0)
    fence = Fence(RESOURCE, first.owner)

    def started(track: int) -> TrackStarted:
        return TrackStarted(processor="door", camera="lobby", wall_time=1.0, track_id=track,
                            stream_time_ms=track * 1000, frame_time=1.0, bounding_box=BoundingBox(0.1, 0.1, 0.2, 0.2))  # fmt: skip

    try:
        assert first.acquire(RESOURCE)
        assert log.claim(started(1), "node-1", fence) is not None
        assert log.claim(started(1), "node-1", fence) is None  # a duplicate
        first.revoke(RESOURCE)
        assert second.acquire(RESOURCE)
        assert log.claim(started(2), "node-1", fence) is None  # the stale copy names nobody
        assert log.claim(started(2), "node-2", Fence(RESOURCE, second.owner)) is not None
        status = StreamStatus(processor="door", camera="lobby", wall_time=2.0, state=StreamState.FAILED)
        assert log.claim(status, "node-1", fence) is not None  # its state is still reported
    finally:
        first.close()
        second.close()
        db.close()
