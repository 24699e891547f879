"""A segmented stored-video job feeds the review queue as a single pass does: its stitched tracks nobody is
named for become review items — one per person, also across a segment border — and every sighting and
review item of the job carries its stitched track's index, so a confirmed item's sighting and an identified
person's sighting never share a track id."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from facetrace.audit import Caller
from facetrace.engine import FaceEngine
from facetrace.gallery import Gallery
from facetrace.review import ReviewQueue
from facetrace.store.records import Records, ReviewItem, Sighting
from facetrace.video.jobs import JobSettings, JobStatus, VideoJobs
from facetrace.video.segments import SegmentExecutor, SegmentSettings, SequentialExecutor, plan_segments, probe
from facetrace.video.sightings import SightingStore
from tests.video.conftest import Actor, sprite, write_video

pytestmark = pytest.mark.slow

SAMPLE_FPS = 5.0
SETTINGS = JobSettings(sample_fps=SAMPLE_FPS, segments=SegmentSettings(segments=2, min_seconds=1.0, overlap=0.6))


@pytest.fixture(scope="module")
def hall(tmp_path_factory: pytest.TempPathFactory, engine: FaceEngine, photos: dict[str, Path]) -> Path:
    """3 s: Obama (obama2.jpg at 40 px, ~96 against obama3.jpg: the review band) from the start, and Biden
    (identified at 99) from 0.4 s, both to the end: each crosses the border between the two segments."""
    return write_video(
        tmp_path_factory.mktemp("review-segments") / "hall.mp4",
        [Actor("obama", sprite(engine, photos["obama2.jpg"], 40), 0.0, 3.0, (100, 60), (300, 80)),
         Actor("biden", sprite(engine, photos["biden.jpg"], 80), 0.4, 3.0, (420, 160), (380, 200))],
        seconds=3.0,
    )  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    job_id: str
    items: list[ReviewItem]
    sightings: list[Sighting]


def run(
    gallery: Gallery,
    records: Records,
    clip: Path,
    executor: SegmentExecutor | None,
    settings: JobSettings = SETTINGS,
) -> Outcome:
    """A face search at 99 with review from 90; the job's review items and sightings."""
    queue = ReviewQueue(gallery, records.reviews)
    sightings = SightingStore(records.sightings)
    jobs = VideoJobs(gallery, sightings=sightings, review=queue, executor=executor, settings=settings)
    try:
        job = jobs.wait(jobs.start_face_search(clip, "people", review_threshold=90.0), 240)
    finally:
        jobs.close(wait=True)
    assert job.status is JobStatus.SUCCEEDED, job.message
    return Outcome(
        job.job_id,
        [i for i in queue.items() if i.source == job.job_id],
        [s for s in sightings.query() if s.source == job.job_id],
    )


def test_a_segmented_job_offers_the_single_passs_review_items_on_stitched_tracks(
    database: tuple[Gallery, Records], hall: Path
) -> None:
    gallery, records = database
    single = run(gallery, records, hall, None)
    segmented = run(gallery, records, hall, SequentialExecutor())
    meta, keyframes = probe(str(hall))
    plan = plan_segments((meta.duration_ms or 0) / 1000, keyframes, SETTINGS.segments)
    assert len(plan) == 2
    border_ms = plan[1].start * 1000

    (expected,) = single.items
    (item,) = segmented.items  # one item for Obama's track, not one per segment
    assert item.start_stream_ms < border_ms < item.end_stream_ms
    assert [c.person for c in item.candidates] == [c.person for c in expected.candidates]
    assert item.candidates[0].external_image_id == "obama"
    assert 90.0 <= item.candidates[0].similarity < 99.0
    frame_ms = 1000 / SAMPLE_FPS
    assert abs(item.start_stream_ms - expected.start_stream_ms) <= frame_ms + 1
    assert abs(item.end_stream_ms - expected.end_stream_ms) <= frame_ms + 1
    assert item.vector is not None

    # Biden is identified: a sighting in both, never a review item.
    assert [s.external_image_id for s in single.sightings] == ["biden"]
    assert [s.external_image_id for s in segmented.sightings] == ["biden"]

    (biden,) = segmented.sightings
    # Two stitched tracks, numbered by when they start: Obama's (from 0 s) and Biden's (from 0.4 s).
    assert (item.track_id, biden.track_id) == (0, 1)
    queue = ReviewQueue(gallery, records.reviews)
    shown = queue.get(item.item_id, thumbnails=True)
    assert shown.thumbnails
    assert all(t.startswith(b"\xff\xd8") for t in shown.thumbnails)
    confirmed = queue.confirm(item.item_id, caller=Caller("FTREVIEWER0000000003"))
    sightings = [s for s in SightingStore(records.sightings).query() if s.source == segmented.job_id]
    by_person = {s.external_image_id: s.track_id for s in sightings}
    assert by_person == {"obama": item.track_id, "biden": biden.track_id}  # one track each, never shared
    assert confirmed.sighting_id in {s.sighting_id for s in sightings}
