"""A compact approximate index of a large collection: candidates for exact re-scoring, not answers.

Past ``ann_min_faces()`` faces a ``VectorIndex`` asks this index for a few dozen candidates and scores them
exactly against its float32 rows, so every similarity a caller sees is the exact cosine it is today and a
threshold keeps its meaning; only *which* faces are looked at is approximate (recall@10 against the exact scan
is measured by ``benchmarks/bench_ann.py``, docs/scale-index.md).

Why faiss IVF (inverted lists by L2 distance): measured side by side on 1M face-like SFace vectors
(docs/scale-index.md) its 8-bit scalar codes reached recall@10 0.99 after re-scoring at ~1.4 ms a query and
added 1M vectors in 49 s, while usearch's HNSW with int8 storage took 557 s to add them and reached only 0.88 on
the same vectors (why was not investigated: a build 11× slower already ruled it out on two cores). At 20M faces
the 8-bit codes' scan was ~20 ms of a query, so new indexes store 4-bit product-quantised "fast-scan" codes
(``new_ivf``: 32 bytes a face, ~9× faster to scan) and re-score more candidates exactly; an index of 8-bit codes
from an earlier snapshot still opens and answers (its lists split across the cores: ``scan_threads``) while
it is recoded in the background, keeping its lists (``recode``). One face is 32 bytes of codes plus its
8-byte label: 0.8 GB at 20M faces instead of 10 GB of float32 (2.7 GB with 8-bit codes).

Labels are the faces' row numbers in the owning ``VectorIndex`` (rows are append-only, and a compaction
relabels the lists in place: ``relabel``), so re-scoring reads the candidates' rows directly and the index
needs no id table of its own; it is saved inside the index snapshot (``index_files``) together with the rows
it labels. Deletes are real deletes, found through the list the face's vector is assigned to (no direct map:
faiss's hash table would cost ~0.8 GB and ~10 s of start-up at 20M faces), so there are no tombstones; the
coarse clustering is trained once, on the collection as it is when it crosses the threshold, and is retrained
in the background (``VectorIndex``) when the collection has grown ``RETRAIN_GROWTH``-fold since.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facetrace.types import Vector

__all__ = [
    "ANN_MIN_FACES",
    "RETRAIN_GROWTH",
    "CompactIndex",
    "ann_min_faces",
    "faiss_available",
    "scan_threads",
]

ANN_MIN_FACES = 300_000
"""Below this many faces the exact scan is used: it takes ≈ 5 ms at 300k on an idle machine
(``bench_search.py``), within its target, and needs no training pass (minutes under load). Measured side by
side at 100k / 300k / 1M the compact index answered 12× / 4× / 19× faster than the scan with recall@10 ≥ 0.99
(docs/scale-index.md, on a heavily loaded machine). ``$FACETRACE_ANN_MIN_FACES`` overrides it."""

RETRAIN_GROWTH = 4
_TRAIN_PER_LIST = 40  # faiss wants ≥ 39 training points per list
_MAX_TRAIN = 120_000
_CANDIDATES = 64  # measured: 64 candidates of the 8-bit index re-scored exactly reach recall@10 ≥ 0.99
_ADD_CHUNK = 65_536

_PQ_TRAIN_MIN = 4096  # the 4-bit codebooks: 16 centres per 2 dimensions want a few thousand rows
_BY_RESIDUAL = True  # codes of the face minus its list's centre: recall@10 0.994 against 0.970 (20M, 256)

FAST_SCAN_CANDIDATES = 384
"""Candidates a fast-scan index hands to exact re-scoring: its 4-bit codes rank more coarsely than 8-bit ones,
so the true top-10 sits deeper in their order. Measured at 20M (48 lists read, load ~5): 64 / 128 / 256 / 384 /
512 candidates reached recall@10 0.930 / 0.983 / 0.994 / 0.995 / 0.995; reading more lists did not help (96:
0.994 at 256), so what is missed is misranked by the codes, not in lists left unread."""

_faiss_lock = threading.Lock()


def new_ivf(quantizer: Any, dim: int, lists: int) -> Any:
    """The empty inverted-file index of a collection: 4-bit product-quantised codes scanned with SIMD lookup
    tables (faiss "fast-scan", ``dim / 2`` bytes a face), ranked by L2 distance to the probe.

    Measured at 20M face-like faces on the 2-core machine at load ~5, the same 48 lists of ~4,900 faces read:
    the 8-bit scalar codes of earlier snapshots (128 bytes a face) took a median 30.6 ms to scan (p99 78 ms),
    these 3.1-3.3 ms (one thread), and with 384 candidates re-scored exactly a query took 5.5 ms at recall@10
    0.995 (docs/scale-index.md). The codes are of the face minus its list's centre (``_BY_RESIDUAL``).
    """
    import faiss

    index: Any = faiss.IndexIVFPQFastScan(quantizer, dim, lists, dim // 2, 4, faiss.METRIC_L2)
    index.by_residual = _BY_RESIDUAL
    return index


def ann_min_faces() -> int:
    """The size from which collections are searched through a ``CompactIndex``."""
    value = os.environ.get("FACETRACE_ANN_MIN_FACES")
    if value is None:
        return ANN_MIN_FACES
    try:
        return max(1, int(value))
    except ValueError:
        return ANN_MIN_FACES


_faiss_missing_logged = False


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _threads(count: int) -> None:
    """OpenMP threads for faiss calls made by *this* thread (an OpenMP setting is per calling thread).

    A search is one thread: faiss's OpenMP team spin-waits, and with other processes busy on the two cores a
    query took a median 8.6 ms with the default team against 1.8 ms with one thread (100k faces, load ~15).
    Training and adding many faces are batch work and use every core."""
    import faiss

    faiss.omp_set_num_threads(count)


def scan_threads() -> int:
    """Threads one query's 8-bit lists are scanned on: ``$FACETRACE_ANN_SCAN_THREADS``, else 1.

    Not OpenMP's team (it spin-waits: see ``_threads``): the probed lists are split into parts of about equal
    length and scanned by ``search_preassigned`` on a small thread pool (faiss releases the GIL), each part on
    one OpenMP thread. Off by default: on the shared 2-core machine (load ~3.5, 20M faces, 48 lists) one
    thread took a median 24.6-29.4 ms, two 34-35 ms and four 22-23 ms, so a split only pays where a core is
    free (a dedicated server). Fast-scan codes need no split (~3 ms on one thread)."""
    value = os.environ.get("FACETRACE_ANN_SCAN_THREADS")
    if value is not None:
        try:
            return max(1, int(value))
        except ValueError:
            pass
    return 1


_pool: ThreadPoolExecutor | None = None
_pool_workers = 0
_pool_lock = threading.Lock()


def _scan_pool(workers: int) -> ThreadPoolExecutor:
    """The process's list-scanning threads (created on first use; one pool for every collection)."""
    global _pool, _pool_workers
    with _pool_lock:
        if _pool is None or _pool_workers < workers:
            old = _pool
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="ann-scan", initializer=_threads, initargs=(1,))
            _pool_workers = workers
            if old is not None:
                old.shutdown(wait=False)
        return _pool


def faiss_available() -> bool:
    """Whether faiss is installed (the ``scale`` extra); without it large collections are scanned exactly,
    which stays correct and only gets slower (logged once)."""
    global _faiss_missing_logged
    try:
        import faiss  # noqa: F401
    except ImportError:
        if not _faiss_missing_logged:
            _faiss_missing_logged = True
            logging.getLogger(__name__).warning(
                "a large collection is scanned exactly: install facetrace[scale] for its compact index"
            )
        return False
    return True


def lists_for(faces: int) -> int:
    """How many inverted lists for a collection of ``faces``: a power of two near faces/250, 64..4096
    (lists of a few hundred faces; capped because adding a face compares it with every list's centre, and
    4096 lists already cost ~0.1 ms per face on the 2-core dev machine)."""
    target = max(64, min(4096, faces // 250))
    return 1 << (target.bit_length() - 1)


PROBES = 128
"""Most lists read per query. Recall depends on how many faces' codes are read more than on what fraction of the
lists: on face-like vectors 128 lists reached recall@10 ≥ 0.99 at 100k faces (of 256 lists) and 1M (of 2048),
where 32 reached 0.94; at 20M (4096 lists of ~4,900 faces) 32 lists already reached 0.993 and 48 lists 0.9965
at 19.6 ms, where 128 lists took 56 ms (docs/scale-index.md). Re-scoring more candidates did not help: the
misses are in lists not read."""

SPLIT_MIN_CODES = 40_000
"""Fewest codes a query must read before its lists are split across threads: below it a scan takes ~2 ms or
less and handing parts to other threads is not worth its ~0.1 ms."""

CODES_PER_QUERY = 230_000
"""Codes read per query once lists are long: 48 lists of the 20M collection, ~4,880 faces each (recall@10
0.9965, 19.6 ms median at load 1.4 on the 2-core machine); scanning codes is what a query's time is made of."""


def probes_for(lists: int, faces: int = 0) -> int:
    """Lists read per query: ``PROBES`` while lists are short, fewer once they are long enough that
    ``CODES_PER_QUERY`` codes are reached sooner (never fewer than 32)."""
    per_list = max(1, faces // max(1, lists))
    return min(lists, PROBES, max(32, -(-CODES_PER_QUERY // per_list)))


@dataclass(frozen=True, slots=True)
class AnnStats:
    faces: int
    lists: int
    probes: int
    trained_on: int


class CompactIndex:
    """faiss IVF over unit vectors, 4-bit fast-scan codes (8-bit scalar codes in an ``outdated`` index of an
    earlier snapshot); thread-safe for one writer at a time
    (the owning ``VectorIndex`` holds its lock around every call)."""

    def __init__(self, index: Any, trained_on: int) -> None:
        self._index: Any = index  # a faiss IndexIVF* (faiss's stubs lack half of its API)
        self.trained_on = trained_on
        self._fixed_probes = False  # set by the ``probes`` setter (a benchmark's sweep); else ``probes_for``
        self._quantizer: Any = None  # a ``recode``'s list centres until ``finish`` hands them to the index

    @classmethod
    def train(cls, sample: npt.NDArray[np.float32], expected: int) -> CompactIndex:
        """An empty index whose clustering is learnt from ``sample`` (unit rows) for ~``expected`` faces."""
        import faiss

        dim = sample.shape[1]
        lists = lists_for(expected)
        # L2, not inner product: on unit vectors both rank alike, but k-means centres are not unit vectors and
        # face vectors crowd into a cone, so assigning by inner product sends most faces to the few longest
        # centres (measured at 100k faces, 32 of 256 lists: recall@10 0.93 by inner product).
        quantizer = faiss.IndexFlatL2(dim)
        index = new_ivf(quantizer, dim, lists)
        rows = min(sample.shape[0], max(lists * _TRAIN_PER_LIST, _PQ_TRAIN_MIN), _MAX_TRAIN)
        picked = np.random.default_rng(expected).choice(sample.shape[0], rows, replace=False)
        train = np.ascontiguousarray(sample[np.sort(picked)], dtype=np.float32)
        _threads(_cores())
        with _faiss_lock:
            index.cp.min_points_per_centroid = 1  # small collections in tests: no warning noise
            index.cp.niter = 12  # k-means converges enough for list assignment; faiss's 25 doubles the cost
            index.train(train)
        index.nprobe = probes_for(lists)
        return cls(index, expected)

    @property
    def outdated(self) -> bool:
        """Whether the codes are the 8-bit ones of an earlier snapshot: searched as they are (exactly as
        before, one query's lists split across the cores), and recoded in the background (``recode``)."""
        import faiss

        return not isinstance(self._index, faiss.IndexIVFFastScan)

    def list_numbers(self, rows: int) -> npt.NDArray[np.int64]:
        """The list each label below ``rows`` is in (-1: none), read from the lists themselves."""
        import faiss

        invlists = self._index.invlists
        found = np.full(rows, -1, dtype=np.int64)
        for lst in range(int(self._index.nlist)):
            size = int(invlists.list_size(lst))
            if size:
                ids = faiss.rev_swig_ptr(invlists.get_ids(lst), size)
                found[ids[ids < rows]] = lst
        return found

    def recode(self, sample: npt.NDArray[np.float32]) -> CompactIndex:
        """An empty index with these lists' centres and new fast-scan codes trained on ``sample``: filled by
        ``add(..., lists=list_numbers(...))`` every face stays in the list it is in, so neither k-means nor a
        list assignment (most of a 20M build: ~17 min here) runs again; ``finish`` packs it for searching."""
        import faiss

        old = self._index
        quantizer = faiss.clone_index(old.quantizer)
        coder: Any = faiss.IndexIVFPQ(quantizer, int(old.d), int(old.nlist), int(old.d) // 2, 4, faiss.METRIC_L2)
        coder.by_residual = _BY_RESIDUAL
        rows = min(sample.shape[0], _MAX_TRAIN)
        picked = np.random.default_rng(rows).choice(sample.shape[0], rows, replace=False)
        _threads(_cores())
        with _faiss_lock:
            coder.train(np.ascontiguousarray(sample[np.sort(picked)], dtype=np.float32))  # the codebooks only
        fresh = CompactIndex(coder, self.trained_on)
        fresh._quantizer = quantizer
        return fresh

    def finish(self) -> None:
        """Pack a ``recode``'s codes into fast-scan blocks (nothing to do for any other index)."""
        import faiss

        if isinstance(self._index, faiss.IndexIVFPQ) and not isinstance(self._index, faiss.IndexIVFFastScan):
            packed: Any = faiss.IndexIVFPQFastScan(self._index)
            self._quantizer.this.disown()  # the packed index frees the centres it shares with the coder
            packed.own_fields = True
            packed.nprobe = probes_for(int(packed.nlist))
            self._index = packed

    @property
    def probes(self) -> int:
        return int(self._index.nprobe)

    @probes.setter
    def probes(self, value: int) -> None:
        """Lists read per query (the benchmark sweeps it)."""
        self._index.nprobe = max(1, min(int(value), int(self._index.nlist)))
        self._fixed_probes = True

    @property
    def stats(self) -> AnnStats:
        ix = self._index
        return AnnStats(int(ix.ntotal), int(ix.nlist), int(ix.nprobe), self.trained_on)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def add(
        self,
        labels: npt.NDArray[np.int64],
        vectors: npt.NDArray[np.float32],
        lists: npt.NDArray[np.int64] | None = None,
    ) -> None:
        """Add faces; ``lists`` (a ``recode``) names the list each goes to instead of the nearest centre."""
        import faiss

        _threads(_cores())
        for start in range(0, labels.shape[0], _ADD_CHUNK):
            chunk = np.ascontiguousarray(vectors[start : start + _ADD_CHUNK], dtype=np.float32)
            ids = np.ascontiguousarray(labels[start : start + _ADD_CHUNK], dtype=np.int64)
            if lists is None:
                self._index.add_with_ids(chunk, ids)
                continue
            into = np.array(lists[start : start + _ADD_CHUNK], dtype=np.int64)
            if (unplaced := into < 0).any():  # in no list yet: the nearest centre, as ``add_with_ids`` does
                into[unplaced] = self._index.quantizer.search(chunk[unplaced], 1)[1][:, 0]
            self._index.add_core(
                int(ids.shape[0]), faiss.swig_ptr(chunk), faiss.swig_ptr(ids), faiss.swig_ptr(into)
            )

    def remove(self, labels: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32] | None) -> None:
        """Remove the faces with these labels, whose vectors are ``vectors``: each is looked for in the list
        its vector is assigned to (as ``add`` assigned it), so a delete reads a few short lists instead of all
        of them, and the index needs no id → list map (faiss's hash table costs ~0.8 GB and ~10 s to build at
        20M faces). A label not found there (a near tie decided differently) is removed by a full pass. Fast-scan
        lists pack their codes in blocks that only faiss rewrites: they take faiss's full pass over the labels
        (``vectors`` unused: None spares the caller reading them back from the row file)."""
        import faiss

        if labels.shape[0] == 0:
            return
        ix = self._index
        if not self.outdated or vectors is None:  # fast-scan lists pack their codes in blocks: faiss's pass
            _threads(_cores())
            wanted = np.ascontiguousarray(labels, dtype=np.int64)
            ix.remove_ids(faiss.IDSelectorBatch(wanted.shape[0], faiss.swig_ptr(wanted)))
            return
        invlists = ix.invlists
        code_size = int(invlists.code_size)
        _, assigned = ix.quantizer.search(np.ascontiguousarray(vectors, dtype=np.float32), 1)
        left: list[npt.NDArray[np.int64]] = []
        removed = 0
        for lst in np.unique(assigned[:, 0]):
            if lst < 0:
                continue
            wanted = labels[assigned[:, 0] == lst]
            size = int(invlists.list_size(int(lst)))
            ids = faiss.rev_swig_ptr(invlists.get_ids(int(lst)), size).copy()
            gone = np.isin(ids, wanted)
            count = int(gone.sum())
            if count < wanted.shape[0]:
                left.append(wanted[~np.isin(wanted, ids)])
            if count == 0:
                continue
            codes = faiss.rev_swig_ptr(invlists.get_codes(int(lst)), size * code_size).copy()
            keep = ~gone
            kept_ids = np.ascontiguousarray(ids[keep])
            kept_codes = np.ascontiguousarray(codes.reshape(size, code_size)[keep])
            invlists.resize(int(lst), int(kept_ids.shape[0]))
            if kept_ids.shape[0]:
                invlists.update_entries(
                    int(lst), 0, int(kept_ids.shape[0]), faiss.swig_ptr(kept_ids), faiss.swig_ptr(kept_codes)
                )
            removed += count
        ix.ntotal = int(ix.ntotal) - removed
        if left:
            rest = np.concatenate(left)
            ix.remove_ids(faiss.IDSelectorBatch(rest.shape[0], faiss.swig_ptr(np.ascontiguousarray(rest))))

    def relabel(self, new_label: npt.NDArray[np.int64]) -> None:
        """Replace every label ``x`` by ``new_label[x]`` (rows renumbered by a compaction), list by list."""
        import faiss

        invlists = self._index.invlists
        for lst in range(int(self._index.nlist)):
            size = int(invlists.list_size(lst))
            if size:
                ids = faiss.rev_swig_ptr(invlists.get_ids(lst), size)
                ids[:] = new_label[ids]

    def candidates(self, probe: Vector, k: int = _CANDIDATES) -> npt.NDArray[np.int64]:
        """Labels of the faces the codes rank closest to ``probe`` (approximate order): at least
        ``FAST_SCAN_CANDIDATES`` from fast-scan codes, ``k`` from 8-bit ones.

        8-bit codes give the same faces as faiss's one-thread ``search``: when the lists to read hold ``SPLIT_MIN_CODES`` codes
        or more they are split into ``scan_threads()`` parts of about equal length, scanned side by side, and
        the parts' best ``k`` merged by their code distances (comparable across lists)."""
        _threads(1)
        ix = self._index
        if not self._fixed_probes:  # the lists lengthen as the collection grows: read fewer of them
            ix.nprobe = probes_for(int(ix.nlist), int(ix.ntotal))
        query = np.ascontiguousarray(probe.reshape(1, -1), dtype=np.float32)
        if not self.outdated:  # 4-bit codes: a fraction of the 8-bit scan's time, on one thread
            _, found = ix.search(query, max(k, FAST_SCAN_CANDIDATES))
            fast: npt.NDArray[np.int64] = found[0]
            return fast[fast >= 0]
        workers = scan_threads()
        if workers > 1:
            distances, lists = ix.quantizer.search(query, int(ix.nprobe))
            parts = self._parts(lists[0], workers)
            if len(parts) > 1:
                return self._split_scan(query, k, distances[0], lists[0], parts)
            return self._scan(query, k, distances[0], lists[0])[1]
        _, found = ix.search(query, k)
        labels: npt.NDArray[np.int64] = found[0]
        return labels[labels >= 0]

    def _parts(self, lists: npt.NDArray[np.int64], workers: int) -> list[npt.NDArray[np.intp]]:
        """Positions in ``lists`` split into up to ``workers`` groups with about as many codes each (longest
        list first to the lightest group); one group when the lists are too short to be worth splitting."""
        invlists = self._index.invlists
        sizes = np.array([invlists.list_size(int(lst)) if lst >= 0 else 0 for lst in lists], dtype=np.int64)
        count = min(workers, lists.shape[0]) if int(sizes.sum()) >= SPLIT_MIN_CODES else 1
        if count < 2:
            return [np.arange(lists.shape[0])]
        loads = np.zeros(count, dtype=np.int64)
        groups: list[list[int]] = [[] for _ in range(count)]
        for position in np.argsort(-sizes, kind="stable"):
            lightest = int(np.argmin(loads))
            groups[lightest].append(int(position))
            loads[lightest] += sizes[position]
        return [np.sort(np.asarray(group, dtype=np.intp)) for group in groups if group]

    def _scan(
        self,
        query: npt.NDArray[np.float32],
        k: int,
        distances: npt.NDArray[np.float32],
        lists: npt.NDArray[np.int64],
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """(code distances, labels) of the best ``k`` faces of these lists (faiss ``search_preassigned``, on
        the calling thread's one OpenMP thread; the probe count travels in the call, not on the shared index)."""
        import faiss

        params = faiss.SearchParametersIVF()
        params.nprobe = int(lists.shape[0])
        assigned = np.ascontiguousarray(lists.reshape(1, -1), dtype=np.int64)
        centre = np.ascontiguousarray(distances.reshape(1, -1), dtype=np.float32)
        found_d = np.empty((1, k), dtype=np.float32)
        found = np.empty((1, k), dtype=np.int64)
        self._index.search_preassigned_c(
            1, faiss.swig_ptr(query), k, faiss.swig_ptr(assigned), faiss.swig_ptr(centre),
            faiss.swig_ptr(found_d), faiss.swig_ptr(found), False, params,
        )  # fmt: skip
        keep = found[0] >= 0
        return found_d[0][keep], found[0][keep]

    def _split_scan(
        self,
        query: npt.NDArray[np.float32],
        k: int,
        distances: npt.NDArray[np.float32],
        lists: npt.NDArray[np.int64],
        parts: list[npt.NDArray[np.intp]],
    ) -> npt.NDArray[np.int64]:
        """The parts scanned side by side (the first on this thread), their best ``k`` merged."""
        pool = _scan_pool(len(parts) - 1)
        pending = [pool.submit(self._scan, query, k, distances[part], lists[part]) for part in parts[1:]]
        results = [self._scan(query, k, distances[parts[0]], lists[parts[0]])]
        results.extend(future.result() for future in pending)
        merged_d = np.concatenate([d for d, _ in results])
        merged = np.concatenate([labels for _, labels in results])
        best: npt.NDArray[np.int64] = merged[np.argsort(merged_d, kind="stable")[:k]]
        return best

    def save(self, path: Path) -> None:
        """Write the index to ``path`` (the snapshot makes it durable and checks it: ``index_files``)."""
        import faiss

        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path, trained_on: int) -> CompactIndex | None:
        """The index saved at ``path``, or None when it cannot be read (the caller rebuilds it)."""
        import faiss

        try:
            index: Any = faiss.read_index(str(path))
        except (RuntimeError, OSError):
            return None
        return cls(index, trained_on)
