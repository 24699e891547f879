"""Stored-video segments on a real (local, two-node) Ray cluster give the sequential job's identifications:
on the generated clip (no ../shared needed) and on the Hamilton clip (edits, profiles; marked ``shared``);
and its review items, made of the stitched tracks (their thumbnails and best faces travel back from the
workers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facetrace.gallery import Gallery
from facetrace.review import ReviewQueue
from facetrace.store.records import Records
from facetrace.video.jobs import JobSettings
from facetrace.video.segments import SegmentSettings
from tests.cluster.raycluster import local_cluster
from tests.review.conftest import database  # noqa: F401 (fixture)
from tests.review.test_segments import hall, run  # noqa: F401 (fixture)
from tests.video.conftest import THRESHOLD, actors, gallery, scene  # noqa: F401 (fixtures)
from tests.video.test_hamilton import hamilton  # noqa: F401 (fixture)
from tests.video.test_segments import assert_same_identifications, identifications, run_search

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def executor() -> Iterator[object]:
    with local_cluster():
        from facetrace.cluster.jobs import RaySegmentExecutor

        yield RaySegmentExecutor()


def test_ray_segments_give_the_sequential_identifications(executor: object, gallery: Gallery, scene: Path) -> None:  # noqa: F811
    settings = JobSettings(sample_fps=5, segments=SegmentSettings(segments=2, min_seconds=1.0))
    sequential = run_search(gallery, scene, "people", THRESHOLD, settings, None)
    segmented = run_search(gallery, scene, "people", THRESHOLD, settings, executor)  # type: ignore[arg-type]
    assert set(identifications(segmented)) == {"obama", "biden"}
    assert_same_identifications(sequential, segmented, 5)


@pytest.mark.shared
def test_ray_segments_on_the_hamilton_clip(executor: object, hamilton: tuple[Gallery, Path]) -> None:  # noqa: F811
    """Three segments (keyframes at 0, 4.0 and 7.0 s); Lin's close-up shot (2.7–7.1 s) crosses a border."""
    cast, clip = hamilton
    settings = JobSettings(sample_fps=10, segments=SegmentSettings(segments=3, min_seconds=2.5))
    sequential = run_search(cast, clip, "cast", 99.0, settings, None)
    segmented = run_search(cast, clip, "cast", 99.0, settings, executor)  # type: ignore[arg-type]
    assert set(identifications(sequential)) == {"lin-manuel-miranda"}
    assert_same_identifications(sequential, segmented, 10)


def test_ray_segments_give_the_single_passs_review_items(
    executor: object,
    database: tuple[Gallery, Records],  # noqa: F811
    hall: Path,  # noqa: F811
) -> None:
    people, records = database
    single = run(people, records, hall, None)
    segmented = run(people, records, hall, executor)  # type: ignore[arg-type]
    (expected,) = single.items
    (item,) = segmented.items  # Obama's track crosses the border: one item
    assert [c.person for c in item.candidates] == [c.person for c in expected.candidates]
    assert 90.0 <= item.candidates[0].similarity < 99.0
    (biden,) = segmented.sightings
    assert (item.track_id, biden.track_id) == (0, 1)  # the stitched tracks' indexes
    shown = ReviewQueue(people, records.reviews).get(item.item_id, thumbnails=True)
    assert shown.thumbnails  # cropped on a worker, sent back with the segment's tracks
