"""Exact cosine search over one collection's vectors, held in memory as one contiguous float32 matrix.

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

Rows are kept dense: a delete moves the last row into the hole (swap-remove), so the scan never reads dead
rows and needs no mask; ``_slot`` maps face id → row. The matrix grows by 1.5× (amortised O(1) appends).

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
compact index follows every add and delete in place, is saved to ``ann_path`` and reconciled with the rows when
an index is loaded again.

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
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facetrace.errors import InvalidParameterError, ModelMismatchError
from facetrace.store.ann_index import (
    RETRAIN_GROWTH,
    CompactIndex,
    ann_min_faces,
    face_labels,
    faiss_available,
)
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
_ROWS_PER_WORKER = 32_768
_SAVE_EVERY = 20_000  # changes (and at least a tenth of the collection) between saves of a compact index  # below this a thread hand-off costs more than it saves

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
    index reflects).
    """

    def __init__(self, dim: int, *, generation: int = 0) -> None:
        if dim < 1:
            raise InvalidParameterError("vector dimension must be positive")
        self.dim = dim
        self.generation = generation
        self._lock = threading.Lock()
        self._matrix = np.empty((0, dim), dtype=np.float32)
        self._users = np.empty(0, dtype=np.int32)
        self._scores = np.empty(0, dtype=np.float32)
        self._ids: list[str] = []
        self._slot: dict[str, int] = {}
        self._user_code: dict[str, int] = {}
        self._user_name: list[str] = []
        self._user_sum = np.zeros((0, dim), dtype=np.float64)  # per user code: sum of its faces' vectors
        self._user_faces = np.zeros(0, dtype=np.int64)  # per user code: how many faces
        self._templates = np.zeros((0, dim), dtype=np.float32)  # per user code: unit template (0: no faces)
        self._stale: set[int] = set()  # user codes whose template must be recomputed from the sum
        # The compact index of a large collection (``ann_index``): ``_labels`` is each row's label in it,
        # ``_row_of`` the reverse; all three are None while the collection is searched exactly.
        self._ann: CompactIndex | None = None
        self._labels: npt.NDArray[np.int64] | None = None
        self._row_of: dict[int, int] | None = None
        self.ann_path: Path | None = None  # where the compact index is persisted (None: memory only)
        self._unsaved = 0  # faces added or removed since the compact index was last saved

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
        index._matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        index._ids = list(face_ids)
        index._slot = {face_id: i for i, face_id in enumerate(index._ids)}
        index._users = np.fromiter((index._code(u) for u in user_ids), dtype=np.int32, count=len(user_ids))
        index._scores = np.empty(len(face_ids), dtype=np.float32)
        index._recount_users()
        return index

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, face_id: object) -> bool:
        return face_id in self._slot

    # --- writes -------------------------------------------------------------------------------------------

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

    def _recount_users(self) -> None:
        """Every user's vector sum from the rows (loading, ``clear_user``)."""
        n = len(self._ids)
        self._user_sum[:] = 0.0
        users = self._users[:n]
        rows = np.flatnonzero(users != _NO_USER)
        self._user_faces[:] = np.bincount(users[rows], minlength=self._user_faces.shape[0])
        for start in range(0, rows.shape[0], 65_536):  # bounded float64 copies
            chunk = rows[start : start + 65_536]
            np.add.at(self._user_sum, users[chunk], self._matrix[chunk].astype(np.float64))
        self._stale = set(range(len(self._user_name)))

    def _move_to_user(self, rows: npt.NDArray[np.intp], code: int) -> None:
        """Reassign ``rows`` to user ``code`` (``_NO_USER``: none), keeping the users' sums current."""
        for row in rows:
            old = int(self._users[row])
            if old == code:
                continue
            vector = self._matrix[row].astype(np.float64)
            if old != _NO_USER:
                self._user_sum[old] -= vector
                self._user_faces[old] -= 1
                self._stale.add(old)
            if code != _NO_USER:
                self._user_sum[code] += vector
                self._user_faces[code] += 1
                self._stale.add(code)
            self._users[row] = code

    def _reserve(self, rows: int) -> None:
        if rows <= self._matrix.shape[0]:
            return
        capacity = max(rows, _MIN_CAPACITY, self._matrix.shape[0] * 3 // 2)
        n = len(self._ids)
        matrix = np.empty((capacity, self.dim), dtype=np.float32)
        matrix[:n] = self._matrix[:n]
        users = np.full(capacity, _NO_USER, dtype=np.int32)
        users[:n] = self._users[:n]
        self._matrix, self._users = matrix, users
        self._scores = np.empty(capacity, dtype=np.float32)
        if self._labels is not None:
            labels = np.zeros(capacity, dtype=np.int64)
            labels[:n] = self._labels[:n]
            self._labels = labels

    def add(
        self,
        face_ids: Sequence[str],
        vectors: npt.NDArray[np.float32],
        user_ids: Sequence[str | None] | None = None,
    ) -> None:
        """Append faces (unit rows, validated by the caller with ``as_unit_matrix``); ids must be new."""
        if vectors.shape != (len(face_ids), self.dim):
            raise ValueError(f"expected {len(face_ids)} vectors of {self.dim} dimensions, got {vectors.shape}")
        with self._lock:
            if any(face_id in self._slot for face_id in face_ids):
                raise ValueError("face already indexed")
            n = len(self._ids)
            self._reserve(n + len(face_ids))
            self._matrix[n : n + len(face_ids)] = vectors
            users = user_ids if user_ids is not None else [None] * len(face_ids)
            self._users[n : n + len(face_ids)] = _NO_USER
            codes = [self._code(u) for u in users]
            for i, code in enumerate(codes):
                if code != _NO_USER:
                    self._move_to_user(np.array([n + i]), code)
            for i, face_id in enumerate(face_ids):
                self._slot[face_id] = n + i
            self._ids.extend(face_ids)
            if self._ann is not None and self._labels is not None and self._row_of is not None:
                labels = face_labels(face_ids)
                self._labels[n : n + len(face_ids)] = labels
                self._row_of.update(zip(labels.tolist(), range(n, n + len(face_ids)), strict=True))
                self._ann.add(labels, vectors)
                self._unsaved += len(face_ids)

    def remove(self, face_ids: Sequence[str]) -> None:
        """Drop faces; ids that are not indexed are ignored."""
        with self._lock:
            gone: list[int] = []  # labels to drop from the compact index, in one call
            for face_id in face_ids:
                slot = self._slot.pop(face_id, None)
                if slot is None:
                    continue
                self._move_to_user(np.array([slot]), _NO_USER)
                last = len(self._ids) - 1
                if self._labels is not None and self._row_of is not None:
                    gone.append(int(self._labels[slot]))
                    self._row_of.pop(gone[-1], None)
                    if slot != last:
                        self._labels[slot] = self._labels[last]
                        self._row_of[int(self._labels[last])] = slot
                if slot != last:
                    moved = self._ids[last]
                    self._matrix[slot] = self._matrix[last]
                    self._users[slot] = self._users[last]
                    self._ids[slot] = moved
                    self._slot[moved] = slot
                self._ids.pop()
            if self._ann is not None and gone:
                self._ann.remove(np.array(gone, dtype=np.int64))
                self._unsaved += len(gone)

    def set_user(self, face_ids: Sequence[str], user_id: str | None) -> None:
        """Record that these faces now belong to ``user_id`` (None: to nobody)."""
        with self._lock:
            code = self._code(user_id)
            slots = [self._slot[face_id] for face_id in face_ids if face_id in self._slot]
            self._move_to_user(np.array(slots, dtype=np.intp), code)

    def clear_user(self, user_id: str) -> None:
        """Forget a deleted user: its faces become unassociated."""
        with self._lock:
            code = self._user_code.get(user_id)
            if code is not None:
                users = self._users[: len(self._ids)]
                users[users == code] = _NO_USER
                self._user_sum[code] = 0.0
                self._user_faces[code] = 0
                self._stale.add(code)

    # --- reads --------------------------------------------------------------------------------------------

    def vector(self, face_id: str) -> Vector | None:
        with self._lock:
            slot = self._slot.get(face_id)
            return None if slot is None else self._matrix[slot].copy()

    def _scan(self, probe: Vector) -> npt.NDArray[np.float32]:
        """Cosine of every row to ``probe`` (into a reused buffer; call with the lock held)."""
        n = len(self._ids)
        scores = self._scores[:n]
        _cosines(self._matrix[:n], probe, scores)
        return scores

    def search(
        self, probe: Vector, *, limit: int, min_cosine: float, exclude_face_id: str | None = None
    ) -> list[tuple[str, float]]:
        """(face id, cosine) of the ``limit`` best faces with cosine ≥ ``min_cosine``, best first."""
        probe = as_unit_vector(probe, self.dim)
        with self._lock:
            if not self._ids:
                return []
            extra = 1 if exclude_face_id is not None and exclude_face_id in self._slot else 0
            ann = self._compact()
            if ann is not None and self._row_of is not None:
                # Candidates from the compact index, each scored exactly: the same cosines as a scan.
                wanted = max(limit + extra, 64)
                row_of = self._row_of
                rows = np.fromiter(
                    (r for r in (row_of.get(int(x)) for x in ann.candidates(probe, wanted)) if r is not None),
                    dtype=np.intp,
                )
                exact = np.einsum("ij,j->i", self._matrix[rows], probe)
                best = _top_k(exact, limit + extra, min_cosine)
                found = [(self._ids[rows[i]], float(exact[i])) for i in best]
            else:
                scores = self._scan(probe)
                best = _top_k(scores, limit + extra, min_cosine)
                found = [(self._ids[i], float(scores[i])) for i in best]
        return [hit for hit in found if hit[0] != exclude_face_id][:limit]

    # --- the compact index of a large collection ------------------------------------------------------

    @property
    def compact(self) -> CompactIndex | None:
        """The compact index searched instead of the scan (None: exact scan)."""
        return self._ann

    def _compact(self) -> CompactIndex | None:
        """(Lock held.) The compact index if the collection is large enough to use one: loaded from
        ``ann_path`` and reconciled, or built; retrained once the collection outgrew its clustering."""
        n = len(self._ids)
        if n < ann_min_faces():
            return None
        ann = self._ann
        if ann is not None and n <= ann.trained_on * RETRAIN_GROWTH:
            if self._unsaved > max(_SAVE_EVERY, n // 10) and self.ann_path is not None:
                self._persist()  # so that a restart (or a reload after another process wrote) reconciles little
            return ann
        if not faiss_available():
            return None
        if ann is not None:  # outgrown: its lists have become too long, train new ones on the collection as it is
            ann = None
        elif self.ann_path is not None:
            ann = CompactIndex.load(self.ann_path)
            if ann is not None and (ann.dim != self.dim or n > ann.trained_on * RETRAIN_GROWTH):
                ann = None
        started = time.perf_counter()
        labels = np.zeros(self._matrix.shape[0], dtype=np.int64)
        labels[:n] = face_labels(self._ids)
        changed = n
        try:
            if ann is None:
                ann = CompactIndex.train(self._matrix[:n], n)
                ann.add(labels[:n], self._matrix[:n])
            else:
                changed = _reconcile(ann, labels[:n], self._matrix[:n])
        except (RuntimeError, MemoryError):  # faiss failed: the exact scan still answers, correctly
            log.exception("the compact index of %d faces could not be built; scanning exactly", n)
            return self._ann if self._ann is not None and self._labels is not None else None
        self._ann, self._labels = ann, labels
        self._row_of = dict(zip(labels[:n].tolist(), range(n), strict=True))
        log.info(
            "compact index of %d faces ready in %.1f s (%d changed)", n, time.perf_counter() - started, changed
        )
        if changed and self.ann_path is not None:
            self._persist()
        return ann

    def _persist(self) -> None:
        if self._ann is not None and self.ann_path is not None:
            try:
                self._ann.save(self.ann_path)
                self._unsaved = 0
            except OSError:  # a cache: a server that cannot write it rebuilds it at its next start
                log.warning("could not save the compact index to %s", self.ann_path, exc_info=True)

    def persist(self) -> None:
        """Save the compact index next to the database (a server calls this when it closes), so the next
        start reconciles it instead of building it."""
        with self._lock:
            self._persist()

    def prepare(self) -> None:
        """Load or build the compact index now if the collection is large enough (at server start)."""
        with self._lock:
            self._compact()

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
            n = len(self._ids)
            if n == 0 or limit <= 0:
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
            scores = np.einsum("ij,j->i", self._matrix[rows], probe)
            # the closest face of each wanted user: sort its rows by (user, -score), take the first of each
            rows = rows[np.lexsort((-scores, users[rows]))]
            first = rows[np.unique(users[rows], return_index=True)[1]]
            closest = {int(users[row]): self._ids[row] for row in first}
            return [(self._user_name[c], float(user_scores[c]), closest[int(c)]) for c in codes]

    def search_users_by_face(
        self, probe: Vector, *, limit: int, min_cosine: float, exclude_user_id: str | None = None
    ) -> list[tuple[str, float, str]]:
        """(user id, best cosine, face id giving it) of the ``limit`` best users by their best single face.

        Not what the stores use (they rank by template); kept to compare the two (``bench_users.py``).
        """
        probe = as_unit_vector(probe, self.dim)
        with self._lock:
            n = len(self._ids)
            if n == 0 or limit <= 0:
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
            return [(self._user_name[users[i]], float(scores[i]), self._ids[i]) for i in rows]


def _reconcile(ann: CompactIndex, labels: npt.NDArray[np.int64], matrix: npt.NDArray[np.float32]) -> int:
    """Bring a persisted compact index up to the collection's rows: drop faces deleted since it was saved,
    add the ones indexed since (set difference of labels, by sorting: numpy's hashed ``isin`` measured
    ~1 s per 300k labels). Returns how many changed."""
    present = ann.labels()
    ordered_present = np.sort(present)
    ordered_labels = np.sort(labels)
    stale = present[~_member(present, ordered_labels)]
    ann.remove(stale)
    missing = np.flatnonzero(~_member(labels, ordered_present))
    ann.add(labels[missing], matrix[missing])
    return int(stale.shape[0] + missing.shape[0])


def _member(values: npt.NDArray[np.int64], ordered: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Whether each value is in the sorted array ``ordered``."""
    if ordered.shape[0] == 0:
        return np.zeros(values.shape[0], dtype=np.bool_)
    at = np.minimum(np.searchsorted(ordered, values), ordered.shape[0] - 1)
    found: npt.NDArray[np.bool_] = ordered[at] == values
    return found
