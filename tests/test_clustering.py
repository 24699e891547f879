"""facetrace.clustering: average linkage on calibrated similarity (pure: vectors and qualities in)."""

from __future__ import annotations

import numpy as np
import pytest

from facetrace.calibration import Calibration, Curve, QualityBand
from facetrace.clustering import ClusterSettings, average_linkage, cluster_faces, pair_graph
from facetrace.engine import FaceEngine
from facetrace.errors import InvalidParameterError

LINEAR = Calibration.uncalibrated("test-1")  # similarity = 50 + 50 · cosine


def _angles(*degrees: float) -> np.ndarray:
    radians = np.radians(np.array(degrees, dtype=np.float64))
    return np.stack([np.cos(radians), np.sin(radians)], axis=1).astype(np.float32)


def test_one_chance_link_does_not_merge_two_groups() -> None:
    # two tight groups (5° apart inside); the nearest faces of the two, 25° apart, pass 95 on their own
    vectors = _angles(0, 5, 10, 35, 40, 45)
    qualities = [100.0] * 6
    assert 50 + 50 * float(vectors[2] @ vectors[3]) >= 95.0  # the chance link alone reaches the threshold
    graph = pair_graph(vectors, qualities, LINEAR, ClusterSettings(threshold=95.0, floor=0.0))
    assert graph.similarity.size == 15  # floor 0: every pair of 6 faces kept
    linked = {
        (int(a), int(b)) for a, b, s in zip(graph.first, graph.second, graph.similarity, strict=True) if s >= 95.0
    }
    assert (2, 3) in linked  # single linkage would chain the two groups into one
    result = average_linkage(graph, 95.0)
    assert [c.members for c in result.clusters] == [(0, 1, 2), (3, 4, 5)]
    assert all(c.cohesion >= 95.0 for c in result.clusters)
    assert result.singletons == ()


def test_pairs_score_on_the_worse_face_band() -> None:
    cautious = Curve((-1.0, 0.9, 1.0), (0.0, 95.0, 100.0))
    lenient = Curve((-1.0, 0.5, 1.0), (0.0, 95.0, 100.0))
    calibration = Calibration(
        "test-1", cautious.cosines, cautious.similarities,
        bands=(QualityBand("crowd", 0.0, cautious), QualityBand("clear", 75.0, lenient)),
    )  # fmt: skip
    vectors = _angles(0.0, 36.87, 36.87)  # cosine 0.8 between face 0 and faces 1, 2
    # both clear: 0.8 passes the lenient curve; with a crowd face (or unknown quality) it does not
    assert cluster_faces(vectors, [90.0, 90.0, 90.0], calibration).singletons == ()
    mixed = cluster_faces(vectors, [90.0, 20.0, None], calibration)
    assert [c.members for c in mixed.clusters] == [(1, 2)]
    assert mixed.singletons == (0,)


def test_labels_sizes_and_validation() -> None:
    vectors = _angles(0, 2, 90)
    result = cluster_faces(vectors, [100.0, 100.0, 100.0], LINEAR, ClusterSettings(threshold=99.0, block=16))
    assert result.labels(3).tolist() == [0, 0, -1]
    empty = cluster_faces(np.zeros((0, 128), np.float32), [], LINEAR)
    assert empty.clusters == ()
    assert empty.singletons == ()
    with pytest.raises(InvalidParameterError):
        cluster_faces(vectors, [1.0], LINEAR)
    with pytest.raises(InvalidParameterError):
        cluster_faces(np.zeros((2, 4), np.float32), [1.0, 1.0], LINEAR)
    with pytest.raises(InvalidParameterError):
        ClusterSettings(threshold=60.0, floor=70.0)


def test_real_photos_group_obama(engine: FaceEngine, photos: dict) -> None:
    names = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg", "t1.jpg", "Tom_Hanks_54745.png"]
    faces, owners = [], []
    for name in names:
        faces += (found := engine.analyze(photos[name])[1])
        owners += [name] * len(found)
    vectors = np.stack([f.vector for f in faces])
    result = cluster_faces(vectors, [f.quality_score for f in faces], engine.calibration)
    assert [sorted(owners[i] for i in c.members) for c in result.clusters] == [
        ["obama.jpg", "obama2.jpg", "obama3.jpg"]
    ]
    assert len(result.singletons) == len(faces) - 3  # Biden, Tom Hanks and the six people of t1.jpg alone


@pytest.mark.shared
def test_lfw_subset_precision_and_recall(engine: FaceEngine, shared) -> None:
    """lfw_subset (10 people × 10, not used to choose the threshold): pairwise precision ≥ 99%, recall ≥ 85%."""
    paths = sorted((shared / "lfw_subset").glob("*/*.jpg"))
    vectors, qualities, people = [], [], []
    for path in paths:
        _, face = engine.largest_face(path)
        vectors.append(face.vector)
        qualities.append(face.quality_score)
        people.append(path.parent.name)
    labels = cluster_faces(np.stack(vectors), qualities, engine.calibration).labels(len(paths))
    together = same = both = 0
    for i in range(len(paths)):
        for j in range(i + 1, len(paths)):
            grouped = labels[i] >= 0 and labels[i] == labels[j]
            together += grouped
            same += people[i] == people[j]
            both += grouped and people[i] == people[j]
    assert both / together >= 0.99, (both, together, same)
    assert both / same >= 0.85, (both, together, same)
