"""Sightings: stored per identified track, queryable by person and time, deleted when they expire."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from facetrace.errors import InvalidParameterError, StoreError
from facetrace.types import BoundingBox, FaceMatch, FaceRecord
from facetrace.video.events import TrackEnded, TrackIdentified, TrackStarted
from facetrace.video.sightings import DAY, RetentionSweeper, SightingSink, SightingStore, sighting_dict

BOX = BoundingBox(0.1, 0.2, 0.3, 0.4)


def match(
    face_id: str, external: str | None = None, user: str | None = None, similarity: float = 99.5
) -> FaceMatch:
    return FaceMatch(FaceRecord(face_id, BOX, "img", 99.0, "sface-2021dec", external, user), similarity)


def identified(track: int, who: FaceMatch | None, start: float, camera: str = "door") -> TrackIdentified:
    return TrackIdentified(
        processor="p1", camera=camera, track_id=track, stream_time_ms=1500, frame_time=start + 1.5,
        bounding_box=BOX, match=who, snapshot=b"\xff\xd8jpeg", started_at=start, start_stream_ms=0,
    )  # fmt: skip


def ended(track: int, who: FaceMatch | None, start: float, end: float) -> TrackEnded:
    return TrackEnded(
        processor="p1", camera="door", track_id=track, stream_time_ms=9000, frame_time=end + 2,
        bounding_box=BOX, match=who, started_at=start, start_stream_ms=0, ended_at=end,
        end_stream_ms=int((end - start) * 1000),
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> SightingStore:
    return SightingStore(tmp_path / "sightings.db")


def test_an_identified_track_becomes_one_sighting_updated_when_it_ends(store: SightingStore) -> None:
    now = time.time()
    ann = match("f-ann", external="ann", user="u-ann")
    sink = SightingSink(store, "p1")
    sink.publish(identified(1, ann, now))
    sink.publish(ended(1, ann, now, now + 8))
    found = store.query(face_id="f-ann", snapshots=True)
    assert len(found) == 1
    sighting = found[0]
    assert (sighting.camera, sighting.source, sighting.track_id) == ("door", "p1", 1)
    assert sighting.started_at == pytest.approx(now)
    assert sighting.ended_at == pytest.approx(now + 8)
    assert sighting.end_stream_ms == 8000
    assert sighting.user_id == "u-ann"
    assert sighting.similarity == 99.5
    assert sighting.snapshot == b"\xff\xd8jpeg"
    assert sighting.expires_at == pytest.approx(now + 30 * DAY)
    assert store.query(face_id="f-ann")[0].snapshot is None  # snapshots only on request
    assert sighting_dict(sighting)["ExternalImageId"] == "ann"


def test_query_by_person_and_time_range(store: SightingStore) -> None:
    base = time.time() - 1000
    sink = SightingSink(store, "p1")
    sink.publish(identified(1, match("f1", external="ann", user="u1"), base))
    sink.publish(identified(2, match("f2", external="bob"), base + 100, camera="hall"))
    sink.publish(identified(3, match("f3", external="ann", user="u1"), base + 500, camera="hall"))
    assert {s.track_id for s in store.query(user_id="u1")} == {1, 3}
    assert [s.track_id for s in store.query(external_image_id="ann")] == [3, 1]  # newest first
    assert [s.track_id for s in store.query(external_image_id="ann", since=base + 200)] == [3]
    assert [s.track_id for s in store.query(external_image_id="ann", until=base + 200)] == [1]
    assert [s.track_id for s in store.query(camera="hall", face_id="f2")] == [2]
    assert store.query(face_id="nobody") == []
    assert len(store.query(limit=2)) == 2
    with pytest.raises(InvalidParameterError):
        store.query(limit=0)


def test_unidentified_tracks_are_kept_only_when_asked(store: SightingStore) -> None:
    now = time.time()
    SightingSink(store, "quiet").publish(identified(1, None, now))
    assert store.count() == 0
    SightingSink(store, "all", keep_unidentified=True).publish(
        TrackStarted(
            processor="all", camera="door", track_id=7, stream_time_ms=0, frame_time=now, bounding_box=BOX,
            started_at=now,
        )
    )  # fmt: skip
    assert store.count() == 1
    assert store.query(source="all")[0].face_id is None


def test_retention_deletes_old_sightings(store: SightingStore) -> None:
    now = time.time()
    SightingSink(store, "short", retention_days=1).publish(
        identified(1, match("f1", external="ann"), now - 2 * DAY)
    )
    SightingSink(store, "long", retention_days=30).publish(
        identified(2, match("f2", external="ann"), now - 2 * DAY)
    )
    SightingSink(store, "short", retention_days=1).publish(identified(3, match("f3", external="ann"), now))
    assert store.count() == 3
    assert {s.track_id for s in store.query(external_image_id="ann")} == {2, 3}  # expired: invisible at once
    assert store.sweep() == 1
    assert store.count() == 2
    assert store.sweep(now + 2 * DAY) == 1  # a day later the fresh short-lived one goes too
    assert [s.track_id for s in store.query(external_image_id="ann")] == [2]


def test_the_background_sweeper_enforces_retention(store: SightingStore) -> None:
    now = time.time()
    SightingSink(store, "p", retention_days=1).publish(identified(1, match("f1"), now - 2 * DAY))
    sweeper = RetentionSweeper(store, interval=0.05).start()
    deadline = time.monotonic() + 10
    while store.count() and time.monotonic() < deadline:
        time.sleep(0.02)
    sweeper.stop()
    assert store.count() == 0
    assert sweeper.swept == 1


def test_the_sweeper_runs_every_retention_and_a_failing_one_does_not_stop_the_others(
    store: SightingStore,
) -> None:
    now = time.time()
    SightingSink(store, "p", retention_days=1).publish(identified(1, match("f1"), now - 2 * DAY))
    rounds: list[str] = []

    def broken() -> int:
        rounds.append("broken")
        raise StoreError("the database is away")

    def other() -> int:
        rounds.append("other")
        return 2

    sweeper = RetentionSweeper(store, interval=0.05, also=[broken, other]).start()
    deadline = time.monotonic() + 30
    while rounds.count("other") < 2 and time.monotonic() < deadline:  # a second round: the failure was retried
        time.sleep(0.02)
    sweeper.stop()
    assert store.count() == 0
    assert rounds.count("broken") >= 2
    assert rounds.count("other") >= 2
    assert sweeper.swept == 1 + 2 * rounds.count("other")


def test_sightings_survive_reopening(tmp_path: Path) -> None:
    first = SightingStore(tmp_path / "s.db")
    SightingSink(first, "p").publish(identified(1, match("f1", external="ann"), time.time()))
    first.close()
    assert len(SightingStore(tmp_path / "s.db").query(external_image_id="ann")) == 1


def test_retention_is_bounded(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError):
        SightingSink(SightingStore(tmp_path / "x.db"), "p", retention_days=0)
