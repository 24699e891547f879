"""Exact cosine search over one collection's vectors, held as one contiguous float32 matrix (in memory, or a file).

Why exact and why this shape (``benchmarks/bench_search.py`` on the 2-core EPYC dev machine, top-10): a face
vector is 128 float32, so 300,000 faces are 150 MB and one pass over them is memory-bound: search takes a
median 4.7–6 ms at 300k and 18 ms at 1M on an idle machine, within the targets (≤ 10 ms, ≤ 40 ms), so search
is exact and there is no recall to argue about. numpy has no fast fp16/int8 product (it does not go through
BLAS and measured ~30× slower than fp32), so compressing the matrix would cost more than it saves.

The product is numpy's ``einsum`` (SIMD, releases the GIL) over row chunks run on a small thread pool, not
BLAS ``sgemv``: OpenBLAS's threads spin-wait for each other, so when another process keeps one of the two
cores busy (the detector, a video pipeline) ``np.dot`` alone took 16 ms at 300k and 67 ms at 1M where this
whole search took 9 ms and 40 ms. Idle, the two are on par (``np.dot`` alone: 5.3 ms and 19 ms).

The top-k selection matters as much: ``argpartition`` over 1M scores costs ~8 ms. ``_top_k`` instead takes
the k-th best score of a random sample, which is a lower bound of the true k-th best score, keeps only scores
at or above it (a vectorised comparison, <1 ms) and sorts those few. The result is identical to a full sort.

Rows are append-only: a delete leaves a hole that the scan masks (compacted once a quarter of the rows are
holes), so a row number is stable and serves as the face's label in the compact index; ``face_rows.IdLookup``
maps face id → row. The matrix grows by 1.5× (amortised O(1) appends).

Users are scored by their *template*: the normalised mean of their faces' unit vectors, one comparison per
user, its cosine discounted for how little the photos agree (``TEMPLATE_AGREEMENT_POWER``) so that a template
is no likelier than a single face to reach a threshold against a stranger. Measured with
``benchmarks/bench_users.py`` on people not tuned on (docs/accuracy.md, "How many photos to enrol"). The
index keeps each user's vector sum (float64) and face count, updated on every write, and rebuilds the
templates of changed users lazily at the next user search; the reported face is the user's face closest to
the probe (the evidence a person can look at).
Past ``ann_min_faces()`` faces (300k) a search no longer scans: it takes 64 candidates from a compact faiss index
(``ann_index.CompactIndex``, 136 bytes a face) and scores them exactly against the rows here, so cosines and
thresholds mean what they mean for the scan; recall against the scan is measured (docs/scale-index.md). The
compact index follows every add and delete in place and is retrained in the background when the collection
outgrows it. A large collection's rows live in a memory-mapped file and its ids in fixed-width arrays
(``face_rows``), so at 20M faces RAM holds the 8-bit codes rather than 10 GB of float32 and millions of Python
strings; it is persisted as a snapshot (``index_files``: ``persist``, ``open_snapshot``) that a start-up maps and
brings forward with the changes after its watermark (``apply_changes``) instead of reading every row.

Every method takes the index's lock; a search holds it for the scan (milliseconds), so writers wait at most
one scan, and a scan already uses every core, so concurrent scans would not be faster anyway.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from facetrace.errors import InvalidParameterError, ModelMismatchError
from facetrace.store.ann_index import RETRAIN_GROWTH, CompactIndex, ann_min_faces, faiss_available
from facetrace.store.face_rows import FaceIds, IdLookup, RowFile, id_hashes
from facetrace.store.index_files import IndexFiles, SnapshotMeta, row_sample_crc
from facetrace.types import Vector

__all__ = ["TEMPLATE_AGREEMENT_POWER", "VectorIndex", "as_unit_matrix", "as_unit_vector", "user_template"]

TEMPLATE_AGREEMENT_POWER = 0.25
"""A user's score is cos(probe, template) × a^TEMPLATE_AGREEMENT_POWER, where a = ‖mean of the user's unit
vectors‖ (1 for one face, median 0.88 for three LFW photos of one person). Normalising the mean divides by a, so a
template's cosine to a *stranger* has a heavier tail than a single face's: on LFW people of the tuning half,
1.6–3× as many impostor comparisons reached similarity 70–80 as single faces of the same users did. The factor
a^0.25 brings the template's impostor rate back to a single face's there, and it held on the test half
(``benchmarks/bench_users.py``, docs/accuracy.md), so a threshold keeps its false match rate per user, and a
user of k photos is one comparison, not k."""

log = logging.getLogger(__name__)

_NO_USER = -1
_MIN_CAPACITY = 1024
_SAMPLE_PER_K = 64  # sample size per requested result; the candidate set is ~ n / _SAMPLE_PER_K
_SAMPLE_FROM = 8192  # below this many rows a plain selection is as fast
_ROWS_PER_WORKER = 32_768  # below this a thread hand-off costs more than it saves
_SAVE_EVERY = 20_000  # changes (and at least a tenth of the collection) between snapshots of a large collection
_CANDIDATES = 64  # measured: 64 candidates of the 8-bit index re-scored exactly reach recall@10 ≥ 0.99
_COMPACT_MIN_HOLES = 4096  # rows are compacted once holes are a quarter of them, and at least this many
_SUM_CHUNK = 65_536  # rows per float64 copy when users' vector sums are updated
_BUILD_CHUNK = 262_144  # rows read per step when a compact index is filled
_RELEASE_ROWS = 1 << 21  # a bulk load lets go of the row file's pages every this many rows (1 GB)
_RETRAIN_SAMPLE = 200_000  # rows copied for training new lists (train() takes ≤ 120k of them)

_pool: tuple[int, ThreadPoolExecutor] | None = None  # (pid that made it: a forked child needs its own, pool)
_pool_lock = threading.Lock()


def _workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _cosines(matrix: npt.NDArray[np.float32], probe: Vector, out: npt.NDArray[np.float32]) -> None:
    """``out = matrix @ probe``, split over the cores (see the module docstring for why not BLAS)."""
    global _pool
    n = matrix.shape[0]
    parts = min(_workers(), n // _ROWS_PER_WORKER)
    if parts <= 1:
        np.einsum("ij,j->i", matrix, probe, out=out)
        return
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (
                os.getpid(),
                ThreadPoolExecutor(max_workers=_workers() - 1, thread_name_prefix="facetrace-scan"),
            )
        pool = _pool[1]
    bounds = [n * i // parts for i in range(parts + 1)]
    futures = [
        pool.submit(np.einsum, "ij,j->i", matrix[a:b], probe, out=out[a:b])
        for a, b in itertools.pairwise(bounds[1:])
    ]
    np.einsum("ij,j->i", matrix[: bounds[1]], probe, out=out[: bounds[1]])
    for future in futures:
        future.result()


def as_unit_matrix(vectors: npt.ArrayLike, dim: int | None) -> npt.NDArray[np.float32]:
    """``vectors`` as an (n, dim) C-contiguous float32 matrix of unit rows.

    Rows that are not unit length are normalised (the contract says callers pass unit vectors; normalising
    keeps the scores true cosines even when a caller does not). ``ModelMismatchError`` when the width is not
    the collection's dimension: vectors of different widths come from different recognizers.
    """
    try:
        matrix: npt.NDArray[np.float32] = np.array(vectors, dtype=np.float32, order="C", ndmin=2, copy=True)
    except (TypeError, ValueError) as exc:
        raise InvalidParameterError(f"face vectors must be numeric arrays: {exc}") from None
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise InvalidParameterError(f"face vectors must be 1-D, got shape {matrix.shape[1:]}")
    if dim is not None and matrix.shape[1] != dim:
        raise ModelMismatchError(f"vector has {matrix.shape[1]} dimensions, the collection's model has {dim}")
    if not np.isfinite(matrix).all():
        raise InvalidParameterError("face vectors must be finite")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if (norms < 1e-12).any():
        raise InvalidParameterError("face vectors must not be zero")
    if (np.abs(norms - 1.0) > 1e-5).any():  # unit vectors are kept bit for bit: get_vector returns them as given
        matrix /= norms
    return matrix


def as_unit_vector(vector: npt.ArrayLike, dim: int | None) -> Vector:
    """One probe vector as a 1-D float32 unit vector (see ``as_unit_matrix``)."""
    array = np.asarray(vector)
    if array.ndim != 1:
        raise InvalidParameterError(f"a face vector must be 1-D, got shape {array.shape}")
    unit: Vector = as_unit_matrix(array, dim)[0]
    return unit


def _scaled_template(total: npt.NDArray[np.float64], count: int) -> Vector:
    """The template of ``count`` unit vectors summing to ``total``: its direction × agreement^power."""
    norm = float(np.linalg.norm(total))
    agreement = min(1.0, norm / count)
    scaled: Vector = (total / norm * agreement**TEMPLATE_AGREEMENT_POWER).astype(np.float32)
    return scaled


def user_template(vectors: npt.ArrayLike) -> Vector:
    """A user's template from its faces' vectors: ``probe @ user_template(vs)`` is the score ``search_users``
    gives the user (see ``TEMPLATE_AGREEMENT_POWER``)."""
    matrix = as_unit_matrix(vectors, None)
    return _scaled_template(matrix.astype(np.float64).sum(axis=0), matrix.shape[0])


def _top_k(scores: npt.NDArray[np.float32], k: int, floor: float) -> npt.NDArray[np.intp]:
    """Indices of the ``k`` highest scores that are ≥ ``floor``, best first (exact)."""
    n = scores.shape[0]
    if k <= 0 or n == 0:
        return np.empty(0, dtype=np.intp)
    if n >= _SAMPLE_FROM and k * _SAMPLE_PER_K * 4 <= n:
        # Random rows, not a stride: a stride can line up with structure in the rows (e.g. every other face
        # masked out by search_users) and make the bound useless. Distinct rows, so the sample is a subset.
        rows = np.unique(np.random.default_rng(n).integers(0, n, k * _SAMPLE_PER_K))
        sample = scores[rows]
        if sample.shape[0] >= k:
            kth_of_sample = float(np.partition(sample, sample.shape[0] - k)[sample.shape[0] - k])
            # A subset's k-th best is ≤ the true k-th best: nothing in the top k is below it.
            floor = max(floor, kth_of_sample)
    candidates = np.flatnonzero(scores >= floor)
    if candidates.shape[0] > k:
        candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
    return candidates[np.argsort(-scores[candidates], kind="stable")]


class VectorIndex:
    """The vectors of one collection, with the user each face belongs to, for exact cosine search.

    ``generation`` is free for the owner to use (the SQLite store records which committed database state the
    index reflects); ``watermark`` is the change-log position it reflects, written into snapshots.

    Rows are append-only: a deleted face leaves a hole (``_live`` false, id cleared) that scans skip, and the
    rows are compacted once a quarter of them are holes (``_compact_rows``). So a row number is stable until a
    compaction, which lets it be the face's label in the compact index (no id → label table) and lets a
    snapshot keep counting rows of a file that its owner keeps appending to.
    """

    def __init__(self, dim: int, *, generation: int = 0, files: IndexFiles | None = None) -> None:
        if dim < 1:
            raise InvalidParameterError("vector dimension must be positive")
        self.dim = dim
        self.generation = generation
        self.watermark = 0
        self.files = files  # where snapshots live (None: memory only)
        self._lock = threading.Lock()
        self._rows = RowFile(dim)  # in memory until the collection is large and has a snapshot directory
        self._n = 0  # rows used, holes included
        self._count = 0  # live faces
        self._ids = FaceIds()
        self._live = np.zeros(0, dtype=np.bool_)
        self._users = np.empty(0, dtype=np.int32)
        self._scores = np.empty(0, dtype=np.float32)
        self._lookup = IdLookup()
        self._lookup_stale = False  # rows were loaded in bulk since the lookup was last built
        self._user_code: dict[str, int] = {}
        self._user_name: list[str] = []
        self._user_sum = np.zeros((0, dim), dtype=np.float64)  # per user code: sum of its faces' vectors
        self._user_faces = np.zeros(0, dtype=np.int64)  # per user code: how many faces
        self._templates = np.zeros((0, dim), dtype=np.float32)  # per user code: unit template (0: no faces)
        self._stale: set[int] = set()  # user codes whose template must be recomputed from the sum
        self._ann: CompactIndex | None = None  # the compact index of a large collection; labels are rows
        self._unsaved = 0  # faces added or removed since the last snapshot
        self._retrain: threading.Thread | None = None  # a retrain of an outgrown compact index, in progress
        self._epoch = 0  # bumped by every compaction (row numbers change)

    @classmethod
    def from_arrays(
        cls,
        face_ids: Sequence[str],
        matrix: npt.NDArray[np.float32],
        user_ids: Sequence[str | None],
        *,
        generation: int = 0,
    ) -> VectorIndex:
        """An index over already-validated unit rows (a store loading what it wrote); takes ``matrix``."""
        if matrix.ndim != 2 or matrix.shape[0] != len(face_ids) or len(user_ids) != len(face_ids):
            raise ValueError("face ids, vectors and users must have the same length")
        index = cls(matrix.shape[1], generation=generation)
        index.load_rows(face_ids, matrix, user_ids)
        return index

    def __len__(self) -> int:
        return self._count

    def __contains__(self, face_id: object) -> bool:
        if not isinstance(face_id, str):
            return False
        with self._lock:
            return self._find(face_id) is not None

    # --- rows ---------------------------------------------------------------------------------------------

    def _find(self, face_id: str) -> int | None:
        """(Lock held.) The live row of ``face_id``."""
        try:
            encoded = self._ids.encode([face_id])
        except ValueError:
            return None
        key = int(id_hashes(encoded)[0])
        if self._lookup_stale:
            self._rebuild_lookup()
        data, live = self._ids.data, self._live
        for row in self._lookup.candidates(key):
            if row < self._n and live[row] and np.array_equal(data[row], encoded[0]):
                return row
        return None

    def _rows_of(self, face_ids: Sequence[str]) -> npt.NDArray[np.intp]:
        """(Lock held.) The distinct live rows of those of ``face_ids`` that are indexed."""
        found = {row for f in face_ids if (row := self._find(f)) is not None}
        return np.fromiter(sorted(found), dtype=np.intp, count=len(found))

    def _reserve(self, rows: int) -> None:
        self._rows.reserve(rows, self._n)
        self._ids.reserve(rows)
        if rows > self._live.shape[0]:
            capacity = max(rows, _MIN_CAPACITY, self._live.shape[0] * 3 // 2)
            live = np.zeros(capacity, dtype=np.bool_)
            live[: self._n] = self._live[: self._n]
            users = np.full(capacity, _NO_USER, dtype=np.int32)
            users[: self._n] = self._users[: self._n]
            self._live, self._users = live, users

    def _rebuild_lookup(self) -> None:
        self._lookup.rebuild(id_hashes(self._ids.data[: self._n]), self._live[: self._n])
        self._lookup_stale = False

    def _append(
        self,
        encoded: npt.NDArray[np.uint8],
        vectors: npt.NDArray[np.float32],
        codes: npt.NDArray[np.int32],
        *,
        bulk: bool = False,
    ) -> None:
        """(Lock held.) New rows at the end: ids, vectors, users, the id lookup and the compact index."""
        k, start = encoded.shape[0], self._n
        self._reserve(start + k)
        self._rows.matrix[start : start + k] = vectors
        self._ids.put(start, encoded)
        self._live[start : start + k] = True
        self._users[start : start + k] = _NO_USER
        self._n, self._count = start + k, self._count + k
        rows = np.arange(start, start + k, dtype=np.intp)
        self._assign(rows, codes)
        if bulk:
            self._lookup_stale = True  # rebuilt once at the next lookup, not per chunk of a load
        elif self._lookup_stale or self._lookup.added(id_hashes(encoded), start):
            self._rebuild_lookup()
        if self._ann is not None:
            self._ann.add(rows.astype(np.int64), vectors)
            self._unsaved += k

    def load_rows(
        self, face_ids: Sequence[str], vectors: npt.NDArray[np.float32], user_ids: Sequence[str | None]
    ) -> None:
        """Append faces a store read from its database (ids known to be new: no check, one pass)."""
        with self._lock:
            codes = np.fromiter((self._code(u) for u in user_ids), dtype=np.int32, count=len(user_ids))
            if (
                self._rows.path is None
                and self.files is not None
                and self.files.owner
                and self._count + len(face_ids) >= ann_min_faces()
            ):
                self._compact_rows()  # a large collection streams its rows into a file, not into RAM
            before = self._n
            self._append(self._ids.encode(face_ids), vectors, codes, bulk=True)
            if self._rows.path is not None and before // _RELEASE_ROWS != self._n // _RELEASE_ROWS:
                self._rows.release()  # a load of millions of rows: written pages need not stay mapped

    def add(
        self,
        face_ids: Sequence[str],
        vectors: npt.NDArray[np.float32],
        user_ids: Sequence[str | None] | None = None,
    ) -> None:
        """Append faces (unit rows, validated by the caller with ``as_unit_matrix``); ids must be new."""
        if vectors.shape != (len(face_ids), self.dim):
            raise ValueError(f"expected {len(face_ids)} vectors of {self.dim} dimensions, got {vectors.shape}")
        if len(set(face_ids)) != len(face_ids):
            raise ValueError("face already indexed")
        with self._lock:
            if any(self._find(face_id) is not None for face_id in face_ids):
                raise ValueError("face already indexed")
            users = user_ids if user_ids is not None else [None] * len(face_ids)
            codes = np.fromiter((self._code(u) for u in users), dtype=np.int32, count=len(face_ids))
            self._append(self._ids.encode(face_ids), vectors, codes)
            self._maybe_persist()

    def remove(self, face_ids: Sequence[str]) -> None:
        """Drop faces; ids that are not indexed are ignored."""
        with self._lock:
            self._remove_rows(self._rows_of(face_ids))
            self._maybe_persist()

    def _vectors_for(self, ann: CompactIndex, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.float32] | None:
        """(Lock held.) The rows' vectors when ``ann`` needs them to find a face's list (8-bit codes), else None:
        reading them back is a disk read per row of a 10 GB file that is mostly not cached."""
        return np.asarray(self._rows.matrix[rows]) if ann.outdated else None

    def _remove_rows(self, rows: npt.NDArray[np.intp]) -> None:
        if rows.shape[0] == 0:
            return
        self._assign(rows, np.full(rows.shape[0], _NO_USER, dtype=np.int32))
        if self._ann is not None:
            self._ann.remove(rows.astype(np.int64), self._vectors_for(self._ann, rows))
            self._unsaved += rows.shape[0]
        self._live[rows] = False
        self._ids.clear(rows)
        self._count -= rows.shape[0]
        holes = self._n - self._count
        if holes > max(_COMPACT_MIN_HOLES, self._n // 4):
            self._compact_rows()

    def apply_changes(
        self,
        touched: Sequence[str],
        face_ids: Sequence[str],
        vectors: npt.NDArray[np.float32],
        user_ids: Sequence[str | None],
        watermark: int,
    ) -> None:
        """Catch up with the database after ``watermark``: every face in ``touched`` (added, deleted or moved
        to another user since) is dropped, then ``face_ids`` (those of them that exist now, with their
        current vectors and users) are added. Replaying a change twice is harmless, so a store may pass a
        few changes the index already has."""
        with self._lock:
            self._remove_rows(self._rows_of(touched))
            if face_ids:
                codes = np.fromiter((self._code(u) for u in user_ids), dtype=np.int32, count=len(user_ids))
                self._append(self._ids.encode(face_ids), vectors, codes)
            self.watermark = watermark

    def _compact_rows(self) -> None:
        """(Lock held.) Close the holes: live rows are renumbered in order (the compact index is relabelled,
        not rebuilt). The owner of a snapshot directory writes them to a new row file (the current snapshot
        keeps the old one until the next is committed); others compact in memory."""
        keep = np.flatnonzero(self._live[: self._n])
        new_row = np.full(max(self._n, 1), -1, dtype=np.int64)
        new_row[keep] = np.arange(keep.shape[0])
        files = self.files
        if files is not None and files.owner and (self._rows.path is not None or self._count >= ann_min_faces()):
            path = files.path(files.next_serial(), "rows")
            self._rows.write_copy(path, keep)
            self._rows = RowFile(self.dim, path)
        else:
            rows = RowFile(self.dim)
            rows.matrix = np.array(self._rows.matrix[keep], dtype=np.float32)
            self._rows = rows
        self._ids = FaceIds(self._ids.data[keep])
        self._users = np.ascontiguousarray(self._users[keep])
        self._live = np.ones(keep.shape[0], dtype=np.bool_)
        self._n = self._count = int(keep.shape[0])
        self._rebuild_lookup()
        if self._ann is not None:
            self._ann.relabel(new_row)
        self._epoch += 1  # a retrain in progress read the old row numbers
        if self._rows.path is not None:
            self._persist()  # the snapshot moves to the new row file; the old one can go

    def _code(self, user_id: str | None) -> int:
        if user_id is None:
            return _NO_USER
        code = self._user_code.get(user_id)
        if code is None:
            code = self._user_code[user_id] = len(self._user_name)
            self._user_name.append(user_id)
            if code >= self._user_sum.shape[0]:
                grown = max(16, code * 3 // 2 + 1)
                self._user_sum = np.concatenate([self._user_sum, np.zeros((grown - code, self.dim))])
                self._user_faces = np.concatenate([self._user_faces, np.zeros(grown - code, dtype=np.int64)])
                self._templates = np.concatenate(
                    [self._templates, np.zeros((grown - code, self.dim), dtype=np.float32)]
                )
        return code

    def _assign(self, rows: npt.NDArray[np.intp], codes: npt.NDArray[np.int32]) -> None:
        """(Lock held.) Rows ``rows`` now belong to users ``codes`` (``_NO_USER``: none), keeping the users'
        sums current (vectorised: a load assigns millions of rows)."""
        old = self._users[rows]
        moved = old != codes
        if not moved.any():
            return
        rows, old, codes = rows[moved], old[moved], codes[moved]
        for start in range(0, rows.shape[0], _SUM_CHUNK):  # bounded float64 copies
            part = slice(start, start + _SUM_CHUNK)
            vectors = np.asarray(self._rows.matrix[rows[part]], dtype=np.float64)
            was, now = old[part], codes[part]
            if (had := was != _NO_USER).any():
                np.subtract.at(self._user_sum, was[had], vectors[had])
                np.subtract.at(self._user_faces, was[had], 1)
            if (has := now != _NO_USER).any():
                np.add.at(self._user_sum, now[has], vectors[has])
                np.add.at(self._user_faces, now[has], 1)
        self._stale.update(np.unique(np.concatenate([old, codes])).tolist())
        self._stale.discard(_NO_USER)
        self._users[rows] = codes

    def set_user(self, face_ids: Sequence[str], user_id: str | None) -> None:
        """Record that these faces now belong to ``user_id`` (None: to nobody)."""
        with self._lock:
            rows = self._rows_of(face_ids)
            self._assign(rows, np.full(rows.shape[0], self._code(user_id), dtype=np.int32))

    def clear_user(self, user_id: str) -> None:
        """Forget a deleted user: its faces become unassociated."""
        with self._lock:
            code = self._user_code.get(user_id)
            if code is not None:
                users = self._users[: self._n]
                users[users == code] = _NO_USER
                self._user_sum[code] = 0.0
                self._user_faces[code] = 0
                self._stale.add(code)

    # --- reads --------------------------------------------------------------------------------------------

    def vector(self, face_id: str) -> Vector | None:
        with self._lock:
            row = self._find(face_id)
            return None if row is None else np.array(self._rows.matrix[row], dtype=np.float32)

    def _scan(self, probe: Vector) -> npt.NDArray[np.float32]:
        """Cosine of every row to ``probe``, holes at -inf (into a reused buffer; call with the lock held)."""
        n = self._n
        if self._scores.shape[0] < n:
            self._scores = np.empty(max(n, self._live.shape[0]), dtype=np.float32)
        scores = self._scores[:n]
        _cosines(self._rows.matrix[:n], probe, scores)
        if self._count < n:
            np.putmask(scores, ~self._live[:n], -np.inf)
        return scores

    def search(
        self, probe: Vector, *, limit: int, min_cosine: float, exclude_face_id: str | None = None
    ) -> list[tuple[str, float]]:
        """(face id, cosine) of the ``limit`` best faces with cosine ≥ ``min_cosine``, best first."""
        probe = as_unit_vector(probe, self.dim)
        with self._lock:
            if self._count == 0:
                return []
            extra = 1 if exclude_face_id is not None and self._find(exclude_face_id) is not None else 0
            ann = self._compact()
            if ann is not None:
                # Candidates from the compact index (labels are rows), each scored exactly: a scan's cosines.
                rows = np.sort(ann.candidates(probe, max(limit + extra, _CANDIDATES)))
                rows = rows[self._live[rows]]  # never a hole, whatever the index holds
                self._rows.prefetch(rows)  # one batch of disk reads when the rows are not in the page cache
                exact = np.einsum("ij,j->i", self._rows.matrix[rows], probe)
                best = _top_k(exact, limit + extra, min_cosine)
                found = [(self._ids.get(int(rows[i])), float(exact[i])) for i in best]
            else:
                scores = self._scan(probe)
                best = _top_k(scores, limit + extra, min_cosine)
                found = [(self._ids.get(int(i)), float(scores[i])) for i in best]
        return [hit for hit in found if hit[0] != exclude_face_id][:limit]

    # --- the compact index of a large collection ------------------------------------------------------

    @property
    def compact(self) -> CompactIndex | None:
        """The compact index searched instead of the scan (None: exact scan)."""
        return self._ann

    @property
    def retraining(self) -> bool:
        """Whether new lists for an outgrown compact index are being trained in the background."""
        thread = self._retrain
        return thread is not None and thread.is_alive()

    def _compact(self) -> CompactIndex | None:
        """(Lock held.) The compact index if the collection is large enough to use one, built now if there is
        none yet. One that the collection outgrew keeps answering (longer lists: slower, as exact) while new
        lists are trained in the background and swapped in (``_retrain_in_background``)."""
        if self._count < ann_min_faces():
            return None
        ann = self._ann
        if ann is not None:
            if (self._count > ann.trained_on * RETRAIN_GROWTH or ann.outdated) and not self.retraining:
                self._retrain = threading.Thread(
                    target=self._retrain_in_background, name="facetrace-ann-retrain", daemon=True
                )
                self._retrain.start()
            return ann
        if not faiss_available():
            return None
        started = time.perf_counter()
        if self.files is not None and self.files.owner and self._rows.path is None:
            self._compact_rows()  # the rows move to a file beside the database: RAM keeps only the codes
        try:
            ann = CompactIndex.train(self._rows.matrix[: self._n], self._count)
            self._add_live(ann, self._rows.matrix, self._live[: self._n].copy())
        except (RuntimeError, MemoryError):  # faiss failed: the exact scan still answers, correctly
            log.exception("the compact index of %d faces could not be built; scanning exactly", self._count)
            return None
        self._ann = ann
        self._rows.release()
        log.info("compact index of %d faces built in %.1f s", self._count, time.perf_counter() - started)
        self._persist()
        return ann

    def _add_live(
        self,
        ann: CompactIndex,
        matrix: npt.NDArray[np.float32],
        live: npt.NDArray[np.bool_],
        lists: npt.NDArray[np.int64] | None = None,
    ) -> None:
        """Add every live row to ``ann``, a chunk at a time (the rows may be a 10 GB file, whose pages are let
        go as it goes: they would otherwise count as this process's memory until the kernel needs them);
        ``lists`` (a recode) keeps each row in the list it was in."""
        for start in range(0, live.shape[0], _BUILD_CHUNK):
            rows = start + np.flatnonzero(live[start : start + _BUILD_CHUNK])
            if rows.shape[0] and matrix is self._rows.matrix:
                self._rows.prefetch(rows)  # one read-ahead request for the chunk, not a fault per page
            if rows.shape[0]:
                vectors = np.asarray(matrix[start : start + _BUILD_CHUNK][rows - start])
                ann.add(rows.astype(np.int64), vectors, None if lists is None else lists[rows])
            if (start // _BUILD_CHUNK) % 8 == 7 and matrix is self._rows.matrix:
                self._rows.release()

    def _retrain_in_background(self) -> None:
        """Train new lists on the collection as it is now, fill them without the lock, then swap them in
        under the lock after replaying what changed meanwhile (rows added since are added, rows deleted since
        are removed). A compaction meanwhile renumbered the rows: the new index is dropped and redone later.
        An index of an earlier snapshot's 8-bit codes (``CompactIndex.outdated``) is recoded instead: its
        lists are kept, each face in the one it is in, and only the codes are new."""
        with self._lock:
            matrix, used, count = self._rows.matrix, self._n, self._count
            live = self._live[:used].copy()
            epoch = self._epoch
            picked = np.random.default_rng(count).choice(used, min(used, _RETRAIN_SAMPLE), replace=False)
            sample = np.asarray(matrix[np.sort(picked)], dtype=np.float32)
            old = self._ann
            recode = old is not None and old.outdated and count <= old.trained_on * RETRAIN_GROWTH
            lists = old.list_numbers(used) if old is not None and recode else None
        started = time.perf_counter()
        try:
            fresh = old.recode(sample) if old is not None and recode else CompactIndex.train(sample, count)
            self._add_live(fresh, matrix, live, lists)
            fresh.finish()
        except (RuntimeError, MemoryError):
            log.exception("retraining the compact index of %d faces failed; the old one stays", count)
            return
        with self._lock:
            if epoch != self._epoch or self._ann is None:
                return
            now = self._live[:used]
            gone = np.flatnonzero(live & ~now)
            fresh.remove(gone.astype(np.int64), self._vectors_for(fresh, gone))
            added = used + np.flatnonzero(self._live[used : self._n])
            fresh.add(added.astype(np.int64), np.asarray(self._rows.matrix[added]))
            self._ann = fresh
            log.info("compact index retrained on %d faces in %.1f s", count, time.perf_counter() - started)
            self._persist()

    def wait_retrained(self, timeout: float | None = None) -> bool:
        """Wait for a background retrain to finish (tests, benchmarks); True when none is running."""
        thread = self._retrain
        if thread is not None:
            thread.join(timeout)
        return not self.retraining

    def _maybe_persist(self) -> None:
        if self._ann is not None and self._unsaved > max(_SAVE_EVERY, self._count // 10):
            self._persist()

    def _persist(self) -> bool:
        """(Lock held.) Write a snapshot if this process owns the directory and the collection has a compact
        index (a small one loads from the database in well under a second). Returns whether it did."""
        files = self.files
        if files is None or not files.owner or self._ann is None:
            return False
        if self._rows.path is None:
            self._compact_rows()  # moves the rows to a file, then comes back here
            return True
        try:
            self._rows.flush()
            serial = files.next_serial()
            written = {
                "ids": files.write_array(serial, "ids", self._ids.data[: self._n]),
                "users": files.write_array(serial, "users", self._users[: self._n]),
                "usersum": files.write_array(serial, "usersum", self._user_sum[: len(self._user_name)]),
            }
            faiss_path = files.path(serial, "faiss")
            self._ann.save(faiss_path)
            written["faiss"] = files.sealed(faiss_path)
            meta = SnapshotMeta(
                serial=serial, dim=self.dim, rows=self._n, width=self._ids.width, watermark=self.watermark,
                rows_file=self._rows.path.name, rows_crc=row_sample_crc(self._rows.matrix, self._n),
                files=written, user_names=tuple(self._user_name), trained_on=self._ann.trained_on,
            )  # fmt: skip
            files.commit(meta)
            files.drop_rows_except(self._rows.path.name)
        except OSError:  # a cache: without it the next start loads from the database
            log.warning("could not write the index snapshot of %s", files.name, exc_info=True)
            return False
        self._unsaved = 0
        return True

    def persist(self) -> bool:
        """Write a snapshot now (a store calls this when it closes), so the next start maps it and replays
        the changes after ``watermark`` instead of reading every row and building the compact index."""
        with self._lock:
            return self._persist()

    def prepare(self) -> None:
        """Build the compact index now if the collection is large enough (at server start)."""
        with self._lock:
            self._compact()

    @classmethod
    def open_snapshot(cls, files: IndexFiles, dim: int) -> VectorIndex | None:
        """The index as of the last snapshot in ``files`` (None: there is none, or a file is missing, short or
        fails its checksum: the caller loads from the database). Only the row file's pages a search touches
        are read; ids, users and the compact index's codes are read into memory. The caller then replays
        the changes after ``watermark`` (``apply_changes``)."""
        meta = files.read_meta()
        if meta is None or meta.dim != dim or not files.check(meta):
            return None
        try:
            rows = RowFile(dim, files.directory.path / meta.rows_file, mode="r+" if files.owner else "c")
            if rows.capacity < meta.rows or row_sample_crc(rows.matrix, meta.rows) != meta.rows_crc:
                log.warning("the row file of index snapshot %s is short or changed; rebuilding", files.name)
                return None
            ids = np.fromfile(files.path(meta.serial, "ids"), dtype=np.uint8).reshape(meta.rows, meta.width)
            users = np.fromfile(files.path(meta.serial, "users"), dtype=np.int32)
            sums = np.fromfile(files.path(meta.serial, "usersum"), dtype=np.float64).reshape(-1, dim)
            ann = (
                CompactIndex.load(files.path(meta.serial, "faiss"), meta.trained_on)
                if "faiss" in meta.files
                else None
            )
        except (OSError, ValueError):
            log.warning("index snapshot %s cannot be read; rebuilding", files.name, exc_info=True)
            return None
        names = meta.user_names
        if users.shape[0] != meta.rows or sums.shape[0] != len(names) or (ann is not None and ann.dim != dim):
            return None
        index = cls(dim, files=files)
        index._rows, index._n, index._ids, index._users = rows, meta.rows, FaceIds(ids), users
        index._live = ids[:, 0] != 0
        index._count = int(index._live.sum())
        if ann is not None and len(ann) != index._count:
            return None
        index._user_name = list(names)
        index._user_code = {name: code for code, name in enumerate(names)}
        index._user_sum = sums
        index._user_faces = np.bincount(users[users != _NO_USER], minlength=len(names)).astype(np.int64)
        index._templates = np.zeros((len(names), dim), dtype=np.float32)
        index._stale = set(range(len(names)))
        index._lookup_stale = True  # built at the first lookup (a start-up that only searches needs none)
        index._ann, index.watermark = ann, meta.watermark
        return index

    def _fresh_templates(self) -> npt.NDArray[np.float32]:
        """Every user code's template, scaled so that a dot product is the user's score (``user_template``;
        a zero row for users without faces); call with the lock."""
        if self._stale:
            codes = np.fromiter(self._stale, dtype=np.intp, count=len(self._stale))
            counts = self._user_faces[codes]
            rows = np.zeros((len(codes), self.dim), dtype=np.float32)
            for i in np.flatnonzero(counts > 0):
                rows[i] = _scaled_template(self._user_sum[codes[i]], int(counts[i]))
            self._templates[codes] = rows
            self._stale.clear()
        return self._templates[: len(self._user_name)]

    def search_users(
        self, probe: Vector, *, limit: int, min_cosine: float, exclude_user_id: str | None = None
    ) -> list[tuple[str, float, str]]:
        """(user id, template cosine, the user's face closest to the probe) of the ``limit`` best users.

        A user's score is the cosine between the probe and the user's template (see the module docstring);
        ``search_users_by_face`` ranks by the best single face instead (how users were scored before).
        """
        probe = as_unit_vector(probe, self.dim)
        with self._lock:
            n = self._n
            if self._count == 0 or limit <= 0:
                return []
            templates = self._fresh_templates()
            user_scores = np.einsum("ij,j->i", templates, probe)
            if exclude_user_id is not None and exclude_user_id in self._user_code:
                user_scores[self._user_code[exclude_user_id]] = -np.inf
            # zero templates (users without faces) score 0, which a search with min_cosine ≤ 0 would keep
            np.putmask(user_scores, self._user_faces[: len(self._user_name)] == 0, -np.inf)
            codes = _top_k(user_scores, limit, min_cosine)
            if codes.shape[0] == 0:
                return []
            users = self._users[:n]
            wanted = np.zeros(len(self._user_name) + 1, dtype=np.bool_)  # last slot: _NO_USER (-1)
            wanted[codes] = True
            rows = np.flatnonzero(wanted[users])
            # only the wanted users' faces are scored (not a scan of the collection: it may hold 20M faces)
            scores = np.einsum("ij,j->i", self._rows.matrix[rows], probe)
            # the closest face of each wanted user: sort its rows by (user, -score), take the first of each
            rows = rows[np.lexsort((-scores, users[rows]))]
            first = rows[np.unique(users[rows], return_index=True)[1]]
            closest = {int(users[row]): self._ids.get(int(row)) for row in first}
            return [(self._user_name[c], float(user_scores[c]), closest[int(c)]) for c in codes]

    def search_users_by_face(
        self, probe: Vector, *, limit: int, min_cosine: float, exclude_user_id: str | None = None
    ) -> list[tuple[str, float, str]]:
        """(user id, best cosine, face id giving it) of the ``limit`` best users by their best single face.

        Not what the stores use (they rank by template); kept to compare the two (``bench_users.py``).
        """
        probe = as_unit_vector(probe, self.dim)
        with self._lock:
            n = self._n
            if self._count == 0 or limit <= 0:
                return []
            scores = self._scan(probe)
            users = self._users[:n]
            unusable = users == _NO_USER
            excluded = self._user_code.get(exclude_user_id) if exclude_user_id is not None else None
            if excluded is not None:
                unusable |= users == excluded
            np.putmask(scores, unusable, -np.inf)
            # Ask for a few faces per wanted user; widen only when many of the best faces share a user.
            wanted = min(n, max(4 * limit, 64))
            while True:
                best = _top_k(scores, wanted, min_cosine)
                _, first = np.unique(users[best], return_index=True)
                if first.shape[0] >= limit or best.shape[0] < wanted or wanted >= n:
                    break
                wanted = min(n, wanted * 4)
            first.sort()
            rows = best[first[:limit]]
            return [(self._user_name[users[i]], float(scores[i]), self._ids.get(int(i))) for i in rows]
