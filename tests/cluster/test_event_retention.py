"""Retention of Ray's event claims (``stream_events``) on real PostgreSQL, swept with the server's other
retentions (review items, unknown people) by the one background sweeper (``app._retention_sweeps``).
No Ray cluster is needed: the claims are made through ``EventLog`` as a processor actor makes them."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from facetrace.app import _retention_sweeps, stream_event_sweep
from facetrace.cluster.processors import STREAM_EVENT_RETENTION, TRACK_BLOCK, EventLog
from facetrace.engine import FaceEngine
from facetrace.errors import InvalidParameterError
from facetrace.gallery import Gallery
from facetrace.review import ReviewQueue, UnknownPeople
from facetrace.store import MemoryStore
from facetrace.store.postgres import PostgresStore
from facetrace.store.postgres_db import PgDatabase
from facetrace.store.records import ReviewItem, UnknownFace
from facetrace.types import BoundingBox
from facetrace.video.events import StreamState, StreamStatus, TrackEnded, TrackStarted

OLD = time.time() - STREAM_EVENT_RETENTION - 3600.0  # past the retention by an hour


@pytest.fixture
def store(pg_url: str) -> Iterator[PostgresStore]:
    pg = PostgresStore(pg_url, listen=False)
    yield pg
    pg.close()


def _track(kind: type[TrackStarted] | type[TrackEnded], processor: str, track: int, at: float) -> TrackStarted:
    return kind(processor=processor, camera="lobby", wall_time=at, track_id=track, stream_time_ms=track * 1000,
                frame_time=at, bounding_box=BoundingBox(0.1, 0.1, 0.2, 0.2))  # fmt: skip


def _claims(pg_url: str) -> set[tuple[str, str, int]]:
    with psycopg.connect(pg_url) as conn:
        return {
            (str(p), str(k), int(t))
            for p, k, t in conn.execute("SELECT processor, kind, track_id FROM stream_events")
        }


def test_old_claims_go_but_each_processors_highest_track_stays(store: PostgresStore, pg_url: str) -> None:
    db = PgDatabase(pg_url, max_connections=1)
    log = EventLog(db)
    try:
        for event in (
            _track(TrackStarted, "door", 1, OLD), _track(TrackEnded, "door", 1, OLD),
            _track(TrackStarted, "door", 2, OLD),  # door's highest track, old as it is
            StreamStatus(processor="door", camera="lobby", wall_time=OLD, state=StreamState.CONNECTED),
            _track(TrackStarted, "gate", 4, OLD), _track(TrackStarted, "gate", 5, time.time()),
        ):  # fmt: skip
            assert log.claim(event, "node-1") is not None
        base = log.track_base("door")
        assert base == TRACK_BLOCK
        assert stream_event_sweep(store)() == 4  # door's track 1 (2 claims) and status, gate's old track 4
        assert _claims(pg_url) == {("door", "TrackStarted", 2), ("gate", "TrackStarted", 5)}
        assert log.track_base("door") == base  # the next incarnation does not reuse door's track ids
        assert log.claim(_track(TrackStarted, "gate", 5, time.time()), "node-2") is None  # still deduplicated
        assert stream_event_sweep(store)() == 0
    finally:
        db.close()


def test_the_server_sweeps_stream_events_with_review_and_unknowns(
    engine: FaceEngine, store: PostgresStore, pg_url: str
) -> None:
    gallery = Gallery(engine, store)
    gallery.create_collection("c")
    records = store.records
    now = time.time()
    item = ReviewItem(
        item_id="00000000-0000-4000-8000-000000000001", collection_id="c", source="door", camera="lobby",
        track_id=7, started_at=OLD, ended_at=OLD + 2, start_stream_ms=0, end_stream_ms=2000, bounding_box=None,
        candidates=(), review_threshold=90.0, match_threshold=99.0, template_quality=None, vector=b"\x00" * 8,
        vector_quality=None, vector_confidence=None, created_at=OLD, expires_at=now - 1,
    )  # fmt: skip
    records.reviews.add(item)
    records.unknowns.add_face(
        UnknownFace("face-1", "00000000-0000-4000-8000-0000000000aa", "c", "door", "lobby", 1, OLD, b"\x00" * 8,
                    None, 0.5, None, now - 1),
        None,
    )  # fmt: skip
    db = PgDatabase(pg_url, max_connections=1)
    try:
        EventLog(db).claim(_track(TrackStarted, "door", 1, OLD), "node-1")
        EventLog(db).claim(_track(TrackStarted, "door", 2, now), "node-1")
    finally:
        db.close()
    review, unknowns = ReviewQueue(gallery, records.reviews), UnknownPeople(gallery, records.unknowns)
    in_process = _retention_sweeps(gallery, review, unknowns, on_ray=False)
    on_ray = _retention_sweeps(gallery, review, unknowns, on_ray=True)
    assert len(on_ray) == len(in_process) + 1 == 3
    swept = [sweep() for sweep in on_ray]
    assert swept[0] == 1  # the expired review item
    assert swept[1] >= 1  # the expired unknown face (and its person)
    assert swept[2] == 1  # the old claim; door's newest track stays
    assert _claims(pg_url) == {("door", "TrackStarted", 2)}
    assert records.reviews.get(item.item_id) is None
    with pytest.raises(InvalidParameterError, match="PostgreSQL"):
        stream_event_sweep(MemoryStore())
