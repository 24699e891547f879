"""Segmented stored-video analysis: cut a long video at keyframes, analyse the pieces in parallel, stitch tracks.

A job's frames are independent work except for the tracker, which carries each face from one analysed frame
to the next. So the video is cut into segments that start at keyframes (a decoder can start there exactly
and cheaply), each is analysed on its own with the same ``FrameAnalyzer`` a sequential job uses, and the
tracks are stitched back together where two segments meet:

1. ``plan_segments``: boundaries at keyframes near equal shares of the duration, each segment at least
   ``min_seconds`` long. Segment *k* owns the frames of ``[start, end)`` and also analyses the ``overlap``
   seconds after its end, which segment *k+1* owns: both see the same frames there, because every segment
   samples frames on the job's one global time grid (multiples of ``1 / sample_fps``).
2. ``analyse_segment`` (a pure function of the video, the segment, an engine and a matcher: it runs in this
   process or on a Ray worker, ``facetrace.cluster.jobs``) returns every track's observations, its template
   (the weighted sum of its identity vectors with their weights and qualities) and its own match.
3. ``stitch``: in each overlap window, a track of segment *k* and one of *k+1* are one face when their boxes
   overlap (IoU ≥ ``min_iou``) on at least ``min_frames`` of the shared frames and their templates do not
   contradict each other (cosine ≥ ``veto_cosine`` when both have one); a track that left segment *k* just
   before or in the window and one that appeared in it with no box partner are joined by appearance alone
   (cosine ≥ the tracker's ``reid_min_cosine``), as the tracker resumes a lost face.
4. A stitched track is named as a sequential job names a track when it ends: one search with everything its
   parts gathered (the sum of their templates). When that finds nobody, the best match of a part stands (a
   sequential track keeps its match, too). Its observations are each part's own frames.
5. ``unresolved``: a stitched track nobody is named for goes to the review queue (and could go to unknown
   people) with everything its parts gathered, as a sequential job's track does when it ends; its track id is
   its index among the stitched tracks, as is its sighting's, so one person across a border is one track.

The result equals a sequential run's identifications: the same people, first and last seen within one
analysed frame (``tests/video/test_segments.py``; the cold start of each segment's tracker changes which
frames are embedded, not whom a track is). ``SegmentExecutor`` is the seam: ``SequentialExecutor`` and
``ThreadExecutor`` here, Ray tasks in ``facetrace.cluster.jobs``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol

import av
import numpy as np

from facetrace.engine import FaceEngine
from facetrace.errors import InvalidParameterError, SourceOpenError, StreamError
from facetrace.gallery import Gallery
from facetrace.thumbnails import encode_jpeg
from facetrace.types import BoundingBox, FaceMatch, Vector
from facetrace.validation import check_int
from facetrace.video.analysis import (
    UNRESOLVED_THUMBNAILS,
    AnalysisSettings,
    FrameAnalyzer,
    Observation,
    UnresolvedTrack,
    track_match,
)
from facetrace.video.identity import IdentitySettings, IdentityState, Matcher, person_key, template_quality
from facetrace.video.source import Frame, SourceSettings, VideoMetadata, VideoSource
from facetrace.video.tracker import Track, iou

__all__ = [
    "Segment",
    "SegmentContext",
    "SegmentExecutor",
    "SegmentResult",
    "SegmentSettings",
    "SegmentTask",
    "SequentialExecutor",
    "StitchedTrack",
    "ThreadExecutor",
    "TrackPart",
    "analyse_segment",
    "plan_segments",
    "probe",
    "stitch",
    "unresolved",
]


@dataclass(frozen=True, slots=True)
class SegmentSettings:
    """``segments``: how many pieces to aim for (0: two per worker of the executor). ``min_seconds``: no
    piece shorter (a video shorter than two of them is one segment: nothing to gain). ``overlap``: seconds
    each segment analyses past its end to stitch tracks (at least two analysed frames). ``min_iou`` and
    ``min_frames``: boxes that continue a track across the border. ``veto_cosine``: templates less alike
    than this are different faces even where their boxes overlap."""

    segments: int = 0
    min_seconds: float = 4.0
    overlap: float = 1.0
    min_iou: float = 0.5
    min_frames: int = 2
    veto_cosine: float = 0.2

    def __post_init__(self) -> None:
        check_int(self.segments, "segments", 0, 4096)
        check_int(self.min_frames, "min_frames", 1, 100)
        if not 0.5 <= self.min_seconds <= 86400.0 or not 0.1 <= self.overlap <= 60.0:
            raise InvalidParameterError("min_seconds must be 0.5-86400 s and overlap 0.1-60 s")
        if not 0.0 < self.min_iou < 1.0 or not -1.0 <= self.veto_cosine <= 1.0:
            raise InvalidParameterError("min_iou must be in (0, 1) and veto_cosine in [-1, 1]")


@dataclass(frozen=True, slots=True)
class Segment:
    """Frames of ``[start, end)`` seconds are this segment's; it analyses up to ``analyse_until``."""

    index: int
    start: float
    end: float
    analyse_until: float


@dataclass(frozen=True, slots=True)
class SegmentTask:
    """Everything a worker needs besides its engine and matcher (it travels to Ray workers)."""

    video: str
    segment: Segment
    sample_fps: float
    frame_rate: float
    settings: AnalysisSettings
    identify: bool  # a face search (tracks and matches) rather than a face detection (details per frame)


@dataclass(frozen=True, slots=True)
class TrackPart:
    """One track of one segment: what stitching and naming need."""

    segment: int
    track_id: int
    observations: tuple[tuple[int, Observation], ...]  # (stream ms, observation), analysed frames in order
    template_sum: Vector | None
    sample_log: tuple[tuple[float, float | None], ...]
    evidence: float
    match: FaceMatch | None
    last_box: BoundingBox
    snapshot: bytes | None
    snapshot_weight: float
    confirmed: bool = False
    best: tuple[float, Vector, float | None, float] | None = None
    """With ``report_unresolved``: the best embedded face (weight, vector, quality, confidence)."""
    thumbnails: tuple[tuple[float, bytes], ...] = ()
    """With ``report_unresolved``: the best few face crops as JPEG, with their weights."""

    @property
    def first_ms(self) -> int:
        return self.observations[0][0]

    @property
    def last_ms(self) -> int:
        return self.observations[-1][0]

    def template(self) -> Vector | None:
        if self.template_sum is None:
            return None
        norm = float(np.linalg.norm(self.template_sum))
        return (self.template_sum / max(norm, 1e-12)).astype(np.float32)


@dataclass(frozen=True, slots=True)
class SegmentResult:
    segment: Segment
    tracks: tuple[TrackPart, ...]
    frames: int  # analysed
    seconds: float  # wall time of the analysis (for the benchmark)


@dataclass(frozen=True, slots=True)
class StitchedTrack:
    """One face followed across segments: its parts in order, its frames, and who it is (None: nobody)."""

    index: int
    parts: tuple[TrackPart, ...]
    observations: tuple[tuple[int, Observation], ...]
    match: FaceMatch | None

    @property
    def first_ms(self) -> int:
        return self.observations[0][0]

    @property
    def last_ms(self) -> int:
        return self.observations[-1][0]


class SegmentExecutor(Protocol):
    """Runs segment tasks somewhere and returns their results in task order. ``workers``: how many run at
    once (plans aim for two segments per worker)."""

    @property
    def workers(self) -> int: ...

    def run(self, tasks: Sequence[SegmentTask], context: SegmentContext) -> list[SegmentResult]: ...


@dataclass(frozen=True, slots=True)
class SegmentContext:
    """What an in-process executor analyses with; a remote one ships its own equivalents."""

    engine: FaceEngine
    matcher: Matcher | None
    collection_id: str | None = None
    threshold: float | None = None
    gallery: Gallery | None = None  # the matcher's (a remote executor snapshots its collection)


class SequentialExecutor:
    """One segment after another in this thread: the reference, and the right choice on one core."""

    workers = 1

    def run(self, tasks: Sequence[SegmentTask], context: SegmentContext) -> list[SegmentResult]:
        return [analyse_segment(task, context.engine, context.matcher) for task in tasks]


class ThreadExecutor:
    """Segments analysed by ``workers`` threads of this process (the engine builds models per thread;
    decoding and inference release the GIL, the tracker's Python does not)."""

    def __init__(self, workers: int = 2) -> None:
        self._workers = check_int(workers, "workers", 1, 64)

    @property
    def workers(self) -> int:
        return self._workers

    def run(self, tasks: Sequence[SegmentTask], context: SegmentContext) -> list[SegmentResult]:
        with ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="segment") as pool:
            return list(pool.map(lambda task: analyse_segment(task, context.engine, context.matcher), tasks))


# -- planning ------------------------------------------------------------------------------------------------


def probe(video: str) -> tuple[VideoMetadata, list[float]]:
    """The video's metadata and its keyframe times in seconds (from packet flags: no decoding)."""
    source = VideoSource(SourceSettings(video, live=False, decoder_threads=0))
    container = source.open_container()
    try:
        meta = source.metadata
        assert meta is not None
        stream = container.streams.video[0]
        base = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        keyframes = sorted(
            {
                round(float(packet.pts * packet.time_base) - base, 6)
                for packet in container.demux(stream)
                if packet.is_keyframe and packet.pts is not None
            }
        )
    except (av.FFmpegError, OSError) as exc:
        raise StreamError(f"cannot read the keyframes of {video}: {exc}") from None
    finally:
        container.close()
    return meta, keyframes


def plan_segments(
    duration: float, keyframes: Sequence[float], settings: SegmentSettings, workers: int = 1
) -> list[Segment]:
    """Segments starting at keyframes near equal shares of ``duration``, each ≥ ``min_seconds``."""
    if duration <= 0:
        raise InvalidParameterError("the video has no duration")
    wanted = settings.segments or 2 * max(1, workers)
    count = max(1, min(wanted, int(duration // settings.min_seconds)))
    starts = [0.0]
    for k in range(1, count):
        target = duration * k / count
        near = min(keyframes, key=lambda t: abs(t - target), default=None)
        if near is None:
            break
        if near - starts[-1] >= settings.min_seconds and duration - near >= settings.min_seconds:
            starts.append(near)
    ends = [*starts[1:], math.inf]
    return [
        Segment(i, start, end, end + settings.overlap if math.isfinite(end) else math.inf)
        for i, (start, end) in enumerate(zip(starts, ends, strict=True))
    ]


# -- analysing one segment ------------------------------------------------------------------------------------


def analyse_segment(task: SegmentTask, engine: FaceEngine, matcher: Matcher | None) -> SegmentResult:
    """Analyse the frames of one segment (its own frames and the overlap after it) with a fresh tracker."""
    began = time.perf_counter()
    analyzer = FrameAnalyzer(engine, matcher=matcher if task.identify else None, settings=task.settings)
    parts: dict[int, list[tuple[int, Observation]]] = {}
    tracks: dict[int, Track] = {}
    frames = 0
    for frame in _segment_frames(task):
        result = analyzer.process(frame)
        frames += 1
        ms = round(frame.stream_time * 1000)
        for observation in result.observations:
            parts.setdefault(observation.track_id, []).append((ms, observation))
        tracks.update((live.track_id, live) for live in analyzer.tracker.tracks)
    analyzer.finish()  # the final search of every track still open, as a sequential job's end does
    found: list[TrackPart] = []
    for track_id, observations in sorted(parts.items()):
        track = tracks.get(track_id)
        state = track.state.get("identity") if track is not None else None
        found.append(
            TrackPart(
                segment=task.segment.index,
                track_id=track_id,
                observations=tuple(observations),
                template_sum=None if track is None else track.template_sum,
                sample_log=() if track is None else tuple(track.sample_log),
                evidence=state.evidence if isinstance(state, IdentityState) else 0.0,
                match=None if track is None else track_match(track),
                last_box=observations[-1][1].box,
                snapshot=_snapshot(track),
                snapshot_weight=float(track.state.get("snapshot_weight", -1.0)) if track is not None else -1.0,
                confirmed=track is not None and track.confirmed,
                best=None if track is None else track.state.get("best"),
                thumbnails=_thumbnails(track),
            )
        )
    return SegmentResult(task.segment, tuple(found), frames, time.perf_counter() - began)


def _snapshot(track: Track | None) -> bytes | None:
    return None if track is None else encode_jpeg(track.state.get("snapshot"))


def _thumbnails(track: Track | None) -> tuple[tuple[float, bytes], ...]:
    """The crops the analyzer kept for review (``report_unresolved``), as JPEG: they travel from Ray workers."""
    crops = [] if track is None else track.state.get("thumbs", [])
    return tuple((float(weight), jpeg) for weight, crop in crops if (jpeg := encode_jpeg(crop)) is not None)


def _segment_frames(task: SegmentTask) -> Iterator[Frame]:
    """The sampled frames of ``[segment.start, segment.analyse_until)`` on the job's global time grid."""
    segment = task.segment
    fps = task.frame_rate or 30.0
    interval = 1.0 / min(task.sample_fps, fps)
    tolerance = 0.5 / fps
    try:
        container = av.open(task.video, mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise SourceOpenError(f"cannot open {task.video} ({exc})") from None
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = float(stream.time_base or 1.0 / 90000)
        base = float(stream.start_time * time_base) if stream.start_time is not None else 0.0
        if segment.start > 0:
            container.seek(round((segment.start + base) / time_base), stream=stream, backward=True)
        # the first grid point at or after the segment's start: every segment samples the same instants
        due = math.ceil(max(0.0, segment.start - tolerance) / interval - 1e-9) * interval
        index = 0
        for picture in container.decode(stream):
            if picture.time is None:
                continue
            t = max(0.0, float(picture.time) - base)
            if t + tolerance < segment.start:
                continue
            if t >= segment.analyse_until - tolerance:
                return
            if t + tolerance >= due:
                while due <= t + tolerance:
                    due += interval
                yield Frame(round(t * fps), t, time.time(), picture.width, picture.height, picture)
            index += 1
    except (av.FFmpegError, OSError) as exc:
        raise StreamError(f"{task.video}: read failed ({exc})") from None
    finally:
        container.close()


# -- stitching ---------------------------------------------------------------------------------------------


def stitch(
    results: Sequence[SegmentResult],
    settings: SegmentSettings,
    *,
    matcher: Matcher | None = None,
    identity: IdentitySettings | None = None,
    reid_min_cosine: float = 0.45,
    max_lost_seconds: float = 2.0,
) -> list[StitchedTrack]:
    """Join the tracks of consecutive segments that are one face (module docstring) and name each joined
    track with everything its parts gathered (``matcher``: None for a detection job)."""
    ordered = sorted(results, key=lambda r: r.segment.index)
    parent: dict[tuple[int, int], tuple[int, int]] = {}

    def find(key: tuple[int, int]) -> tuple[int, int]:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for before, after in itertools.pairwise(ordered):
        for a, b in _links(before, after, settings, reid_min_cosine, max_lost_seconds):
            parent[find((b.segment, b.track_id))] = find((a.segment, a.track_id))
    groups: dict[tuple[int, int], list[TrackPart]] = {}
    for result in ordered:
        for part in result.tracks:
            groups.setdefault(find((part.segment, part.track_id)), []).append(part)
    owned = {r.segment.index: r.segment for r in ordered}
    stitched: list[StitchedTrack] = []
    for parts in groups.values():
        parts.sort(key=lambda p: (p.segment, p.first_ms))
        observations = tuple(
            sorted(
                (
                    (ms, obs)
                    for part in parts
                    for ms, obs in part.observations
                    if owned[part.segment].start * 1000 - 0.5 <= ms < owned[part.segment].end * 1000 - 0.5
                ),
                key=lambda item: item[0],
            )
        )
        if not observations:
            continue  # a track seen only in an overlap window, and not continued: the next segment's own
        stitched.append(StitchedTrack(0, tuple(parts), observations, _name(parts, matcher, identity)))
    stitched.sort(key=lambda t: (t.first_ms, t.parts[0].segment, t.parts[0].track_id))
    return [replace(track, index=i) for i, track in enumerate(stitched)]


def _links(
    before: SegmentResult,
    after: SegmentResult,
    settings: SegmentSettings,
    reid_min_cosine: float,
    max_lost_seconds: float,
) -> list[tuple[TrackPart, TrackPart]]:
    """Pairs (track of ``before``, track of ``after``) that are one face: boxes first, appearance second."""
    window_start, window_end = after.segment.start * 1000 - 0.5, before.segment.analyse_until * 1000
    late = [p for p in before.tracks if p.last_ms >= window_start - max_lost_seconds * 1000]
    early = [p for p in after.tracks if p.first_ms < window_end]
    scored: list[tuple[int, float, int, int]] = []
    for i, a in enumerate(late):
        boxes = {ms: obs.box for ms, obs in a.observations if ms >= window_start}
        for j, b in enumerate(early):
            shared = [(boxes[ms], obs.box) for ms, obs in b.observations if ms in boxes]
            overlaps = [iou(_xywh(x), _xywh(y)) for x, y in shared]
            agreeing = sum(1 for o in overlaps if o >= settings.min_iou)
            if agreeing >= min(settings.min_frames, len(shared)) and agreeing > 0:
                if _cosine(a, b) < settings.veto_cosine:
                    continue
                scored.append((agreeing, float(np.mean(overlaps)), i, j))
    scored.sort(reverse=True)
    links: list[tuple[TrackPart, TrackPart]] = []
    used_a: set[int] = set()
    used_b: set[int] = set()
    for _, _, i, j in scored:
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            links.append((late[i], early[j]))
    # appearance: a face that left just before or in the window, one that appeared in it, no box partner
    by_look = sorted(
        (
            (_cosine(a, b), i, j)
            for i, a in enumerate(late)
            if i not in used_a
            for j, b in enumerate(early)
            if j not in used_b and 0 <= b.first_ms - a.last_ms <= max_lost_seconds * 1000
        ),
        reverse=True,
    )
    for cosine, i, j in by_look:
        if cosine < reid_min_cosine:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            links.append((late[i], early[j]))
    return links


def _xywh(box: BoundingBox) -> tuple[float, float, float, float]:
    return (box.left, box.top, box.width, box.height)


def _cosine(a: TrackPart, b: TrackPart) -> float:
    """Cosine of two parts' templates; 1 when either has none (no evidence against joining them)."""
    ta, tb = a.template(), b.template()
    if ta is None or tb is None:
        return 1.0
    return float(np.dot(ta, tb))


def _name(
    parts: Sequence[TrackPart], matcher: Matcher | None, identity: IdentitySettings | None
) -> FaceMatch | None:
    """One search with the parts' templates summed (a sequential track's final check); when it finds
    nobody, the best match a part had (a sequential track keeps its match)."""
    if matcher is None:
        return None
    own = [part.match for part in parts if part.match is not None]
    sums = [part.template_sum for part in parts if part.template_sum is not None]
    if len(parts) > 1 and sums and identity is not None:
        track = Track(0, (0.0, 0.0, 1.0, 1.0), None, 0.0, 0.0, 0.0, 0.0)  # type: ignore[arg-type]
        total = np.sum(sums, axis=0).astype(np.float32)
        track.template_sum = total
        track.template = (total / max(float(np.linalg.norm(total)), 1e-12)).astype(np.float32)
        track.sample_log = [sample for part in parts for sample in part.sample_log]
        track.samples = len(track.sample_log)
        track.template_weight = sum(weight for weight, _ in track.sample_log)
        state = IdentityState(evidence=sum(part.evidence for part in parts))
        if state.update(track, matcher, identity) is not None and state.match is not None:
            return state.match
    if not own:
        return None
    votes: dict[str, list[FaceMatch]] = {}
    for match in own:
        votes.setdefault(person_key(match), []).append(match)
    best = max(votes.values(), key=lambda group: (len(group), max(m.similarity for m in group)))
    return max(best, key=lambda m: m.similarity)


# -- review ------------------------------------------------------------------------------------------------


def unresolved(
    tracks: Sequence[StitchedTrack],
    identity: IdentitySettings,
    *,
    processor: str,
    camera: str,
    base_time: float,
) -> Iterator[UnresolvedTrack]:
    """The stitched tracks nobody is named for, as a single pass hands its unresolved tracks to the review
    queue and unknown people (``FrameAnalyzer``'s report when a track ends): with everything their parts
    gathered — the summed template and its quality, the best face, the best thumbnails — and only with the
    evidence a single pass asks for (confirmed, ``min_samples`` samples, ``min_evidence``). Their track id is
    the stitched track's index, as the job's sightings' is. The segments must have been analysed with
    ``report_unresolved`` (else no part kept a best face and nothing is yielded). ``base_time``: the unix
    time of the video's start."""
    for track in tracks:
        parts = track.parts
        sums = [part.template_sum for part in parts if part.template_sum is not None]
        bests = [part.best for part in parts if part.best is not None]
        if track.match is not None or not sums or not bests or not any(part.confirmed for part in parts):
            continue
        sample_log = [sample for part in parts for sample in part.sample_log]
        weight = sum(w for w, _ in sample_log)
        evidence = sum(part.evidence for part in parts)
        if len(sample_log) < identity.min_samples or (evidence or weight) < identity.min_evidence:
            continue
        total = np.sum(sums, axis=0).astype(np.float32)
        quality = (
            template_quality(sample_log, identity.template_quality_share, max(2, identity.min_samples))
            if identity.template_quality
            else None
        )
        _, vector, face_quality, confidence = max(bests, key=lambda best: best[0])
        thumbs = sorted((t for part in parts for t in part.thumbnails), key=lambda t: -t[0])
        yield UnresolvedTrack(
            processor=processor, camera=camera, track_id=track.index,
            started_at=base_time + track.first_ms / 1000.0, ended_at=base_time + track.last_ms / 1000.0,
            start_stream_ms=track.first_ms, end_stream_ms=track.last_ms, bounding_box=parts[-1].last_box,
            template=(total / max(float(np.linalg.norm(total)), 1e-12)).astype(np.float32),
            template_quality=quality, evidence=evidence or weight, best_vector=vector, best_quality=face_quality,
            best_confidence=confidence, thumbnails=tuple(jpeg for _, jpeg in thumbs[:UNRESOLVED_THUMBNAILS]),
        )  # fmt: skip
