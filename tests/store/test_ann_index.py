"""The compact index of large collections (store/ann_index.py): hits are the exact scan's hits with their exact
cosines, it follows adds and deletes without a rebuild, and it is persisted and caught up after a restart on
both backends. The size threshold is lowered so that small collections use it."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np
import pytest

from facetrace.store import SQLiteStore
from facetrace.store.index_files import IndexDirectory
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


def _snapshot_files(folder: Path) -> list[str]:
    """The kinds of files in a snapshot directory (``1.meta.json`` → ``meta.json``, ``1.4.ids`` → ``ids``)."""
    kinds = set()
    for path in folder.iterdir():
        parts = path.name.split(".")
        while parts and parts[0].isdigit():
            parts = parts[1:]
        kinds.add(".".join(parts))
    return sorted(kinds)


def test_sqlite_snapshots_the_index_and_replays_the_change_log_after_a_restart(
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
    before = [
        [(n.face.face_id, n.cosine) for n in store.search("c", v, limit=10, min_cosine=0.0)] for v in vectors[:40]
    ]
    store.close()  # writes the snapshot beside the database
    saved = path.with_name(path.name + ".ann")
    assert _snapshot_files(saved) == ["faiss", "ids", "meta.json", "owner.lock", "rows", "users", "usersum"]

    reopened = SQLiteStore(path)  # persist → reopen: the same top-k, from the snapshot, nothing trained
    again = [
        [(n.face.face_id, n.cosine) for n in reopened.search("c", v, limit=10, min_cosine=0.0)]
        for v in vectors[:40]
    ]
    assert again == before
    index = reopened._indexes.get("c")
    assert index is not None
    assert index.compact is not None
    assert index.compact.trained_on == 1200
    reopened.close()

    # while "this server" is down, another process deletes and adds faces: the log records them
    other = SQLiteStore(path)
    other.delete_faces("c", ids[:100])
    other.add_faces("c", faces[1200:])
    other.close()

    restarted = SQLiteStore(path)
    index = restarted._indexes.get("c")
    assert index is not None
    assert index.compact is not None
    assert index.compact.trained_on == 1200  # the snapshot was opened and caught up, not trained again
    assert len(index) == len(index.compact) == 1500
    assert ids[5] not in {n.face.face_id for n in restarted.search("c", vectors[5], limit=3, min_cosine=0.5)}
    assert restarted.search("c", vectors[1500], limit=1, min_cosine=0.5)[0].face.face_id == ids[1500]
    exact = VectorIndex.from_arrays(ids[100:], vectors[100:].copy(), [None] * 1500)
    _assert_exact_hits(index, exact, vectors[100:1600:15], 0.4)
    restarted.delete_collection("c")
    assert _snapshot_files(saved) == ["owner.lock"]
    restarted.close()


def test_an_index_behind_another_process_catches_up_from_the_log_without_a_reload(
    small_threshold: None, tmp_path: Path
) -> None:
    path = tmp_path / "facetrace.db"
    vectors = _face_like(1400, seed=11)
    faces = [(face(), v) for v in vectors]
    ids = [f.face_id for f, _ in faces]
    server = SQLiteStore(path)
    server.create_collection("c", MODEL)
    server.add_faces("c", faces[:1000])
    index = server._indexes.get("c")
    assert index is not None
    cli = SQLiteStore(path)  # another writer on the same file (the CLI beside a server)
    cli.delete_faces("c", ids[:10])
    cli.add_faces("c", faces[1000:])
    cli.close()
    assert server._indexes.get("c") is index  # the same index, brought forward, not reloaded
    assert len(index) == 1390
    assert server.search("c", vectors[1300], limit=1, min_cosine=0.5)[0].face.face_id == ids[1300]
    assert ids[3] not in {n.face.face_id for n in server.search("c", vectors[3], limit=3, min_cosine=0.5)}
    server.close()


def test_the_owner_prunes_the_log_and_an_index_behind_the_floor_reads_the_rows(
    small_threshold: None, tmp_path: Path
) -> None:
    import sqlite3

    path = tmp_path / "facetrace.db"
    vectors = _face_like(1300, seed=14)
    faces = [(face(), v) for v in vectors]
    ids = [f.face_id for f, _ in faces]
    owner = SQLiteStore(path)
    owner.create_collection("c", MODEL)
    owner.add_faces("c", faces[:1000])
    assert owner._indexes.get("c") is not None  # takes the snapshot directory
    reader = SQLiteStore(path)
    behind = reader._indexes.get("c")
    assert behind is not None
    assert behind.files is not None
    assert not behind.files.owner
    reader.close()
    reader = SQLiteStore(path)
    behind = reader._indexes.get("c")
    assert behind is not None
    owner.add_faces("c", faces[1000:1200])
    owner.delete_faces("c", ids[:20])
    owner.close()  # snapshot, then the log is pruned up to it
    with sqlite3.connect(path) as db:
        stamps = [int(r[0]) for r in db.execute("SELECT generation FROM vector_changes")]
        floor = int(db.execute("SELECT generation FROM vector_changes_floor").fetchone()[0])
    assert stamps
    assert min(stamps) >= floor > behind.generation - 1  # the reader's index is older than what the log keeps
    reader.add_faces("c", faces[1200:])  # a write of its own, one generation past what it has
    caught = reader._indexes.get("c")
    assert caught is not None
    assert caught is not behind  # could not catch up: read again (from the owner's snapshot or the rows)
    assert len(caught) == 1280
    assert ids[5] not in {n.face.face_id for n in reader.search("c", vectors[5], limit=3, min_cosine=0.5)}
    assert reader.search("c", vectors[1250], limit=1, min_cosine=0.5)[0].face.face_id == ids[1250]
    reader.close()


_READER = """
import json, sys, numpy as np
from facetrace.store import SQLiteStore
store = SQLiteStore(sys.argv[1])
index = store._indexes.get("c")
assert index is not None and index.files is not None and not index.files.owner
assert index.compact is not None and index.compact.trained_on == 1000, index.compact
vectors = np.load(sys.argv[2])
hits = [store.search("c", v, limit=1, min_cosine=0.5) for v in vectors]
print(json.dumps([len(index), [h[0].face.face_id if h else None for h in hits]]))
assert not index.persist()  # not the owner: writes no snapshot
store.close()
"""


def test_a_second_process_opens_the_snapshot_read_only_while_the_owner_writes(
    small_threshold: None, tmp_path: Path
) -> None:
    import subprocess
    import sys

    path = tmp_path / "facetrace.db"
    vectors = _face_like(1300, seed=12)
    faces = [(face(), v) for v in vectors]
    ids = [f.face_id for f, _ in faces]
    owner = SQLiteStore(path)
    owner.create_collection("c", MODEL)
    owner.add_faces("c", faces[:1000])
    index = owner._indexes.get("c")
    assert index is not None
    assert index.persist()
    saved = path.with_name(path.name + ".ann")
    meta = (saved / "1.meta.json").read_text()
    owner.add_faces("c", faces[1000:1200])  # after the snapshot: the reader replays them from the log
    owner.delete_faces("c", ids[:5])
    np.save(tmp_path / "probes.npy", vectors[[0, 10, 1100]])
    done = subprocess.run(
        [sys.executable, "-c", _READER, str(path), str(tmp_path / "probes.npy")],
        capture_output=True, text=True, timeout=300, env={**os.environ, "FACETRACE_ANN_MIN_FACES": "500"},
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    count, found = json.loads(done.stdout)
    assert count == 1195
    assert found[0] != ids[0]  # deleted after the snapshot: gone in the reader too
    assert found[1:] == [ids[10], ids[1100]]
    assert (saved / "1.meta.json").read_text() == meta  # the reader wrote nothing
    owner.add_faces("c", faces[1200:])  # the owner keeps writing to its row file afterwards
    assert owner.search("c", vectors[1250], limit=1, min_cosine=0.5)[0].face.face_id == ids[1250]
    owner.close()


@pytest.mark.parametrize("damage", ["faiss", "ids", "rows", "meta.json"])
def test_a_corrupt_or_truncated_snapshot_is_not_trusted(
    small_threshold: None, tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "facetrace.db"
    vectors = _face_like(900, seed=6)
    faces = [(face(), v) for v in vectors]
    ids = [f.face_id for f, _ in faces]
    store = SQLiteStore(path)
    store.create_collection("c", MODEL)
    store.add_faces("c", faces)
    assert store.search("c", vectors[0], limit=1, min_cosine=0.5)[0].face.face_id == ids[0]
    store.close()
    saved = path.with_name(path.name + ".ann")
    target = next(p for p in saved.iterdir() if p.name.endswith("." + damage))
    data = bytearray(target.read_bytes())
    if damage == "rows":
        target.write_bytes(bytes(data[: len(data) // 2]))  # truncated
    else:
        data[len(data) // 2] ^= 0x5A  # one byte changed
        target.write_bytes(bytes(data))

    reopened = SQLiteStore(path)
    index = reopened._indexes.get("c")
    assert index is not None
    assert index.compact is not None
    assert len(index) == len(index.compact) == 900
    exact = VectorIndex.from_arrays(ids, vectors.copy(), [None] * 900)
    _assert_exact_hits(index, exact, vectors[::20], 0.4)
    reopened.close()  # a fresh snapshot replaces the damaged one
    again = SQLiteStore(path)
    rebuilt = again._indexes.get("c")
    assert rebuilt is not None
    assert rebuilt.files is not None
    assert VectorIndex.open_snapshot(rebuilt.files, 128) is not None
    again.close()


def test_persist_and_reopen_give_identical_results_and_deletes_stay_deleted(
    small_threshold: None, tmp_path: Path
) -> None:

    matrix = _face_like(7000, seed=13)
    ids = _ids(7000)
    users = [f"user-{i // 5}" if i % 2 else None for i in range(7000)]
    directory = IndexDirectory(tmp_path / "ann")
    index = VectorIndex(128, files=directory.files("1"))
    index.add(ids, matrix.copy(), users)
    index.prepare()
    assert index.compact is not None
    index.remove(ids[:4500])  # more than a quarter: the rows are compacted into a new row file
    assert len(index) == len(index.compact) == 2500
    index.add([f"again-{i}" for i in range(100)], matrix[:100].copy())  # re-indexed under new ids
    index.watermark = 7
    assert index.persist()
    probes = matrix[::50]
    before = [index.search(p, limit=10, min_cosine=-1.0) for p in probes]
    users_before = [index.search_users(p, limit=3, min_cosine=0.0) for p in probes]
    reopened = VectorIndex.open_snapshot(directory.files("1"), 128)
    assert reopened is not None
    assert reopened.watermark == 7
    assert [reopened.search(p, limit=10, min_cosine=-1.0) for p in probes] == before
    assert [reopened.search_users(p, limit=3, min_cosine=0.0) for p in probes] == users_before
    for i in (0, 99, 4499):
        assert ids[i] not in reopened
        hits = reopened.search(matrix[i], limit=10, min_cosine=0.0)
        assert ids[i] not in {f for f, _ in hits}
    assert reopened.search(matrix[50], limit=1, min_cosine=0.5)[0][0] == "again-50"
    assert len(list((tmp_path / "ann").glob("1.*.rows"))) == 1  # the old row file went with its snapshot
    exact = VectorIndex.from_arrays(
        ids[4500:] + [f"again-{i}" for i in range(100)],
        np.concatenate([matrix[4500:], matrix[:100]]),
        [None] * 2600,
    )
    _assert_exact_hits(reopened, exact, matrix[4500::40], 0.4)


@pytest.mark.slow
def test_postgres_servers_keep_their_own_snapshots_and_replay_the_log(
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
        before = [
            [(n.face.face_id, n.cosine) for n in reader.search("c", v, limit=10, min_cosine=0.0)]
            for v in vectors[:30]
        ]
    finally:
        reader.close()  # writes its snapshot in its own directory
    assert _snapshot_files(tmp_path / "b") == [
        "faiss",
        "ids",
        "meta.json",
        "owner.lock",
        "rows",
        "users",
        "usersum",
    ]
    restarted = PostgresStore(pg_url, listen=False, ann_dir=tmp_path / "b")
    try:
        again = [
            [(n.face.face_id, n.cosine) for n in restarted.search("c", v, limit=10, min_cosine=0.0)]
            for v in vectors[:30]
        ]
        assert again == before  # persist → reopen: the same top-k
    finally:
        restarted.close()
    try:
        writer.delete_faces("c", ids[50:100])
        writer.add_faces("c", faces[1200:])
        restarted = PostgresStore(pg_url, listen=False, ann_dir=tmp_path / "b")
        try:
            index = restarted._indexes.get("c")
            assert index is not None
            assert index.compact is not None
            assert index.compact.trained_on == 1000  # opened and replayed, not trained again
            assert len(index) == len(index.compact) == 1500
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


def test_face_ids_round_trip_at_fixed_width_and_hash_stably() -> None:
    """Snapshots hold encoded ids and the lookup hashes them: both must not change between versions."""
    from facetrace.store.face_rows import FaceIds, id_hashes

    ids = FaceIds()
    canonical = "00000000-0000-4000-8000-000000000000"
    encoded = ids.encode([canonical, "a", "é"])
    assert encoded.shape == (3, 24)  # a UUID is 16 bytes, not 36 characters
    assert id_hashes(encoded).tolist() == [552636185880822364, 7604939884547285316, 3867612536497545867]
    ids.put(0, encoded)
    longer = ids.encode(["x" * 40, "A0000000-0000-4000-8000-000000000000"])  # widens the array; not canonical
    ids.put(3, longer)
    assert [ids.get(i) for i in range(5)] == [
        canonical,
        "a",
        "é",
        "x" * 40,
        "A0000000-0000-4000-8000-000000000000",
    ]
    assert id_hashes(ids.data[:3]).tolist() == id_hashes(encoded).tolist()  # width does not change a hash
    # canonical UUIDs are parsed vectorised, anything else one by one: both give the same bytes
    mixed = [str(uuid.uuid4()) for _ in range(50)] + [
        "A0000000-0000-4000-8000-000000000000", "0000000g-0000-4000-8000-000000000000", "é" * 36, "x" * 36,
    ]  # fmt: skip
    together = FaceIds().encode(mixed)
    raw = np.frombuffer(b"".join(uuid.UUID(f).bytes for f in mixed[:50]), dtype=np.uint8).reshape(50, 16)
    assert np.array_equal(together[:50, 1:17], raw)
    assert (together[:50, 0] == 1).all()
    assert (together[50:, 0] == 2).all()  # not canonical: kept as text
    holder = FaceIds()
    holder.put(0, holder.encode(mixed))
    assert [holder.get(i) for i in range(len(mixed))] == mixed
    with pytest.raises(ValueError, match="NUL"):
        ids.encode(["a\0b"])


def test_a_collection_that_outgrew_its_lists_is_retrained_in_the_background(small_threshold: None) -> None:
    matrix = _face_like(2600, seed=9)
    ids = _ids(2600)
    index = VectorIndex.from_arrays(ids[:600], matrix[:600].copy(), [None] * 600)
    index.prepare()
    old = index.compact
    assert old is not None
    assert old.trained_on == 600
    index.add(ids[600:], matrix[600:].copy(), [None] * 2000)  # 2600 > 4 × 600
    # the search that notices answers at once through the old lists, exactly, while new ones are trained
    assert index.search(matrix[2599], limit=1, min_cosine=0.5)[0][0] == ids[2599]
    index.remove(ids[:3])  # changes during the retrain reach the new index when it is swapped in
    index.add(["late"], matrix[:1].copy())
    assert index.wait_retrained(timeout=300)
    assert index.compact is not old
    assert index.compact is not None
    assert index.compact.trained_on >= 2597  # the collection as it was when the retrain began
    assert len(index.compact) == len(index) == 2598
    assert index.search(matrix[0], limit=1, min_cosine=0.5)[0][0] == "late"
    assert index.search(matrix[2000], limit=1, min_cosine=0.5)[0][0] == ids[2000]


def test_a_query_split_across_scan_threads_finds_the_same_candidates_as_one_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The probed lists scanned in parts on the scan pool (``ann_index.scan_threads``) and merged give the
    candidates faiss's one-thread search gives, also with several queries in flight at once (the pool is
    shared by every collection of the process)."""
    from concurrent.futures import ThreadPoolExecutor

    from facetrace.store import ann_index

    monkeypatch.setattr(ann_index, "new_ivf", _sq8_ivf)  # the split serves the 8-bit codes of older snapshots
    matrix = _face_like(20_000, seed=11)
    compact = ann_index.CompactIndex.train(matrix, matrix.shape[0])
    assert compact.outdated
    compact.add(np.arange(matrix.shape[0], dtype=np.int64), matrix)
    rng = np.random.default_rng(12)
    probes = matrix[rng.integers(0, matrix.shape[0], 60)] + 0.05 * rng.standard_normal((60, 128)).astype(
        np.float32
    )
    probes = (probes / np.linalg.norm(probes, axis=1, keepdims=True)).astype(np.float32)
    monkeypatch.setenv("FACETRACE_ANN_SCAN_THREADS", "1")
    single = [compact.candidates(p, 64) for p in probes]
    assert all(found.shape[0] == 64 for found in single)
    monkeypatch.setattr(ann_index, "SPLIT_MIN_CODES", 0)  # 20k faces: split even these short lists
    for threads in ("2", "3"):
        monkeypatch.setenv("FACETRACE_ANN_SCAN_THREADS", threads)
        lists = np.arange(compact.probes, dtype=np.int64)
        assert len(compact._parts(lists, int(threads))) == int(threads)  # it does split
        split = [compact.candidates(p, 64) for p in probes]
        assert [sorted(found.tolist()) for found in split] == [sorted(found.tolist()) for found in single]
        with ThreadPoolExecutor(4) as callers:
            concurrent = list(callers.map(lambda p: compact.candidates(p, 64), probes))
        assert [sorted(found.tolist()) for found in concurrent] == [sorted(found.tolist()) for found in single]


def _sq8_ivf(quantizer: object, dim: int, lists: int) -> object:
    """The index snapshots were written with before the fast-scan codes: 8-bit scalar codes."""
    import faiss

    return faiss.IndexIVFScalarQuantizer(quantizer, dim, lists, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_L2)


def _reopen(tmp_path: Path) -> tuple[IndexDirectory, VectorIndex]:
    """The snapshot written under ``tmp_path``, opened again as a restarted server opens it."""
    directory = IndexDirectory(tmp_path / "ann")
    index = VectorIndex.open_snapshot(directory.files("1"), 128)
    assert index is not None
    return directory, index


def test_a_snapshot_of_8_bit_codes_opens_answers_and_is_recoded_to_fast_scan(
    small_threshold: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot written before the fast-scan codes opens and answers exactly as before; its codes are
    replaced in the background (same lists, same faces in them) and the next start opens the new ones."""
    from facetrace.store import ann_index

    matrix = _face_like(6000, seed=21)
    ids = _ids(6000)
    exact = VectorIndex.from_arrays(ids[100:], matrix[100:].copy(), [None] * 5900)
    probes = matrix[100::40]
    with monkeypatch.context() as patch:
        patch.setattr(ann_index, "new_ivf", _sq8_ivf)
        directory = IndexDirectory(tmp_path / "ann")
        old = VectorIndex(128, files=directory.files("1"))
        old.add(ids, matrix.copy(), [None] * 6000)
        old.prepare()
        assert old.compact is not None
        assert old.compact.outdated
        old.remove(ids[:100])
        assert old.persist()
        del old
        directory.close()
    directory, index = _reopen(tmp_path)
    assert index.compact is not None
    assert index.compact.outdated
    lists = index.compact.list_numbers(6000)
    _assert_exact_hits(index, exact, probes, 0.4)  # answered through the 8-bit codes while they are recoded
    assert index.wait_retrained(timeout=300)
    recoded = index.compact
    assert recoded is not None
    assert not recoded.outdated
    assert len(recoded) == len(index) == 5900
    assert np.array_equal(recoded.list_numbers(6000), lists)  # every face kept its list
    _assert_exact_hits(index, exact, probes, 0.4)
    for i in (0, 99):
        assert ids[i] not in {f for f, _ in index.search(matrix[i], limit=10, min_cosine=0.0)}
    del index
    directory.close()
    directory, reopened = _reopen(tmp_path)
    assert reopened.compact is not None
    assert not reopened.compact.outdated  # the recoded index was written as the new snapshot
    _assert_exact_hits(reopened, exact, probes, 0.4)
    directory.close()


@pytest.mark.parametrize("by_list", [True, False])
def test_faces_deleted_and_added_again_are_found_in_a_fast_scan_index(by_list: bool) -> None:
    """Deletes rewrite the packed fast-scan lists cleanly: a face added after them is found by its own vector
    (faiss's ``remove_ids`` left stale 4-bit codes that garbled later additions), nothing deleted comes back,
    whether the faces are looked for in their own lists (vectors given) or in every list."""
    from facetrace.store import ann_index

    matrix = _face_like(12_000, seed=31)
    compact = ann_index.CompactIndex.train(matrix, matrix.shape[0])
    assert not compact.outdated
    compact.add(np.arange(12_000, dtype=np.int64), matrix)
    gone = np.arange(0, 12_000, 3, dtype=np.int64)
    compact.remove(gone, matrix[gone] if by_list else None)
    assert len(compact) == 12_000 - gone.shape[0]
    compact.add(gone + 100_000, matrix[gone])
    assert len(compact) == 12_000
    for row in gone[::10]:
        found = compact.candidates(matrix[row], 64)
        assert row + 100_000 in found
        assert row not in found
    for row in range(1, 12_000, 150):  # faces never deleted are still found
        assert row in compact.candidates(matrix[row], 64)
