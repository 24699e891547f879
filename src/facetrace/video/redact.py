"""Redacting a stored video: every face hidden in every frame, audio kept, no flicker.

Two passes over the file, because a face must be hidden in the frames *before* it is first detected too:

1. **Find** (decode only): faces are detected every ``detect_every`` frames with the recall-tuned YuNet
   and every ``centerface_every`` frames with YuNet and CenterFace together (``redaction.redaction_engine``;
   CenterFace finds the small and turned faces YuNet misses at ~6× its cost), and followed by the tracker
   (``IouTracker``, every detection starts a track at once). With a recognizer, each track's faces are
   embedded (at most every ``sample_every`` frames: the same samples whatever ``detect_every`` is)
   into its template and the track is identified once, on the whole template, at the end of the pass.
2. **Write** (decode again, obscure, encode H.264): each track's box is interpolated between its detections,
   held ``lead`` frames before its first one and carried ``tail`` frames after its last one (the detector
   misses a face for a few frames; the box stays), padded, and obscured in every frame it covers. A track
   found only on CenterFace's frames is held and carried ``centerface_every`` frames, so it stays hidden
   from one CenterFace pass to the next. Audio packets are copied unchanged into the output (no
   re-encoding); frame timestamps are the source's, so the output has the same frames at the same times.

A track is identified only if its template matches the collection at the threshold *and* every embedded
sample agrees with the template (cosine ≥ ``agree_cosine``): a tracker that swapped two people mid-track
makes samples that disagree, and such a track is hidden (``KEEP``) rather than shown. The output is written
to a temporary file beside ``output`` and renamed into place by the caller's ``commit`` callback only after
the act is audited (``facetrace redact``).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from facetrace.engine import FaceEngine
from facetrace.errors import InvalidParameterError, SourceOpenError, StreamError
from facetrace.imaging import Image
from facetrace.redaction import Box, Recognizer, RedactionSettings, Spare, obscure, redaction_engine
from facetrace.video.identity import sample_weight, template_quality
from facetrace.video.tracker import IouTracker, Track, TrackerSettings

__all__ = ["VideoRedaction", "VideoRedactionSettings", "redact_video"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class VideoRedactionSettings:
    """``detect_every``: run the detector on every n-th frame (boxes are interpolated in between).
    ``centerface_every``: run CenterFace beside YuNet on every n-th frame (0: never).
    ``lead`` / ``tail``: frames a track's box is held before its first and after its last detection (at
    least ``detect_every``). ``sample_every``: with a recognizer, embed a track's face at most every n
    frames (frames, not detections: detecting less often must not leave a short track with one sample, which
    is scored on the cautious curve and may no longer be identified).
    ``agree_cosine``: least cosine of every sample to its track's template for the track to be identified.
    ``crf``: H.264 quality of the output (lower is better; 18 looks like the source).
    ``redaction.aspects`` (none by default: the real-time margin is thin) are searched on the CenterFace
    frames only, and what they alone find is held like CenterFace's finds."""

    redaction: RedactionSettings = field(default_factory=lambda: RedactionSettings(small_faces=False, aspects=()))
    detect_every: int = 2
    centerface_every: int = 30
    lead: int = 6
    tail: int = 15
    sample_every: int = 3
    agree_cosine: float = 0.3
    crf: int = 18
    tracker: TrackerSettings = field(
        default_factory=lambda: TrackerSettings(min_hits=1, max_lost_seconds=1.5, box_smoothing=1.0)
    )

    def __post_init__(self) -> None:
        if not 1 <= self.detect_every <= 30 or not 1 <= self.sample_every <= 1000:
            raise InvalidParameterError("detect_every must be 1-30 and sample_every 1-1000")
        if not 0 <= self.centerface_every <= 300:
            raise InvalidParameterError("centerface_every must be 0-300 frames (0: never)")
        if not 0 <= self.lead <= 300 or not 0 <= self.tail <= 300:
            raise InvalidParameterError("lead and tail must be 0-300 frames")
        if not 0 <= self.crf <= 51:
            raise InvalidParameterError("crf must be 0-51")


@dataclass(frozen=True, slots=True)
class VideoRedaction:
    """What was done: frames written, face tracks hidden and kept, regions obscured, audio copied, and the
    face ids the recognizer matched (for the audit record)."""

    frames: int
    faces_hidden: int
    faces_kept: int
    regions: int
    audio: bool
    matched_face_ids: tuple[str, ...]


@dataclass
class _Path:
    """One track's detections: frame index → box."""

    boxes: dict[int, Box] = field(default_factory=dict)
    samples: list[np.ndarray] = field(default_factory=list)
    sampled_at: int | None = None  # the frame of its last sample
    light: bool = False  # also detected on a YuNet-only frame (not only where CenterFace ran)

    def sample_due(self, index: int, every: int) -> bool:
        return self.sampled_at is None or index - self.sampled_at >= every


def _find(
    engines: tuple[FaceEngine, FaceEngine],
    source: Path,
    settings: VideoRedactionSettings,
    recognizer: Recognizer | None,
) -> tuple[dict[int, _Path], dict[int, Track], int]:
    tracker = IouTracker(settings.tracker)
    paths: dict[int, _Path] = {}
    tracks: dict[int, Track] = {}
    frames = 0
    with _open(source) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            frames = index + 1
            heavy = settings.centerface_every > 0 and index % settings.centerface_every == 0
            if index % settings.detect_every and not heavy:
                continue
            engine = engines[1] if heavy else engines[0]
            t = float(frame.time) if frame.time is not None else index / _rate(stream)
            image = Image(np.ascontiguousarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8))
            detections = engine.find_all_faces(image)
            pairs, new = tracker.match(t, detections)
            _, _ = tracker.apply(t, t, detections, pairs, new)
            current = [(track, track.detection) for track in tracker.tracks if track.matched_now]
            for track, det in current:
                tracks[track.track_id] = track
                path = paths.setdefault(track.track_id, _Path())
                path.boxes[index] = (det.x, det.y, det.w, det.h)
                path.light = path.light or not heavy
            if recognizer is not None:
                due = [
                    (tr, det) for tr, det in current if paths[tr.track_id].sample_due(index, settings.sample_every)
                ]
                faces = engine.describe(image, [det for _, det in due]) if due else []
                for (track, _), face in zip(due, faces, strict=True):
                    assert face.vector is not None
                    track.add_sample(face.vector, sample_weight(face) ** 2, t, face.quality_score)
                    paths[track.track_id].samples.append(face.vector)
                    paths[track.track_id].sampled_at = index
            tracker.expire(t)
    return paths, tracks, frames


def _identified(path: _Path, track: Track, recognizer: Recognizer, agree: float) -> tuple[str, ...]:
    """The face ids a track's template matches, or () when it matches nobody or its samples disagree."""
    if track.template is None:
        return ()
    if any(float(np.dot(track.template, v)) / max(1e-12, float(np.linalg.norm(v))) < agree for v in path.samples):
        return ()
    quality = template_quality(track.sample_log, 0.8, 2) if len(track.sample_log) >= 2 else None
    return tuple(match.face.face_id for match in recognizer.search(track.template, 1, quality))


def _boxes_by_frame(
    paths: list[_Path], frames: int, settings: VideoRedactionSettings, *, hold: bool = True
) -> list[list[Box]]:
    """Every frame's boxes of ``paths``: interpolated between detections, and with ``hold`` (boxes to
    obscure) held before the first, carried after the last and across long gaps. Without ``hold`` (kept faces,
    left untouched) a box is only where the face was seen or between two close sightings."""
    out: list[list[Box]] = [[] for _ in range(frames)]
    for path in paths:
        cadence = settings.detect_every if path.light else max(settings.detect_every, settings.centerface_every)
        lead, tail = max(settings.lead, cadence), max(settings.tail, cadence)
        gap_limit = max(tail, 2 * cadence)
        keys = sorted(path.boxes)
        if not hold:
            lead = tail = 0
        for i in range(max(0, keys[0] - lead), keys[0]):
            out[i].append(path.boxes[keys[0]])
        for a, b in itertools.pairwise(keys):
            box_a, box_b = np.array(path.boxes[a]), np.array(path.boxes[b])
            for i in range(a, b):
                if b - a <= gap_limit:
                    w = (i - a) / (b - a)
                    box = (1 - w) * box_a + w * box_b
                    out[i].append(tuple(float(v) for v in box))  # type: ignore[arg-type]
                elif hold:
                    out[i].append(path.boxes[a] if i - a <= tail else path.boxes[b])
                elif i == a:
                    out[i].append(path.boxes[a])
        for i in range(keys[-1], min(frames, keys[-1] + tail + 1)):
            out[i].append(path.boxes[keys[-1]])
    return out


def redact_video(
    engine: FaceEngine,
    source: Path | str,
    output: Path | str,
    settings: VideoRedactionSettings | None = None,
    *,
    recognizer: Recognizer | None = None,
    spare: Spare = Spare.KEEP,
    progress: Callable[[int], None] | None = None,
) -> VideoRedaction:
    """Write ``output`` (H.264 in the container its suffix names) from ``source`` with faces obscured.

    ``engine`` is any engine of the recognizer to use; the detector is replaced by the recall-tuned one.
    """
    settings = settings or VideoRedactionSettings()
    source, output = Path(source), Path(output)
    finders = (
        redaction_engine(engine, settings.redaction, photos=False, centerface=False),
        redaction_engine(engine, settings.redaction, photos=False),
    )
    paths, tracks, frames = _find(finders, source, settings, recognizer)
    matched: list[str] = []
    hidden_paths: list[_Path] = []
    kept_paths: list[_Path] = []
    for track_id, path in paths.items():
        named = _identified(path, tracks[track_id], recognizer, settings.agree_cosine) if recognizer else ()
        matched += named
        hide = True if recognizer is None else (not named if spare is Spare.KEEP else bool(named))
        (hidden_paths if hide else kept_paths).append(path)
    boxes = _boxes_by_frame(hidden_paths, frames, settings)
    # with ONLY the kept tracks are everyone else, fragments included: nothing may uncover a named face
    keep = _boxes_by_frame(kept_paths if spare is Spare.KEEP else [], frames, settings, hold=False)
    written, regions, audio = _write(source, output, boxes, keep, settings, progress)
    if written != frames:
        raise StreamError(f"{source}: decoded {frames} frames the first time and {written} the second")
    return VideoRedaction(
        written, len(hidden_paths), len(kept_paths), regions, audio, tuple(dict.fromkeys(matched))
    )


def _write(
    source: Path,
    output: Path,
    boxes: list[list[Box]],
    keep: list[list[Box]],
    settings: VideoRedactionSettings,
    progress: Callable[[int], None] | None,
) -> tuple[int, int, bool]:
    written = regions = 0
    with _open(source) as container:
        vin = container.streams.video[0]
        vin.thread_type = "AUTO"
        ain = container.streams.audio[0] if container.streams.audio else None
        try:
            out = av.open(str(output), "w")
        except (av.error.FFmpegError, OSError, ValueError) as exc:
            raise InvalidParameterError(f"cannot write {output}: {exc}") from exc
        with out:
            vout = out.add_stream("libx264", rate=vin.average_rate or Fraction(30))
            vout.width, vout.height = vin.codec_context.width, vin.codec_context.height
            vout.pix_fmt = "yuv420p"
            vout.time_base = vin.time_base
            vout.options = {"crf": str(settings.crf), "preset": "veryfast"}
            aout = out.add_stream_from_template(ain) if ain is not None else None
            streams = [vin] if ain is None else [vin, ain]
            for packet in container.demux(streams):
                if packet.stream is ain:
                    if packet.dts is None:
                        continue
                    packet.stream = aout  # type: ignore[assignment]
                    out.mux(packet)
                    continue
                for frame in packet.decode():
                    if not isinstance(frame, av.VideoFrame):
                        continue
                    pixels = np.ascontiguousarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
                    if written < len(boxes):
                        regions += obscure(pixels, boxes[written], settings.redaction, keep[written])
                    new = av.VideoFrame.from_ndarray(pixels, format="bgr24")
                    new.pts, new.time_base = frame.pts, frame.time_base
                    out.mux(vout.encode(new))
                    written += 1
                    if progress is not None:
                        progress(1)
            out.mux(vout.encode(None))
    return written, regions, ain is not None


def _rate(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate
    return float(rate) if rate and math.isfinite(float(rate)) and float(rate) > 0 else 30.0


def _open(source: Path) -> av.container.InputContainer:
    if not source.is_file():
        raise SourceOpenError(f"{source}: no such video file")
    try:
        container = av.open(str(source), "r")
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise SourceOpenError(f"{source}: not a readable video ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise SourceOpenError(f"{source}: has no video stream")
    return container
