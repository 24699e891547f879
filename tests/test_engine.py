"""The engine on real photos: faces found, who matches whom, pose, quality, tiling and large images."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from facetrace.engine import AnalyzedFace, DetectionSettings, FaceEngine
from facetrace.errors import InvalidParameterError, ModelMismatchError, NoFaceError
from facetrace.geometry import iou
from facetrace.imaging import Image

DEFAULT_SEARCH_THRESHOLD = 99.0  # the default 1:N threshold: FMR 1e-6


@pytest.fixture(scope="module")
def t1(engine: FaceEngine, photos: dict[str, Path]) -> tuple[Image, list[AnalyzedFace]]:
    return engine.analyze(photos["t1.jpg"])


@pytest.fixture(scope="module")
def obama(engine: FaceEngine, photos: dict[str, Path]) -> tuple[Image, AnalyzedFace]:
    return engine.largest_face(photos["obama.jpg"])


def vector(face: AnalyzedFace) -> np.ndarray:
    assert face.vector is not None
    return face.vector


def rotate(pixels: np.ndarray, degrees_clockwise: float) -> np.ndarray:
    height, width = pixels.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), -degrees_clockwise, 1.0)
    return cv2.warpAffine(pixels, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)


# -- detection ---------------------------------------------------------------------------------------


def test_group_photo_has_six_faces(t1: tuple[Image, list[AnalyzedFace]]) -> None:
    image, faces = t1
    assert (image.width, image.height) == (1280, 886)
    assert len(faces) == 6
    assert all(face.detail.confidence > 80 for face in faces)


def test_faces_come_largest_first(t1: tuple[Image, list[AnalyzedFace]]) -> None:
    _, faces = t1
    areas = [face.detection.area for face in faces]
    assert areas == sorted(areas, reverse=True)


def test_max_faces_keeps_the_largest(engine: FaceEngine, t1: tuple[Image, list[AnalyzedFace]]) -> None:
    image, faces = t1
    _, two = engine.analyze(image, max_faces=2)
    assert len(two) == 2
    # (``faces`` came from the file: its detector view was made from a reduced decode, ``image``'s by resizing)
    assert [f.detection.x for f in two] == pytest.approx([f.detection.x for f in faces[:2]], abs=2.0)
    for bad in (0, 101):
        with pytest.raises(InvalidParameterError):
            engine.find_faces(image, max_faces=bad)


def test_boxes_and_landmarks_are_ratios_inside_the_image(t1: tuple[Image, list[AnalyzedFace]]) -> None:
    _, faces = t1
    for face in faces:
        box = face.detail.bounding_box
        assert 0.0 <= box.left <= 1.0
        assert 0.0 <= box.top <= 1.0
        assert 0.0 < box.width <= 1.0 - box.left + 1e-9
        assert 0.0 < box.height <= 1.0 - box.top + 1e-9
        names = [landmark.type for landmark in face.detail.landmarks]
        assert names == ["eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight"]
        for landmark in face.detail.landmarks:
            assert box.left <= landmark.x <= box.left + box.width
            assert box.top <= landmark.y <= box.top + box.height
        points = {landmark.type: landmark for landmark in face.detail.landmarks}
        assert points["eyeLeft"].x < points["eyeRight"].x
        assert points["eyeLeft"].y < points["mouthLeft"].y


def test_vectors_are_unit_length(engine: FaceEngine, t1: tuple[Image, list[AnalyzedFace]]) -> None:
    _, faces = t1
    assert engine.model.key == "sface-2021dec"
    for face in faces:
        assert vector(face).shape == (engine.model.dim,)
        assert np.linalg.norm(vector(face)) == pytest.approx(1.0, abs=1e-5)


def test_no_face_in_a_blank_or_background_image(engine: FaceEngine, t1: tuple[Image, list[AnalyzedFace]]) -> None:
    blank = np.full((480, 640, 3), 200, np.uint8)
    noise = np.random.default_rng(1).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for pixels in (blank, noise):
        _, faces = engine.analyze(pixels)
        assert faces == []
        with pytest.raises(NoFaceError):
            engine.largest_face(pixels)


def test_embed_false_and_keep_crops(engine: FaceEngine, photos: dict[str, Path]) -> None:
    _, faces = engine.analyze(photos["obama.jpg"], embed=False, keep_crops=True)
    assert len(faces) == 1
    assert faces[0].vector is None
    assert faces[0].crop is not None
    assert faces[0].crop.shape == (112, 112, 3)


# -- identity ----------------------------------------------------------------------------------------


def test_same_person_meets_the_default_search_threshold(
    engine: FaceEngine, photos: dict[str, Path], obama: tuple[Image, AnalyzedFace]
) -> None:
    _, other = engine.largest_face(photos["obama2.jpg"])
    assert engine.similarity(vector(obama[1]), vector(other)) >= DEFAULT_SEARCH_THRESHOLD


def test_different_people_do_not_match(
    engine: FaceEngine, photos: dict[str, Path], obama: tuple[Image, AnalyzedFace]
) -> None:
    _, biden = engine.largest_face(photos["biden.jpg"])
    similarity = engine.similarity(vector(obama[1]), vector(biden))
    assert similarity < 80.0  # not even at CompareFaces' default threshold


def test_similarity_is_symmetric_and_self_is_100(engine: FaceEngine, t1: tuple[Image, list[AnalyzedFace]]) -> None:
    _, faces = t1
    a, b = vector(faces[0]), vector(faces[1])
    assert engine.similarity(a, b) == pytest.approx(engine.similarity(b, a))
    assert engine.similarity(a, a) == pytest.approx(100.0, abs=1e-3)


def test_the_six_people_in_the_group_photo_are_all_different(
    engine: FaceEngine, t1: tuple[Image, list[AnalyzedFace]]
) -> None:
    _, faces = t1
    for i, a in enumerate(faces):
        for b in faces[i + 1 :]:
            assert engine.similarity(vector(a), vector(b)) < DEFAULT_SEARCH_THRESHOLD


def test_vectors_of_another_shape_are_refused(engine: FaceEngine, obama: tuple[Image, AnalyzedFace]) -> None:
    with pytest.raises(ModelMismatchError):
        engine.similarity(vector(obama[1]), np.ones(512, np.float32) / np.sqrt(512))


def test_compare_faces_matches_the_same_person(engine: FaceEngine, photos: dict[str, Path]) -> None:
    result = engine.compare(photos["obama.jpg"], photos["obama2.jpg"], threshold=DEFAULT_SEARCH_THRESHOLD)
    assert len(result.matches) == 1
    assert result.unmatched == ()
    assert result.matches[0][1] >= DEFAULT_SEARCH_THRESHOLD


def test_compare_faces_against_a_group(engine: FaceEngine, photos: dict[str, Path]) -> None:
    result = engine.compare(photos["obama.jpg"], photos["t1.jpg"])
    assert result.matches == ()
    assert len(result.unmatched) == 6
    assert all(score < 80.0 for _, score in result.unmatched)


def test_compare_faces_reports_a_different_person_as_unmatched(
    engine: FaceEngine, photos: dict[str, Path]
) -> None:
    result = engine.compare(photos["biden.jpg"], photos["obama.jpg"], threshold=0.0)
    assert len(result.matches) == 1  # threshold 0 lets everything through...
    strict = engine.compare(photos["biden.jpg"], photos["obama.jpg"], threshold=80.0)
    assert strict.matches == ()  # ...80 does not
    assert len(strict.unmatched) == 1
    assert strict.source.detail.bounding_box.width > 0


def test_compare_faces_errors(engine: FaceEngine, photos: dict[str, Path]) -> None:
    for bad in (-1.0, 100.5):
        with pytest.raises(InvalidParameterError):
            engine.compare(photos["obama.jpg"], photos["obama2.jpg"], threshold=bad)
    with pytest.raises(NoFaceError):
        engine.compare(np.full((200, 200, 3), 90, np.uint8), photos["obama.jpg"])
    empty_target = engine.compare(photos["obama.jpg"], np.full((200, 200, 3), 90, np.uint8))
    assert empty_target.matches == ()
    assert empty_target.unmatched == ()


# -- pose and quality --------------------------------------------------------------------------------


def test_frontal_portrait_pose(obama: tuple[Image, AnalyzedFace]) -> None:
    pose = obama[1].detail.pose
    assert abs(pose.roll) < 10
    assert abs(pose.yaw) < 15
    assert abs(pose.pitch) < 20


@pytest.mark.parametrize("degrees", [20.0, -20.0])
def test_roll_follows_an_in_plane_rotation(
    engine: FaceEngine, obama: tuple[Image, AnalyzedFace], degrees: float
) -> None:
    image, face = obama
    _, turned = engine.largest_face(rotate(image.pixels, degrees))
    change = turned.detail.pose.roll - face.detail.pose.roll
    assert change == pytest.approx(degrees, abs=5.0)  # clockwise in the image reads as positive roll


def test_quality_is_on_the_0_to_100_scale(t1: tuple[Image, list[AnalyzedFace]]) -> None:
    _, faces = t1
    for face in faces:
        assert 0.0 <= face.detail.quality.brightness <= 100.0
        assert 0.0 <= face.detail.quality.sharpness <= 100.0


def test_blur_lowers_sharpness_and_darkening_lowers_brightness(
    engine: FaceEngine, obama: tuple[Image, AnalyzedFace]
) -> None:
    image, face = obama
    _, blurred = engine.largest_face(cv2.GaussianBlur(image.pixels, (0, 0), 4.0))
    _, dark = engine.largest_face((image.pixels * 0.4).astype(np.uint8))
    assert blurred.detail.quality.sharpness < face.detail.quality.sharpness - 10
    assert dark.detail.quality.brightness < face.detail.quality.brightness * 0.6


# -- settings, tiling and large images ---------------------------------------------------------------


def test_detection_settings_are_validated() -> None:
    for bad in (
        {"max_side": 10},
        {"tile": 64},
        {"upscale": 0.5},
        {"upscale": 5.0},
        {"min_confidence": 1.5},
    ):
        with pytest.raises(InvalidParameterError):
            DetectionSettings(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "settings",
    [DetectionSettings(small_faces=True, tile=256), DetectionSettings(small_faces=True, tile=384, upscale=2.0)],
    ids=["tiles-256", "tiles-384-upscaled"],
)
def test_tiling_finds_the_same_faces_in_the_same_places(
    engine: FaceEngine, t1: tuple[Image, list[AnalyzedFace]], settings: DetectionSettings
) -> None:
    image, faces = t1
    tiled = FaceEngine(engine._detector_factory, engine._embedder_factory, settings=settings)
    found = tiled.find_faces(image)
    assert len(found) >= 6
    for face in faces:
        box = (face.detection.x, face.detection.y, face.detection.w, face.detection.h)
        overlaps = sorted((iou(box, (d.x, d.y, d.w, d.h)) for d in found), reverse=True)
        assert overlaps[0] > 0.6  # found again, in the same place (tile offsets mapped back correctly)
        assert overlaps[1] == 0.0  # and only once: no second box from a face cut by a tile seam


def test_min_confidence_drops_weak_detections(engine: FaceEngine, t1: tuple[Image, list[AnalyzedFace]]) -> None:
    image, _ = t1
    cutoff = sorted(d.score for d in engine.find_faces(image))[2]  # the decoded image, as ``strict`` sees it
    strict = FaceEngine(
        engine._detector_factory, engine._embedder_factory, settings=DetectionSettings(min_confidence=cutoff)
    )
    assert len(strict.find_faces(image)) == 4


def test_large_image_detects_on_a_copy_and_embeds_the_full_resolution(
    engine: FaceEngine, t1: tuple[Image, list[AnalyzedFace]]
) -> None:
    image, faces = t1
    big = Image(pixels=cv2.resize(image.pixels, None, fx=2.5, fy=2.5, interpolation=cv2.INTER_CUBIC))
    _, big_faces = engine.analyze(big)
    assert len(big_faces) == 6
    for face, big_face in zip(faces, big_faces, strict=True):
        assert big_face.detection.x == pytest.approx(face.detection.x * 2.5, abs=15)
        assert engine.similarity(vector(face), vector(big_face)) >= DEFAULT_SEARCH_THRESHOLD


def test_threads_get_their_own_models_and_agree(engine: FaceEngine, photos: dict[str, Path]) -> None:
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            results[index] = vector(engine.largest_face(photos["obama2.jpg"])[1])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    np.testing.assert_allclose(results[0], results[1], atol=1e-5)
    np.testing.assert_allclose(results[0], results[2], atol=1e-5)


@pytest.mark.shared
def test_lfw_subset_verification(engine: FaceEngine, shared: Path) -> None:
    """All 4,950 pairs of the LFW subset (10 people × 10 photos) at CompareFaces' default threshold."""
    folder = shared / "lfw_subset"
    paths = sorted(folder.glob("*/*.jpg"))
    vectors = {}
    for path in paths:
        image = engine.load(path)
        detections = engine.find_faces(image)
        centre = [d for d in detections if d.x <= 125 <= d.x + d.w and d.y <= 125 <= d.y + d.h]
        vectors[path.relative_to(folder).as_posix()] = vector(engine.describe(image, centre[:1])[0])
    same_ok = same = different_ok = different = 0
    for line in (folder / "all_pairs.csv").read_text().splitlines()[1:]:
        a, b, label = line.split(",")
        matched = engine.similarity(vectors[a], vectors[b]) >= 80.0
        if label == "1":
            same, same_ok = same + 1, same_ok + matched
        else:
            different, different_ok = different + 1, different_ok + (not matched)
    assert (same, different) == (450, 4500)
    assert same_ok / same >= 0.97
    assert different_ok / different >= 0.995
