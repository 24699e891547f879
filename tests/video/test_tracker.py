"""The tracker on hand-made detections: motion, missed detections, occlusion, appearance, scene cuts."""

from __future__ import annotations

import numpy as np
import pytest

from facetrace.errors import InvalidParameterError
from facetrace.types import Detection
from facetrace.video.tracker import IouTracker, TrackerSettings, iou


def det(x: float, y: float, size: float = 60.0) -> Detection:
    return Detection(x=x, y=y, w=size, h=size, score=0.9, landmarks=np.zeros((5, 2), np.float32))


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return vector / np.linalg.norm(vector)


def step(tracker: IouTracker, t: float, detections: list[Detection], vectors: dict[int, np.ndarray] | None = None):
    pairs, unmatched = tracker.match(t, detections)
    reid = tracker.reassociate(t, {i: v for i, v in (vectors or {}).items() if i in unmatched})
    resumed = {i for _, i in reid}
    new = [i for i in unmatched if i not in resumed]
    created, _ = tracker.apply(t, t, detections, pairs + reid, new)
    owners = {i: tr.track_id for tr, i in pairs + reid}
    owners.update({i: tr.track_id for i, tr in zip(new, created, strict=True)})
    ended = tracker.expire(t)
    return [owners[i] for i in range(len(detections))], ended


def test_iou() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0


def test_two_moving_faces_keep_their_ids() -> None:
    tracker = IouTracker()
    ids = []
    for k in range(30):
        t = k / 15
        owners, _ = step(tracker, t, [det(20 + 8 * k, 50), det(500 - 8 * k, 200)])
        ids.append(tuple(owners))
    assert len(set(ids)) == 1
    assert ids[0][0] != ids[0][1]
    assert all(track.confirmed for track in tracker.tracks)


def test_fast_motion_is_followed_by_prediction() -> None:
    """40 px per frame with a 60 px face: consecutive boxes barely overlap; the velocity estimate bridges it."""
    tracker = IouTracker()
    owners = [step(tracker, k / 10, [det(10 + 40 * k, 100)])[0][0] for k in range(12)]
    assert len(set(owners)) == 1


def test_missed_detections_and_brief_occlusion_keep_the_track() -> None:
    tracker = IouTracker(TrackerSettings(max_lost_seconds=1.0))
    first = step(tracker, 0.0, [det(100, 100)])[0][0]
    step(tracker, 0.1, [det(104, 100)])
    for k in range(2, 8):  # 0.6 s without a detection
        _, ended = step(tracker, k / 10, [])
        assert ended == []
    again, _ = step(tracker, 0.8, [det(130, 100)])  # it moved on meanwhile (velocity carried it)
    assert again[0] == first


def test_a_long_absence_ends_the_track() -> None:
    tracker = IouTracker(TrackerSettings(max_lost_seconds=0.5))
    first = step(tracker, 0.0, [det(100, 100)])[0][0]
    step(tracker, 0.1, [det(100, 100)])
    _, ended = step(tracker, 0.7, [])
    assert [track.track_id for track in ended] == [first]
    later, _ = step(tracker, 0.8, [det(100, 100)])
    assert later[0] != first


def test_a_one_frame_false_detection_never_becomes_a_track() -> None:
    tracker = IouTracker()
    step(tracker, 0.0, [det(100, 100)])
    _, ended = step(tracker, 0.1, [])
    assert ended == []
    assert tracker.tracks == []


def test_appearance_resumes_a_lost_track_elsewhere() -> None:
    """After an occlusion the face reappears far away: motion cannot pair it, its identity vector can."""
    tracker = IouTracker(TrackerSettings(max_lost_seconds=2.0))
    owners, _ = step(tracker, 0.0, [det(50, 50), det(400, 50)])
    step(tracker, 0.1, [det(50, 50), det(400, 50)])
    for track in tracker.tracks:
        track.add_sample(unit(1 if track.track_id == owners[0] else 2), 1.0, 0.1)
    step(tracker, 0.5, [det(400, 50)])  # the first face is hidden
    resumed, _ = step(tracker, 0.9, [det(400, 50), det(250, 250)], {1: unit(1) + 0.3 * unit(9)})
    assert resumed == [owners[1], owners[0]]
    stranger, _ = step(tracker, 1.0, [det(400, 50), det(250, 250), det(50, 250)], {2: unit(3)})
    assert stranger[2] not in owners


@pytest.mark.parametrize("cascade", [False, True])
def test_cascade_keeps_a_lost_tracks_stale_prediction_off_a_followed_face(cascade: bool) -> None:
    """A face (A) stands at x=200; another (B) runs left towards it at ~300 px/s and is lost behind something
    at 0.4 s. At 0.6 s A moves 14 px, and B's extrapolated box lands nearer A's detection than A's own
    prediction does. One greedy round gives A's face to B's track — a swap that would name A's face with B's
    identity; the cascade pairs A's followed track first."""
    tracker = IouTracker(TrackerSettings(cascade=cascade))
    owners: list[int] = []
    for k in range(6):
        owners, _ = step(tracker, k / 10, [det(200, 50)] + ([det(420 - 40 * k, 50)] if k < 4 else []))
    a = owners[0]
    after, _ = step(tracker, 0.6, [det(214, 50)])
    if cascade:
        assert after == [a]
    else:
        assert after != [a], "without the cascade this scene swaps (else the test proves nothing)"


def test_a_scene_cut_stops_position_matching() -> None:
    tracker = IouTracker()
    owners, _ = step(tracker, 0.0, [det(100, 100)])
    step(tracker, 0.1, [det(100, 100)])
    tracker.scene_cut()
    after, _ = step(tracker, 0.2, [det(102, 100)])  # same place, but a different shot: a new track
    assert after[0] != owners[0]


def test_settings_are_validated() -> None:
    with pytest.raises(InvalidParameterError):
        TrackerSettings(iou_threshold=1.5)
    with pytest.raises(InvalidParameterError):
        TrackerSettings(min_hits=0)


def test_template_is_the_weighted_mean_of_samples() -> None:
    tracker = IouTracker()
    step(tracker, 0.0, [det(0, 0)])
    track = tracker.tracks[0]
    a, b = unit(1), unit(2)
    track.add_sample(a, 3.0, 0.0)
    track.add_sample(b, 1.0, 0.1)
    expected = (3 * a + b) / np.linalg.norm(3 * a + b)
    assert np.allclose(track.template, expected, atol=1e-5)
    assert track.samples == 2
    assert track.similarity_to(a) > track.similarity_to(b)


def test_template_stays_the_weighted_mean_after_many_samples() -> None:
    """The template is the direction of the weighted *sum*: rescaling the unit template by the total weight
    (an earlier shortcut) over-weights old samples as soon as they disagree, and kept a good close-up from
    pulling a track's template towards the person it shows."""
    tracker = IouTracker()
    step(tracker, 0.0, [det(0, 0)])
    track = tracker.tracks[0]
    vectors, weights = [unit(1), unit(2), unit(3), unit(4)], [0.2, 0.2, 0.9, 0.9]
    for i, (vector, weight) in enumerate(zip(vectors, weights, strict=True)):
        track.add_sample(vector, weight, 0.1 * i)
    total = sum(w * v for v, w in zip(vectors, weights, strict=True))
    assert np.allclose(track.template, total / np.linalg.norm(total), atol=1e-5)
