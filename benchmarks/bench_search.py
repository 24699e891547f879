"""Search speed of the store: exact top-k latency at several collection sizes, index load ("open") time, and
insert throughput of the SQLite store.

    python benchmarks/bench_search.py                       # 10k, 100k, 300k, 1M; open/insert at 300k
    python benchmarks/bench_search.py --sizes 10k,100k --open-size 50k --queries 50    # quick

Vectors are synthetic but shaped like a face gallery: identities with a few faces each (a centre plus noise,
same-person cosine ≈ 0.7, different people ≈ 0), so every probe has genuine near neighbours. Search is
exact, so recall is 100% by construction; the script still checks every probe's top-k against a full sort.
Timings depend on the load other processes put on the machine: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine_info
from facetrace.store import SQLiteStore
from facetrace.store.vector_index import VectorIndex
from facetrace.types import BoundingBox, FaceRecord

MODEL = "sface-2021dec"


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def machine() -> str:
    """The shared machine paragraph plus what matters for a vector scan: the BLAS numpy was built with."""
    blas = "?"
    try:
        config = np.show_config(mode="dicts")  # type: ignore[func-returns-value]
        info = config["Build Dependencies"]["blas"]
        blas = f"{info.get('name')} {info.get('version', '')}".strip()
    except Exception:
        pass
    threads = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or "default"
    return f"{machine_info()}\nBLAS {blas} (threads: {threads})"


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


class OtherLoad:
    """How busy *other* processes kept the CPUs while a measurement ran (from /proc/stat minus our own CPU
    time), because the load average lags by a minute and includes us."""

    def __enter__(self) -> OtherLoad:
        self._start = self._sample()
        return self

    def __exit__(self, *exc: object) -> None:
        self._end = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float]:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return (0.0, 0.0, 0.0)
        hz = os.sysconf("SC_CLK_TCK")
        busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)
        own = os.times()
        return busy / hz, sum(fields) / hz, own.user + own.system

    def __str__(self) -> str:
        (busy0, total0, own0), (busy1, total1, own1) = self._start, self._end
        if total1 <= total0:
            return "other load ?"
        cores = os.cpu_count() or 1
        others = max(0.0, (busy1 - busy0) - (own1 - own0)) / (total1 - total0) * cores
        return f"other processes busy {others:.2f} of {cores} cores"


def gallery(n: int, dim: int, seed: int, per_identity: int = 5) -> np.ndarray:
    """``n`` unit vectors: identities of ``per_identity`` faces around a random centre."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((-(-n // per_identity), dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    matrix = np.repeat(centres, per_identity, axis=0)[:n]
    noise = rng.standard_normal((n, dim), dtype=np.float32)
    noise *= 0.7 / np.sqrt(dim)  # |noise| ≈ 0.7: same-identity cosine ≈ 0.67
    matrix += noise
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix


def probes(matrix: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Probes near stored faces (another photo of the same person), as a real search would be."""
    rng = np.random.default_rng(seed)
    picked = matrix[rng.integers(0, matrix.shape[0], count)]
    noisy = picked + rng.standard_normal(picked.shape, dtype=np.float32) * (0.5 / np.sqrt(matrix.shape[1]))
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def bench_index(n: int, dim: int, queries: int, k: int) -> None:
    matrix = gallery(n, dim, seed=n)
    ids = [f"{i:08x}" for i in range(n)]
    users = [f"user-{i // 5}" if i % 2 else None for i in range(n)]
    started = time.perf_counter()
    index = VectorIndex.from_arrays(ids, matrix, users)
    build = time.perf_counter() - started
    qs = probes(matrix, queries, seed=n + 1)
    for q in qs[:3]:  # warm up caches and BLAS threads
        index.search(q, limit=k, min_cosine=-1.0)
    latencies, user_latencies, exact = [], [], 0
    others = OtherLoad().__enter__()
    results = []
    for q in qs:
        t = time.perf_counter()
        results.append(index.search(q, limit=k, min_cosine=-1.0))
        latencies.append(time.perf_counter() - t)
    for q in qs[: max(1, queries // 4)]:
        t = time.perf_counter()
        index.search_users(q, limit=k, min_cosine=-1.0)
        user_latencies.append(time.perf_counter() - t)
    others.__exit__()
    for q, hits in zip(qs, results, strict=True):  # checked after timing, so it cannot disturb it
        scores = matrix @ q
        if [h for h, _ in hits] == [ids[i] for i in np.argsort(-scores, kind="stable")[:k]]:
            exact += 1
        elif np.allclose(sorted((c for _, c in hits), reverse=True), np.sort(scores)[::-1][:k]):
            exact += 1  # same scores, ties ordered differently
    blas, out = [], np.empty(n, dtype=np.float32)
    for q in qs[: max(1, queries // 4)]:  # baseline: the plain BLAS product alone, no selection
        t = time.perf_counter()
        np.dot(matrix, q, out=out)
        blas.append(time.perf_counter() - t)
    print(
        f"{n:>9,} faces | search top-{k}: median {statistics.median(latencies) * 1e3:6.2f} ms,"
        f" p99 {percentile(latencies, 99) * 1e3:6.2f} ms | search_users median"
        f" {statistics.median(user_latencies) * 1e3:6.2f} ms | BLAS np.dot alone (baseline) median"
        f" {statistics.median(blas) * 1e3:6.2f} ms | exact {exact}/{len(qs)}"
        f" | index build {build:.2f} s | {others}",
        flush=True,
    )


def bench_sqlite(n: int, dim: int, queries: int, k: int, batch: int, directory: Path) -> None:
    db = directory / "bench.db"
    matrix = gallery(n, dim, seed=7)
    records = [
        FaceRecord(str(uuid.uuid4()), BoundingBox(0.1, 0.1, 0.3, 0.3), str(uuid.uuid4()), 99.0, MODEL)
        for _ in range(n)
    ]
    store = SQLiteStore(db)
    store.create_collection("bench", MODEL)
    started = time.perf_counter()
    for i in range(0, n, batch):
        store.add_faces("bench", list(zip(records[i : i + batch], matrix[i : i + batch], strict=True)))
    bulk = time.perf_counter() - started
    single = min(200, n)
    store.create_collection("single", MODEL)
    started = time.perf_counter()
    for i in range(single):
        store.add_faces("single", [(records[i], matrix[i])])
    one_by_one = time.perf_counter() - started
    store.close()
    print(
        f"insert: {n / bulk:,.0f} faces/s in batches of {batch} ({n:,} faces, {bulk:.1f} s);"
        f" {single / one_by_one:,.0f} faces/s one per transaction (fsync each)"
        f" | db {db.stat().st_size / 1e6:,.0f} MB"
        f" | {load()}",
        flush=True,
    )
    started = time.perf_counter()
    store = SQLiteStore(db)
    qs = probes(matrix, queries, seed=8)
    store.search("bench", qs[0], limit=k, min_cosine=-1.0)
    opened = time.perf_counter() - started
    latencies = []
    for q in qs:
        t = time.perf_counter()
        store.search("bench", q, limit=k, min_cosine=-1.0)
        latencies.append(time.perf_counter() - t)
    store.close()
    print(
        f"open: {n:,}-face collection searchable {opened:.2f} s after opening (index loaded from SQLite)"
        f" | SQLiteStore.search top-{k} incl. records: median {statistics.median(latencies) * 1e3:.2f} ms,"
        f" p99 {percentile(latencies, 99) * 1e3:.2f} ms | {load()}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10k,100k,300k,1m", help="collection sizes for the index search")
    parser.add_argument("--open-size", default="300k", help="faces stored in SQLite for open/insert (0: skip)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1000, help="faces per add_faces call for the bulk insert")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the benchmark database")
    args = parser.parse_args(argv)
    print(machine())
    print(load(), flush=True)
    for size in [parse_size(s) for s in args.sizes.split(",") if s.strip()]:
        bench_index(size, args.dim, args.queries, args.k)
    open_size = parse_size(args.open_size)
    if open_size:
        with tempfile.TemporaryDirectory(dir=args.dir) as directory:
            bench_sqlite(open_size, args.dim, args.queries, args.k, args.batch, Path(directory))


if __name__ == "__main__":
    main(sys.argv[1:])
