"""The vector index on its own: exact top-k on sizes where the sampled lower bound kicks in, ties, deletes
(swap-remove) and the user search's widening when one user owns many of the best faces."""

from __future__ import annotations

import os
import select
import signal

import numpy as np
import pytest

from facetrace.errors import InvalidParameterError, ModelMismatchError
from facetrace.store.vector_index import TEMPLATE_AGREEMENT_POWER, VectorIndex, _top_k, as_unit_matrix
from tests.store.conftest import unit_vectors


@pytest.mark.parametrize(("n", "k"), [(50_000, 1), (50_000, 10), (50_000, 100), (9_000, 30), (100, 500)])
def test_top_k_equals_a_full_sort(n: int, k: int) -> None:
    rng = np.random.default_rng(n + k)
    scores = rng.standard_normal(n).astype(np.float32)
    expected = np.argsort(-scores, kind="stable")[:k]
    got = _top_k(scores, k, -np.inf)
    np.testing.assert_array_equal(scores[got], scores[expected])
    assert len(set(got.tolist())) == len(got)


def test_top_k_with_a_floor_and_ties() -> None:
    scores = np.zeros(40_000, dtype=np.float32)
    scores[[5, 17, 39_999]] = 0.9  # three tied best
    scores[100:200] = 0.5
    best = _top_k(scores, 3, 0.0)
    assert sorted(best.tolist()) == [5, 17, 39_999]
    assert len(_top_k(scores, 10, 0.6)) == 3
    assert set(_top_k(scores, 50, 0.4).tolist()) - {5, 17, 39_999} <= set(range(100, 200))
    assert len(_top_k(scores, 5, 0.95)) == 0


def test_search_after_swap_removes_is_exact() -> None:
    vectors = unit_vectors(20_000, seed=1)
    ids = [f"f{i}" for i in range(len(vectors))]
    index = VectorIndex(128)
    index.add(ids[:10_000], vectors[:10_000])
    index.add(ids[10_000:], vectors[10_000:])  # grows the matrix
    rng = np.random.default_rng(2)
    removed = set(rng.choice(20_000, 7_000, replace=False).tolist())
    index.remove([ids[i] for i in sorted(removed)] + ["not-there"])
    assert len(index) == 13_000
    alive = np.array(sorted(set(range(20_000)) - removed))
    for probe in unit_vectors(5, seed=3):
        scores = vectors[alive] @ probe
        expected = [ids[i] for i in alive[np.argsort(-scores)[:20]]]
        assert [face_id for face_id, _ in index.search(probe, limit=20, min_cosine=-1.0)] == expected
    survivor = ids[int(alive[123])]
    np.testing.assert_array_equal(index.vector(survivor), vectors[alive[123]])
    assert index.vector(ids[next(iter(removed))]) is None


def test_search_users_widens_when_one_user_owns_the_best_faces() -> None:
    probe = unit_vectors(1, seed=4)[0]
    close = probe + 0.05 * unit_vectors(300, seed=5)  # 300 faces very near the probe, all alice's
    far = unit_vectors(1000, seed=6)
    vectors = as_unit_matrix(np.vstack([close, far]), None)
    users = ["alice"] * 300 + [f"u{i % 50}" for i in range(1000)]
    index = VectorIndex.from_arrays([f"f{i}" for i in range(1300)], vectors, users)
    got = index.search_users_by_face(probe, limit=5, min_cosine=-1.0)
    assert got[0][0] == "alice"
    assert len({u for u, _, _ in got}) == 5
    scores = vectors @ probe
    best_other = {}
    for i in range(300, 1300):
        best_other[users[i]] = max(best_other.get(users[i], -2.0), float(scores[i]))
    expected = sorted(best_other, key=lambda u: -best_other[u])[:4]
    assert [u for u, _, _ in got[1:]] == expected
    without = index.search_users_by_face(probe, limit=3, min_cosine=-1.0, exclude_user_id="alice")
    assert [u for u, _, _ in without] == expected[:3]


def test_user_templates_follow_every_write() -> None:
    """After adds, swap-removes, moves between users and a cleared user, the incrementally kept templates
    rank users exactly as an index built afresh from the same rows does."""
    rng = np.random.default_rng(50)
    vectors = unit_vectors(400, seed=51)
    ids = [f"f{i}" for i in range(400)]
    owner: dict[str, str | None] = {f: (f"u{rng.integers(0, 30)}" if rng.random() < 0.7 else None) for f in ids}
    index = VectorIndex.from_arrays(ids[:300], vectors[:300].copy(), [owner[f] for f in ids[:300]])
    index.add(ids[300:], vectors[300:].copy(), [owner[f] for f in ids[300:]])
    probe = unit_vectors(1, seed=52)[0]
    index.search_users(probe, limit=5, min_cosine=-1.0)  # templates computed, then changed below
    gone = [ids[int(i)] for i in rng.choice(400, 120, replace=False)]
    index.remove(gone)
    for face_id in gone:
        del owner[face_id]
    moved = [f for f in list(owner)[:40]]
    index.set_user(moved, "u3")
    owner.update(dict.fromkeys(moved, "u3"))
    index.set_user(list(owner)[40:50], None)
    owner.update(dict.fromkeys(list(owner)[40:50]))
    index.clear_user("u7")
    owner.update({f: None for f, u in owner.items() if u == "u7"})
    alive = list(owner)
    fresh = VectorIndex.from_arrays(alive, np.stack([vectors[ids.index(f)] for f in alive]), list(owner.values()))
    for q in unit_vectors(5, seed=53):
        got, want = (
            index.search_users(q, limit=10, min_cosine=-1.0),
            fresh.search_users(q, limit=10, min_cosine=-1.0),
        )
        assert [(u, f) for u, _, f in got] == [(u, f) for u, _, f in want]
        np.testing.assert_allclose([c for _, c, _ in got], [c for _, c, _ in want], atol=1e-6)
        assert "u7" not in [u for u, _, _ in got]


def test_users_follow_set_and_clear() -> None:
    vectors = unit_vectors(3, seed=7)
    index = VectorIndex.from_arrays(["a", "b", "c"], vectors, [None, None, None])
    assert index.search_users(vectors[0], limit=3, min_cosine=-1.0) == []
    index.set_user(["a", "c"], "x")
    assert [(u, f) for u, _, f in index.search_users(vectors[2], limit=3, min_cosine=-1.0)] == [("x", "c")]
    index.clear_user("x")
    assert index.search_users(vectors[2], limit=3, min_cosine=-1.0) == []


def test_validation_of_vectors() -> None:
    with pytest.raises(ModelMismatchError):
        as_unit_matrix(np.ones((2, 64), np.float32), 128)
    with pytest.raises(InvalidParameterError):
        as_unit_matrix([[1.0, 2.0], [3.0]], None)
    with pytest.raises(InvalidParameterError):
        as_unit_matrix(np.array([[np.inf, 1.0]]), None)
    unit = unit_vectors(2, seed=8)
    np.testing.assert_array_equal(as_unit_matrix(unit, 128), unit)  # unit rows are kept bit for bit
    np.testing.assert_allclose(np.linalg.norm(as_unit_matrix(unit * 7, 128), axis=1), 1.0, atol=1e-6)


def _big_index(dim: int = 16) -> tuple[VectorIndex, np.ndarray, list[str]]:
    """Enough rows for the scan to be split over the thread pool (narrow vectors keep it cheap)."""
    vectors = unit_vectors(140_000, dim=dim, seed=30)
    ids = [f"f{i}" for i in range(len(vectors))]
    return VectorIndex.from_arrays(ids, vectors.copy(), [None] * len(ids)), vectors, ids


def test_split_scan_is_exact() -> None:
    index, vectors, ids = _big_index()
    for probe in unit_vectors(3, dim=16, seed=31):
        expected = [ids[i] for i in np.argsort(-(vectors @ probe))[:10]]
        assert [f for f, _ in index.search(probe, limit=10, min_cosine=-1.0)] == expected


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+ warns about forking a threaded process
def test_search_works_in_a_forked_child() -> None:
    """The scan pool's threads do not survive fork; a child (a pre-forking server worker) must get its own."""
    index, _, _ = _big_index()
    probe = unit_vectors(1, dim=16, seed=32)[0]
    expected = index.search(probe, limit=5, min_cosine=-1.0)  # the parent's pool now exists
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            found = index.search(probe, limit=5, min_cosine=-1.0)
            os.write(write, ",".join(f for f, _ in found).encode())
        finally:
            os._exit(0)
    os.close(write)
    ready, _, _ = select.select([read], [], [], 60)  # a deadlock guard, not a timing measurement
    if not ready:
        os.kill(pid, signal.SIGKILL)
    answer = os.read(read, 1 << 16).decode() if ready else "child hung"
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == ",".join(f for f, _ in expected)


def test_a_template_is_discounted_for_disagreeing_faces() -> None:
    """One face: the score is its cosine. Two orthogonal faces: the probe on their bisector is the template's
    direction (cosine 1), but the faces agree only ‖(a + b) / 2‖ = 0.707, so the score is 0.707^power."""
    a, b, c = np.eye(3, 8, dtype=np.float32)
    index = VectorIndex.from_arrays(["a", "b", "c"], np.stack([a, b, c]), ["pair", "pair", "single"])
    probe = (a + b) / np.linalg.norm(a + b)
    got = dict((u, s) for u, s, _ in index.search_users(probe, limit=2, min_cosine=-1.0))
    assert got["pair"] == pytest.approx(np.sqrt(0.5) ** TEMPLATE_AGREEMENT_POWER, abs=1e-6)
    assert got["single"] == pytest.approx(0.0, abs=1e-6)
    assert dict((u, s) for u, s, _ in index.search_users(c, limit=2, min_cosine=-1.0))["single"] == pytest.approx(
        1.0
    )
