"""One analysed frame: detect → track → embed a few faces → identify tracks → events.

``FrameAnalyzer`` composes the engine, a tracker and a matcher; live stream workers and stored-video jobs
both drive it, one frame at a time, from a single thread (the engine builds its models per thread).

Embedding is the expensive step (~24 ms per face on one core, against ~17 ms to detect every face in a
640×360 frame), so at most ``max_embeds_per_frame`` faces are embedded per frame, chosen in this order:
new faces when a lost track might be theirs (re-association), new faces, unidentified tracks due for a
sample, identified tracks due for a re-check (``IdentitySettings``), and last, unidentified tracks whose face
in this frame looks clearly better than any they have been sampled with (``better_sample_recheck``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from facetrace.engine import AnalyzedFace, FaceEngine
from facetrace.errors import InvalidParameterError
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
    "Observation",
    "SceneCutDetector",
    "TrackObserver",
    "UnresolvedTrack",
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
    """

    max_faces: int = 20
    min_face_px: float = 10.0
    max_embeds_per_frame: int = 1
    details: bool = False
    keep_unidentified: bool = False
    snapshot_px: int = 112
    scene_cuts: bool = True
    report_unresolved: bool = False
    tracker: TrackerSettings = field(default_factory=TrackerSettings)
    identity: IdentitySettings = field(default_factory=IdentitySettings)

    def __post_init__(self) -> None:
        if not 1 <= self.max_faces <= 100 or not 0 <= self.max_embeds_per_frame <= 100:
            raise InvalidParameterError("max_faces must be 1-100 and max_embeds_per_frame 0-100")
        if not 0 <= self.snapshot_px <= 1024 or self.min_face_px < 0:
            raise InvalidParameterError("snapshot_px must be 0-1024 and min_face_px >= 0")


@dataclass(frozen=True, slots=True)
class Observation:
    """One face in one analysed frame and the track it was assigned to."""

    track_id: int
    box: BoundingBox
    detection: Detection
    detail: FaceDetail | None = None


@dataclass(frozen=True, slots=True)
class FrameResult:
    index: int
    stream_time: float
    observations: tuple[Observation, ...]
    events: tuple[TrackEvent, ...]
    embedded: int


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
    ) -> None:
        self.engine = engine
        self.matcher = matcher
        self.settings = settings or AnalysisSettings()
        self.tracker: Tracker = tracker or IouTracker(self.settings.tracker)
        self.processor = processor
        self.camera = camera
        self.embedded = 0
        self._last_frame: Frame | None = None
        self._cuts = SceneCutDetector() if self.settings.scene_cuts else None
        self.scene_cuts = 0
        self._unresolved: list[UnresolvedTrack] = []

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
        image = Image(frame.bgr())
        t, wall = frame.stream_time, frame.arrived
        if self._cuts is not None and self._cuts.changed(image.pixels):
            self.scene_cuts += 1
            self.tracker.scene_cut()
        detections = [
            d for d in self.engine.find_faces(image, settings.max_faces) if min(d.w, d.h) >= settings.min_face_px
        ]
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
        for track in self.tracker.expire(t):
            self._final_check(track)
            self._report(track)
            if settings.keep_unidentified or track_match(track) is not None:
                events.append(self._ended(track, frame))

        details: dict[int, FaceDetail] = {}
        if settings.details and detections:
            rest = [di for di in range(len(detections)) if di not in faces]
            described = self.engine.describe(image, [detections[di] for di in rest], embed=False)
            details = {di: f.detail for di, f in zip(rest, described, strict=True)}
            details.update({di: f.detail for di, f in faces.items()})
        observations = tuple(
            Observation(
                track_id=owner[di].track_id,
                box=_box(det, image),
                detection=det,
                detail=details.get(di),
            )
            for di, det in enumerate(detections)
        )
        self._last_frame = frame
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
        faces = self.engine.describe(image, [detections[di] for di in chosen])
        self.embedded += len(chosen)
        return dict(zip(chosen, faces, strict=True))

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
        gray = cv2.cvtColor(cv2.resize(pixels, (64, 36), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        thumb = gray.astype(np.float32)
        counts = cv2.calcHist([thumb], [0], None, [32], [0, 256])
        hist = (counts / max(1.0, float(counts.sum()))).astype(np.float32)
        previous, self._previous = self._previous, (thumb, hist)
        if previous is None:
            return False
        difference = float(np.abs(thumb - previous[0]).mean())
        distance = float(cv2.compareHist(hist, previous[1], cv2.HISTCMP_BHATTACHARYYA))
        return difference >= self.min_difference and distance >= self.min_distance


def _box(det: Detection, image: Image) -> BoundingBox:
    x0, y0 = max(0.0, det.x), max(0.0, det.y)
    x1, y1 = min(float(image.width), det.x + det.w), min(float(image.height), det.y + det.h)
    return BoundingBox.from_pixels(x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0), image.width, image.height)
