"""Grouping faces by person without a collection: average linkage on calibrated similarity.

Input: identity vectors (unit length, one model) and each face's 0–100 quality (``quality.face_quality``).
Output: clusters of face indices, each a person as far as the evidence goes; faces that join nobody are
singletons. Nothing here knows about images, stores or files (the CLI, ``facetrace cluster``, adds those).

Every pair of faces is scored on the calibration curve of its worse face's quality band
(``calibration.pair_quality``), so a threshold means the same false match rate for crowd faces and clear
ones. Clusters are then grown by **average linkage**: two clusters merge only if the *mean* similarity over
every pair between them reaches the threshold, best merge first. A single chance link between two people
(a look-alike, one bad crop) cannot merge their clusters, because the other pairs between them pull the mean
down; it can only pair two faces that are otherwise alone, and that happens at the threshold's false match
rate (95 ↔ 1e-5 per pair).

Scale: pairs are scored in blocks (``block`` rows at a time) and only those at or above ``floor`` are kept
as a sparse graph; a pair below the floor counts as similarity 0 in the means, which can only make a merge
harder (precision first). The floor's false match rate bounds the graph: about ``FMR(floor) × N²/2``
stranger edges (70 ↔ 1e-2: ~500,000 for 10,000 faces of different people). Measured on LFW (people held out
from tuning): docs/cluster.md; timing: ``benchmarks/bench_cluster_photos.py``.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from facetrace.calibration import Calibration
from facetrace.errors import InvalidParameterError, ModelMismatchError

__all__ = [
    "DEFAULT_CLUSTER_THRESHOLD",
    "Cluster",
    "ClusterSettings",
    "Clustering",
    "PairGraph",
    "cluster_faces",
    "pair_graph",
]

DEFAULT_CLUSTER_THRESHOLD = 95.0
"""Mean calibrated similarity two groups need to merge (95 ↔ FMR 1e-5 per pair; docs/cluster.md)."""


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """``threshold``: least mean similarity (0–100) over all pairs between two groups for them to merge.
    ``floor``: pairs scoring below this are not kept in the graph and count as 0 in the means (a smaller
    graph; it never makes a merge easier). ``block``: rows of the similarity matrix computed at a time
    (memory ≈ ``block`` × N × 4 bytes)."""

    threshold: float = DEFAULT_CLUSTER_THRESHOLD
    floor: float = 70.0
    block: int = 1024

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor <= self.threshold <= 100.0:
            raise InvalidParameterError("cluster threshold and floor must satisfy 0 <= floor <= threshold <= 100")
        if not 16 <= self.block <= 65536:
            raise InvalidParameterError("block must be between 16 and 65536 rows")


@dataclass(frozen=True, slots=True)
class PairGraph:
    """The pairs (i < j) scoring at least the floor, with their calibrated similarity."""

    size: int
    first: npt.NDArray[np.int64]
    second: npt.NDArray[np.int64]
    similarity: npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Cluster:
    """A group of faces taken for one person: indices into the input, and how tightly they hold together
    (``cohesion``: the mean similarity over all pairs inside it, pairs under the floor counted as 0)."""

    members: tuple[int, ...]
    cohesion: float


@dataclass(frozen=True, slots=True)
class Clustering:
    """``clusters``: groups of two or more faces, largest first; ``singletons``: faces that joined nobody."""

    clusters: tuple[Cluster, ...]
    singletons: tuple[int, ...]
    threshold: float
    edges: int  # pairs kept in the graph (at or above the floor)

    def labels(self, size: int) -> npt.NDArray[np.int64]:
        """One label per face: the cluster's index, or −1 for a singleton."""
        out = np.full(size, -1, dtype=np.int64)
        for index, cluster in enumerate(self.clusters):
            out[list(cluster.members)] = index
        return out


def _check_inputs(
    vectors: npt.NDArray[np.float32], qualities: Sequence[float | None]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(qualities):
        raise InvalidParameterError("clustering needs an (N, D) array of vectors and one quality per vector")
    if not np.all(np.isfinite(matrix)):
        raise InvalidParameterError("vectors must be finite")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if matrix.shape[0] and np.any(norms < 1e-6):
        raise InvalidParameterError("vectors must be non-zero")
    # unknown (None / NaN) quality → −1: below every band, so the pair gets the most cautious curve
    quality = np.array([-1.0 if q is None or not np.isfinite(q) else float(q) for q in qualities])
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32), quality


def pair_graph(
    vectors: npt.NDArray[np.float32],
    qualities: Sequence[float | None],
    calibration: Calibration,
    settings: ClusterSettings | None = None,
) -> PairGraph:
    """Every pair at or above ``settings.floor`` on its band's curve, computed ``block`` rows at a time."""
    settings = settings or ClusterSettings()
    matrix, quality = _check_inputs(vectors, qualities)
    size = matrix.shape[0]
    if size and matrix.shape[1] == 0:
        raise ModelMismatchError("vectors have no dimensions")
    bands = calibration.bands
    # a face's own band; a pair's band is the lower of its faces' (bands are ordered by min_quality)
    band_of = np.zeros(size, dtype=np.int64)
    for index, band in enumerate(bands[1:], 1):
        band_of[quality >= band.min_quality] = index
    floors = np.array([band.curve.cosine_for(settings.floor) for band in bands], dtype=np.float32)
    firsts, seconds, sims = [], [], []
    for start in range(0, size, settings.block):
        stop = min(size, start + settings.block)
        cosines = matrix[start:stop] @ matrix[start:].T  # rows start..stop against columns start..N
        pair_band = np.minimum(band_of[start:stop, None], band_of[None, start:])
        keep = cosines >= floors[pair_band]
        rows, cols = np.nonzero(keep)
        upper = cols > rows  # column offset `start`: j > i in absolute terms
        rows, cols = rows[upper], cols[upper]
        kept_cos = cosines[rows, cols]
        kept_band = pair_band[rows, cols]
        scored = np.empty(len(rows), dtype=np.float32)
        for index, band in enumerate(bands):
            chosen = kept_band == index
            if np.any(chosen):
                scored[chosen] = band.curve.similarity(kept_cos[chosen].astype(np.float64))
        firsts.append(rows.astype(np.int64) + start)
        seconds.append(cols.astype(np.int64) + start)
        sims.append(scored)
    empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float32)
    return PairGraph(
        size=size,
        first=np.concatenate(firsts) if firsts else empty_i,
        second=np.concatenate(seconds) if seconds else empty_i,
        similarity=np.concatenate(sims) if sims else empty_f,
    )


def cluster_faces(
    vectors: npt.NDArray[np.float32],
    qualities: Sequence[float | None],
    calibration: Calibration,
    settings: ClusterSettings | None = None,
) -> Clustering:
    """Group faces by person (see the module docstring): average linkage at ``settings.threshold``."""
    settings = settings or ClusterSettings()
    graph = pair_graph(vectors, qualities, calibration, settings)
    return average_linkage(graph, settings.threshold)


def average_linkage(graph: PairGraph, threshold: float) -> Clustering:
    """Merge the pair of groups with the highest mean similarity while it reaches ``threshold``.

    Each group keeps, per neighbouring group, the *sum* of similarities over the pairs between them; the
    mean is that sum over |A|·|B| (missing pairs count 0). Merging folds the smaller group's sums into the
    larger's. Stale heap entries are skipped by a version per group. Average linkage never increases the
    best linkage when merging (it is reducible), so best-first merging gives the same result as the
    textbook algorithm.
    """
    size = graph.size
    members: dict[int, list[int]] = {i: [i] for i in range(size)}
    links: dict[int, dict[int, float]] = {i: {} for i in range(size)}
    inside: dict[int, float] = dict.fromkeys(range(size), 0.0)  # sum of similarities of pairs within
    for a, b, s in zip(graph.first.tolist(), graph.second.tolist(), graph.similarity.tolist(), strict=True):
        links[a][b] = links[a].get(b, 0.0) + s
        links[b][a] = links[b].get(a, 0.0) + s
    version = dict.fromkeys(range(size), 0)
    heap: list[tuple[float, int, int, int, int]] = []

    def push(a: int, b: int) -> None:
        mean = links[a][b] / (len(members[a]) * len(members[b]))
        if mean >= threshold:
            x, y = (a, b) if a < b else (b, a)
            heapq.heappush(heap, (-mean, x, y, version[x], version[y]))

    for a, neighbours in links.items():
        for b in neighbours:
            if a < b:
                push(a, b)
    while heap:
        _, a, b, va, vb = heapq.heappop(heap)
        if version.get(a) != va or version.get(b) != vb:
            continue  # one of them has merged since this entry was pushed
        keep, gone = (a, b) if len(members[a]) >= len(members[b]) else (b, a)
        inside[keep] += inside.pop(gone) + links[keep].pop(gone)
        del links[gone][keep]
        for other, total in links.pop(gone).items():
            links[keep][other] = links[keep].get(other, 0.0) + total
            del links[other][gone]
            links[other][keep] = links[keep][other]
        members[keep].extend(members.pop(gone))
        del version[gone]
        version[keep] += 1
        for other in links[keep]:
            push(keep, other)
    clusters, singletons = [], []
    for root, faces in members.items():
        if len(faces) == 1:
            singletons.append(root)
            continue
        pairs = len(faces) * (len(faces) - 1) / 2
        clusters.append(Cluster(tuple(sorted(faces)), round(inside[root] / pairs, 4)))
    clusters.sort(key=lambda c: (-len(c.members), c.members[0]))
    return Clustering(tuple(clusters), tuple(sorted(singletons)), threshold, len(graph.similarity))
