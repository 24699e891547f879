"""Calibration by face quality, end to end: each pair is scored on the curve of its worse face's band."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest

from facetrace.calibration import pair_quality
from facetrace.engine import FaceEngine
from facetrace.gallery import Gallery
from facetrace.imaging import Image
from facetrace.quality import quality_score
from facetrace.store.memory import MemoryStore
from facetrace.store.sqlite import SQLiteStore
from facetrace.types import BoundingBox, FaceRecord


@pytest.fixture
def gallery(engine: FaceEngine) -> Gallery:
    gallery = Gallery(engine, MemoryStore())
    gallery.create_collection("people")
    return gallery


def _small(engine: FaceEngine, path: Path, face_px: int) -> Image:
    """The photo shrunk so that its face is about ``face_px`` pixels tall (a crowd-sized face)."""
    image, face = engine.largest_face(path)
    scale = face_px / face.detection.h
    return Image(pixels=np.ascontiguousarray(cv2.resize(image.pixels, None, fx=scale, fy=scale)))


def test_index_records_each_faces_quality(gallery: Gallery, photos: dict[str, Path]) -> None:
    result = gallery.index_faces("people", photos["obama.jpg"])
    record = result.indexed[0].record
    assert record.quality == result.indexed[0].face.quality_score
    assert record.quality is not None
    assert record.quality >= gallery.engine.calibration.bands[-1].min_quality
    assert gallery.store.get_faces("people", [record.face_id])[0].quality == record.quality


def test_a_clear_pair_scores_higher_than_on_the_one_cautious_curve(
    gallery: Gallery, engine: FaceEngine, photos: dict[str, Path]
) -> None:
    """Obama with his hand over part of his face: named at 99 now; the single curve fitted mostly on crowds
    scored the same cosine about 94, below the default threshold."""
    indexed = gallery.index_faces("people", photos["obama2.jpg"]).indexed[0]
    found = gallery.search_faces_by_image("people", photos["obama_partial_face.jpg"])  # default threshold 99
    probe = found.searched_face
    assert probe.vector is not None
    assert indexed.face.vector is not None
    cosine = float(np.dot(probe.vector, indexed.face.vector))
    calibration = engine.calibration
    clear, cautious = calibration.bands[-1], calibration.bands[0]
    assert calibration.band(pair_quality(probe.quality_score, indexed.record.quality)) is clear
    assert [m.face.face_id for m in found.matches] == [indexed.record.face_id]
    similarity = found.matches[0].similarity
    assert similarity >= 99.0
    assert similarity == pytest.approx(clear.curve.similarity(cosine), abs=1e-3)
    assert cautious.curve.similarity(cosine) < 97.0  # what the one cautious curve gives the same pair
    # Strangers move up too, and stay far below: the curve keeps each threshold's false match rate.
    biden = gallery.search_faces_by_image("people", photos["biden.jpg"], threshold=0.0).matches[0]
    assert biden.similarity < 70.0


def test_a_small_face_is_scored_with_the_cautious_curve(
    gallery: Gallery, engine: FaceEngine, photos: dict[str, Path]
) -> None:
    indexed = gallery.index_faces("people", photos["obama.jpg"]).indexed[0]
    small = _small(engine, photos["obama2.jpg"], 40)
    found = gallery.search_faces_by_image("people", small, threshold=0.0)
    probe = found.searched_face
    calibration = engine.calibration
    assert probe.detection.h < 60
    assert calibration.band(probe.quality_score) is calibration.bands[0]
    assert probe.vector is not None
    assert indexed.face.vector is not None
    cosine = float(np.dot(probe.vector, indexed.face.vector))
    assert found.matches[0].similarity == pytest.approx(calibration.bands[0].curve.similarity(cosine), abs=1e-3)
    # CompareFaces scores the same pair the same way.
    compared = engine.compare(small, photos["obama.jpg"], threshold=0.0)
    assert compared.matches[0][1] == pytest.approx(calibration.bands[0].curve.similarity(cosine), abs=1e-3)


def test_a_stored_face_of_unknown_quality_gets_the_cautious_curve(
    engine: FaceEngine, photos: dict[str, Path], tmp_path: Path
) -> None:
    """Faces stored before qualities were recorded (a v1 database) are scored as conservatively as crowds."""
    _, face = engine.largest_face(photos["obama.jpg"])
    assert face.vector is not None
    store = SQLiteStore(tmp_path / "facetrace.db")
    gallery = Gallery(engine, store)
    gallery.create_collection("people")
    record = FaceRecord("f1", BoundingBox(0, 0, 1, 1), "i1", 99.0, engine.model.key, quality=None)
    store.add_faces("people", [(record, face.vector)])
    found = gallery.search_faces_by_image("people", photos["obama2.jpg"], threshold=0.0)
    assert found.searched_face.vector is not None
    cosine = float(np.dot(found.searched_face.vector, face.vector))
    assert found.matches[0].similarity == pytest.approx(
        engine.calibration.bands[0].curve.similarity(cosine), abs=1e-3
    )
    store.close()


def _at_cosine(probe: np.ndarray, cosine: float, seed: int) -> np.ndarray:
    other = np.random.default_rng(seed).standard_normal(probe.shape)
    other -= other.dot(probe) * probe
    other /= np.linalg.norm(other)
    return (cosine * probe + np.sqrt(1.0 - cosine**2) * other).astype(np.float32)


def test_a_clear_match_ranked_below_failing_crowd_faces_is_still_found(
    gallery: Gallery, engine: FaceEngine, photos: dict[str, Path]
) -> None:
    """The store ranks by cosine; a clear face at a lower cosine can pass where crowd faces above it fail."""
    _, probe = engine.largest_face(photos["obama2.jpg"])
    assert probe.vector is not None
    calibration = engine.calibration
    low, clear = calibration.bands[0], calibration.bands[-1]
    clear_cosine = (clear.curve.cosine_for(99.0) + low.curve.cosine_for(99.0)) / 2  # passes clear, fails low
    base = FaceRecord("x", BoundingBox(0, 0, 1, 1), "i", 99.0, engine.model.key)
    faces = [
        (
            dataclasses.replace(base, face_id=f"crowd-{n}", quality=10.0),
            _at_cosine(probe.vector, 0.99 * low.curve.cosine_for(99.0), n),
        )
        for n in range(12)
    ]
    faces.append(
        (dataclasses.replace(base, face_id="clear", quality=95.0), _at_cosine(probe.vector, clear_cosine, 99))
    )
    gallery.store.add_faces("people", faces)
    hits = gallery.search_vector("people", probe.vector, max_faces=2, threshold=99.0, quality=probe.quality_score)
    assert [m.face.face_id for m in hits] == ["clear"]
    assert hits[0].similarity >= 99.0
    # Without the probe's quality nothing can be clear: no match at all.
    assert gallery.search_vector("people", probe.vector, max_faces=2, threshold=99.0) == ()


def test_users_are_scored_on_the_band_of_their_matching_face(
    gallery: Gallery, engine: FaceEngine, photos: dict[str, Path]
) -> None:
    _, probe = engine.largest_face(photos["obama2.jpg"])
    assert probe.vector is not None
    low, clear = engine.calibration.bands[0], engine.calibration.bands[-1]
    between = (clear.curve.cosine_for(99.0) + low.curve.cosine_for(99.0)) / 2  # passes clear, fails low
    base = FaceRecord("x", BoundingBox(0, 0, 1, 1), "i", 99.0, engine.model.key)
    ids = {name: str(uuid.uuid4()) for name in ("probe", "clear-face", "crowd-face")}
    gallery.store.add_faces(
        "people",
        [
            (dataclasses.replace(base, face_id=ids["probe"], quality=probe.quality_score), probe.vector),
            (
                dataclasses.replace(base, face_id=ids["clear-face"], quality=95.0),
                _at_cosine(probe.vector, between, 1),
            ),
            (
                dataclasses.replace(base, face_id=ids["crowd-face"], quality=20.0),
                _at_cosine(probe.vector, between, 2),
            ),
        ],
    )
    for user, face in (("clear-user", "clear-face"), ("crowd-user", "crowd-face")):
        gallery.create_user("people", user)
        gallery.associate_faces("people", user, [ids[face]])
    found = gallery.search_users("people", face_id=ids["probe"], threshold=99.0)
    assert [m.user.user_id for m in found.matches] == ["clear-user"]
    assert found.matches[0].face_ids == (ids["clear-face"],)


@pytest.mark.parametrize(
    ("height", "confidence", "expected"),
    [(200.0, 0.95, 100.0), (56.0, 0.95, 50.0), (200.0, 0.7, 50.0), (10.0, 0.95, 0.0), (200.0, 0.4, 0.0),
     (76.0, 0.8, 75.0), (float("nan"), 0.9, 0.0)],
)  # fmt: skip
def test_face_quality_is_the_weaker_of_size_and_confidence(
    height: float, confidence: float, expected: float
) -> None:
    assert quality_score(height, confidence) == pytest.approx(expected)
