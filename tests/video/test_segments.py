"""Segmented stored-video jobs give a sequential job's identifications: same people, one person index per
person (tracks stitched across segment borders), first and last seen within one analysed frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from facetrace.gallery import Gallery
from facetrace.video.jobs import JobSettings, JobStatus, VideoJobs
from facetrace.video.segments import (
    SegmentExecutor,
    SegmentSettings,
    SequentialExecutor,
    ThreadExecutor,
    plan_segments,
    probe,
)
from tests.video.conftest import FPS, SECONDS, THRESHOLD

SAMPLE_FPS = 5.0


def identifications(results: list[dict[str, Any]]) -> dict[str, tuple[int, int, int]]:
    """Person name → (first ms, last ms, person indexes) of a face search's results."""
    spans: dict[str, list[int]] = {}
    indexes: dict[str, set[int]] = {}
    for item in results:
        name = item["FaceMatches"][0]["Face"]["ExternalImageId"]
        spans.setdefault(name, []).append(item["Timestamp"])
        indexes.setdefault(name, set()).add(item["Person"]["Index"])
    return {name: (min(times), max(times), len(indexes[name])) for name, times in spans.items()}


def run_search(
    gallery: Gallery, clip: Path, collection: str, threshold: float, settings: JobSettings,
    executor: SegmentExecutor | None,
) -> list[dict[str, Any]]:  # fmt: skip
    jobs = VideoJobs(gallery, settings=settings, executor=executor)
    try:
        job = jobs.wait(jobs.start_face_search(clip, collection, threshold=threshold), timeout=240)
    finally:
        jobs.close(wait=True)
    assert job.status is JobStatus.SUCCEEDED, job.message
    return job.results


def assert_same_identifications(
    sequential: list[dict[str, Any]], segmented: list[dict[str, Any]], fps: float
) -> None:
    frame_ms = 1000.0 / fps
    expected, got = identifications(sequential), identifications(segmented)
    assert set(got) == set(expected)
    for name, (first, last, tracks) in expected.items():
        assert abs(got[name][0] - first) <= frame_ms + 1, (name, got[name], expected[name])
        assert abs(got[name][1] - last) <= frame_ms + 1, (name, got[name], expected[name])
        assert got[name][2] == tracks, name  # stitched: as many tracks per person as in one pass


def test_plan_cuts_at_keyframes_and_overlaps(scene: Path) -> None:
    meta, keyframes = probe(str(scene))
    assert keyframes[0] == 0.0
    assert len(keyframes) >= SECONDS
    plan = plan_segments(SECONDS, keyframes, SegmentSettings(segments=2, min_seconds=1.0, overlap=1.0))
    assert [s.start for s in plan] == [0.0, 2.0]
    assert plan[0].end == 2.0
    assert plan[0].analyse_until == 3.0
    assert plan[1].end == float("inf")
    assert meta.frame_rate == pytest.approx(FPS, rel=0.01)
    # too short to cut: one segment
    assert len(plan_segments(SECONDS, keyframes, SegmentSettings(segments=4, min_seconds=3.0))) == 1


def test_segmented_search_gives_the_sequential_identifications(gallery: Gallery, scene: Path) -> None:
    """Obama (0–2.6 s) and Biden (1.4–4.0 s) both cross the border at 2 s: each stays one person index."""
    settings = JobSettings(sample_fps=SAMPLE_FPS, segments=SegmentSettings(segments=2, min_seconds=1.0))
    sequential = run_search(gallery, scene, "people", THRESHOLD, settings, None)
    segmented = run_search(gallery, scene, "people", THRESHOLD, settings, ThreadExecutor(2))
    assert set(identifications(sequential)) == {"obama", "biden"}
    assert_same_identifications(sequential, segmented, SAMPLE_FPS)


def test_segmented_detection_keeps_every_frame_once(gallery: Gallery, scene: Path) -> None:
    settings = JobSettings(sample_fps=SAMPLE_FPS, segments=SegmentSettings(segments=2, min_seconds=1.0))
    counts = []
    for executor in (None, SequentialExecutor()):
        jobs = VideoJobs(gallery, settings=settings, executor=executor)
        job = jobs.wait(jobs.start_face_detection(scene), timeout=120)
        jobs.close(wait=True)
        assert job.status is JobStatus.SUCCEEDED, job.message
        counts.append(sorted(item["Timestamp"] for item in job.results))
    assert counts[0] == counts[1]  # the same analysed frames, the overlap counted once
