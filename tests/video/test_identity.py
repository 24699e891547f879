"""Track identification: evidence over frames, a stable match, person keys."""

from __future__ import annotations

import numpy as np
import pytest

from facetrace.errors import InvalidParameterError
from facetrace.types import Detection, FaceMatch, FaceRecord, Vector
from facetrace.video.identity import CollectionMatcher, IdentitySettings, IdentityState, person_key
from facetrace.video.tracker import Track

BOX = (0.0, 0.0, 0.1, 0.1)


def record(face_id: str, *, user: str | None = None, external: str | None = None) -> FaceRecord:
    from facetrace.types import BoundingBox

    return FaceRecord(face_id, BoundingBox(*BOX), "img", 99.0, "sface-2021dec", external, user)


class ScriptedMatcher:
    """Answers each search with the next scripted result."""

    def __init__(self, answers: list[tuple[FaceMatch, ...]]) -> None:
        self.answers = list(answers)
        self.calls = 0

    @property
    def threshold(self) -> float:
        return 90.0

    def search(self, vector: Vector, limit: int = 5) -> tuple[FaceMatch, ...]:
        self.calls += 1
        return self.answers.pop(0) if self.answers else ()

    def closest(self, vector: Vector) -> float:
        return self.nearest

    nearest = 80.0


def track_with_samples(n: int, size: float = 80.0) -> Track:
    detection = Detection(0, 0, size, size, 0.9, np.zeros((5, 2), np.float32))
    track = Track(1, (0, 0, size, size), detection, 0.0, 0.0, 0.0, 0.0)
    for k in range(n):
        track.add_sample(np.ones(128, np.float32), 1.0, k * 0.1)
    return track


def test_person_key_prefers_user_then_external_id() -> None:
    assert person_key(FaceMatch(record("f1", user="u1", external="e1"), 99)) == "user:u1"
    assert person_key(FaceMatch(record("f1", external="e1"), 99)) == "external:e1"
    assert person_key(FaceMatch(record("f1"), 99)) == "face:f1"


def test_no_search_before_enough_samples() -> None:
    matcher = ScriptedMatcher([(FaceMatch(record("a", external="ann"), 99),)])
    state = IdentityState()
    assert state.update(track_with_samples(1), matcher, IdentitySettings(min_samples=2)) is None
    assert matcher.calls == 0
    found = state.update(track_with_samples(2), matcher, IdentitySettings(min_samples=2))
    assert found is not None
    assert found.face.external_image_id == "ann"


def test_the_match_is_stable_until_another_person_wins_repeatedly() -> None:
    ann = FaceMatch(record("a", external="ann"), 99.2)
    ann_again = FaceMatch(record("a2", external="ann"), 99.5)
    bob = FaceMatch(record("b", external="bob"), 99.1)
    matcher = ScriptedMatcher([(ann,), (bob,), (ann_again,), (bob,), (), (bob,), (bob,)])
    settings = IdentitySettings(min_samples=1, switch_after=2)
    state, track = IdentityState(), track_with_samples(1)
    results = [state.update(track, matcher, settings) for _ in range(7)]
    assert results[0] is ann
    assert results[1:6] == [None] * 5  # one dissent, another photo of Ann, a dissent, nothing, a dissent
    assert state.match is not None
    assert results[6] is bob  # two re-checks in a row for Bob: the match changes
    assert state.match is bob


def test_sampling_schedule() -> None:
    settings = IdentitySettings(sample_interval=0.2, quick_samples=3, recheck_interval=2.0, min_face_px=20)
    state = IdentityState()
    track = track_with_samples(0)
    assert state.wants_sample(track, 0.0, settings)
    track.add_sample(np.ones(128, np.float32), 1.0, 0.0)
    assert not state.wants_sample(track, 0.1, settings)
    assert state.wants_sample(track, 0.25, settings)
    for t in (0.3, 0.6):
        track.add_sample(np.ones(128, np.float32), 1.0, t)
    assert not state.wants_sample(track, 0.9, settings)  # quick samples used up: wait for the re-check
    assert state.wants_sample(track, 2.7, settings)
    assert not state.wants_sample(track_with_samples(0, size=10), 0.0, settings)  # too small to embed


def test_settings_are_validated() -> None:
    with pytest.raises(InvalidParameterError):
        IdentitySettings(min_samples=0)


def test_collection_matcher_applies_the_threshold(gallery, photos) -> None:  # type: ignore[no-untyped-def]
    _, face = gallery.engine.largest_face(photos["obama.jpg"])
    strict = CollectionMatcher(gallery, "people", 99.9)
    loose = CollectionMatcher(gallery, "people", 50.0)
    found = loose.search(face.vector)
    assert found
    assert found[0].face.external_image_id == "obama"
    assert all(m.similarity >= 50.0 for m in found)
    assert all(m.similarity >= 99.9 for m in strict.search(face.vector))
    _, stranger = gallery.engine.largest_face(photos["t1.jpg"])
    assert CollectionMatcher(gallery, "people", 90.0).search(stranger.vector) == ()


def test_strangers_are_sampled_less() -> None:
    """Once the nearest face is far below the threshold, quick sampling stops until the next re-check."""
    settings = IdentitySettings(min_samples=1, min_evidence=0, sample_interval=0.1, recheck_interval=2.0)
    matcher = ScriptedMatcher([])
    matcher.nearest = 40.0  # threshold 90 - margin 30 = 60 > 40: hopeless
    state, track = IdentityState(), track_with_samples(1)
    assert state.update(track, matcher, settings) is None
    assert state.hopeless
    assert not state.wants_sample(track, track.last_sample + 0.5, settings)
    assert state.wants_sample(track, track.last_sample + 2.0, settings)
    near = ScriptedMatcher([])
    near.nearest = 75.0
    other = IdentityState()
    other.update(track, near, settings)
    assert not other.hopeless
    assert other.wants_sample(track, track.last_sample + 0.2, settings)
