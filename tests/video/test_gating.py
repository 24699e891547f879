"""Gated detection for live streams: skip unchanged pictures, detect faster while there is identifying to do.

Clips are rendered in memory from the registry photos (``tests/video/conftest.py``) and then passed through a
real H.264/MPEG-4 encode and decode, so the "unchanged" frames carry real codec noise.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from facetrace.engine import FaceEngine
from facetrace.errors import InvalidParameterError
from facetrace.gallery import Gallery
from facetrace.video.analysis import AnalysisSettings, FrameAnalyzer, GatingSettings, MotionGate
from facetrace.video.events import TrackEnded, TrackEvent, TrackIdentified
from facetrace.video.identity import CollectionMatcher, IdentitySettings
from facetrace.video.source import Frame, SourceSettings, VideoSource
from facetrace.video.tracker import TrackerSettings
from tests.video.conftest import FPS, THRESHOLD, Actor, background, render, sprite, write_video


def _frames(clip: Path) -> Iterator[Frame]:
    yield from VideoSource(SourceSettings(str(clip))).frames()


@pytest.fixture(scope="module")
def arrival(engine: FaceEngine, photos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty still scene for 2 s; then Obama steps in at 2.0 s and stands still until the end (5 s)."""
    obama = Actor("obama", sprite(engine, photos["obama.jpg"], 90), 2.0, 5.0, (260, 60), (262, 60))
    return write_video(tmp_path_factory.mktemp("gating") / "arrival.mp4", [obama], seconds=5.0)


# the analysis before issue #13's busy-scene work (one greedy tracker round, strangers re-sampled every
# recheck_interval, every looked-at face refined)
BEFORE = AnalysisSettings(
    refine_before_looks=True,
    tracker=TrackerSettings(cascade=False),
    identity=IdentitySettings(early_hopeless=False),
)


def _run(
    engine: FaceEngine,
    clip: Path,
    gating: GatingSettings | None,
    matcher: CollectionMatcher | None = None,
    settings: AnalysisSettings | None = None,
) -> tuple[FrameAnalyzer, list[tuple[float, int, bool]], list[TrackEvent]]:
    analyzer = FrameAnalyzer(engine, matcher=matcher, settings=settings or AnalysisSettings(), gating=gating)
    seen: list[tuple[float, int, bool]] = []  # (stream time, faces observed, detected)
    events: list[TrackEvent] = []
    for frame in _frames(clip):
        result = analyzer.process(frame)
        seen.append((frame.stream_time, len(result.observations), result.detected))
        events.extend(e for e in result.events if isinstance(e, TrackEvent))
    events.extend(analyzer.finish())
    return analyzer, seen, events


def test_motion_gate_ignores_codec_noise_and_sees_a_face_enter(
    engine: FaceEngine, photos: dict[str, Path]
) -> None:
    canvas = background()
    gate = MotionGate()
    assert gate.changed(canvas)  # nothing kept yet
    gate.keep(canvas)
    noisy = np.clip(canvas.astype(np.int16) + np.random.default_rng(1).integers(-3, 4, canvas.shape), 0, 255)
    assert not gate.changed(noisy.astype(np.uint8))
    face = Actor("", sprite(engine, photos["biden.jpg"], 30), 0.0, 1.0, (600, 300), (600, 300))
    assert gate.changed(render(0.0, [face], canvas))  # a 30 px face in one corner of a 640×360 frame


def test_still_scene_skips_detection_and_a_face_entering_is_found(engine: FaceEngine, arrival: Path) -> None:
    analyzer, seen, _ = _run(engine, arrival, GatingSettings())
    empty = [(detected, faces) for t, faces, detected in seen if t < 1.95]
    assert sum(detected for detected, _ in empty) <= 3, "a still, empty scene is detected once (and refreshed)"
    assert all(faces == 0 for _, faces in empty)
    found = [t for t, faces, detected in seen if faces and detected]
    assert found
    assert found[0] < 2.0 + 2.5 / FPS, "the face is detected in the frame it appears or the next"
    # it stands still: its track is kept alive without detecting, and it is observed to the end
    late = [(faces, detected) for t, faces, detected in seen if t >= 3.5]
    assert all(faces == 1 for faces, _ in late)
    assert sum(detected for _, detected in late) < len(late) / 3
    baseline, _, _ = _run(engine, arrival, None)
    assert baseline.detections == len(seen)
    assert analyzer.detections < len(seen) / 3


def test_rate_follows_what_is_happening(engine: FaceEngine, gallery: Gallery, arrival: Path) -> None:
    """Busy while the new face's track is tentative (a clear, still face is named as soon as its track is
    confirmed), settled once it is named; the named track lives on through the still part without being
    ended and restarted."""
    gating = GatingSettings(still_interval=10.0)
    matcher = CollectionMatcher(gallery, "people", THRESHOLD)
    analyzer = FrameAnalyzer(engine, matcher=matcher, settings=AnalysisSettings(), gating=gating)
    intervals: list[tuple[float, float, bool]] = []
    events: list[TrackEvent] = []
    for frame in _frames(arrival):
        result = analyzer.process(frame)
        events.extend(e for e in result.events if isinstance(e, TrackEvent))
        intervals.append((frame.stream_time, analyzer.interval(frame.stream_time), result.detected))
    named = [e for e in events if isinstance(e, TrackIdentified)]
    assert [e.match.face.external_image_id for e in named if e.match] == ["obama"]
    assert all(i == gating.settled_interval for t, i, _ in intervals if t < 2.0)  # empty
    named_at = named[0].stream_time_ms / 1000
    assert any(i == gating.busy_interval for t, i, _ in intervals if 2.0 <= t < named_at)  # tentative
    assert all(i == gating.settled_interval for t, i, _ in intervals if t > named_at)
    assert not any(isinstance(e, TrackEnded) for e in events), "no track ended while Obama stood there"
    assert len(analyzer.finish()) == 1


def test_identifications_on_a_generated_clip_are_unchanged(
    engine: FaceEngine, gallery: Gallery, scene: Path
) -> None:
    """The conftest scene (Obama and Biden crossing, a stranger standing): today's live defaults name the same
    people, each once and nobody else, no later than a third of a second after the pipeline before gating
    (every frame detected, the analysis before the busy-scene settings) names them."""
    matcher = CollectionMatcher(gallery, "people", THRESHOLD)

    def names(events: Sequence[TrackEvent]) -> dict[str, float]:
        first: dict[str, float] = {}
        for e in events:
            if isinstance(e, TrackIdentified) and e.match is not None:
                first.setdefault(e.match.face.external_image_id or "", e.stream_time_ms / 1000)
        return first

    gated, _, gated_events = _run(engine, scene, GatingSettings(), matcher)
    _, _, every_events = _run(engine, scene, None, matcher, BEFORE)
    assert set(names(gated_events)) == set(names(every_events)) == {"obama", "biden"}
    named = [e.match.face.external_image_id for e in gated_events if isinstance(e, TrackIdentified) and e.match]
    assert sorted(named) == ["biden", "obama"], "each named once, by one track: no swap, no second track"
    for person, at in names(every_events).items():
        assert names(gated_events)[person] <= at + 0.34
    assert gated.gated > 0


@pytest.fixture(scope="module")
def runner(
    engine: FaceEngine, photos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Actor]:
    """Obama crosses the whole picture in 2.5 s (~220 px/s, 15 px per frame with a 90 px face)."""
    obama = Actor("obama", sprite(engine, photos["obama.jpg"], 90), 0.3, 3.0, (-40, 80), (560, 100))
    return write_video(tmp_path_factory.mktemp("gating") / "runner.mp4", [obama], seconds=3.0), obama


def test_prediction_keeps_a_moving_face_on_one_track(
    engine: FaceEngine, gallery: Gallery, runner: tuple[Path, Actor]
) -> None:
    """Detecting a busy scene every 2nd frame (``busy_interval``) and every ``settled_interval`` once named,
    a fast-moving face keeps one track, named once; on the frames between detections its reported box
    follows the face (constant-velocity prediction) instead of staying where it was last detected."""
    clip, obama = runner
    matcher = CollectionMatcher(gallery, "people", THRESHOLD)
    analyzer = FrameAnalyzer(engine, matcher=matcher, settings=AnalysisSettings(), gating=GatingSettings())
    w = obama.sprite.shape[1]
    predicted_error, stale_error, track_ids = [], [], set()
    events: list[TrackEvent] = []
    last_detected: float | None = None
    for frame in _frames(clip):
        result = analyzer.process(frame)
        events.extend(e for e in result.events if isinstance(e, TrackEvent))
        where = obama.position(frame.stream_time)
        if where is None or not result.observations or not 40 <= where[0] <= 500:
            continue  # off screen, or partly out of the picture (the box is clipped there)
        track_ids.update(o.track_id for o in result.observations)
        box = result.observations[0].box
        centre = (box.left + box.width / 2) * 640
        truth = where[0] + w / 2
        if result.detected:
            last_detected = centre
        elif last_detected is not None:
            predicted_error.append(abs(centre - truth))
            stale_error.append(abs(last_detected - truth))
    events.extend(analyzer.finish())
    assert analyzer.gated > 0
    assert len(predicted_error) >= 5
    assert len(track_ids) == 1, "one face, one track"
    named = [e.match.face.external_image_id for e in events if isinstance(e, TrackIdentified) and e.match]
    assert named == ["obama"]
    # median 15 px against 29 px stale (11 against 31 with every detection at full scale: the boxes found on
    # a half-scale copy, ``GatingSettings.coarse_scale``, are a pixel or two less steady)
    assert np.median(predicted_error) < 0.6 * np.median(stale_error)


def test_gating_settings_are_validated() -> None:
    with pytest.raises(InvalidParameterError):
        GatingSettings(young_interval=1.0, settled_interval=0.5)
    with pytest.raises(InvalidParameterError):
        GatingSettings(min_change=0)
    with pytest.raises(InvalidParameterError):
        GatingSettings(cell_px=2)
