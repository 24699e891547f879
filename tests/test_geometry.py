"""Pure geometry: the similarity fit, face alignment onto the ArcFace template, overlap and merging."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from facetrace.geometry import ARCFACE_TEMPLATE_112, align_face, iou, merge_detections, similarity_transform
from facetrace.types import Detection

COLOURS = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255), (255, 0, 255)]


def known_transform(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    angle = math.radians(angle_deg)
    rotation = scale * np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    return np.hstack([rotation, [[tx], [ty]]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


@pytest.mark.parametrize(("angle", "scale", "tx", "ty"), [(0, 1, 0, 0), (30, 1.7, 12, -40), (-75, 0.2, 300, 5)])
def test_similarity_transform_recovers_a_known_transform(angle: float, scale: float, tx: float, ty: float) -> None:
    src = ARCFACE_TEMPLATE_112.astype(np.float64) * 3 + 17
    truth = known_transform(angle, scale, tx, ty)
    fitted = similarity_transform(src.astype(np.float32), apply(truth, src).astype(np.float32))
    np.testing.assert_allclose(fitted, truth, atol=1e-3)


def test_similarity_transform_is_least_squares_under_noise() -> None:
    rng = np.random.default_rng(0)
    src = ARCFACE_TEMPLATE_112.astype(np.float64) * 4
    truth = known_transform(12, 0.5, 40, 60)
    noisy = apply(truth, src) + rng.normal(0, 0.3, size=src.shape)
    fitted = similarity_transform(src.astype(np.float32), noisy.astype(np.float32))
    np.testing.assert_allclose(fitted[:, :2], truth[:, :2], atol=0.01)
    # least squares: no similarity fits the noisy points better, not even the true one
    fitted_error = ((apply(fitted, src) - noisy) ** 2).sum()
    assert fitted_error <= ((apply(truth, src) - noisy) ** 2).sum()
    # no rotation-free reflection: the fitted linear part keeps orientation
    assert np.linalg.det(fitted[:, :2]) > 0


def dots_image(points: np.ndarray, shape: tuple[int, int], radius: int) -> np.ndarray:
    image = np.zeros((*shape, 3), np.uint8)
    for point, colour in zip(points, COLOURS, strict=True):
        cv2.circle(image, (round(point[0]), round(point[1])), radius, colour, -1, lineType=cv2.LINE_AA)
    return image


def centroids(crop: np.ndarray) -> np.ndarray:
    found = []
    for colour in COLOURS:
        distance = np.abs(crop.astype(np.int16) - np.array(colour, np.int16)).sum(axis=2)
        ys, xs = np.nonzero(distance < 120)
        assert len(xs) > 0, f"no dot of colour {colour} in the crop"
        found.append([xs.mean(), ys.mean()])
    return np.array(found)


@pytest.mark.parametrize(
    ("angle", "scale", "radius"),
    [(0, 1.0, 2), (25, 2.0, 4), (-40, 0.8, 2), (10, 9.0, 18)],  # the last one takes the shrink-first path
    ids=["identity", "rotated-2x", "rotated-small", "huge-face"],
)
def test_align_face_puts_the_landmarks_on_the_template(angle: float, scale: float, radius: int) -> None:
    # Place five coloured dots where a face's landmarks would be, in an image rotated and scaled.
    transform = known_transform(angle, scale, 0, 0)
    points = apply(transform, ARCFACE_TEMPLATE_112.astype(np.float64) - 56)
    points += -points.min(axis=0) + 40
    size = (int(points[:, 1].max()) + 40, int(points[:, 0].max()) + 40)
    image = dots_image(points, size, radius)
    crop = align_face(image, points.astype(np.float32), 112)
    assert crop.shape == (112, 112, 3)
    np.testing.assert_allclose(centroids(crop), ARCFACE_TEMPLATE_112, atol=1.5)


def test_align_face_at_another_size_scales_the_template() -> None:
    points = ARCFACE_TEMPLATE_112.astype(np.float64) * 2 + 30
    image = dots_image(points, (300, 300), 3)
    crop = align_face(image, points.astype(np.float32), 224)
    assert crop.shape == (224, 224, 3)
    np.testing.assert_allclose(centroids(crop), ARCFACE_TEMPLATE_112 * 2, atol=1.5)


def test_iou() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == pytest.approx(1.0)
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def detection(x: float, y: float, w: float, h: float, score: float) -> Detection:
    return Detection(x=x, y=y, w=w, h=h, score=score, landmarks=np.zeros((5, 2), np.float32))


def test_merge_keeps_the_best_of_overlapping_boxes() -> None:
    best = detection(100, 100, 50, 60, 0.9)
    kept = merge_detections([detection(102, 101, 50, 60, 0.7), best, detection(300, 100, 50, 60, 0.6)])
    assert len(kept) == 2
    assert kept[0] is best
    assert {d.x for d in kept} == {100, 300}


def test_merge_drops_a_partial_box_inside_a_whole_one() -> None:
    whole = detection(100, 100, 100, 130, 0.95)
    cut = detection(100, 100, 40, 128, 0.8)  # the same face cut by a tile seam: IoU ≈ 0.4, inside the box
    assert iou((whole.x, whole.y, whole.w, whole.h), (cut.x, cut.y, cut.w, cut.h)) < 0.4
    assert merge_detections([cut, whole]) == [whole]


def test_merge_keeps_neighbours() -> None:
    faces = [detection(x, 50, 40, 50, 0.8) for x in (0, 45, 90, 135)]  # touching, barely overlapping
    assert len(merge_detections(faces)) == 4
    assert merge_detections([]) == []
