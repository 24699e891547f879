"""Track identification: evidence over frames, a stable match, person keys."""

from __future__ import annotations

import numpy as np
import pytest

from facetrace.errors import InvalidParameterError
from facetrace.types import Detection, FaceMatch, FaceRecord, Vector
from facetrace.video.identity import (
    CollectionMatcher,
    IdentitySettings,
    IdentityState,
    person_key,
    template_quality,
)
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
        self.qualities: list[float | None] = []

    @property
    def threshold(self) -> float:
        return 90.0

    def search(self, vector: Vector, limit: int = 5, quality: float | None = None) -> tuple[FaceMatch, ...]:
        self.calls += 1
        self.qualities.append(quality)
        return self.answers.pop(0) if self.answers else ()

    def closest(self, vector: Vector, quality: float | None = None) -> float:
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


@pytest.mark.parametrize("early", [False, True])
def test_strangers_are_sampled_less(early: bool) -> None:
    """Once the nearest face is far below the threshold, quick sampling stops: until the next re-check
    (``early_hopeless=False``), or for good, unless a clearly better face comes (``early_hopeless``)."""
    settings = IdentitySettings(
        min_samples=1, min_evidence=0, sample_interval=0.1, recheck_interval=2.0, early_hopeless=early
    )
    matcher = ScriptedMatcher([])
    matcher.nearest = 40.0  # threshold 90 - margin 30 = 60 > 40: hopeless
    state, track = IdentityState(), track_with_samples(1)
    state.best_weight = 0.4
    assert state.update(track, matcher, settings) is None
    assert state.hopeless
    assert not state.wants_sample(track, track.last_sample + 0.5, settings)
    assert state.wants_sample(track, track.last_sample + 2.0, settings) is not early
    assert state.wants_better_sample(track, track.last_sample + 2.0, 0.6, settings)  # a clearly better face
    assert not state.wants_better_sample(track, track.last_sample + 2.0, 0.45, settings)
    near = ScriptedMatcher([])
    near.nearest = 75.0
    other = IdentityState()
    other.update(track, near, settings)
    assert not other.hopeless
    assert other.wants_sample(track, track.last_sample + 0.2, settings)


def test_early_hopeless_is_judged_before_the_evidence_is_enough() -> None:
    """Weak frames (a small, turned face) need many samples to reach ``min_evidence``; a stranger's are cut
    off at ``min_samples`` by the nearest-neighbour look-up — which never names anyone — while a track whose
    nearest face is within the margin keeps sampling."""
    settings = IdentitySettings(min_samples=2, min_evidence=5.0, sample_interval=0.1)
    far, near = ScriptedMatcher([(FaceMatch(record("a", external="ann"), 99),)]), ScriptedMatcher([])
    far.nearest, near.nearest = 40.0, 75.0
    track = track_with_samples(2)
    stranger, hopeful = IdentityState(), IdentityState()
    assert stranger.update(track, far, settings) is None
    assert stranger.hopeless
    assert far.calls == 0, "no search (and no name) below min_evidence"
    assert not stranger.wants_sample(track, track.last_sample + 5.0, settings)
    hopeful.update(track, near, settings)
    assert not hopeful.hopeless
    assert hopeful.wants_sample(track, track.last_sample + 0.1, settings)
    cautious = IdentityState()
    cautious.update(track, far, IdentitySettings(min_samples=2, min_evidence=5.0, early_hopeless=False))
    assert not cautious.hopeless


def test_an_unidentified_track_takes_a_clearly_better_face_early() -> None:
    settings = IdentitySettings(sample_interval=0.2, recheck_interval=2.0, better_sample_factor=1.25)
    state, track = IdentityState(), track_with_samples(6)
    state.best_weight = 0.4
    t = track.last_sample + 0.5  # not due: past the quick samples, long before the re-check
    assert not state.wants_sample(track, t, settings)
    assert state.wants_better_sample(track, t, 0.6, settings)  # 1.5× the best so far
    assert not state.wants_better_sample(track, t, 0.45, settings)  # not clearly better
    assert not state.wants_better_sample(track, track.last_sample + 0.1, 0.9, settings)  # too soon
    assert not state.wants_better_sample(track, t, 0.6, IdentitySettings(better_sample_recheck=False))
    state.match = FaceMatch(record("a", external="ann"), 99)
    assert not state.wants_better_sample(track, t, 0.9, settings)  # identified tracks keep their schedule
    with pytest.raises(InvalidParameterError):
        IdentitySettings(better_sample_factor=0.5)
    with pytest.raises(InvalidParameterError):
        IdentitySettings(template_weight_power=-1.0)


def test_evidence_counts_plain_weights_whatever_the_template_weighting() -> None:
    """With ``template_weight_power`` 2 the template's own weight shrinks (0.6² = 0.36), but the evidence
    needed before naming is counted in plain sample weights."""
    matcher = ScriptedMatcher([(FaceMatch(record("a", external="ann"), 99),)])
    detection = Detection(0, 0, 80, 80, 0.9, np.zeros((5, 2), np.float32))
    track = Track(1, (0, 0, 80, 80), detection, 0.0, 0.0, 0.0, 0.0)
    for k in range(2):
        track.add_sample(np.ones(128, np.float32), 0.6**2, k * 0.1)
    state = IdentityState(evidence=1.2)
    assert track.template_weight < 0.8
    assert state.update(track, matcher, IdentitySettings(min_evidence=1.0)) is not None
    assert IdentityState().update(track, matcher, IdentitySettings(min_evidence=1.0)) is None


def test_collection_matcher_matches_users_by_their_template(engine, photos) -> None:  # type: ignore[no-untyped-def]
    """A user of two photos is one candidate scored like SearchUsers (its template); a face of nobody's is
    matched on its own; ``user_templates=False`` matches every face on its own (the behaviour before)."""
    from facetrace.gallery import Gallery
    from facetrace.store import MemoryStore

    gallery = Gallery(engine, MemoryStore())
    gallery.create_collection("c")
    faces = {
        n: gallery.index_faces("c", photos[n], max_faces=1).indexed[0].record for n in photos if "obama" in n[:6]
    }
    gallery.create_user("c", "barack")
    gallery.associate_faces("c", "barack", [faces["obama2.jpg"].face_id, faces["obama3.jpg"].face_id])
    _, probe = engine.largest_face(photos["obama.jpg"])
    expected = gallery.search_users_vector("c", probe.vector, threshold=50.0)[0].similarity
    by_user = CollectionMatcher(gallery, "c", 50.0).search(probe.vector, 5)
    users = [m for m in by_user if m.face.user_id == "barack"]
    assert len(users) == 1
    assert users[0].similarity == expected
    assert faces["obama.jpg"].face_id in {m.face.face_id for m in by_user}  # the same photo, in no user
    by_face = CollectionMatcher(gallery, "c", 50.0, user_templates=False).search(probe.vector, 5)
    assert len([m for m in by_face if m.face.user_id == "barack"]) == 2


def test_template_quality_is_the_lowest_of_the_samples_carrying_the_weight() -> None:
    """Clear samples give a clear template; crowd samples, or one clear frame among crowd frames, do not lift
    it; an unknown quality among the heavy samples, or a single sample, gives None (the cautious band)."""
    clear = [(0.64, 90.0), (0.5, 82.0), (0.6, 100.0)]
    assert template_quality(clear) == 82.0
    crowd = [(0.02, 20.0), (0.03, 35.0), (0.01, 10.0)]
    assert template_quality(crowd) == 20.0  # the lightest, 17% of the weight, is beyond the share
    # one clear frame dominating the weight of a crowd track: the second-heaviest (a crowd face) decides
    assert template_quality([(0.64, 95.0), (0.02, 30.0), (0.01, 25.0)]) == 30.0
    # light, poor frames beyond the share that the heavy clear ones carry do not pull the quality down
    assert template_quality([(0.64, 90.0), (0.6, 85.0), (0.01, 5.0)], share=0.8) == 85.0
    assert template_quality([(0.64, 90.0), (0.6, 85.0), (0.01, 5.0)], share=1.0) == 5.0
    assert template_quality([(0.64, 90.0), (0.6, None)]) is None
    assert template_quality([(0.64, 90.0)]) is None
    assert template_quality([]) is None
    with pytest.raises(InvalidParameterError):
        IdentitySettings(template_quality_share=0.0)


def test_template_quality_picks_the_band_the_search_uses(engine) -> None:  # type: ignore[no-untyped-def]
    """The search gets the template's quality: clear samples score on the clear band, crowd samples and
    ``template_quality=False`` on the cautious one."""
    calibration = engine.calibration
    cautious = calibration.bands[0]
    clear_band = calibration.band(100.0)
    assert clear_band is not cautious  # the shipped calibration has a clear band

    def searched(qualities: list[float], settings: IdentitySettings) -> float | None:
        matcher = ScriptedMatcher([])
        track = track_with_samples(0)
        for k, quality in enumerate(qualities):
            track.add_sample(np.ones(128, np.float32), 0.5, k * 0.1, quality)
        IdentityState().update(track, matcher, settings)
        assert matcher.calls == 1
        return matcher.qualities[0]

    clear = searched([90.0, 80.0, 100.0], IdentitySettings())
    assert clear is not None
    assert calibration.band(clear) is clear_band
    crowd = searched([20.0, 95.0, 30.0], IdentitySettings())
    assert calibration.band(crowd) is cautious
    assert searched([90.0, 80.0, 100.0], IdentitySettings(template_quality=False)) is None
