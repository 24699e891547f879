"""Typed events the video pipeline emits: a track started, was identified, ended; a source changed state.

Events are frozen dataclasses. ``to_dict`` gives the JSON form every sink writes (JSON lines, webhooks, the
server-sent-events feed): Rekognition's names (``FaceId``, ``ExternalImageId``, ``UserId``, ``Similarity``,
``BoundingBox`` in ratios) plus what Rekognition's stream processors do not report (track id, stream time,
a small JPEG snapshot as base64).

    Event
    ├── TrackEvent            one face track on one camera
    │   ├── TrackStarted      a confirmed track appeared (only emitted when unidentified faces are kept)
    │   ├── TrackIdentified   the track was matched to a person (again when the match changes)
    │   └── TrackEnded        the track left the picture (for identified tracks, or all when kept)
    └── StreamStatus          a source connected, disconnected, stalled, reconnected or ended
"""

from __future__ import annotations

import base64
import enum
import time
from dataclasses import dataclass, field
from typing import Any

from facetrace import shapes
from facetrace.types import BoundingBox, FaceMatch

__all__ = [
    "Event",
    "EventType",
    "StreamState",
    "StreamStatus",
    "TrackEnded",
    "TrackEvent",
    "TrackIdentified",
    "TrackStarted",
]


class EventType(enum.StrEnum):
    TRACK_STARTED = "TrackStarted"
    TRACK_IDENTIFIED = "TrackIdentified"
    TRACK_ENDED = "TrackEnded"
    STREAM_STATUS = "StreamStatus"


class StreamState(enum.StrEnum):
    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"
    STALLED = "STALLED"
    ENDED = "ENDED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Common to every event: where it comes from and when it was emitted (unix seconds)."""

    processor: str
    camera: str
    wall_time: float = field(default_factory=time.time)

    @property
    def type(self) -> EventType:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {
            "Type": self.type.value,
            "Processor": self.processor,
            "Camera": self.camera,
            "WallTime": round(self.wall_time, 3),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackEvent(Event):
    """About one track. ``frame_time`` is when the frame that caused the event arrived (unix seconds), so
    ``wall_time - frame_time`` is the frame→event latency; ``stream_time_ms`` is the position in the stream."""

    track_id: int
    stream_time_ms: int
    frame_time: float
    bounding_box: BoundingBox
    match: FaceMatch | None = None
    snapshot: bytes | None = field(default=None, repr=False)  # a small JPEG of the face
    started_at: float = 0.0  # unix seconds, when the track was first seen
    start_stream_ms: int = 0

    @property
    def latency(self) -> float:
        return max(0.0, self.wall_time - self.frame_time)

    def to_dict(self) -> dict[str, Any]:
        data = Event.to_dict(self)
        data.update(
            {
                "TrackId": self.track_id,
                "StreamTimeMillis": self.stream_time_ms,
                "FrameTime": round(self.frame_time, 3),
                "StartedAt": round(self.started_at, 3),
                "StartStreamTimeMillis": self.start_stream_ms,
                "BoundingBox": shapes.bounding_box(self.bounding_box),
            }
        )
        if self.match is not None:
            face = self.match.face
            data["FaceId"] = face.face_id
            data["ExternalImageId"] = face.external_image_id
            data["UserId"] = face.user_id
            data["Similarity"] = self.match.similarity
            data["MatchedFace"] = shapes.face_match(self.match)
        if self.snapshot is not None:
            data["Snapshot"] = base64.b64encode(self.snapshot).decode("ascii")
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackStarted(TrackEvent):
    @property
    def type(self) -> EventType:
        return EventType.TRACK_STARTED


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackIdentified(TrackEvent):
    """``previous`` is the FaceId the track was identified as before, when the match changed."""

    previous_face_id: str | None = None

    @property
    def type(self) -> EventType:
        return EventType.TRACK_IDENTIFIED

    def to_dict(self) -> dict[str, Any]:
        data = TrackEvent.to_dict(self)
        if self.previous_face_id is not None:
            data["PreviousFaceId"] = self.previous_face_id
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackEnded(TrackEvent):
    """The track's last box, its best match (if any) and when it was last seen."""

    ended_at: float = 0.0
    end_stream_ms: int = 0

    @property
    def type(self) -> EventType:
        return EventType.TRACK_ENDED

    def to_dict(self) -> dict[str, Any]:
        data = TrackEvent.to_dict(self)
        data["EndedAt"] = round(self.ended_at, 3)
        data["EndStreamTimeMillis"] = self.end_stream_ms
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStatus(Event):
    """The source changed state; ``message`` says why (never contains credentials from the URL)."""

    state: StreamState
    message: str = ""
    attempt: int = 0  # reconnection attempt, 0 for the first connection

    @property
    def type(self) -> EventType:
        return EventType.STREAM_STATUS

    def to_dict(self) -> dict[str, Any]:
        data = Event.to_dict(self)
        data.update({"State": self.state.value, "Message": self.message, "Attempt": self.attempt})
        return data
