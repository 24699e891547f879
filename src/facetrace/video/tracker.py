"""Following faces from frame to frame: motion first, appearance when motion cannot tell.

A ``Track`` is one face followed over time. Each analysed frame goes through three steps:

1. ``match``: every live or recently lost track predicts where its face is now (constant velocity) and is
   paired greedily with the detection it overlaps most (IoU), or failing that, a detection of similar size
   whose centre is close to the prediction (fast motion at a low detection rate). With ``cascade`` the
   pairing runs in two rounds: first the confirmed tracks paired at the previous detection (their prediction
   is fresh), then the rest (tentative tracks, and lost ones whose prediction is old), so a lost track's stale
   prediction can never take the face a followed track is on — which matters once detection skips frames.
2. ``reassociate``: detections left over that the caller has embedded are compared with tracks lost within
   ``max_lost_seconds`` by the cosine of their identity vectors, so a face that was occluded or missed by
   the detector for a moment keeps its track id even if it moved meanwhile.
3. ``apply``: matched tracks take their detection; the rest start tentative tracks, confirmed after
   ``min_hits`` detections. ``expire`` ends tracks lost longer than ``max_lost_seconds`` (tentative ones at
   their first miss).

Appearance is a quality-weighted mean of the unit vectors embedded along the track (its *template*); the
identification layer (``facetrace.video.identity``) searches the collection with it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from facetrace.errors import InvalidParameterError
from facetrace.geometry import iou
from facetrace.types import Detection, Vector

__all__ = ["IouTracker", "Track", "Tracker", "TrackerSettings", "iou"]


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    """``iou_threshold``: least overlap between a prediction and a detection to pair them.
    ``max_center_shift``: fallback pairing when they do not overlap enough: centre distance at most this many
    face sizes (sqrt(w·h)), sizes within a factor of 2.
    ``max_lost_seconds``: how long a confirmed track survives without detections (occlusion, missed detections).
    ``reid_min_cosine``: least cosine between a new face's vector and a lost track's template to resume it.
    ``min_hits``: detections before a track is confirmed (and reported).
    ``cascade``: pair in two rounds, confirmed tracks paired at the previous detection first, then the rest
    (tentative and lost tracks). Without it one greedy round by overlap lets a lost track, extrapolated for up
    to half a second, overlap a followed face better than that face's own track and take it over: a swap of
    identities that names the wrong track once frames between detections are skipped (``GatingSettings``).
    """

    iou_threshold: float = 0.2
    max_center_shift: float = 0.8
    max_lost_seconds: float = 2.0
    reid_min_cosine: float = 0.45
    min_hits: int = 2
    box_smoothing: float = 0.7  # weight of the new detection in the smoothed box
    cascade: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.iou_threshold < 1.0 or not 0.0 <= self.max_center_shift <= 5.0:
            raise InvalidParameterError("iou_threshold must be in (0, 1) and max_center_shift in [0, 5]")
        if not 0.0 <= self.max_lost_seconds <= 600.0 or not 1 <= self.min_hits <= 100:
            raise InvalidParameterError("max_lost_seconds must be 0-600 and min_hits 1-100")
        if not -1.0 <= self.reid_min_cosine <= 1.0 or not 0.0 < self.box_smoothing <= 1.0:
            raise InvalidParameterError("reid_min_cosine must be in [-1, 1] and box_smoothing in (0, 1]")


@dataclass(eq=False)
class Track:
    """One face followed over time (mutable; owned by the tracker and the identification layer)."""

    track_id: int
    box: tuple[float, float, float, float]  # smoothed (x, y, w, h) in pixels
    detection: Detection  # the latest raw detection
    first_seen: float  # stream seconds
    last_seen: float
    first_wall: float  # unix seconds
    last_wall: float
    hits: int = 1
    confirmed: bool = False
    velocity: tuple[float, float] = (0.0, 0.0)  # centre, pixels per second
    template: Vector | None = None  # quality-weighted mean of the sample vectors, unit length
    template_weight: float = 0.0
    template_sum: Vector | None = None  # the weighted sum itself: the template is its direction
    samples: int = 0
    sample_log: list[tuple[float, float | None]] = field(default_factory=list)  # (template weight, quality)
    last_sample: float = -math.inf  # stream seconds of the latest sample
    matched_now: bool = False  # paired with a detection in the current frame
    motion_valid: bool = True  # False after a scene cut: only appearance can resume the track
    state: dict[str, Any] = field(default_factory=dict)  # room for the layers above (identity, snapshots)

    def predict(self, t: float) -> tuple[float, float, float, float]:
        dt = min(0.5, max(0.0, t - self.last_seen))
        x, y, w, h = self.box
        return (x + self.velocity[0] * dt, y + self.velocity[1] * dt, w, h)

    def add_sample(self, vector: Vector, weight: float, t: float, quality: float | None = None) -> None:
        """Fold one identity vector into the template with ``weight`` (how much it should count); ``quality``
        is the sampled face's ``face_quality`` (None: unknown), kept with its weight in ``sample_log`` so the
        identification layer can tell which calibration band the template deserves."""
        weight = max(1e-3, float(weight))
        self.sample_log.append((weight, quality))
        unit = vector / max(1e-12, float(np.linalg.norm(vector)))
        total = unit * weight if self.template_sum is None else self.template_sum + unit * weight
        self.template_sum = total.astype(np.float32)
        self.template_weight += weight
        norm = float(np.linalg.norm(total))
        self.template = (total / max(norm, 1e-12)).astype(np.float32)
        self.samples += 1
        self.last_sample = t

    def similarity_to(self, vector: Vector) -> float:
        """Cosine between the template and ``vector`` (−1 when there is no template yet)."""
        if self.template is None:
            return -1.0
        return float(np.dot(self.template, vector) / max(1e-12, float(np.linalg.norm(vector))))


Pair = tuple[Track, int]  # a track and the index of its detection


class Tracker(Protocol):
    """The small interface the analysis loop uses; ``IouTracker`` is the implementation."""

    def match(self, t: float, detections: list[Detection]) -> tuple[list[Pair], list[int]]: ...
    def reassociate(self, t: float, candidates: dict[int, Vector]) -> list[Pair]: ...
    def apply(
        self, t: float, wall: float, detections: list[Detection], pairs: list[Pair], new: list[int]
    ) -> tuple[list[Track], list[Track]]: ...
    def scene_cut(self) -> None: ...
    def expire(self, t: float) -> list[Track]: ...
    def finish(self) -> list[Track]: ...
    @property
    def tracks(self) -> list[Track]: ...


class IouTracker:
    """Greedy IoU + motion association, appearance re-association of lost tracks. Not thread-safe."""

    def __init__(self, settings: TrackerSettings | None = None, *, first_id: int = 1) -> None:
        self.settings = settings or TrackerSettings()
        self._tracks: list[Track] = []
        self._ids = itertools.count(first_id)

    @property
    def tracks(self) -> list[Track]:
        return list(self._tracks)

    def match(self, t: float, detections: list[Detection]) -> tuple[list[Pair], list[int]]:
        """Pair tracks with detections by overlap (then proximity); returns pairs and unmatched detections."""
        settings = self.settings
        candidates = [
            tr for tr in self._tracks if tr.motion_valid and t - tr.last_seen <= settings.max_lost_seconds
        ]
        scored: list[tuple[float, int, int]] = []
        for ti, track in enumerate(candidates):
            predicted = track.predict(t)
            px, py = predicted[0] + predicted[2] / 2, predicted[1] + predicted[3] / 2
            size = math.sqrt(max(1.0, predicted[2] * predicted[3]))
            for di, det in enumerate(detections):
                box = (det.x, det.y, det.w, det.h)
                overlap = iou(predicted, box)
                if overlap >= settings.iou_threshold:
                    scored.append((1.0 + overlap, ti, di))
                    continue
                ratio = math.sqrt(max(1.0, det.w * det.h)) / size
                if not 0.5 <= ratio <= 2.0:
                    continue
                distance = math.hypot(det.x + det.w / 2 - px, det.y + det.h / 2 - py) / size
                if distance <= settings.max_center_shift:
                    scored.append((1.0 - distance / max(settings.max_center_shift, 1e-6), ti, di))
        # Round 0: confirmed tracks paired at the previous detection (``matched_now`` still says so); round 1:
        # the rest. Without ``cascade`` everything is round 0 (one greedy pass by score).
        rounds = [0 if not settings.cascade or (tr.confirmed and tr.matched_now) else 1 for tr in candidates]
        scored.sort(key=lambda item: (-rounds[item[1]], item[0]), reverse=True)
        used_tracks: set[int] = set()
        used_detections: set[int] = set()
        pairs: list[Pair] = []
        for _, ti, di in scored:
            if ti in used_tracks or di in used_detections:
                continue
            used_tracks.add(ti)
            used_detections.add(di)
            pairs.append((candidates[ti], di))
        for track in self._tracks:
            track.matched_now = False
        for track, _ in pairs:
            track.matched_now = True
        unmatched = [di for di in range(len(detections)) if di not in used_detections]
        return pairs, unmatched

    def reassociate(self, t: float, candidates: dict[int, Vector]) -> list[Pair]:
        """Resume lost tracks (not matched in this frame) whose template resembles an embedded detection."""
        settings = self.settings
        lost = [
            tr
            for tr in self._tracks
            if tr.confirmed
            and not tr.matched_now
            and tr.template is not None
            and t - tr.last_seen <= settings.max_lost_seconds
        ]
        scored = sorted(
            (
                (track.similarity_to(vector), ti, di)
                for ti, track in enumerate(lost)
                for di, vector in candidates.items()
            ),
            reverse=True,
        )
        pairs: list[Pair] = []
        used_tracks: set[int] = set()
        used_detections: set[int] = set()
        for cosine, ti, di in scored:
            if cosine < settings.reid_min_cosine:
                break
            if ti in used_tracks or di in used_detections:
                continue
            used_tracks.add(ti)
            used_detections.add(di)
            lost[ti].matched_now = True
            pairs.append((lost[ti], di))
        return pairs

    def apply(
        self, t: float, wall: float, detections: list[Detection], pairs: list[Pair], new: list[int]
    ) -> tuple[list[Track], list[Track]]:
        """Update paired tracks and start one for each of ``new``; returns (started, confirmed in this frame)."""
        settings = self.settings
        confirmed_now: list[Track] = []
        created: list[Track] = []
        for track, di in pairs:
            det = detections[di]
            dt = t - track.last_seen
            a = settings.box_smoothing
            old = track.box
            box = (
                a * det.x + (1 - a) * old[0],
                a * det.y + (1 - a) * old[1],
                a * det.w + (1 - a) * old[2],
                a * det.h + (1 - a) * old[3],
            )
            if 0.0 < dt <= 1.0:
                vx = ((box[0] + box[2] / 2) - (old[0] + old[2] / 2)) / dt
                vy = ((box[1] + box[3] / 2) - (old[1] + old[3] / 2)) / dt
                track.velocity = (0.5 * vx + 0.5 * track.velocity[0], 0.5 * vy + 0.5 * track.velocity[1])
            else:
                track.velocity = (0.0, 0.0)
            track.box, track.detection = box, det
            track.last_seen, track.last_wall = t, wall
            track.hits += 1
            track.matched_now = True
            track.motion_valid = True
            if not track.confirmed and track.hits >= settings.min_hits:
                track.confirmed = True
                confirmed_now.append(track)
        for di in new:
            det = detections[di]
            track = Track(
                track_id=next(self._ids),
                box=(det.x, det.y, det.w, det.h),
                detection=det,
                first_seen=t,
                last_seen=t,
                first_wall=wall,
                last_wall=wall,
                matched_now=True,
            )
            if settings.min_hits <= 1:
                track.confirmed = True
                confirmed_now.append(track)
            self._tracks.append(track)
            created.append(track)
        return created, confirmed_now

    def scene_cut(self) -> None:
        """The picture changed completely (an edit in stored footage, a PTZ jump): positions mean nothing any
        more, so tracks can only be resumed by appearance; tentative ones are dropped."""
        self._tracks = [track for track in self._tracks if track.confirmed]
        for track in self._tracks:
            track.motion_valid = False
            track.velocity = (0.0, 0.0)

    def expire(self, t: float) -> list[Track]:
        """Remove tentative tracks that missed a frame and confirmed ones lost too long; returns the confirmed."""
        ended: list[Track] = []
        kept: list[Track] = []
        for track in self._tracks:
            if track.matched_now:
                kept.append(track)
            elif not track.confirmed:
                continue
            elif t - track.last_seen > self.settings.max_lost_seconds:
                ended.append(track)
            else:
                kept.append(track)
        self._tracks = kept
        return ended

    def finish(self) -> list[Track]:
        """End every confirmed track (the source ended)."""
        ended = [track for track in self._tracks if track.confirmed]
        self._tracks = []
        return ended
