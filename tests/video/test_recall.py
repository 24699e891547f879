"""Naming people in video at the strict default threshold (99), from a generated clip with known identities.

The collection holds Obama as a *user* enrolled from two photos (obama2.jpg, obama3.jpg); the clip shows a
third photo (obama.jpg) walking across, Biden (in no collection) and a stranger (t1.jpg). Obama must be
named, at 99, and nobody else may be.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from facetrace.engine import FaceEngine
from facetrace.gallery import DEFAULT_MATCH_THRESHOLD, Gallery
from facetrace.store import MemoryStore
from facetrace.video.analysis import AnalysisSettings, FrameAnalyzer, GatingSettings
from facetrace.video.events import TrackEnded, TrackEvent, TrackIdentified
from facetrace.video.identity import CollectionMatcher, IdentitySettings
from facetrace.video.source import SourceSettings, VideoSource
from tests.video.conftest import Actor, sprite, write_video


@pytest.fixture(scope="module")
def enrolled(engine: FaceEngine, photos: dict[str, Path]) -> Gallery:
    gallery = Gallery(engine, MemoryStore())
    gallery.create_collection("staff")
    gallery.create_user("staff", "obama")
    faces = [
        f.record.face_id
        for name in ("obama2.jpg", "obama3.jpg")
        for f in gallery.index_faces("staff", photos[name], external_image_id=name, max_faces=1).indexed
    ]
    gallery.associate_faces("staff", "obama", faces)
    return gallery


@pytest.fixture(scope="module")
def walk(engine: FaceEngine, photos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    actors = [
        Actor("obama", sprite(engine, photos["obama.jpg"], 100), 0.0, 3.0, (20, 30), (420, 40)),
        Actor("", sprite(engine, photos["biden.jpg"], 100), 0.8, 4.0, (480, 120), (200, 110)),
        Actor("", sprite(engine, photos["t1.jpg"], 70), 0.3, 3.6, (40, 230), (60, 230)),
    ]
    return write_video(tmp_path_factory.mktemp("recall") / "walk.mp4", actors)


def _named(
    gallery: Gallery,
    clip: Path,
    matcher: CollectionMatcher,
    identity: IdentitySettings,
    gating: GatingSettings | None = None,
) -> list[TrackEvent]:
    analyzer = FrameAnalyzer(
        gallery.engine, matcher=matcher, settings=AnalysisSettings(identity=identity), gating=gating
    )
    events: list[TrackEvent] = []
    for frame in VideoSource(SourceSettings(str(clip))).frames():
        events.extend(analyzer.process(frame).events)
    events.extend(analyzer.finish())
    return [e for e in events if isinstance(e, TrackIdentified | TrackEnded) and e.match is not None]


@pytest.mark.parametrize("gating", [None, GatingSettings()], ids=["every-frame", "live-gated"])
def test_enrolled_user_is_named_at_99_and_nobody_else(
    enrolled: Gallery, walk: Path, gating: GatingSettings | None
) -> None:
    """Stored video (every frame) and a live stream's defaults (gated: a busy scene detected every 2nd frame,
    tracks predicted between) alike: Biden, in no collection, walks across Obama's path and is never named."""
    matcher = CollectionMatcher(enrolled, "staff", DEFAULT_MATCH_THRESHOLD)
    named = _named(enrolled, walk, matcher, IdentitySettings(), gating)
    assert named, "Obama was not named at the default threshold"
    assert {e.match.face.user_id for e in named if e.match is not None} == {"obama"}
    # Obama walks in the top half of the picture during 0–3 s; Biden and the stranger are elsewhere
    first = min(e.stream_time_ms for e in named if isinstance(e, TrackIdentified))
    assert first < 3000
    assert all(e.bounding_box.top < 0.4 for e in named if isinstance(e, TrackIdentified))
    assert all(e.match is not None and e.match.similarity >= DEFAULT_MATCH_THRESHOLD for e in named)
