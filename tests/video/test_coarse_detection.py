"""Cheaper busy live streams on the Hamilton clip (../shared): grey levels straight from the decoded luma,
detection on a half-scale copy while every tracked face is large and at a graded scale while some is not
(full-resolution landmarks for the faces embedded), strangers nowhere near anyone given up on after their
first sample, and faces too poor to say anything never embedded."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facetrace.engine import FaceEngine
from facetrace.errors import InvalidParameterError
from facetrace.gallery import Gallery
from facetrace.imaging import Image
from facetrace.store import MemoryStore
from facetrace.types import Detection
from facetrace.video.analysis import AnalysisSettings, FrameAnalyzer, GatingSettings, detection_scale, relocate
from facetrace.video.events import TrackEvent, TrackIdentified
from facetrace.video.identity import CollectionMatcher, IdentitySettings
from facetrace.video.source import SourceSettings, VideoSource

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def clip(shared: Path) -> Path:
    return shared / "face_recognition" / "examples" / "short_hamilton_clip.mp4"


def test_grey_levels_come_from_the_luma_without_converting_the_frame(clip: Path) -> None:
    """``Frame.gray`` of a decoded H.264 frame (limited-range yuv420p) matches the grey of its BGR conversion
    to within the conversion's rounding, and is available before (and without) that conversion."""
    differences = []
    for frame in VideoSource(SourceSettings(str(clip))).frames():
        if frame.index % 30:
            continue
        gray = frame.gray()
        assert gray.shape == (frame.height, frame.width)
        assert gray.dtype == np.uint8
        reference = cv2.cvtColor(frame.bgr(), cv2.COLOR_BGR2GRAY)
        differences.append(float(np.abs(gray.astype(np.int16) - reference).mean()))
        assert np.array_equal(frame.gray(), reference)  # once converted, the BGR picture is the source
    assert len(differences) >= 8
    assert max(differences) < 1.5, differences


def _iou(a: Detection, b: Detection) -> float:
    w = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    h = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    inter = max(0.0, w) * max(0.0, h)
    return inter / (a.w * a.h + b.w * b.h - inter)


def test_relocate_gives_back_full_resolution_embeddings(engine: FaceEngine, clip: Path) -> None:
    """Faces found on a half-scale copy of Hamilton frames have landmarks a few pixels off their
    full-resolution ones, enough to move their SFace vectors (cosine ~0.85 to the vector of the full-scale
    detection); ``relocate`` (one detector pass on a crop around the face) brings them back to ~0.94, the
    agreement of two full-resolution detections of the same face."""
    coarse_cosine, relocated_cosine = [], []
    for frame in VideoSource(SourceSettings(str(clip))).frames():
        if frame.index % 20:
            continue
        image = Image(frame.bgr())
        full = engine.find_faces(image, 20, upright=False)
        half = np.ascontiguousarray(cv2.resize(image.pixels, (320, 180), interpolation=cv2.INTER_AREA))
        for small in engine.find_faces(Image(half), 20, upright=False):
            coarse = Detection(
                small.x * 2, small.y * 2, small.w * 2, small.h * 2, small.score, small.landmarks * 2
            )
            if min(coarse.w, coarse.h) < 32:
                continue
            truth = max(full, key=lambda d: _iou(d, coarse))
            if _iou(truth, coarse) < 0.5:
                continue
            faces = engine.describe(image, [truth, coarse, relocate(engine, image, coarse)])
            vectors = [np.asarray(f.vector) / np.linalg.norm(f.vector) for f in faces]
            coarse_cosine.append(float(vectors[0] @ vectors[1]))
            relocated_cosine.append(float(vectors[0] @ vectors[2]))
    assert len(coarse_cosine) >= 10
    assert np.median(relocated_cosine) >= np.median(coarse_cosine) + 0.05, (coarse_cosine, relocated_cosine)
    assert np.median(relocated_cosine) >= 0.9
    assert min(relocated_cosine) > min(coarse_cosine)


def _namings(
    gallery: Gallery, clip: Path, gating: GatingSettings, analysis: AnalysisSettings | None = None
) -> tuple[list[tuple[str, float]], FrameAnalyzer]:
    matcher = CollectionMatcher(gallery, "cast", 99.0)
    analyzer = FrameAnalyzer(gallery.engine, matcher=matcher, gating=gating, settings=analysis)
    events: list[TrackEvent] = []
    for frame in VideoSource(SourceSettings(str(clip))).frames():
        if frame.index % 2 == 0:  # a live worker's offer
            events.extend(e for e in analyzer.process(frame).events if isinstance(e, TrackEvent))
    events.extend(analyzer.finish())
    named = [
        (e.match.face.external_image_id or "", e.stream_time_ms / 1000)
        for e in events
        if isinstance(e, TrackIdentified) and e.match is not None
    ]
    return named, analyzer


@pytest.fixture(scope="module")
def cast(engine: FaceEngine, clip: Path) -> Gallery:
    gallery = Gallery(engine, MemoryStore())
    gallery.create_collection("cast")
    for name in ("lin-manuel-miranda", "alex-lacamoire"):
        gallery.index_faces("cast", clip.parent / f"{name}.png", external_image_id=name, max_faces=1)
    return gallery


def test_coarse_detection_names_the_same_people(cast: Gallery, clip: Path) -> None:
    """With many detections at half scale, the Hamilton clip's cast is named as with every detection at full
    scale: Lin in his centre-stage appearance, nobody else, no wrong name."""
    full, at_full = _namings(cast, clip, GatingSettings(coarse_scale=1.0))
    coarse, at_half = _namings(cast, clip, GatingSettings())
    assert at_full.coarse == 0
    assert at_half.coarse >= 10
    assert {name for name, _ in coarse} == {name for name, _ in full} == {"lin-manuel-miranda"}
    assert all(2.7 <= seconds < 7.1 + 0.3 for _, seconds in coarse), coarse


def test_coarse_settings_are_validated() -> None:
    with pytest.raises(InvalidParameterError):
        GatingSettings(coarse_scale=0.1)
    with pytest.raises(InvalidParameterError):
        GatingSettings(sweep_interval=-1.0)


def test_strangers_far_from_everyone_cost_one_embedding(cast: Gallery, clip: Path) -> None:
    """``IdentitySettings.first_sample_margin``: the Hamilton audience, nowhere near the cast at its first
    sample, is given up on after it instead of after two; Lin is named all the same. (Faces of sample weight
    0.1 embedded, as before ``min_sample_weight`` rose to 0.15, which leaves fewer strangers to give up on.)"""
    gating = GatingSettings()
    margin = IdentitySettings(min_sample_weight=0.1)
    none = IdentitySettings(min_sample_weight=0.1, first_sample_margin=0)
    before, two = _namings(cast, clip, gating, AnalysisSettings(identity=none))
    after, one = _namings(cast, clip, gating, AnalysisSettings(identity=margin))
    assert {name for name, _ in after} == {name for name, _ in before} == {"lin-manuel-miranda"}
    assert one.embedded <= two.embedded - 4, (one.embedded, two.embedded)


def test_detection_scale_keeps_the_smallest_tracked_face_at_24_px() -> None:
    gating = GatingSettings()  # half scale from 48 px, steps of 1/8
    assert detection_scale(gating, []) == 0.5
    assert detection_scale(gating, [120.0, 48.0]) == 0.5
    assert detection_scale(gating, [120.0, 40.0]) == 0.625  # 24 / 40 = 0.6
    assert detection_scale(gating, [32.0]) == 0.75
    assert detection_scale(gating, [25.0]) == 1.0  # 0.96 → the next step is full scale
    assert detection_scale(gating, [12.0]) == 1.0
    assert detection_scale(GatingSettings(scale_step=0.0), [40.0]) == 1.0  # as before the steps
    assert detection_scale(GatingSettings(coarse_scale=1.0), [40.0]) == 1.0
    with pytest.raises(InvalidParameterError):
        GatingSettings(scale_step=0.6)


def test_graded_scale_moves_crowd_frames_off_full_scale_and_names_the_same(cast: Gallery, clip: Path) -> None:
    """The audience's 40–47 px faces held detection at full scale; at the graded scale those frames are
    detected smaller, the faces are still found (about as many faces seen over the clip), and Lin alone is
    named."""
    seen: dict[float, int] = {}
    named: dict[float, set[str]] = {}
    coarse: dict[float, int] = {}
    for step in (0.125, 0.0):
        analyzer = FrameAnalyzer(cast.engine, matcher=CollectionMatcher(cast, "cast", 99.0),
                                 gating=GatingSettings(scale_step=step))  # fmt: skip
        events: list[TrackEvent] = []
        seen[step] = 0
        for frame in VideoSource(SourceSettings(str(clip))).frames():
            if frame.index % 2 == 0:
                result = analyzer.process(frame)
                seen[step] += len(result.observations) if result.detected else 0
                events.extend(e for e in result.events if isinstance(e, TrackEvent))
        events.extend(analyzer.finish())
        named[step] = {e.match.face.external_image_id or "" for e in events if e.match is not None}
        coarse[step] = analyzer.coarse
    assert coarse[0.125] >= coarse[0.0] + 10, coarse
    assert named[0.125] == named[0.0] == {"lin-manuel-miranda"}
    assert abs(seen[0.125] - seen[0.0]) <= 0.15 * seen[0.0], seen


def test_faces_too_poor_to_count_are_not_embedded(cast: Gallery, clip: Path) -> None:
    """``min_sample_weight`` 0.15 rather than 0.1: the audience's blurred and turned faces are no longer
    embedded — about a quarter of the clip's embeddings — and Lin is named all the same, as soon."""
    gating = GatingSettings()
    before, lenient = _namings(
        cast, clip, gating, AnalysisSettings(identity=IdentitySettings(min_sample_weight=0.1))
    )
    after, strict = _namings(cast, clip, gating, AnalysisSettings())
    assert {name for name, _ in after} == {name for name, _ in before} == {"lin-manuel-miranda"}
    assert min(t for _, t in after) <= min(t for _, t in before) + 0.3, (after, before)
    assert strict.embedded <= 0.85 * lenient.embedded, (strict.embedded, lenient.embedded)
