"""Stored-video segments on a real (local, two-node) Ray cluster give the sequential job's identifications:
on the generated clip (no ../shared needed) and on the Hamilton clip (edits, profiles; marked ``shared``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facetrace.gallery import Gallery
from facetrace.video.jobs import JobSettings
from facetrace.video.segments import SegmentSettings
from tests.cluster.raycluster import local_cluster
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
