"""Reduced-size decoding (issue 13 item 3, issue 9 item 8): same faces as a full decode, small faces kept.

``load_image(reduce_to=N)`` decodes a JPEG through libjpeg's DCT scaling and other formats by shrinking in
Pillow's own mode; ``FaceEngine.locate`` keeps that image only when every face in it is large enough for
recognition and decodes again at full size otherwise.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from facetrace.budget import configure_decode_budget, decode_budget
from facetrace.engine import AnalyzedFace, DetectionSettings, FaceEngine
from facetrace.geometry import iou
from facetrace.imaging import load_image

SAME_PERSON = 99.0  # the default search threshold: the reduced decode's face must find the full decode's


@pytest.fixture(scope="module")
def full_engine() -> FaceEngine:
    return FaceEngine.create(settings=DetectionSettings(reduced_decode=False))


def box(face: AnalyzedFace) -> tuple[float, float, float, float]:
    d = face.detection
    return (d.x, d.y, d.w, d.h)


def assert_same_faces(engine: FaceEngine, reduced: list[AnalyzedFace], full: list[AnalyzedFace]) -> None:
    """Same number of faces, each within a few pixels of its full-decode twin and the same person."""
    assert len(reduced) == len(full) > 0
    for face in reduced:
        twin = max(full, key=lambda other: iou(box(face), box(other)))
        assert iou(box(face), box(twin)) > 0.9
        assert np.abs(np.subtract(box(face), box(twin))).max() <= max(4.0, 0.05 * twin.detection.h)  # full-size px
        assert face.vector is not None
        assert twin.vector is not None
        assert engine.similarity(face.vector, twin.vector) >= SAME_PERSON
        assert abs(face.quality_score - twin.quality_score) <= 2.0  # the same calibration band


def test_jpeg_decodes_at_a_dct_scale_that_keeps_the_detector_view(photos: dict[str, Path]) -> None:
    data = photos["obama3.jpg"].read_bytes()  # 1434 × 2333
    full = load_image(data)
    half = load_image(data, reduce_to=640)
    assert half.reduction == 2
    assert half.original_size == (full.width, full.height) == (1434, 2333)
    assert (half.width, half.height) == (717, 1167)
    assert (half.original_width, half.original_height) == (1434, 2333)
    shrunk = cv2.resize(full.pixels, (half.width, half.height), interpolation=cv2.INTER_AREA)
    assert np.abs(half.pixels.astype(np.int16) - shrunk).mean() < 3.0  # the same picture, smaller
    assert load_image(data, reduce_to=300).reduction == 4
    assert load_image(data, reduce_to=5000).reduction == 1  # nothing to gain: the full image
    assert load_image(photos["obama2.jpg"].read_bytes(), reduce_to=640).reduction == 1  # 1200 / 2 < 640


def test_reduced_decode_holds_less_of_the_decode_budget(photos: dict[str, Path]) -> None:
    data = photos["obama3.jpg"].read_bytes()
    try:
        configure_decode_budget(1 << 30)
        load_image(data)
        full_peak = decode_budget().peak
        configure_decode_budget(1 << 30)
        load_image(data, reduce_to=640)
        assert decode_budget().peak * 3 < full_peak
    finally:
        configure_decode_budget(None)


def test_png_is_shrunk_in_its_own_mode_with_alpha_composited(photos: dict[str, Path]) -> None:
    data = photos["32bit.png"].read_bytes()  # RGBA, 626 × 1200
    full = load_image(data)
    half = load_image(data, reduce_to=500)
    assert half.reduction == 2
    assert half.format == "PNG"
    assert (half.width, half.height) == (313, 600)
    shrunk = cv2.resize(full.pixels, (half.width, half.height), interpolation=cv2.INTER_AREA)
    assert np.abs(half.pixels.astype(np.int16) - shrunk).mean() < 3.0


def test_exif_orientation_survives_a_reduced_decode(photos: dict[str, Path]) -> None:
    pil = PILImage.open(photos["obama3.jpg"])
    exif = pil.getexif()
    exif[0x0112] = 6  # stored sideways: turn 90° clockwise to view
    buffer = io.BytesIO()
    pil.transpose(PILImage.Transpose.ROTATE_90).save(buffer, format="JPEG", quality=92, exif=exif)
    full = load_image(buffer.getvalue())
    half = load_image(buffer.getvalue(), reduce_to=640)
    assert (full.width, full.height) == (1434, 2333)
    assert half.reduction == 2
    assert half.original_size == (1434, 2333)
    shrunk = cv2.resize(full.pixels, (half.width, half.height), interpolation=cv2.INTER_AREA)
    assert np.abs(half.pixels.astype(np.int16) - shrunk).mean() < 3.0


@pytest.mark.parametrize("name", ["obama3.jpg", "biden.jpg"])
def test_large_faces_are_found_in_the_reduced_decode(
    engine: FaceEngine, full_engine: FaceEngine, photos: dict[str, Path], name: str
) -> None:
    image, found = engine.locate(photos[name])
    reduced = engine.describe(image, found)
    full_image, full = full_engine.analyze(photos[name])
    assert image.reduction == 2
    assert full_image.reduction == 1
    assert (image.original_width, image.original_height) == (full_image.width, full_image.height)
    assert_same_faces(engine, reduced, full)
    for face, twin in zip(reduced, full, strict=True):  # ratios of the same full-size image
        assert face.detail.bounding_box.left == pytest.approx(twin.detail.bounding_box.left, abs=0.005)
        assert face.detail.bounding_box.height == pytest.approx(twin.detail.bounding_box.height, abs=0.005)


def test_small_faces_fall_back_to_the_full_decode(
    engine: FaceEngine, full_engine: FaceEngine, photos: dict[str, Path]
) -> None:
    """t1.jpg (1280 × 886, six faces ~130 px tall): at half size the faces have less than the 112-px crop's
    resolution, so the engine decodes it again at full size and aligns them there: the same faces."""
    image, found = engine.locate(photos["t1.jpg"])
    faces = engine.describe(image, found)
    _, full = full_engine.analyze(photos["t1.jpg"])
    assert image.reduction == 1
    assert image.width == 1280
    assert len(faces) == 6
    assert_same_faces(engine, faces, full)
    for face, twin in zip(faces, full, strict=True):
        assert face.vector is not None
        assert twin.vector is not None
        assert float(np.dot(face.vector, twin.vector)) > 0.99  # aligned on the same full-size pixels


def test_analyze_keeps_the_full_image_whose_pixels_the_faces_are_in(
    engine: FaceEngine, photos: dict[str, Path]
) -> None:
    """``analyze`` returns an image callers crop with the faces' boxes: always the full decode."""
    image, faces = engine.analyze(photos["obama3.jpg"])
    assert image.reduction == 1
    assert (image.width, image.height) == (1434, 2333)
    assert faces[0].detection.x + faces[0].detection.w <= image.width


def test_search_and_index_use_it_and_keep_the_full_image(photos: dict[str, Path], tmp_path: Path) -> None:
    from facetrace.app import open_gallery

    gallery = open_gallery(tmp_path / "home")
    try:
        gallery.create_collection("c")
        indexed = gallery.index_faces("c", photos["obama3.jpg"], external_image_id="obama", keep_image=True)
        assert len(indexed.indexed) == 1
        kept = next((tmp_path / "home").rglob(f"{indexed.image_id}.jpg"))
        with PILImage.open(kept) as stored:
            assert stored.size == (1434, 2333)  # kept at full size, not the reduced decode
        result = gallery.search_faces_by_image("c", photos["obama.jpg"].read_bytes(), threshold=90)
        assert [m.face.external_image_id for m in result.matches] == ["obama"]
    finally:
        gallery.store.close()


@pytest.mark.shared
def test_shared_photos_give_the_same_faces(engine: FaceEngine, full_engine: FaceEngine, shared: Path) -> None:
    """Every multi-megapixel photo of face_recognition and dlib_faces: reduced where the faces allow it
    (Obama at 1080p, Alex Lacamoire, ...), full size where they do not (the 25 bald guys); same faces."""
    reduced_count = 0
    paths = sorted((shared / "face_recognition").rglob("*.jpg")) + sorted((shared / "dlib_faces").glob("*.jpg"))
    for path in paths:
        with PILImage.open(path) as header:
            if max(header.size) < 1280:
                continue  # nothing to reduce
        image, found = engine.locate(path)
        faces = engine.describe(image, found)
        _, full = full_engine.analyze(path)
        reduced_count += image.reduction > 1
        assert_same_faces(engine, faces, full)
    assert reduced_count >= 4
