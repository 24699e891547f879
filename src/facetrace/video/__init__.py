"""Faces in video: stored footage (jobs) and live streams (processors), tracked and identified.

source      decode files, streams, webcams and image sequences (PyAV); reconnect; detect stalls
tracker     follow faces across frames (motion + appearance)
identity    identify a track from quality-weighted evidence over many frames; stable best match
analysis    one frame: detect → track → embed a few faces → identify → events
pipeline    one worker per stream, bounded queues that drop frames, metrics
events      typed events (track started / identified / ended, stream status)
sinks       JSON lines, webhook, in-process bus (SSE), callback
jobs        StartFaceSearch / GetFaceSearch, StartFaceDetection / GetFaceDetection
processors  persistent stream processors (Create/Start/Stop/Describe/List/Delete)
sightings   where and when each person was seen, with retention
"""

from __future__ import annotations

from facetrace.video.analysis import AnalysisSettings, FrameAnalyzer, FrameResult, Observation
from facetrace.video.events import (
    Event,
    EventType,
    StreamState,
    StreamStatus,
    TrackEnded,
    TrackEvent,
    TrackIdentified,
    TrackStarted,
)
from facetrace.video.identity import CollectionMatcher, IdentitySettings, Matcher
from facetrace.video.jobs import Job, JobKind, JobSettings, JobStatus, ResultPage, SortBy, VideoJobs
from facetrace.video.pipeline import Pipeline, StreamConfig, StreamMetrics, StreamWorker
from facetrace.video.processors import FaceSearchSettings, ProcessorDefinition, StreamProcessors
from facetrace.video.sightings import RetentionSweeper, Sighting, SightingSink, SightingStore
from facetrace.video.sinks import CallbackSink, EventBus, EventSink, JsonLinesSink, Subscription, WebhookSink
from facetrace.video.source import Frame, SourceSettings, VideoMetadata, VideoSource
from facetrace.video.tracker import IouTracker, Track, Tracker, TrackerSettings

__all__ = [
    "AnalysisSettings",
    "CallbackSink",
    "CollectionMatcher",
    "Event",
    "EventBus",
    "EventSink",
    "EventType",
    "FaceSearchSettings",
    "Frame",
    "FrameAnalyzer",
    "FrameResult",
    "IdentitySettings",
    "IouTracker",
    "Job",
    "JobKind",
    "JobSettings",
    "JobStatus",
    "JsonLinesSink",
    "Matcher",
    "Observation",
    "Pipeline",
    "ProcessorDefinition",
    "ResultPage",
    "RetentionSweeper",
    "Sighting",
    "SightingSink",
    "SightingStore",
    "SortBy",
    "SourceSettings",
    "StreamConfig",
    "StreamMetrics",
    "StreamProcessors",
    "StreamState",
    "StreamStatus",
    "StreamWorker",
    "Subscription",
    "Track",
    "TrackEnded",
    "TrackEvent",
    "TrackIdentified",
    "TrackStarted",
    "Tracker",
    "TrackerSettings",
    "VideoJobs",
    "VideoMetadata",
    "VideoSource",
    "WebhookSink",
]
