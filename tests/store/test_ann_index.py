"""The compact index of large collections (store/ann_index.py): hits are the exact scan's hits with their exact
cosines, it follows adds and deletes without a rebuild, and it is persisted and caught up after a restart on
both backends. The size threshold is lowered so that small collections use it."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pytest

from facetrace.store import SQLiteStore
from facetrace.store.ann_index import CompactIndex
from facetrace.store.vector_index import VectorIndex
from tests.store.conftest import MODEL, face

_REAL = [
    Path(os.environ.get("FACETRACE_REAL_VECTORS", "/nonexistent")),
    Path("/work/cache/lfw_calibration_sface.npz"),
    Path.home() / ".cache" / "facetrace" / "bench" / "lfw_calibration_sface.npz",
]


def _real_vectors() -> np.ndarray | None:
    """SFace vectors of LFW photos (benchmarks/embed_lfw_calibration.py) when this machine has them."""
    for path in _REAL:
        if path.is_file():
            with np.load(path) as data:
                matrix = np.concatenate([data["vectors"], data["flipped"]]).astype(np.float32)
            return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return None


def _face_like(n: int, seed: int) -> np.ndarray:
    """Identities with several faces each (same-person cosine ≈ 0.7), the structure a face gallery has."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n // 4 + 1, 128)).astype(np.float32)
    rows = centres[np.arange(n) // 4] + 0.65 * rng.standard_normal((n, 128)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _mixtures(real: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Normalised mixtures of three real vectors plus noise: new 'people' with real vectors' neighbourhoods."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, real.shape[0], (n, 3))
    weights = rng.dirichlet([1.0, 0.6, 0.3], n).astype(np.float32)
    rows = (real[picks] * weights[:, :, None]).sum(axis=1) + rng.normal(0, 0.04, (n, 128)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACETRACE_ANN_MIN_FACES", "500")
    return


def _ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def _assert_exact_hits(compact: VectorIndex, exact: VectorIndex, probes: np.ndarray, min_cosine: float) -> None:
    """Every hit carries its exact cosine, and recall@10 of the hits at or above the threshold ≥ 0.99."""
    found = wanted = 0
    for probe in probes:
        got = compact.search(probe, limit=10, min_cosine=min_cosine)
        truth = exact.search(probe, limit=10, min_cosine=min_cosine)
        for face_id, score in got:
            assert score >= min_cosine
            vector = exact.vector(face_id)
            assert vector is not None
            assert score == pytest.approx(float(vector @ probe), abs=1e-6)
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
        found += len({f for f, _ in got} & {f for f, _ in truth})
        wanted += len(truth)
    assert wanted > len(probes)  # the probes do have neighbours above the threshold
    assert found / wanted >= 0.99


@pytest.mark.parametrize("vectors", ["real", "face-like"])
def test_compact_search_returns_the_exact_hits_above_the_threshold(small_threshold: None, vectors: str) -> None:
    if vectors == "real":
        real = _real_vectors()
        if real is None:
            pytest.skip("no SFace vectors of LFW on this machine (benchmarks/embed_lfw_calibration.py)")
        held_out, gallery_real = real[:300], real[300:]
        matrix = np.concatenate([gallery_real, _mixtures(gallery_real, 6000, seed=1)])
        probes = held_out  # photos of people in the gallery (LFW people with several photos) and strangers
    else:
        matrix = _face_like(8000, seed=2)
        rng = np.random.default_rng(3)
        probes = matrix[rng.integers(0, 8000, 200)] + 0.05 * rng.standard_normal((200, 128)).astype(np.float32)
        probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    ids = _ids(matrix.shape[0])
    compact = VectorIndex.from_arrays(ids, matrix.copy(), [None] * len(ids))
    compact.prepare()
    assert compact.compact is not None
    assert len(compact.compact) == len(ids)
    exact = VectorIndex.from_arrays(ids, matrix.copy(), [None] * len(ids))
    for min_cosine in (0.3, 0.5):
        _assert_exact_hits(compact, exact, probes, min_cosine)


def test_the_compact_index_follows_adds_and_deletes_without_a_rebuild(small_threshold: None) -> None:
    matrix = _face_like(3000, seed=4)
    ids = _ids(3000)
    index = VectorIndex.from_arrays(ids[:2000], matrix[:2000].copy(), [None] * 2000)
    index.prepare()
    built = index.compact
    assert built is not None
    index.add(ids[2000:], matrix[2000:].copy(), [None] * 1000)
    index.remove(ids[:500])
    assert index.compact is built
    assert len(built) == 2500
    for i in (10, 499, 2500, 2999):  # deleted faces are gone, added ones are found, by their exact cosine
        hits = index.search(matrix[i], limit=3, min_cosine=0.5)
        if i < 500:
            assert ids[i] not in {f for f, _ in hits}
        else:
            assert hits[0] == (ids[i], pytest.approx(1.0, abs=1e-6))
    exact = VectorIndex.from_arrays(ids[500:], matrix[500:].copy(), [None] * 2500)
    _assert_exact_hits(index, exact, matrix[500:3000:25], 0.4)
    # a face deleted and indexed again (same vector, new id) is found under its new id only
    index.remove([ids[2999]])
    index.add(["again"], matrix[2999:3000].copy())
    assert index.search(matrix[2999], limit=1, min_cosine=0.5)[0][0] == "again"


def test_sqlite_persists_the_compact_index_and_catches_up_after_a_restart(
    small_threshold: None, tmp_path: Path
) -> None:
    path = tmp_path / "facetrace.db"
    vectors = _face_like(1600, seed=5)
    faces = [(face(), v) for v in vectors]
    ids = [f.face_id for f, _ in faces]
    store = SQLiteStore(path)
    store.create_collection("c", MODEL)
    store.add_faces("c", faces[:1200])
    assert store.search("c", vectors[0], limit=1, min_cosine=0.5)[0].face.face_id == ids[0]
    index = store._indexes.get("c")
    assert index is not None
    assert index.compact is not None
    assert index.compact.trained_on == 1200
    store.close()  # saves the compact index beside the database
    saved = path.with_name(path.name + ".ann")
    assert [p.suffix for p in sorted(saved.iterdir())] == [".faiss", ".trained"]

    # while "this server" is down, another process deletes and adds faces
    other = SQLiteStore(path)
    other.delete_faces("c", ids[:100])
    other.add_faces("c", faces[1200:])
    other._indexes.clear()  # never searched: has no compact index to save
    other.close()

    restarted = SQLiteStore(path)
    index = restarted._indexes.get("c")
    assert index is not None
    assert index.compact is not None
    assert index.compact.trained_on == 1200  # loaded from the file and reconciled, not trained again
    assert len(index.compact) == 1500
    assert ids[5] not in {n.face.face_id for n in restarted.search("c", vectors[5], limit=3, min_cosine=0.5)}
    assert restarted.search("c", vectors[1500], limit=1, min_cosine=0.5)[0].face.face_id == ids[1500]
    restarted.delete_collection("c")
    assert list(saved.iterdir()) == []
    restarted.close()


def test_a_corrupt_compact_index_file_is_rebuilt(small_threshold: None, tmp_path: Path) -> None:
    target = tmp_path / "1.faiss"
    target.write_bytes(b"not a faiss index")
    target.with_suffix(".trained").write_text("600")
    assert CompactIndex.load(target) is None
    vectors = _face_like(600, seed=6)
    index = VectorIndex.from_arrays(_ids(600), vectors.copy(), [None] * 600)
    index.ann_path = target
    index.prepare()
    assert index.compact is not None
    assert len(index.compact) == 600
    assert CompactIndex.load(target) is not None  # the rebuilt one was saved over it


@pytest.mark.slow
def test_postgres_servers_keep_their_own_compact_index_and_follow_the_log(
    small_threshold: None, pg_url: str, tmp_path: Path
) -> None:
    from facetrace.store.postgres import PostgresStore

    vectors = _face_like(1600, seed=7)
    faces = [(face(), v) for v in vectors]
    ids = [f.face_id for f, _ in faces]
    writer = PostgresStore(pg_url, listen=False, ann_dir=tmp_path / "a")
    reader = PostgresStore(pg_url, listen=False, ann_dir=tmp_path / "b")
    try:
        writer.create_collection("c", MODEL)
        writer.add_faces("c", faces[:1000])
        assert reader.search("c", vectors[3], limit=1, min_cosine=0.5)[0].face.face_id == ids[3]
        built = reader._indexes.get("c")
        assert built is not None
        assert built.compact is not None
        assert built.compact.trained_on == 1000
        # changes through the other server reach this one's compact index through the change log
        writer.delete_faces("c", ids[:50])
        writer.add_faces("c", faces[1000:1200])
        assert ids[3] not in {n.face.face_id for n in reader.search("c", vectors[3], limit=3, min_cosine=0.5)}
        assert reader.search("c", vectors[1100], limit=1, min_cosine=0.5)[0].face.face_id == ids[1100]
        assert len(built.compact) == 1150
    finally:
        reader.close()  # saves its compact index in its own directory
    assert sorted(p.suffix for p in (tmp_path / "b").iterdir()) == [".faiss", ".trained"]
    try:
        writer.delete_faces("c", ids[50:100])
        writer.add_faces("c", faces[1200:])
        restarted = PostgresStore(pg_url, listen=False, ann_dir=tmp_path / "b")
        try:
            index = restarted._indexes.get("c")
            assert index is not None
            index.prepare()
            assert index.compact is not None
            assert index.compact.trained_on == 1000
            assert len(index.compact) == 1500
            assert ids[60] not in {
                n.face.face_id for n in restarted.search("c", vectors[60], limit=3, min_cosine=0.5)
            }
            assert restarted.search("c", vectors[1500], limit=1, min_cosine=0.5)[0].face.face_id == ids[1500]
        finally:
            restarted.close()
    finally:
        writer.close()


def test_user_search_is_unchanged_by_the_compact_index(small_threshold: None) -> None:
    matrix = _face_like(2000, seed=8)
    ids = _ids(2000)
    users = [f"user-{i // 4}" if i % 3 else None for i in range(2000)]
    compact = VectorIndex.from_arrays(ids, matrix.copy(), users)
    compact.prepare()
    assert compact.compact is not None
    exact = VectorIndex.from_arrays(ids, matrix.copy(), users)
    for probe in matrix[::97]:
        got = compact.search_users(probe, limit=5, min_cosine=0.2)
        assert got
        assert got == exact.search_users(probe, limit=5, min_cosine=0.2)


def test_face_labels_are_stable_and_independent_of_the_batch() -> None:
    """Persisted compact indexes hold these labels: a change of the hash would orphan every saved index."""
    from facetrace.store.ann_index import face_labels

    assert face_labels(["00000000-0000-4000-8000-000000000000", "a"]).tolist() == [
        8256554065413319032,
        6106307747326726622,
    ]
    ids = [str(uuid.uuid4()) for _ in range(1000)] + ["é", "x" * 100]
    together = face_labels(ids)
    assert [int(face_labels([f])[0]) for f in ids] == together.tolist()
    assert len(set(together.tolist())) == len(ids)
    assert (together >= 0).all()


def test_a_collection_that_outgrew_its_lists_is_retrained(small_threshold: None) -> None:
    matrix = _face_like(2600, seed=9)
    ids = _ids(2600)
    index = VectorIndex.from_arrays(ids[:600], matrix[:600].copy(), [None] * 600)
    index.prepare()
    assert index.compact is not None
    assert index.compact.trained_on == 600
    index.add(ids[600:], matrix[600:].copy(), [None] * 2000)  # 2600 > 4 × 600
    assert index.search(matrix[2599], limit=1, min_cosine=0.5)[0][0] == ids[2599]
    assert index.compact.trained_on == 2600
    assert len(index.compact) == 2600
