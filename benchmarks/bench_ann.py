"""The compact index of large collections (store/ann_index.py) against the exact scan, side by side in one run.

    python benchmarks/bench_ann.py --sizes 300k,1m,5m        # exact scan up to --exact-max (default 5M)
    python benchmarks/bench_ann.py --sizes 100k --queries 50  # quick

Vectors behave like faces: real SFace vectors of LFW photos (``--real``: the npz written by
``benchmarks/embed_lfw_calibration.py``) and normalised mixtures of three of them plus a little noise, so every
synthetic face has the neighbourhood structure of real ones (not uniform noise, which no index struggles with
the same way). The gallery is generated once per seed and cached as a float32 file under ``--cache`` (a size
uses a prefix of the largest file). Probes: 3/4 are another "photo" of a gallery face (the face plus noise,
cosine ≈ 0.8 to it), 1/4 are real LFW vectors (their people are in the mixtures only partly: hard probes).

For each size, one ``VectorIndex`` answers every probe twice, once by the exact scan and once through the
compact index (toggled with ``$FACETRACE_ANN_MIN_FACES``), so the ratio is measured on the same rows, under
the same load. Reported: build time of the compact index, start-up (rows → index with the compact index loaded
from its file and reconciled), top-10 latency median and p99, recall@10 against the exact scan (no threshold)
and recall of the hits at or above a similarity threshold, process peak RSS and the compact index's size,
and a delete / re-index check (1% of the faces deleted and indexed again under new ids).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine_info
from facetrace.store.vector_index import VectorIndex

DIM = 128
_CHUNK = 1 << 18


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def load() -> str:
    return "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def real_vectors(path: Path) -> np.ndarray:
    with np.load(path) as data:
        matrix = np.concatenate([data["vectors"], data["flipped"]]).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def face_like(real: np.ndarray, n: int, cache: Path, seed: int) -> np.ndarray:
    """``n`` face-like unit vectors (mixtures of three real ones plus noise), memory-mapped from the cache."""
    cache.mkdir(parents=True, exist_ok=True)
    for existing in sorted(cache.glob(f"facelike-s{seed}-*.f32")):
        rows = existing.stat().st_size // (4 * DIM)
        if rows >= n:
            return np.memmap(existing, dtype=np.float32, mode="r", shape=(rows, DIM))[:n]
    path = cache / f"facelike-s{seed}-{n}.f32"
    tmp = path.with_suffix(".tmp")
    out = np.memmap(tmp, dtype=np.float32, mode="w+", shape=(n, DIM))
    rng = np.random.default_rng(seed)
    for start in range(0, n, _CHUNK):
        k = min(n, start + _CHUNK) - start
        picks = rng.integers(0, real.shape[0], (k, 3))
        weights = rng.dirichlet([1.0, 0.6, 0.3], k).astype(np.float32)
        rows = (real[picks] * weights[:, :, None]).sum(axis=1)
        rows += rng.normal(0, 0.04, (k, DIM)).astype(np.float32)
        out[start : start + k] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    out.flush()
    del out
    os.replace(tmp, path)
    return np.memmap(path, dtype=np.float32, mode="r", shape=(n, DIM))


def make_probes(gallery: np.ndarray, real: np.ndarray, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    near = count * 3 // 4
    picked = np.asarray(gallery[np.sort(rng.integers(0, gallery.shape[0], near))])
    noisy = picked + rng.normal(0, 0.06, picked.shape).astype(np.float32)
    probes = np.concatenate([noisy, real[rng.integers(0, real.shape[0], count - near)]])
    return (probes / np.linalg.norm(probes, axis=1, keepdims=True)).astype(np.float32)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def timed(index: VectorIndex, probes: np.ndarray, min_cosine: float) -> tuple[list[float], list[list[str]]]:
    latencies, results = [], []
    for probe in probes:
        started = time.perf_counter()
        hits = index.search(probe, limit=10, min_cosine=min_cosine)
        latencies.append(time.perf_counter() - started)
        results.append([face_id for face_id, _ in hits])
    return latencies, results


def recall(got: list[list[str]], truth: list[list[str]]) -> tuple[float, int]:
    wanted = sum(len(t) for t in truth)
    found = sum(len(set(g) & set(t)) for g, t in zip(got, truth, strict=True))
    return (found / wanted if wanted else 1.0), wanted


def mode(compact: bool, n: int) -> None:
    os.environ["FACETRACE_ANN_MIN_FACES"] = str(1 if compact else n + 10**9)


def bench(n: int, real: np.ndarray, args: argparse.Namespace) -> None:
    gallery = face_like(real, n, args.cache, seed=args.seed)
    probes = make_probes(gallery, real, args.queries, seed=n)
    ids = [uuid.UUID(int=(i << 1) | (1 << 127)).hex for i in range(n)]
    started = time.perf_counter()
    index = VectorIndex.from_arrays(ids, np.array(gallery, dtype=np.float32), [None] * n)
    rows_s = time.perf_counter() - started
    exact_run = n <= args.exact_max
    print(f"\n== {n:,} faces ({load()}); rows → exact index {rows_s:.1f} s", flush=True)

    with tempfile.TemporaryDirectory(dir=args.cache) as tmp:
        ann_file = Path(tmp) / "c.faiss"
        mode(True, n)
        started = time.perf_counter()
        index.prepare()
        built = time.perf_counter() - started
        assert index.compact is not None
        stats = index.compact.stats
        index.ann_path = ann_file
        index.persist()
        size_gb = ann_file.stat().st_size / 1024**3
        print(
            f"compact index built in {built:.0f} s: {stats.lists} lists, {stats.probes} probed, file "
            f"{size_gb:.2f} GB ({load()}); peak RSS so far {rss_gb():.1f} GB",
            flush=True,
        )

        for min_cosine, label in ((-1.0, "top-10"), (args.threshold, f"hits ≥ cos {args.threshold}")):
            mode(True, n)
            timed(index, probes[:5], min_cosine)  # warm up
            ann_lat, ann_hits = timed(index, probes, min_cosine)
            line = (
                f"{label:>18}: compact median {statistics.median(ann_lat) * 1e3:.2f} ms, "
                f"p99 {pct(ann_lat, 99) * 1e3:.2f} ms"
            )
            if exact_run:
                mode(False, n)
                timed(index, probes[:3], min_cosine)
                exact_lat, exact_hits = timed(index, probes, min_cosine)
                r, wanted = recall(ann_hits, exact_hits)
                line += (
                    f" | exact median {statistics.median(exact_lat) * 1e3:.2f} ms, p99 "
                    f"{pct(exact_lat, 99) * 1e3:.2f} ms | speed-up ×{statistics.median(exact_lat) / statistics.median(ann_lat):.1f}"
                    f" | recall {r:.4f} of {wanted} exact hits"
                )
            print(f"{line} ({load()})", flush=True)
            if exact_run and min_cosine < 0 and args.sweep:
                mode(True, n)
                chosen = index.compact.probes
                for probes_read in (int(p) for p in args.sweep.split(",")):
                    index.compact.probes = probes_read
                    lat, hits = timed(index, probes, min_cosine)
                    print(
                        f"    {probes_read:>4} lists read: median {statistics.median(lat) * 1e3:.2f} ms, p99 "
                        f"{pct(lat, 99) * 1e3:.2f} ms, recall {recall(hits, exact_hits)[0]:.4f} ({load()})",
                        flush=True,
                    )
                index.compact.probes = chosen

        # delete 1% and index the same vectors again under new ids: the new ids are found, the old are gone
        mode(True, n)
        rng = np.random.default_rng(n + 7)
        gone = np.sort(rng.choice(n, max(10, n // 100), replace=False))
        started = time.perf_counter()
        index.remove([ids[i] for i in gone])
        again = [f"again-{i}" for i in gone]
        index.add(again, np.array(gallery[gone], dtype=np.float32), [None] * len(again))
        churn = time.perf_counter() - started
        checked = gone[:: max(1, len(gone) // 200)]
        right = sum(
            index.search(np.asarray(gallery[i]), limit=1, min_cosine=0.5)[0][0] == f"again-{i}" for i in checked
        )
        stale = sum(
            any(f == ids[i] for f, _ in index.search(np.asarray(gallery[i]), limit=10, min_cosine=0.0))
            for i in checked
        )
        print(
            f"delete + re-index {len(gone):,} faces in {churn:.1f} s; {right}/{len(checked)} found under the new id,"
            f" {stale} old ids returned ({load()})",
            flush=True,
        )
        index.persist()
        del index
        gc.collect()

        # start-up: rows → exact index, then the compact index loaded from its file and reconciled
        started = time.perf_counter()
        renamed = set(gone.tolist())
        current = [f"again-{i}" if i in renamed else ids[i] for i in range(n)]
        restarted = VectorIndex.from_arrays(current, np.array(gallery, dtype=np.float32), [None] * n)
        rows_s = time.perf_counter() - started
        restarted.ann_path = ann_file
        restarted.prepare()
        total = time.perf_counter() - started
        assert restarted.compact is not None
        print(
            f"start-up: rows → index {rows_s:.1f} s, + compact index from file {total - rows_s:.1f} s = {total:.1f} s"
            f" (trained again: {restarted.compact.trained_on != n}); peak RSS {rss_gb():.1f} GB ({load()})",
            flush=True,
        )
        del restarted
        gc.collect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="300k,1m,5m")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threshold", type=float, default=0.5, help="cosine of a search threshold")
    parser.add_argument("--exact-max", type=parse_size, default=5_000_000, help="largest size scanned exactly")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sweep", default="32,64,128,256", help="lists read per query to compare ('' : none)")
    parser.add_argument(
        "--cache", type=Path, default=Path(os.environ.get("FACETRACE_ANN_CACHE", "/work/cache/ann"))
    )
    parser.add_argument(
        "--real",
        type=Path,
        default=Path(os.environ.get("FACETRACE_REAL_VECTORS", "/work/cache/lfw_calibration_sface.npz")),
    )
    args = parser.parse_args()
    print(machine_info())
    real = real_vectors(args.real)
    print(f"{real.shape[0]} real SFace vectors from {args.real}")
    for size in args.sizes.split(","):
        bench(parse_size(size), real, args)


if __name__ == "__main__":
    main()
