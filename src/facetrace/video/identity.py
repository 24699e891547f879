"""Who is this track? Quality-weighted evidence over several frames, a stable best match, periodic re-checks.

A single video frame is a poor witness: faces are small, blurred, turned away. So a track is identified from
its *template* — the quality-weighted mean of the identity vectors sampled along it (``Track.add_sample``) —
and only once it holds ``min_samples`` samples. Averaging the unit vectors of one person's frames cancels much
of the per-frame noise: on the Hamilton clip the template of a track scores higher against the reference photo
than the median single frame (``benchmarks/bench_video.py``).

The match reported for a track is stable: once identified, it changes only when ``switch_after`` consecutive
re-checks agree on a different person. Identified tracks are re-checked every ``recheck_interval`` seconds.
"Person" means the matched face's UserId, else its ExternalImageId, else its FaceId, so several indexed photos
of one person count as one candidate.

``Matcher`` is the small interface to the collection; ``CollectionMatcher`` implements it over a ``Gallery``
(the store's exact search with the threshold turned into a cosine bound once, as ``Gallery`` does). A person
enrolled as a *user* (several photos associated to one UserId) is matched by the user's template, as
SearchUsers does: the track's template against the normalised mean of the user's photos, which names people
sooner and more often than their best single photo at the same threshold (``benchmarks/bench_video.py``,
section ``recall``; docs/video.md). Faces that belong to no user are matched one by one.

Scores follow the calibration's quality bands (``facetrace.calibration``) as photo searches do: the template
is given a quality by ``template_quality`` — the *lowest* quality among the samples that carry most of its
weight, never fewer than two — so a track of clear faces is scored on the clear curve, while a crowd track,
or one clear frame among crowd frames, keeps the cautious curve.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from facetrace.engine import AnalyzedFace
from facetrace.errors import InvalidParameterError, ModelMismatchError
from facetrace.gallery import DEFAULT_MATCH_THRESHOLD, Gallery
from facetrace.types import FaceMatch, Vector
from facetrace.validation import check_collection_id, check_percent
from facetrace.video.tracker import Track

__all__ = [
    "CollectionMatcher",
    "IdentitySettings",
    "IdentityState",
    "Matcher",
    "person_key",
    "sample_weight",
    "template_quality",
]


class Matcher(Protocol):
    """Searches one collection: matches at or above ``threshold``, best first (empty: nobody)."""

    @property
    def threshold(self) -> float: ...

    def search(self, vector: Vector, limit: int = 5, quality: float | None = None) -> tuple[FaceMatch, ...]:
        """``quality``: the probe's 0–100 quality (``template_quality``); None scores on the cautious band."""
        ...

    def closest(self, vector: Vector, quality: float | None = None) -> float:
        """The best similarity the nearest face (by cosine) can reach, whatever the threshold (0 for an empty
        collection)."""
        ...


class CollectionMatcher:
    """A ``Matcher`` over one collection of a ``Gallery``. Thread-safe when the gallery's store is."""

    def __init__(
        self,
        gallery: Gallery,
        collection_id: str,
        threshold: float = DEFAULT_MATCH_THRESHOLD,
        *,
        user_templates: bool = True,
    ) -> None:
        self.gallery = gallery
        self.collection_id = check_collection_id(collection_id)
        self._threshold = check_percent(threshold, "threshold")
        self.user_templates = user_templates
        info = gallery.describe_collection(collection_id)
        if info.model != gallery.model:
            raise ModelMismatchError(
                f"collection {collection_id} holds {info.model} vectors; this engine makes {gallery.model} vectors"
            )
        self._calibration = gallery.engine.calibration

    @property
    def threshold(self) -> float:
        return self._threshold

    def search(self, vector: Vector, limit: int = 5, quality: float | None = None) -> tuple[FaceMatch, ...]:
        faces = self.gallery.search_vector(
            self.collection_id, vector, max_faces=4 * limit + 16 if self.user_templates else limit,
            threshold=self._threshold, quality=quality,
        )  # fmt: skip
        if not self.user_templates:
            return faces
        # Users stand for their template: each becomes one match, its closest face with the template's
        # similarity; faces of nobody's compete as themselves.
        users = self.gallery.search_users_vector(
            self.collection_id, vector, max_users=limit, threshold=self._threshold, quality=quality
        )
        evidence = {
            face.face_id: face
            for face in self.gallery.store.get_faces(self.collection_id, [u.face_ids[0] for u in users])
        }
        as_faces = [FaceMatch(evidence[u.face_ids[0]], u.similarity) for u in users if u.face_ids[0] in evidence]
        single = [match for match in faces if not match.face.user_id]
        return tuple(sorted([*as_faces, *single], key=lambda m: -m.similarity)[:limit])

    def closest(self, vector: Vector, quality: float | None = None) -> float:
        neighbors = self.gallery.store.search(self.collection_id, vector, limit=1, min_cosine=-1.0)
        # an upper bound over the bands this probe can reach: "hopeless" must not be decided on a stricter
        # curve than the search itself would use
        return self._calibration.best_similarity(neighbors[0].cosine, quality) if neighbors else 0.0


@dataclass(frozen=True, slots=True)
class IdentitySettings:
    """When to embed a track's face and how to decide who it is.

    ``sample_interval``: seconds between samples of a track not yet identified (its first ``quick_samples``),
    then ``recheck_interval`` between samples (identified or not). At 0.3 s rather than 0.2, the quick samples
    of a face walking up to the camera are further apart and see more different views of it: on 8 generated
    clips 13 of 48 appearances were named at 99 instead of 9 (27 instead of 23–24 at 95), no wrong name, with
    10% fewer embeddings on the Hamilton clip — and the first naming ~0.25 s later (median 1.47 s, was 1.20).
    ``min_samples``: samples in the template before it is searched.
    ``min_evidence``: least total sample weight (``sample_weight``: about 0.8 for a sharp frontal face of 64 px
    or more, 0.05–0.15 for a profile or a 20 px face) before a track is named, so a couple of poor frames
    cannot name anyone. ``min_sample_weight``: frames of a face weighing less are not embedded at all (blurred
    profiles in a crowd cost as much to embed as a sharp frontal face and say almost nothing). At 0.15 rather
    than 0.1 a busy stream (the Hamilton clip) embeds 28% fewer faces and costs 13% less CPU, naming the same
    appearances at 99 on it and on 8 generated clips, with no wrong name; at 95 one borderline appearance of
    48 is no longer named, and two wrong names are no longer made. 0.2 named two people wrongly at 99
    (``benchmarks/bench_streams.py``, docs/video.md).
    ``hopeless_margin``: an unidentified track whose nearest face in the collection is this many points below
    the threshold stops quick sampling and is only re-checked every ``recheck_interval`` (a stranger).
    ``switch_after``: consecutive re-checks naming another person before an identified track's match changes.
    ``min_face_px``: faces whose shorter side is smaller are never embedded (too little detail).
    ``better_sample_recheck``: an unidentified track that is not due for a sample is still embedded (after
    ``sample_interval``) when its face in this frame looks ``better_sample_factor`` times better
    (``sample_weight``) than its best sample so far, and searched again at once: a face that turns to the
    camera or comes closer is used when it does, not at the next ``recheck_interval``.
    ``template_weight_power``: a sample counts in the track's template with ``sample_weight ** power``; at 2 the
    sharp, frontal, close frames dominate the small and blurred ones more than at 1 (``min_evidence`` still
    counts plain weights). On generated clips of people walking up to the camera, 2 named 17 of 36 appearances
    at 99 where 1 named 15, with no wrong name (``benchmarks/bench_video.py``, section ``recall``).
    ``template_quality``: score the template on the calibration band of its ``template_quality`` (False: always
    the cautious band, as before); ``template_quality_share``: the share of the template's weight whose
    samples' qualities are considered.
    ``early_hopeless``: the stranger cut-off (``hopeless_margin``) is judged as soon as a track holds
    ``min_samples`` samples, also while its evidence is still below ``min_evidence`` (a nearest-neighbour
    look-up, which names nobody), and a hopeless track is no longer re-sampled every ``recheck_interval``:
    only a clearly better face (``better_sample_recheck``) is embedded and searched again. Without it, the
    audience of a busy scene — small, turned, never anywhere near anyone in the collection — is embedded every
    ``sample_interval`` until its weak frames add up to ``min_evidence``, then every ``recheck_interval`` for
    as long as it is on screen.
    ``first_sample_margin`` (with ``early_hopeless``; 0: off): a track whose very first sample is this many
    points below the threshold is given up on before its ``min_samples``-th, so the audience of a busy scene
    costs one embedding each instead of two (on the Hamilton clip the strangers' first samples are 5–36
    similar to anyone in the cast, the cast's own 68–95); a clearly better face (``better_sample_recheck``)
    still brings the track back to the usual judgement. Off where unresolved tracks are handed on
    (``AnalysisSettings.report_unresolved``: review and unknown people need ``min_samples``).
    """

    sample_interval: float = 0.3
    quick_samples: int = 6
    recheck_interval: float = 2.0
    min_samples: int = 2
    min_evidence: float = 0.5
    min_sample_weight: float = 0.15
    hopeless_margin: float = 30.0
    switch_after: int = 2
    min_face_px: float = 16.0
    better_sample_recheck: bool = True
    better_sample_factor: float = 1.25
    template_weight_power: float = 2.0
    template_quality: bool = True
    template_quality_share: float = 0.8
    early_hopeless: bool = True
    first_sample_margin: float = 50.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_interval <= 60.0 or not 0.0 <= self.recheck_interval <= 3600.0:
            raise InvalidParameterError("sample_interval must be 0-60 s and recheck_interval 0-3600 s")
        if not 1 <= self.min_samples <= 100 or not 1 <= self.switch_after <= 100 or self.quick_samples < 0:
            raise InvalidParameterError("min_samples and switch_after must be 1-100, quick_samples >= 0")
        if not 0.0 <= self.min_evidence <= 100.0 or not 0.0 <= self.min_sample_weight <= 1.0:
            raise InvalidParameterError("min_evidence must be 0-100 and min_sample_weight 0-1")
        if not 0.0 <= self.min_face_px <= 1000.0:
            raise InvalidParameterError("min_face_px must be 0-1000")
        if not 1.0 <= self.better_sample_factor <= 100.0 or not 0.0 <= self.template_weight_power <= 8.0:
            raise InvalidParameterError("better_sample_factor must be 1-100 and template_weight_power 0-8")
        if not 0.0 <= self.first_sample_margin <= 100.0:
            raise InvalidParameterError("first_sample_margin must be 0-100")
        if not 0.0 < self.template_quality_share <= 1.0:
            raise InvalidParameterError("template_quality_share must be above 0 and at most 1")


def person_key(match: FaceMatch) -> str:
    """The person a matched face stands for: its user, else its external image id, else the face itself."""
    face = match.face
    if face.user_id:
        return "user:" + face.user_id
    if face.external_image_id:
        return "external:" + face.external_image_id
    return "face:" + face.face_id


def sample_weight(face: AnalyzedFace) -> float:
    """How much one embedded frame should count (0–1): detector confidence × frontality × size × sharpness."""
    detail, det = face.detail, face.detection
    confidence = min(1.0, max(0.05, detail.confidence / 100.0))
    frontal = max(0.1, math.cos(math.radians(min(89.0, abs(detail.pose.yaw))))) * max(
        0.1, math.cos(math.radians(min(89.0, abs(detail.pose.pitch))))
    )
    size = min(1.0, max(0.2, min(det.w, det.h) / 64.0))
    sharp = min(1.0, 0.25 + detail.quality.sharpness / 40.0)
    return float(confidence * frontal * size * sharp)


def template_quality(
    samples: Sequence[tuple[float, float | None]], share: float = 0.8, least: int = 2
) -> float | None:
    """The 0–100 quality a track's template is scored with: the lowest ``face_quality`` among its heaviest
    samples that together carry ``share`` of the template's weight, and at least ``least`` of them.

    ``samples`` are (weight in the template, quality). A template is a weighted mean of unit vectors, so it
    is dominated by its heavy samples: if they are all clear faces, the template is at least as trustworthy
    as one clear face and can be scored on the clear band. Taking the *lowest* of them (never the highest)
    and at least two samples means one clear frame cannot lift a track of crowd faces onto the lenient
    curve: its second-heaviest sample, a crowd face, decides. Any unknown quality among them, or fewer than
    ``least`` samples in all, gives None (the cautious band).
    """
    if len(samples) < least:
        return None
    ordered = sorted(samples, key=lambda sample: -sample[0])
    total = sum(weight for weight, _ in ordered)
    carried, lowest, counted = 0.0, math.inf, 0
    for weight, quality in ordered:
        if counted >= least and carried >= share * total:
            break
        if quality is None or not math.isfinite(quality):
            return None
        carried, lowest, counted = carried + weight, min(lowest, quality), counted + 1
    return lowest


@dataclass(eq=False)
class IdentityState:
    """Per-track identification state (kept in ``Track.state['identity']``)."""

    match: FaceMatch | None = None
    best_similarity: float = 0.0
    challenger: str | None = None
    challenges: int = 0
    checks: int = 0
    checked_samples: int = 0  # the track's sample count at the latest search
    hopeless: bool = False  # the latest search found nobody anywhere near the threshold
    best_weight: float = 0.0  # the best sample weight embedded so far
    evidence: float = 0.0  # the plain sample weights embedded so far (0: use the template's own weight)

    @classmethod
    def of(cls, track: Track) -> IdentityState:
        state = track.state.get("identity")
        if state is None:
            state = track.state["identity"] = cls()
        assert isinstance(state, cls)
        return state

    def wants_sample(self, track: Track, t: float, settings: IdentitySettings) -> bool:
        """Whether the track's face should be embedded in the frame at stream time ``t``."""
        if min(track.detection.w, track.detection.h) < settings.min_face_px:
            return False
        if track.samples == 0:
            return True
        if settings.early_hopeless and self.hopeless and self.match is None:
            return False  # a stranger: only a clearly better face is worth another look (wants_better_sample)
        quick = self.match is None and not self.hopeless and track.samples < settings.quick_samples
        interval = settings.sample_interval if quick else settings.recheck_interval
        return t - track.last_sample >= interval

    def wants_better_sample(self, track: Track, t: float, weight: float, settings: IdentitySettings) -> bool:
        """Whether a face of ``weight`` is worth embedding although the track is not due for a sample: the
        track is unidentified, the last sample is ``sample_interval`` old, and this face is clearly better."""
        return (
            settings.better_sample_recheck
            and self.match is None
            and track.samples > 0
            and t - track.last_sample >= settings.sample_interval
            and weight >= settings.better_sample_factor * self.best_weight
            and weight >= settings.min_sample_weight
        )

    def update(self, track: Track, matcher: Matcher, settings: IdentitySettings) -> FaceMatch | None:
        """Search with the track's template; returns the new match when it was just identified or changed."""
        if track.template is None:
            return None
        quality = (
            template_quality(track.sample_log, settings.template_quality_share, max(2, settings.min_samples))
            if settings.template_quality
            else None
        )
        if track.samples < settings.min_samples:
            if (
                settings.early_hopeless
                and settings.first_sample_margin
                and self.match is None
                and track.samples > self.checked_samples
            ):  # a first look: only a face nowhere near anyone is given up on before min_samples
                self.checked_samples = track.samples
                floor = matcher.threshold - settings.first_sample_margin
                self.hopeless = matcher.closest(track.template, quality) < floor
            return None
        if (self.evidence or track.template_weight) < settings.min_evidence:
            if settings.early_hopeless and self.match is None and track.samples > self.checked_samples:
                self.checked_samples = track.samples
                self.hopeless = self._hopeless(track, matcher, settings, quality)
            return None
        self.checks += 1
        self.checked_samples = track.samples
        matches = matcher.search(track.template, 5, quality)
        best = matches[0] if matches else None
        if best is None:
            self.challenger, self.challenges = None, 0
            if self.match is None:
                self.hopeless = self._hopeless(track, matcher, settings, quality)
            return None
        self.hopeless = False
        if self.match is None:
            self._accept(best)
            return best
        if person_key(best) == person_key(self.match):
            self.challenger, self.challenges = None, 0
            self._accept(best)
            return None
        key = person_key(best)
        self.challenges = self.challenges + 1 if self.challenger == key else 1
        self.challenger = key
        if self.challenges >= settings.switch_after:
            self.challenger, self.challenges = None, 0
            self.best_similarity = 0.0
            self._accept(best)
            return best
        return None

    @staticmethod
    def _hopeless(track: Track, matcher: Matcher, settings: IdentitySettings, quality: float | None) -> bool:
        """Whether the nearest face in the collection is ``hopeless_margin`` points below the threshold."""
        assert track.template is not None
        return matcher.closest(track.template, quality) < matcher.threshold - settings.hopeless_margin

    def _accept(self, match: FaceMatch) -> None:
        self.match = match
        self.best_similarity = max(self.best_similarity, match.similarity)
