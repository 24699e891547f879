"""One analysed frame: detect → track → embed a few faces → identify tracks → events.

``FrameAnalyzer`` composes the engine, a tracker and a matcher; live stream workers and stored-video jobs
both drive it, one frame at a time, from a single thread (the engine builds its models per thread).

Embedding is the expensive step (~24 ms per face on one core, against ~17 ms to detect every face in a
640×360 frame), so at most ``max_embeds_per_frame`` faces are embedded per frame, chosen in this order:
new faces when a lost track might be theirs (re-association), new faces, unidentified tracks due for a
sample, identified tracks due for a re-check (``IdentitySettings``), and last, unidentified tracks whose face
in this frame looks clearly better than any they have been sampled with (``better_sample_recheck``).

Live streams also decide per frame whether to detect at all (``GatingSettings``, off unless asked for):
detection (~17 ms) is skipped while the picture has not changed since the last detection (``MotionGate``),
and where it has, it runs at a rate set by what is happening — on every offered frame while a track is
tentative or just lost (every ``busy_interval``: every 2nd offered frame, tracks carried by their predicted
motion in between), young and unidentified (``young_interval``), every ``settled_interval`` seconds otherwise
(an empty scene, tracks already named or given up on). A skipped frame costs a 160×90 grey thumbnail of
the decoded luma (``Frame.gray``: no BGR conversion). While every tracked face is large, detection runs on a
half-scale copy (``GatingSettings.coarse_scale``), with periodic full-scale sweeps for small new faces.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from facetrace.engine import AnalyzedFace, FaceEngine
from facetrace.errors import InvalidParameterError
from facetrace.geometry import iou, rescaled
from facetrace.imaging import Image
from facetrace.thumbnails import encode_jpeg, face_crop
from facetrace.types import BoundingBox, Detection, FaceDetail, FaceMatch, Vector
from facetrace.video.events import TrackEnded, TrackEvent, TrackIdentified, TrackStarted
from facetrace.video.identity import IdentitySettings, IdentityState, Matcher, sample_weight, template_quality
from facetrace.video.source import Frame
from facetrace.video.tracker import IouTracker, Pair, Track, Tracker, TrackerSettings

__all__ = [
    "AnalysisSettings",
    "FrameAnalyzer",
    "FrameResult",
    "GatingSettings",
    "MotionGate",
    "Observation",
    "SceneCutDetector",
    "TrackObserver",
    "UnresolvedTrack",
    "detection_scale",
    "relocate",
    "track_match",
]


@dataclass(frozen=True, slots=True)
class AnalysisSettings:
    """``max_faces``: faces detected per frame (largest first). ``min_face_px``: smaller detections are ignored.
    ``details``: compute Rekognition FaceDetails for every face in every analysed frame (stored-video jobs).
    ``keep_unidentified``: report tracks nobody matched (TrackStarted / TrackEnded) instead of only identified
    ones. ``snapshot_px``: the longer side of the JPEG snapshot attached to events (0: no snapshots).
    ``scene_cuts``: detect edits (the whole picture changes between analysed frames) and stop matching tracks
    by position across them; faces are then resumed by appearance only (``SceneCutDetector``).
    ``report_unresolved``: hand every track that ends unidentified with enough evidence to ``take_unresolved``
    (the review queue and unknown people consume them; they are never events).
    ``refine_before_looks``: refine tilted faces' landmarks (two more detector passes each,
    ``FaceEngine.upright_landmarks``) and re-locate faces found below full scale (``relocate``) before their
    quality looks; False does both only for the faces chosen to be embedded, after the looks. The looks only
    rank and weigh faces (pose from unrefined landmarks is a few degrees off on a tilted face); the embedded
    crop is aligned on refined landmarks either way. On the
    Hamilton clip most looked-at faces are never embedded, and their refinement was ~10% of a stream's time.
    """

    max_faces: int = 20
    min_face_px: float = 10.0
    max_embeds_per_frame: int = 1
    details: bool = False
    keep_unidentified: bool = False
    snapshot_px: int = 112
    scene_cuts: bool = True
    report_unresolved: bool = False
    refine_before_looks: bool = False
    tracker: TrackerSettings = field(default_factory=TrackerSettings)
    identity: IdentitySettings = field(default_factory=IdentitySettings)

    def __post_init__(self) -> None:
        if not 1 <= self.max_faces <= 100 or not 0 <= self.max_embeds_per_frame <= 100:
            raise InvalidParameterError("max_faces must be 1-100 and max_embeds_per_frame 0-100")
        if not 0 <= self.snapshot_px <= 1024 or self.min_face_px < 0:
            raise InvalidParameterError("snapshot_px must be 0-1024 and min_face_px >= 0")


@dataclass(frozen=True, slots=True)
class GatingSettings:
    """When a live stream skips detection (``FrameAnalyzer(gating=...)``).

    ``busy_interval``: least seconds between detections while following faces is at stake: some face that
    could be identified is on a tentative track, or a confirmed track has just been lost (a face not found
    again quickly is given a new track and named again, or worse, its track is resumed by another face: on
    generated clips, detecting slowly while any track was lost put a track onto the next shot's face and
    named it wrongly — with named tracks only counted, an unnamed one, which then got named).
    Between two detections a busy scene's tracks are carried by their constant-velocity prediction (the
    boxes reported on skipped frames move with it, and the next detection is paired against it, confirmed
    followed tracks first: ``TrackerSettings.cascade``). The default 0.1 s detects every 2nd offered frame of
    a 15 fps offer: on the Hamilton clip and the generated clips this names the same people, with no wrong
    name, for about half the detections of 0 (every offered frame) — docs/video.md, "Eight busy cameras".
    ``young_interval``: while some such face is on a young (``young_seconds``), unidentified track still
    being sampled quickly (samples come at most every ``IdentitySettings.sample_interval`` anyway).
    ``settled_interval``: otherwise (an empty scene, identified tracks, strangers given up on), as long as
    the picture changes. ``still_interval``: an unchanged picture is detected again at least this often.
    ``min_change``: the picture has changed when some cell of ``cell_px`` × ``cell_px`` pixels differs from
    the last detected frame by this many grey levels on average (H.264 noise on a still scene stays below
    2; a 30 px face entering a cell adds well over 10).
    ``coarse_scale``: detect on a copy scaled by this much (1: never) while every face on a track is at least
    ``coarse_min_px`` (24 px at half scale), with a sweep at full scale at least every ``sweep_interval``
    seconds and after a scene cut, for faces too small to be found coarsely. ``scale_step`` (0: off): while
    some tracked face is smaller than that, detect at the smallest multiple of it between ``coarse_scale``
    and 1 at which every tracked face still spans ``coarse_min_px × coarse_scale`` pixels (24) — the same
    detail the detector gets at half scale — instead of at full scale: on the Hamilton clip a tracked face of
    the audience, 40–47 px, held 99 of 183 detections at full scale, where 0.625 costs YuNet ~40%. YuNet
    still finds 16 px faces at half scale, but following 32–48 px faces that way changed which frames were
    sampled enough to lose one naming at 95 on the generated clips (a face walking up to the camera); from
    48 px none is lost.
    Half scale costs YuNet a quarter (~5 ms instead of ~20 ms on a 640×360 frame). The few faces a frame's
    embeddings are chosen from get their landmarks again at full resolution (``relocate``: a detector pass
    on a crop of ~2× the face): SFace vectors of faces aligned on half-scale landmarks differ too much
    (cosine ~0.85 to the full-scale ones) to be used as they are.
    """

    busy_interval: float = 0.1
    young_interval: float = 0.1
    settled_interval: float = 0.25
    still_interval: float = 2.0
    young_seconds: float = 3.0
    min_change: float = 6.0
    cell_px: int = 40
    coarse_scale: float = 0.5
    coarse_min_px: float = 48.0
    sweep_interval: float = 1.0
    scale_step: float = 0.125

    def __post_init__(self) -> None:
        ordered = (self.busy_interval, self.young_interval, self.settled_interval, self.still_interval)
        if not 0.0 <= ordered[0] <= ordered[1] <= ordered[2] <= ordered[3] <= 60.0:
            raise InvalidParameterError(
                "gating intervals must satisfy 0 <= busy <= young <= settled <= still <= 60"
            )
        if not 0.0 <= self.young_seconds <= 600.0 or not 0.0 < self.min_change <= 255.0:
            raise InvalidParameterError("young_seconds must be 0-600 and min_change in (0, 255]")
        if not 8 <= self.cell_px <= 640:
            raise InvalidParameterError("cell_px must be 8-640")
        if not 0.25 <= self.coarse_scale <= 1.0 or self.coarse_min_px < 0 or not 0 <= self.sweep_interval <= 60:
            raise InvalidParameterError("coarse_scale must be 0.25-1, coarse_min_px >= 0, sweep_interval 0-60 s")
        if not 0.0 <= self.scale_step <= 0.5:
            raise InvalidParameterError("scale_step must be 0 (off) to 0.5")


@dataclass(frozen=True, slots=True)
class Observation:
    """One face in one analysed frame and the track it was assigned to."""

    track_id: int
    box: BoundingBox
    detection: Detection
    detail: FaceDetail | None = None
    name: str | None = None  # the track's current identity (user id, else external image id), for live views
    similarity: float | None = None


@dataclass(frozen=True, slots=True)
class FrameResult:
    index: int
    stream_time: float
    observations: tuple[Observation, ...]
    events: tuple[TrackEvent, ...]
    embedded: int
    detected: bool = True  # False: detection was skipped (gating); observations: the last detection's, predicted


@dataclass(frozen=True, slots=True)
class UnresolvedTrack:
    """A track that ended with nobody named at the identification threshold, with what a reviewer or the
    grouping of unknown faces needs: its template (and the quality it is scored with), its best single face
    (vector, quality, confidence) and up to three best thumbnails (JPEG), where and when."""

    processor: str
    camera: str
    track_id: int
    started_at: float
    ended_at: float
    start_stream_ms: int
    end_stream_ms: int
    bounding_box: BoundingBox
    template: Vector
    template_quality: float | None
    evidence: float
    best_vector: Vector
    best_quality: float | None
    best_confidence: float
    thumbnails: tuple[bytes, ...]


class TrackObserver(Protocol):
    """Receives unresolved tracks (``AnalysisSettings.report_unresolved``) from a stream worker or a job."""

    def observe(self, track: UnresolvedTrack) -> None: ...


def track_match(track: Track) -> FaceMatch | None:
    """The track's current stable match (None when unidentified)."""
    state = track.state.get("identity")
    return state.match if isinstance(state, IdentityState) else None


def _name(match: FaceMatch | None) -> str | None:
    if match is None:
        return None
    return match.face.user_id or match.face.external_image_id or match.face.face_id


def _similarity(match: FaceMatch | None) -> float | None:
    return None if match is None else match.similarity


class FrameAnalyzer:
    """Stateful per stream: feed it frames in order with ``process``; ``finish`` ends every track."""

    def __init__(
        self,
        engine: FaceEngine,
        *,
        matcher: Matcher | None = None,
        settings: AnalysisSettings | None = None,
        tracker: Tracker | None = None,
        processor: str = "",
        camera: str = "",
        gating: GatingSettings | None = None,
    ) -> None:
        self.engine = engine
        self.matcher = matcher
        settings = settings or AnalysisSettings()
        if settings.report_unresolved and settings.identity.first_sample_margin:
            # a stranger given up on after its first sample never reaches ``min_samples``, so it would never reach
            # review or unknown people: an analyzer that hands unresolved tracks on pays for the second sample
            settings = replace(settings, identity=replace(settings.identity, first_sample_margin=0.0))
        self.settings = settings
        self.tracker: Tracker = tracker or IouTracker(self.settings.tracker)
        self.processor = processor
        self.camera = camera
        self.embedded = 0
        self._last_frame: Frame | None = None
        self._cuts = SceneCutDetector() if self.settings.scene_cuts else None
        self.scene_cuts = 0
        self._unresolved: list[UnresolvedTrack] = []
        self.gating = gating
        self._gate = MotionGate(gating.min_change, gating.cell_px) if gating is not None else None
        self._last_detection = -math.inf  # stream seconds of the latest detection
        self._last_observations: tuple[Observation, ...] = ()
        self._upright: set[int] = set()  # detections of the current frame whose landmarks are refined
        self._coarse = False  # the current frame was detected below full scale
        self._sharp: set[int] = set()  # its detections re-located at full resolution
        self._last_sweep = -math.inf  # stream seconds of the latest full-scale detection
        self.coarse = 0  # frames detected below full scale
        self.detections = 0  # frames detected
        self.gated = 0  # frames whose detection was skipped

    def take_unresolved(self) -> list[UnresolvedTrack]:
        """The tracks that ended unidentified since the last call (``report_unresolved``)."""
        taken, self._unresolved = self._unresolved, []
        return taken

    def warm_up(self) -> None:
        """Build this thread's models now (a few hundred ms) rather than on the first real frame."""
        blank = Image(np.full((160, 160, 3), 128, dtype=np.uint8))
        self.engine.find_faces(blank, 1)
        if self.matcher is not None:
            landmarks = np.array([[60, 70], [100, 70], [80, 90], [65, 110], [95, 110]], dtype=np.float32)
            self.engine.describe(blank, [Detection(40, 40, 80, 90, 1.0, landmarks)])

    def process(self, frame: Frame) -> FrameResult:
        settings, identity = self.settings, self.settings.identity
        t, wall = frame.stream_time, frame.arrived
        # The gate and the cut detector look at grey levels only: a skipped frame is never converted to BGR.
        gray = frame.gray() if self._cuts is not None or self._gate is not None else None
        cut = self._cuts is not None and gray is not None and self._cuts.changed(gray)
        if cut:
            self.scene_cuts += 1
            self.tracker.scene_cut()
        if gray is not None and not self._due(gray, t, wall, cut):
            self.gated += 1
            self._last_frame = frame
            ended = self._expire(t, frame)  # faces lost before the picture settled still end on time
            self._last_observations = self._predicted(t, frame.width, frame.height)
            return FrameResult(frame.index, t, self._last_observations, tuple(ended), 0, detected=False)
        image = Image(frame.bgr())
        self.detections += 1
        self._last_detection = t
        # Tilted faces' landmarks are refined (two more detector passes each) only for the faces described.
        detections = self._detect(image, t, cut)
        self._upright = set()
        self._sharp = set()
        pairs, unmatched = self.tracker.match(t, detections)
        faces = self._embed(image, detections, pairs, unmatched, t)
        reid: list[Pair] = []
        if faces:
            candidates = {di: f.vector for di, f in faces.items() if di in unmatched and f.vector is not None}
            if candidates:
                reid = self.tracker.reassociate(t, candidates)
        resumed = {di for _, di in reid}
        new = [di for di in unmatched if di not in resumed]
        created, confirmed = self.tracker.apply(t, wall, detections, pairs + reid, new)
        owner: dict[int, Track] = {di: track for track, di in pairs + reid}
        owner.update(zip(new, created, strict=True))

        events: list[TrackEvent] = []
        if settings.keep_unidentified:
            events.extend(self._event(TrackStarted, track, frame) for track in confirmed)
        sampled: list[Track] = []
        for di, face in faces.items():
            track = owner[di]
            if face.vector is None:
                continue
            weight = sample_weight(face)
            track.add_sample(face.vector, weight**identity.template_weight_power, t, face.quality_score)
            if self.matcher is not None:
                state = IdentityState.of(track)
                state.best_weight = max(state.best_weight, weight)
                state.evidence += weight
            if settings.snapshot_px and weight > track.state.get("snapshot_weight", -1.0):
                track.state["snapshot_weight"] = weight
                track.state["snapshot"] = face_crop(image.pixels, face.detection, settings.snapshot_px)
            if settings.report_unresolved:
                _keep_best(track, weight, face, image)
            sampled.append(track)
        if self.matcher is not None:
            for track in dict.fromkeys(sampled + confirmed):
                if not track.confirmed:
                    continue
                state = IdentityState.of(track)
                previous = state.match
                changed = state.update(track, self.matcher, identity)
                if changed is not None:
                    events.append(
                        self._event(
                            TrackIdentified,
                            track,
                            frame,
                            previous_face_id=previous.face.face_id if previous else None,
                        )
                    )
        events.extend(self._expire(t, frame))

        details: dict[int, FaceDetail] = {}
        if settings.details and detections:
            rest = [di for di in range(len(detections)) if di not in faces]
            self._make_upright(image, detections, rest)
            described = self.engine.describe(image, [detections[di] for di in rest], embed=False)
            details = {di: f.detail for di, f in zip(rest, described, strict=True)}
            details.update({di: f.detail for di, f in faces.items()})
        observations = tuple(
            Observation(
                track_id=owner[di].track_id,
                box=_box(det, image.width, image.height),
                detection=det,
                detail=details.get(di),
                name=_name(track_match(owner[di])),
                similarity=_similarity(track_match(owner[di])),
            )
            for di, det in enumerate(detections)
        )
        self._last_frame = frame
        self._last_observations = observations
        return FrameResult(frame.index, t, observations, tuple(events), len(faces))

    def finish(self) -> list[TrackEvent]:
        """End every track (the source ended or the worker stops); returns their TrackEnded events."""
        frame = self._last_frame
        ended = self.tracker.finish()
        if frame is None:
            return []
        keep = self.settings.keep_unidentified
        for track in ended:
            self._final_check(track)
            self._report(track)
        return [self._ended(track, frame) for track in ended if keep or track_match(track) is not None]

    def _expire(self, t: float, frame: Frame) -> list[TrackEvent]:
        """End the tracks lost too long; their TrackEnded events (identified ones, or all when kept)."""
        events: list[TrackEvent] = []
        for track in self.tracker.expire(t):
            self._final_check(track)
            self._report(track)
            if self.settings.keep_unidentified or track_match(track) is not None:
                events.append(self._ended(track, frame))
        return events

    def _final_check(self, track: Track) -> None:
        """One last search with everything the track gathered since its previous check."""
        if self.matcher is None:
            return
        state = IdentityState.of(track)
        if track.samples > state.checked_samples:
            state.update(track, self.matcher, self.settings.identity)

    def _report(self, track: Track) -> None:
        """Keep ``track`` for ``take_unresolved`` if it ends unidentified with enough evidence to be searched."""
        settings, identity = self.settings, self.settings.identity
        best = track.state.get("best")
        if not settings.report_unresolved or track_match(track) is not None or best is None:
            return
        if track.template is None or track.samples < identity.min_samples or not track.confirmed:
            return
        state = IdentityState.of(track) if self.matcher is not None else None
        if state is not None and (state.evidence or track.template_weight) < identity.min_evidence:
            return
        quality = (
            template_quality(track.sample_log, identity.template_quality_share, max(2, identity.min_samples))
            if identity.template_quality
            else None
        )
        _, vector, face_quality, confidence = best
        thumbs = tuple(j for _, crop in track.state.get("thumbs", []) if (j := encode_jpeg(crop)) is not None)
        width, height = track.state["frame_size"]
        self._unresolved.append(
            UnresolvedTrack(
                processor=self.processor, camera=self.camera, track_id=track.track_id,
                started_at=track.first_wall, ended_at=track.last_wall,
                start_stream_ms=round(track.first_seen * 1000), end_stream_ms=round(track.last_seen * 1000),
                bounding_box=BoundingBox.from_pixels(*track.box, width, height), template=track.template,
                template_quality=quality, evidence=state.evidence if state is not None else track.template_weight,
                best_vector=vector, best_quality=face_quality, best_confidence=confidence, thumbnails=thumbs,
            )
        )  # fmt: skip

    # -- internals ---------------------------------------------------------------------------------------

    def _predicted(self, t: float, width: int, height: int) -> tuple[Observation, ...]:
        """The last detection's observations on a frame whose detection was skipped: each face's box moved
        to where its track's constant velocity puts it now (a still picture's tracks have been refreshed, so
        they stay put), faces whose tracks have ended dropped."""
        tracks = {track.track_id: track for track in self.tracker.tracks}
        moved = []
        for seen in self._last_observations:
            track = tracks.get(seen.track_id)
            if track is None:
                continue
            x, y, _, _ = track.predict(t)
            det = seen.detection
            dx, dy = x - track.box[0], y - track.box[1]
            shifted = Detection(
                det.x + dx,
                det.y + dy,
                det.w,
                det.h,
                det.score,
                (det.landmarks + np.array([dx, dy], np.float32)).astype(np.float32),
            )
            moved.append(replace(seen, box=_box(shifted, width, height), detection=shifted))
        return tuple(moved)

    def _due(self, pixels: npt.NDArray[np.uint8], t: float, wall: float, cut: bool) -> bool:
        """Whether to detect in this frame (always without gating, and after a scene cut). An unchanged
        picture means the faces of the last detection are still where they were: their tracks are kept alive
        without detecting."""
        gating, gate = self.gating, self._gate
        if gating is None or gate is None:
            return True
        since = t - self._last_detection
        changed = gate.changed(pixels)
        if cut or since >= gating.still_interval or since < 0:  # an edit, a refresh, or time went back
            return gate.keep(pixels)
        if not changed:
            for track in self.tracker.tracks:
                if track.matched_now:
                    track.last_seen, track.last_wall = t, wall
            return False
        if since >= self.interval(t):
            return gate.keep(pixels)
        return False

    def interval(self, t: float) -> float:
        """Seconds between detections now that the picture moves (``GatingSettings``): busy while a face big
        enough to identify is on a tentative track or a track was just lost, young while one is on a young, unidentified
        track still sampled quickly, settled otherwise."""
        gating = self.gating
        if gating is None:
            return 0.0
        identity, lost_for = self.settings.identity, self.tracker_settings_max_lost()
        young = False
        for track in self.tracker.tracks:
            if min(track.detection.w, track.detection.h) < identity.min_face_px:
                continue
            if not track.confirmed or (not track.matched_now and t - track.last_seen <= lost_for):
                return gating.busy_interval
            if young or self.matcher is None or t - track.first_seen >= gating.young_seconds:
                continue
            state = track.state.get("identity")
            young = not isinstance(state, IdentityState) or (
                state.match is None and not state.hopeless and track.samples < identity.quick_samples
            )
        return gating.young_interval if young else gating.settled_interval

    def tracker_settings_max_lost(self) -> float:
        """How long a lost track may be resumed (the tracker's ``max_lost_seconds``, when it says)."""
        settings = getattr(self.tracker, "settings", None)
        return float(getattr(settings, "max_lost_seconds", self.settings.tracker.max_lost_seconds))

    def _embed(
        self, image: Image, detections: list[Detection], pairs: list[Pair], unmatched: list[int], t: float
    ) -> dict[int, AnalyzedFace]:
        """Embed the most useful few faces of this frame; detection index → analysed face."""
        settings = self.settings
        if self.matcher is None or settings.max_embeds_per_frame == 0 or not detections:
            return {}
        min_px = settings.identity.min_face_px
        lost = any(tr.confirmed and not tr.matched_now and tr.template is not None for tr in self.tracker.tracks)
        ranked: list[tuple[int, float, int]] = []
        for di in unmatched:
            det = detections[di]
            if min(det.w, det.h) >= min_px:
                ranked.append((0 if lost else 1, -det.area, di))
        hopefuls: dict[int, Track] = {}  # unidentified tracks not due: embedded only for a clearly better face
        for track, di in pairs:
            state = IdentityState.of(track)
            if state.wants_sample(track, t, settings.identity):
                ranked.append((2 if state.match is None else 3, track.last_sample, di))
            elif state.wants_better_sample(track, t, 1.0, settings.identity):
                ranked.append((4, track.last_sample, di))
                hopefuls[di] = track
        ranked.sort()
        # Quality first (cheap: alignment, pose, sharpness), then embed the best-ranked faces worth it.
        candidates = [di for _, _, di in ranked[: 3 * settings.max_embeds_per_frame]]
        if not candidates:
            return {}
        if settings.refine_before_looks:
            self._full_resolution(image, detections, candidates)  # no-op unless detected below full scale
            self._make_upright(image, detections, candidates)
        looks = self.engine.describe(image, [detections[di] for di in candidates], embed=False)
        floor = settings.identity.min_sample_weight
        chosen = [
            di
            for di, look in zip(candidates, looks, strict=True)
            if sample_weight(look) >= floor
            and (
                di not in hopefuls
                or IdentityState.of(hopefuls[di]).wants_better_sample(
                    hopefuls[di], t, sample_weight(look), settings.identity
                )
            )
        ]
        chosen = chosen[: settings.max_embeds_per_frame]
        if not chosen:
            return {}
        # Landmarks found below full scale are re-located (a detector pass on a crop each) only for the faces
        # embedded: the looks only rank and weigh, and in a crowd most candidates are looked at and dropped.
        self._full_resolution(image, detections, chosen)
        self._make_upright(image, detections, chosen)  # no-ops for faces refined before their looks
        faces = self.engine.describe(image, [detections[di] for di in chosen])
        self.embedded += len(chosen)
        return dict(zip(chosen, faces, strict=True))

    def _detect(self, image: Image, t: float, cut: bool) -> list[Detection]:
        """This frame's faces, below full scale (``detection_scale``) when a full-scale sweep was recent (not
        after a cut), else at full scale."""
        settings, gating = self.settings, self.gating
        scale = 1.0
        if gating is not None and not cut and 0.0 <= t - self._last_sweep < gating.sweep_interval:
            scale = detection_scale(gating, [min(tr.detection.w, tr.detection.h) for tr in self.tracker.tracks])
        if scale < 1.0:
            found = self.engine.find_faces(image, settings.max_faces, upright=False, scale=scale)
            self.coarse += 1
        else:
            found = self.engine.find_faces(image, settings.max_faces, upright=False)
            self._last_sweep = t
        self._coarse = scale < 1.0
        return [d for d in found if min(d.w, d.h) >= settings.min_face_px]

    def _full_resolution(self, image: Image, detections: list[Detection], indexes: list[int]) -> None:
        """Re-locate ``detections[i]`` at full resolution (``relocate``), for ``i`` in ``indexes``, when this
        frame was detected coarsely (once per face and frame)."""
        if not self._coarse:
            return
        for di in indexes:
            if di not in self._sharp:
                self._sharp.add(di)
                detections[di] = relocate(self.engine, image, detections[di])

    def _make_upright(self, image: Image, detections: list[Detection], indexes: list[int]) -> None:
        """Refine the landmarks of ``detections[i]`` for ``i`` in ``indexes`` (in place, once per frame)."""
        for di in indexes:
            if di not in self._upright:
                detections[di] = self.engine.upright_landmarks(image, detections[di])
                self._upright.add(di)

    def _event(self, kind: type[TrackEvent], track: Track, frame: Frame, **extra: Any) -> TrackEvent:
        return kind(
            processor=self.processor,
            camera=self.camera,
            track_id=track.track_id,
            stream_time_ms=round(frame.stream_time * 1000),
            frame_time=frame.arrived,
            bounding_box=BoundingBox.from_pixels(*track.box, frame.width, frame.height),
            match=track_match(track),
            snapshot=encode_jpeg(track.state.get("snapshot")),
            started_at=track.first_wall,
            start_stream_ms=round(track.first_seen * 1000),
            wall_time=time.time(),
            **extra,
        )

    def _ended(self, track: Track, frame: Frame) -> TrackEvent:
        return self._event(
            TrackEnded, track, frame, ended_at=track.last_wall, end_stream_ms=round(track.last_seen * 1000)
        )


# The crop a coarsely found face is re-located in is at most this many pixels (the face about half of it).
# On Hamilton frames, SFace vectors of faces aligned on half-scale landmarks agree with those aligned on
# full-frame ones at cosine 0.85 (median; 0.38 at worst); re-located in a crop of at most 320 px, 0.94
# (0.68 at worst), the same as an unscaled crop; at most 160 px, 0.92 (0.28 at worst).
SHARP_PATCH = 320
UNRESOLVED_THUMBNAILS = 3
UNRESOLVED_THUMBNAIL_PX = 160


def _keep_best(track: Track, weight: float, face: AnalyzedFace, image: Image) -> None:
    """Remember the track's best embedded face (vector, quality, confidence) and its best few crops."""
    assert face.vector is not None
    track.state["frame_size"] = (image.width, image.height)
    best = track.state.get("best")
    if best is None or weight > best[0]:
        track.state["best"] = (weight, face.vector, face.quality_score, face.detail.confidence)
    thumbs: list[tuple[float, Any]] = track.state.setdefault("thumbs", [])
    if len(thumbs) < UNRESOLVED_THUMBNAILS or weight > thumbs[-1][0]:
        thumbs.append((weight, face_crop(image.pixels, face.detection, UNRESOLVED_THUMBNAIL_PX)))
        thumbs.sort(key=lambda item: -item[0])
        del thumbs[UNRESOLVED_THUMBNAILS:]


class MotionGate:
    """Has the picture changed since the frame last kept (``keep``)? Compared on a 160-pixel-wide grey
    thumbnail, cell by cell: the mean absolute difference over any one cell of ``cell_px`` frame pixels
    reaching ``min_change`` grey levels is a change. Cells, not the whole picture, so a small face entering a
    large still scene counts, while codec noise spread over the picture does not."""

    WIDTH = 160

    def __init__(self, min_change: float = 6.0, cell_px: int = 40) -> None:
        self.min_change = min_change
        self.cell_px = cell_px
        self._reference: npt.NDArray[np.int16] | None = None
        self._current: npt.NDArray[np.int16] | None = None
        self.last_change = 0.0  # the largest cell difference at the latest ``changed``

    def _thumbnail(self, pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
        height, width = pixels.shape[:2]
        size = (self.WIDTH, max(1, round(height * self.WIDTH / max(1, width))))
        small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
        gray = small if small.ndim == 2 else cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        return np.asarray(gray, dtype=np.int16)

    def changed(self, pixels: npt.NDArray[np.uint8]) -> bool:
        """Whether ``pixels`` differ from the kept frame (True when none is kept or the size changed)."""
        thumb = self._current = self._thumbnail(pixels)
        reference = self._reference
        if reference is None or reference.shape != thumb.shape:
            self.last_change = math.inf
            return True
        width = pixels.shape[1]
        cell = max(1, round(self.cell_px * self.WIDTH / max(1, width)))
        difference = np.abs(thumb - reference).astype(np.float32)
        rows, cols = max(1, thumb.shape[0] // cell), max(1, thumb.shape[1] // cell)
        cells = cv2.resize(difference, (cols, rows), interpolation=cv2.INTER_AREA)
        self.last_change = float(cells.max())
        return self.last_change >= self.min_change

    def keep(self, pixels: npt.NDArray[np.uint8]) -> bool:
        """Make ``pixels`` (normally the frame just passed to ``changed``) the reference; returns True."""
        self._reference = self._current if self._current is not None else self._thumbnail(pixels)
        return True


class SceneCutDetector:
    """Flags an edit: a 64×36 grey thumbnail differs from the previous one both in its pixels (mean absolute
    difference ≥ ``min_difference``) and in its histogram (Bhattacharyya distance ≥ ``min_distance``).

    On the Hamilton clip the three edits score 28–31 / 0.24–0.39 and the largest in-shot change (a fast pan)
    19 / 0.10.
    """

    def __init__(self, min_difference: float = 22.0, min_distance: float = 0.18) -> None:
        self.min_difference = min_difference
        self.min_distance = min_distance
        self._previous: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None = None

    def changed(self, pixels: npt.NDArray[np.uint8]) -> bool:
        small = cv2.resize(pixels, (64, 36), interpolation=cv2.INTER_AREA)
        gray = small if small.ndim == 2 else cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        thumb = gray.astype(np.float32)
        counts = cv2.calcHist([thumb], [0], None, [32], [0, 256])
        hist = (counts / max(1.0, float(counts.sum()))).astype(np.float32)
        previous, self._previous = self._previous, (thumb, hist)
        if previous is None:
            return False
        difference = float(np.abs(thumb - previous[0]).mean())
        distance = float(cv2.compareHist(hist, previous[1], cv2.HISTCMP_BHATTACHARYYA))
        return difference >= self.min_difference and distance >= self.min_distance


def _box(det: Detection, width: int, height: int) -> BoundingBox:
    x0, y0 = max(0.0, det.x), max(0.0, det.y)
    x1, y1 = min(float(width), det.x + det.w), min(float(height), det.y + det.h)
    return BoundingBox.from_pixels(x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0), width, height)


def detection_scale(gating: GatingSettings, tracked_px: list[float]) -> float:
    """The scale to detect at between sweeps, given the shorter sides of the tracked faces: ``coarse_scale``
    while every one is at least ``coarse_min_px``; else the smallest multiple of ``scale_step`` at which the
    smallest still spans ``coarse_min_px × coarse_scale`` pixels (1 when ``scale_step`` is 0 or none is)."""
    smallest = min(tracked_px, default=math.inf)
    if smallest >= gating.coarse_min_px:
        return gating.coarse_scale
    if gating.scale_step <= 0.0 or smallest <= 0.0:
        return 1.0
    needed = gating.coarse_min_px * gating.coarse_scale / smallest
    steps = math.ceil(needed / gating.scale_step - 1e-9)
    return min(1.0, max(gating.coarse_scale, steps * gating.scale_step))


def relocate(engine: FaceEngine, image: Image, detection: Detection) -> Detection:
    """``detection`` (found on a scaled-down copy) found again at full resolution: one detector pass on a crop
    of twice the face, at most ``SHARP_PATCH`` pixels; the face that overlaps it most (IoU ≥ 0.3) gives the
    box and landmarks. Unchanged when no such face is found there."""
    height, width = image.height, image.width
    half = max(detection.w, detection.h)
    cx, cy = detection.x + detection.w / 2.0, detection.y + detection.h / 2.0
    x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
    x1, y1 = min(width, int(cx + half) + 1), min(height, int(cy + half) + 1)
    if x1 - x0 < 16 or y1 - y0 < 16:
        return detection
    crop = image.pixels[y0:y1, x0:x1]
    shrink = min(1.0, SHARP_PATCH / max(x1 - x0, y1 - y0))
    scaled = crop if shrink == 1.0 else cv2.resize(crop, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
    patch = Image(np.ascontiguousarray(scaled, dtype=np.uint8))
    found = [rescaled(d, 1.0 / shrink, None, x0, y0) for d in engine.find_faces(patch, 3, upright=False)]
    best = max(found, key=lambda d: iou(d.box, detection.box), default=None)
    if best is None or iou(best.box, detection.box) < 0.3:
        return detection
    return replace(detection, landmarks=best.landmarks)
