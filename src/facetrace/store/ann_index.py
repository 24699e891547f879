"""A compact approximate index of a large collection: candidates for exact re-scoring, not answers.

Past ``ann_min_faces()`` faces a ``VectorIndex`` asks this index for a few dozen candidates and scores them
exactly against its float32 rows, so every similarity a caller sees is the exact cosine it is today and a
threshold keeps its meaning; only *which* faces are looked at is approximate (recall@10 against the exact scan
is measured by ``benchmarks/bench_ann.py``, docs/scale-index.md).

Why faiss ``IndexIVFScalarQuantizer`` (8-bit, inner product): measured side by side on 1M face-like SFace
vectors (docs/scale-index.md) it reached recall@10 0.99 after re-scoring at ~1.4 ms a query and added 1M
vectors in 49 s, while usearch's HNSW with int8 storage took 557 s to add them and reached only 0.88 on the
same vectors (why was not investigated: a build 11× slower already ruled it out on two cores).
One face is 128 bytes of codes plus its 8-byte label: 2.7 GB at 20M faces instead of 10 GB of float32.

Labels are a 63-bit hash of the face id (``face_labels``), so the index file needs no id table of its own:
after a restart it is reconciled with the collection by set difference of labels (``VectorIndex``), which is
how a server catches up with whatever changed while it was down, on both backends. A collision of two face
ids (≈ 1e-5 at 20M faces) only makes one of them invisible to the candidate search, never a wrong score.
Deletes are real deletes (a hash-table direct map makes them O(1)), so there are no tombstones to compact;
the coarse clustering is trained once, on the collection as it is when it crosses the threshold, and is
retrained (``VectorIndex``) when the collection has grown ``RETRAIN_GROWTH``-fold since, so lists stay short.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
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
    "face_label",
    "face_labels",
    "faiss_available",
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

_faiss_lock = threading.Lock()


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


_PRIME = np.uint64(0x100000001B3)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def face_labels(face_ids: Sequence[str]) -> npt.NDArray[np.int64]:
    """The faces' labels in the compact index: a 63-bit hash of each id's UTF-8 bytes, vectorised (a start-up
    labels every face of the collection: 20M ids hashed one by one in Python would take most of a minute).

    The bytes are read as little-endian 64-bit words; each word is folded in FNV-style, words past an id's end
    are skipped (so the label does not depend on the other ids in the batch), and splitmix64's finaliser
    spreads the bits. Stable across runs, versions and machines: persisted indexes rely on it."""
    if not face_ids:
        return np.empty(0, dtype=np.int64)
    encoded = [f.encode() for f in face_ids]
    lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    width = max(8, -(-int(lengths.max()) // 8) * 8)
    words = np.array(encoded, dtype=f"S{width}").view("<u8").reshape(len(encoded), width // 8)
    with np.errstate(over="ignore"):
        h = lengths.astype(np.uint64) * _PRIME
        for j in range(words.shape[1]):
            folded = (h ^ words[:, j]) * _PRIME
            h = np.where(lengths > 8 * j, folded, h)
        h = (h ^ (h >> np.uint64(30))) * _MIX1
        h = (h ^ (h >> np.uint64(27))) * _MIX2
        h ^= h >> np.uint64(31)
    labels: npt.NDArray[np.int64] = (h >> np.uint64(1)).astype(np.int64)
    return labels


def face_label(face_id: str) -> int:
    """One face's label (``face_labels``)."""
    return int(face_labels([face_id])[0])


def lists_for(faces: int) -> int:
    """How many inverted lists for a collection of ``faces``: a power of two near faces/250, 64..4096
    (lists of a few hundred faces; capped because adding a face compares it with every list's centre, and
    4096 lists already cost ~0.1 ms per face on the 2-core dev machine)."""
    target = max(64, min(4096, faces // 250))
    return 1 << (target.bit_length() - 1)


PROBES = 128
"""Lists read per query. Recall depends on how many lists are read more than on what fraction of them: on
face-like vectors 128 lists reached recall@10 ≥ 0.99 at 100k faces (of 256 lists) and 1M (of 2048), where 32
reached 0.94 (docs/scale-index.md). Re-scoring more candidates did not help: the misses are in lists not read."""


def probes_for(lists: int) -> int:
    return min(lists, PROBES)


@dataclass(frozen=True, slots=True)
class AnnStats:
    faces: int
    lists: int
    probes: int
    trained_on: int


class CompactIndex:
    """faiss IVF with 8-bit scalar-quantised codes over unit vectors; thread-safe for one writer at a time
    (the owning ``VectorIndex`` holds its lock around every call)."""

    def __init__(self, index: Any, trained_on: int) -> None:
        self._index: Any = index  # a faiss IndexIVFScalarQuantizer (faiss's stubs lack half of its API)
        self.trained_on = trained_on

    @classmethod
    def train(cls, sample: npt.NDArray[np.float32], expected: int) -> CompactIndex:
        """An empty index whose clustering is learnt from ``sample`` (unit rows) for ~``expected`` faces."""
        import faiss

        fa: Any = faiss
        dim = sample.shape[1]
        lists = lists_for(expected)
        # L2, not inner product: on unit vectors both rank alike, but k-means centres are not unit vectors and
        # face vectors crowd into a cone, so assigning by inner product sends most faces to the few longest
        # centres (measured at 100k faces, 32 of 256 lists: recall@10 0.93 by inner product).
        quantizer = faiss.IndexFlatL2(dim)
        index: Any = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, lists, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_L2
        )
        rows = min(sample.shape[0], max(lists * _TRAIN_PER_LIST, 1), _MAX_TRAIN)
        picked = np.random.default_rng(expected).choice(sample.shape[0], rows, replace=False)
        train = np.ascontiguousarray(sample[np.sort(picked)], dtype=np.float32)
        _threads(_cores())
        with _faiss_lock:
            index.cp.min_points_per_centroid = 1  # small collections in tests: no warning noise
            index.cp.niter = 12  # k-means converges enough for list assignment; faiss's 25 doubles the cost
            index.train(train)
        index.set_direct_map_type(fa.DirectMap.Hashtable)
        index.nprobe = probes_for(lists)
        return cls(index, expected)

    @property
    def probes(self) -> int:
        return int(self._index.nprobe)

    @probes.setter
    def probes(self, value: int) -> None:
        """Lists read per query (the benchmark sweeps it)."""
        self._index.nprobe = max(1, min(int(value), int(self._index.nlist)))

    @property
    def stats(self) -> AnnStats:
        ix = self._index
        return AnnStats(int(ix.ntotal), int(ix.nlist), int(ix.nprobe), self.trained_on)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def add(self, labels: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        _threads(_cores())
        for start in range(0, labels.shape[0], _ADD_CHUNK):
            chunk = np.ascontiguousarray(vectors[start : start + _ADD_CHUNK], dtype=np.float32)
            ids = np.ascontiguousarray(labels[start : start + _ADD_CHUNK], dtype=np.int64)
            self._index.add_with_ids(chunk, ids)

    def remove(self, labels: npt.NDArray[np.int64]) -> None:
        import faiss

        if labels.shape[0]:
            selector = faiss.IDSelectorArray(labels.shape[0], faiss.swig_ptr(np.ascontiguousarray(labels)))
            self._index.remove_ids(selector)

    def labels(self) -> npt.NDArray[np.int64]:
        """Every label in the index (reads the inverted lists' id arrays)."""
        import faiss

        ix = self._index
        invlists = ix.invlists
        parts = []
        for i in range(int(ix.nlist)):
            size = int(invlists.list_size(i))
            if size:
                parts.append(faiss.rev_swig_ptr(invlists.get_ids(i), size).copy())
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, dtype=np.int64)

    def candidates(self, probe: Vector, k: int = _CANDIDATES) -> npt.NDArray[np.int64]:
        """Labels of up to ``k`` faces the 8-bit codes rank closest to ``probe`` (approximate order)."""
        _threads(1)
        _, found = self._index.search(probe.reshape(1, -1), k)
        labels: npt.NDArray[np.int64] = found[0]
        return labels[labels >= 0]

    def save(self, path: Path) -> None:
        """Write atomically (a crash leaves the old file or the new one, never half of one)."""
        import faiss

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        faiss.write_index(self._index, str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        tmp.with_suffix(".trained").write_text(str(self.trained_on))
        os.replace(tmp.with_suffix(".trained"), path.with_suffix(".trained"))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> CompactIndex | None:
        """The index saved at ``path``, or None when there is none or it cannot be read (it is rebuilt)."""
        import faiss

        fa: Any = faiss
        if not path.exists():
            return None
        try:
            index: Any = fa.read_index(str(path))
            trained = int(path.with_suffix(".trained").read_text())
            index.set_direct_map_type(fa.DirectMap.Hashtable)
        except (RuntimeError, OSError, ValueError):
            return None
        return cls(index, trained)
