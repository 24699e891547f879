"""Clips made from real photos for the review queue and unknown people.

``borderline``: Obama (obama2.jpg) at 40 px for 2 s, while the collection holds another photo of him
(obama3.jpg): his track scores about 96 — above the review threshold (90), below identification (99) — and a
stranger (t1.jpg) far below both. ``unknown_a``/``unknown_b``: Obama from two different photos at 80 px on two
"cameras"; ``unknown_a`` also shows a stranger (t1.jpg).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facetrace.engine import FaceEngine
from facetrace.gallery import Gallery
from facetrace.store import MemoryStore, SQLiteStore, records_of
from facetrace.store.records import Records
from facetrace.video.analysis import AnalysisSettings, FrameAnalyzer, UnresolvedTrack
from facetrace.video.identity import CollectionMatcher
from facetrace.video.source import SourceSettings, VideoSource
from tests.video.conftest import Actor, sprite, write_video


@pytest.fixture(scope="session")
def clips(
    tmp_path_factory: pytest.TempPathFactory, engine: FaceEngine, photos: dict[str, Path]
) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("review-clips")
    obama2_small = sprite(engine, photos["obama2.jpg"], 40)
    stranger = sprite(engine, photos["t1.jpg"], 60)
    return {
        "borderline": write_video(
            folder / "door.mp4",
            [Actor("obama", obama2_small, 0.0, 2.0, (100, 60), (300, 80)),
             Actor("", stranger, 0.0, 2.0, (450, 220), (460, 220))],
            seconds=2.0,
        ),
        "unknown_a": write_video(
            folder / "lobby.mp4",
            [Actor("obama", sprite(engine, photos["obama.jpg"], 80), 0.0, 2.0, (60, 40), (220, 60)),
             Actor("", stranger, 0.0, 2.0, (450, 200), (460, 200))],
            seconds=2.0,
        ),
        "unknown_b": write_video(
            folder / "yard.mp4",
            [Actor("obama", sprite(engine, photos["obama2.jpg"], 80), 0.0, 2.0, (300, 60), (120, 40))],
            seconds=2.0,
        ),
    }  # fmt: skip


@pytest.fixture(scope="session")
def borderline_tracks(
    engine: FaceEngine, clips: dict[str, Path], photos: dict[str, Path]
) -> list[UnresolvedTrack]:
    """The unresolved tracks of ``borderline`` (analysed once per session: they depend on the footage and the
    engine, and on the collection only through who is named at 99 — nobody here)."""
    gallery = Gallery(engine, MemoryStore())
    gallery.create_collection("people")
    gallery.index_faces("people", photos["obama3.jpg"], external_image_id="obama", max_faces=1)
    gallery.index_faces("people", photos["biden.jpg"], external_image_id="biden", max_faces=1)
    return unresolved(engine, gallery, clips["borderline"], "door")


@pytest.fixture
def database(tmp_path: Path, engine: FaceEngine, photos: dict[str, Path]) -> Iterator[tuple[Gallery, Records]]:
    """A gallery on SQLite (the review tables live there) with ``people``: obama3.jpg as "obama", biden.jpg."""
    store = SQLiteStore(tmp_path / "facetrace.db")
    gallery = Gallery(engine, store)
    gallery.create_collection("people")
    gallery.index_faces("people", photos["obama3.jpg"], external_image_id="obama", max_faces=1)
    gallery.index_faces("people", photos["biden.jpg"], external_image_id="biden", max_faces=1)
    records = records_of(store)
    assert records is not None
    yield gallery, records
    store.close()


def unresolved(
    engine: FaceEngine, gallery: Gallery, clip: Path, camera: str, collection: str = "people"
) -> list[UnresolvedTrack]:
    """The tracks of ``clip`` nobody in ``collection`` is named for at 99, as a processor hands them over."""
    analyzer = FrameAnalyzer(
        engine,
        matcher=CollectionMatcher(gallery, collection, 99.0),
        settings=AnalysisSettings(report_unresolved=True, max_embeds_per_frame=2),
        processor=camera,
        camera=camera,
    )
    for frame in VideoSource(SourceSettings(str(clip))).frames():
        analyzer.process(frame)
    analyzer.finish()
    return analyzer.take_unresolved()
