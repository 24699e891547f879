"""The compact index of large collections (store/ann_index.py) against the exact scan, up to 20M faces.

    python -m benchmarks.bench_ann --sizes 1m                     # side by side with the exact scan (~6 min idle)
    python -m benchmarks.bench_ann --sizes 20m --exact-max 0      # 20M: recall from a chunked exact scan

Vectors behave like faces: real SFace vectors of LFW photos (``--real``: the npz written by
``benchmarks/embed_lfw_calibration.py``) and normalised mixtures of three of them plus a little noise, so every
synthetic face has the neighbourhood structure of real ones (not uniform noise, which no index struggles with
the same way). The gallery is generated once per seed and cached as a float32 file under ``--cache`` (a size
uses a prefix of the largest file). Probes: 3/4 are another "photo" of a gallery face (the face plus noise,
cosine ≈ 0.8 to it), 1/4 are real LFW vectors (their people are in the mixtures only partly: hard probes).

Per size, three processes, as a deployment has them:
1. this one computes the exact top-10 of every probe by a chunked scan of the gallery file (the truth);
2. a *build* process streams the faces into a ``VectorIndex`` whose rows live in a file beside it
   (``face_rows.RowFile``), builds the compact index and writes a snapshot (``index_files``);
3. a *search* process opens the snapshot (the start-up a server does), answers every probe through the
   compact index, replays changes (1% of the faces deleted and indexed again under new ids, checked), and
   reports its peak RSS; up to ``--exact-max`` it then also times the exact scan of the same rows (after
   the peak RSS was read: a scan maps every row).
Recall@10 is against the truth (no threshold), and of the true hits at or above ``--threshold``.
"""

from __future__ import annotations

import argparse
import contextlib
import mmap
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from queue import Empty
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine_info
from facetrace.store.index_files import IndexDirectory
from facetrace.store.vector_index import VectorIndex

DIM = 128
_CHUNK = 1 << 18
_TRUTH_CHUNK = 1 << 20


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def load() -> str:
    return "load {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def peak_rss_gb() -> float:
    """This process's peak resident set (VmHWM), mapped file pages included."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def rss_parts_gb() -> str:
    """This process's resident memory now: anonymous (its own) and mapped file pages (the row file's pages
    that re-scoring touched: clean, shared with the page cache, dropped by the kernel when memory is short)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("RssAnon:", "RssFile:")):
            fields[line.split(":")[0]] = int(line.split()[1]) / 1024**2
    return f"{fields.get('RssAnon', float('nan')):.2f} GB anonymous + {fields.get('RssFile', float('nan')):.2f} GB file pages"


def face_id(i: int) -> str:
    return str(uuid.UUID(int=(i << 1) | (1 << 127)))


def face_number(text: str) -> int:
    return (uuid.UUID(text).int & ((1 << 127) - 1)) >> 1


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


def exact_top10(gallery: np.ndarray, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, scores) of every probe's 10 best gallery rows, best first, by a chunked scan of the file."""
    best_rows = np.zeros((probes.shape[0], 0), dtype=np.int64)
    best_scores = np.zeros((probes.shape[0], 0), dtype=np.float32)
    for start in range(0, gallery.shape[0], _TRUTH_CHUNK):
        scores = probes @ np.asarray(gallery[start : start + _TRUTH_CHUNK]).T
        top = np.argpartition(-scores, min(10, scores.shape[1] - 1), axis=1)[:, :10]
        rows = np.concatenate([best_rows, top + start], axis=1)
        vals = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
        keep = np.argsort(-vals, axis=1, kind="stable")[:, :10]
        best_rows, best_scores = np.take_along_axis(rows, keep, axis=1), np.take_along_axis(vals, keep, axis=1)
    return best_rows, best_scores


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def mode(compact: bool) -> None:
    os.environ["FACETRACE_ANN_MIN_FACES"] = "1" if compact else str(10**12)


def build(gallery_path: str, n: int, folder: str, out: Any) -> None:
    """Child: stream the faces into an index with a row file, build the compact index, write a snapshot."""
    mode(True)
    directory = IndexDirectory(Path(folder))
    index = VectorIndex(DIM, files=directory.files("1"))
    started = time.perf_counter()
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        # read, not mapped: the gallery file's pages must not count as the build's memory (a store reads rows)
        block = np.fromfile(gallery_path, dtype=np.float32, count=(stop - start) * DIM, offset=start * DIM * 4)
        index.load_rows([face_id(i) for i in range(start, stop)], block.reshape(-1, DIM), [None] * (stop - start))
    rows_s = time.perf_counter() - started
    started = time.perf_counter()
    index.prepare()
    built = time.perf_counter() - started
    assert index.compact is not None
    stats = index.compact.stats
    started = time.perf_counter()
    index.persist()
    out.put({"rows_s": rows_s, "build_s": built, "persist_s": time.perf_counter() - started,
             "lists": stats.lists, "probes": stats.probes, "rss": peak_rss_gb(), "load": load()})  # fmt: skip


def timed(index: VectorIndex, probes: np.ndarray, min_cosine: float) -> tuple[list[float], list[list[int]]]:
    latencies, results = [], []
    for probe in probes:
        started = time.perf_counter()
        hits = index.search(probe, limit=10, min_cosine=min_cosine)
        latencies.append(time.perf_counter() - started)
        results.append([face_number(f) for f, _ in hits])
    return latencies, results


def spin(seconds: float) -> None:
    """Child: keep one core busy (another tenant of the machine)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def evict_rows(index: VectorIndex) -> None:
    """Drop the row file's pages from this process and from the page cache: the next re-scores read the disk."""
    rows = index._rows  # the benchmark reaches into the index: a server never evicts its own rows
    rows.release()
    if rows.path is not None:
        fd = os.open(rows.path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def under_load(index: VectorIndex, probes: np.ndarray) -> dict[str, Any]:
    """The probes again with a process keeping one core busy; then re-scoring from a row file evicted from
    the page cache, the rows' reads asked for together (``RowFile.prefetch``) and a fault per row (before), twice each
    in ABBA order (medians over both passes)."""
    from facetrace.store import face_rows

    out: dict[str, Any] = {}
    busy = mp.get_context("spawn").Process(target=spin, args=(600.0,), daemon=True)
    busy.start()
    time.sleep(1.0)
    try:
        out["busy"] = (*timed(index, probes, -1.0), load())
    finally:
        busy.terminate()
        busy.join()
    prefetch = face_rows.RowFile.prefetch
    try:
        # alternated (ABBA): whichever pass runs first after the busy one also pays for other cold pages
        for label in ("cold", "cold-faults", "cold-faults", "cold"):
            face_rows.RowFile.prefetch = (  # type: ignore[method-assign]
                prefetch if label == "cold" else (lambda self, rows: None)
            )
            evict_rows(index)
            lat, hits = timed(index, probes, -1.0)
            if label in out:
                lat = out[label][0] + lat
            out[label] = (lat, hits, load())
    finally:
        face_rows.RowFile.prefetch = prefetch  # type: ignore[method-assign]
    return out


def search(gallery_path: str, n: int, folder: str, probes: np.ndarray, exact: bool, sweep: str, out: Any) -> None:
    """Child: a server's start-up from the snapshot, its searches, a replay of changes, its peak RSS."""
    mode(True)
    started = time.perf_counter()
    index = VectorIndex.open_snapshot(IndexDirectory(Path(folder)).files("1"), DIM)
    assert index is not None
    assert index.compact is not None
    result: dict[str, Any] = {
        "open_s": time.perf_counter() - started,
        "open_rss": peak_rss_gb(),
        "open_load": load(),
    }
    started = time.perf_counter()
    assert face_id(0) in index  # the first lookup by id builds the id → row table (a replay needs it)
    result["lookup_s"] = time.perf_counter() - started
    if index.compact.outdated:  # 8-bit codes of an earlier snapshot: the first search starts their recode
        started = time.perf_counter()
        index.search(probes[0], limit=10, min_cosine=-1.0)
        index.wait_retrained()
        result["recode"] = (time.perf_counter() - started, peak_rss_gb(), load())
    index.search(probes[0], limit=10, min_cosine=-1.0)
    for label, floor in (("top", -1.0), ("thr", 0.5)):
        lat, hits = timed(index, probes, floor)
        result[label] = (lat, hits, load())
    result.update(under_load(index, probes))
    if sweep:
        chosen = index.compact.probes
        for read in (int(p) for p in sweep.split(",")):
            index.compact.probes = read
            result[f"sweep{read}"] = (*timed(index, probes, -1.0), load())
        index.compact.probes = chosen
    result["rss_search"] = peak_rss_gb()
    result["rss_parts"] = rss_parts_gb()
    # replay 1% of changes as a start-up does after the snapshot's watermark: deleted, indexed again
    gallery = np.memmap(gallery_path, dtype=np.float32, mode="r", shape=(n, DIM))
    gallery._mmap.madvise(mmap.MADV_RANDOM)  # type: ignore[attr-defined]  # scattered rows: no read-ahead
    gone = np.sort(np.random.default_rng(n + 7).choice(n, max(10, n // 100), replace=False))
    again = [face_id(n + int(i)) for i in gone]
    started = time.perf_counter()
    index.apply_changes([face_id(int(i)) for i in gone], again, np.asarray(gallery[gone]), [None] * len(gone), 1)
    result["churn_s"] = time.perf_counter() - started
    checked = gone[:: max(1, len(gone) // 200)]
    result["churn_found"] = sum(
        face_number(index.search(np.asarray(gallery[i]), limit=1, min_cosine=0.5)[0][0]) == n + int(i)
        for i in checked
    )
    result["churn_stale"] = sum(
        any(face_number(f) == int(i) for f, _ in index.search(np.asarray(gallery[i]), limit=10, min_cosine=0.0))
        for i in checked
    )
    result["churn_checked"] = len(checked)
    result["rss"] = peak_rss_gb()
    result["churn_load"] = load()
    if exact:  # after the peak RSS was read: a scan maps every row of the file
        mode(False)
        index.search(probes[0], limit=10, min_cosine=-1.0)
        result["exact"] = (*timed(index, probes, -1.0), load())
    out.put(result)


def in_child(target: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    while True:  # a child that dies (out of memory, a bug) must not leave this process waiting forever
        try:
            result: dict[str, Any] = queue.get(timeout=5)
            break
        except Empty:
            if not proc.is_alive():
                sys.exit(f"{target.__name__} process died with exit code {proc.exitcode}")
    proc.join()
    return result


def recall(
    got: list[list[int]], truth_rows: np.ndarray, truth_scores: np.ndarray, floor: float
) -> tuple[float, int]:
    found = wanted = 0
    for hits, rows, scores in zip(got, truth_rows, truth_scores, strict=True):
        want = {int(r) for r, s in zip(rows, scores, strict=True) if s >= floor}
        found += len(want & set(hits))
        wanted += len(want)
    return (found / wanted if wanted else 1.0), wanted


def bench(n: int, real: np.ndarray, args: argparse.Namespace) -> None:
    gallery = face_like(real, n, args.cache, seed=args.seed)
    gallery_path = str(
        next(p for p in sorted(args.cache.glob(f"facelike-s{args.seed}-*.f32")) if p.stat().st_size >= n * DIM * 4)
    )
    probes = make_probes(gallery, real, args.queries, seed=n)
    print(f"\n== {n:,} faces ({load()})", flush=True)
    truth_file = args.cache / f"truth-s{args.seed}-{n}-q{args.queries}.npz"
    if truth_file.exists():  # the same gallery and probes: the scan's answer does not change
        with np.load(truth_file) as saved:
            truth_rows, truth_scores = saved["rows"], saved["scores"]
        print(f"truth: exact top-10 of {len(probes)} probes read from {truth_file}", flush=True)
    else:
        started = time.perf_counter()
        truth_rows, truth_scores = exact_top10(gallery, probes)
        truth_s = time.perf_counter() - started
        np.savez(truth_file, rows=truth_rows, scores=truth_scores)
        print(
            f"truth: exact top-10 of {len(probes)} probes by a chunked BLAS scan in {truth_s:.0f} s ({load()})",
            flush=True,
        )
    with contextlib.ExitStack() as stack:
        if args.keep is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(dir=args.cache))
        else:  # a snapshot kept from an earlier run of the same size is searched again, not rebuilt
            folder = str(args.keep / f"n{n}")
        if not (Path(folder) / "1.meta.json").exists():
            b = in_child(build, gallery_path, n, folder)
            size = sum(p.stat().st_size for p in Path(folder).glob("1.*.faiss"))
            print(
                f"build process: rows → row file {b['rows_s']:.0f} s, compact index {b['build_s']:.0f} s "
                f"({b['lists']} lists, {b['probes']} read), snapshot written in {b['persist_s']:.0f} s, codes "
                f"{size / 1024**3:.2f} GB; peak RSS {b['rss']:.1f} GB ({b['load']})",
                flush=True,
            )
        else:
            print(f"the snapshot kept in {folder} is searched again", flush=True)
        # The replay below appends rows past the snapshot's count and writes no snapshot: a kept one stays valid.
        r = in_child(search, gallery_path, n, folder, probes, n <= args.exact_max, args.sweep)
    if "recode" in r:
        took, rss, at = r["recode"]
        print(
            f"the snapshot's 8-bit codes recoded to fast-scan codes in {took:.0f} s, peak RSS {rss:.2f} GB ({at})"
        )
    print(
        f"start-up: snapshot opened and checked in {r['open_s']:.1f} s + id lookup built in {r['lookup_s']:.1f} s"
        f" = {r['open_s'] + r['lookup_s']:.1f} s; RSS after opening {r['open_rss']:.2f} GB ({r['open_load']})"
    )
    for label, floor, name in (("top", -1.0, "top-10"), ("thr", args.threshold, f"hits ≥ cos {args.threshold}")):
        lat, hits, at = r[label]
        rec, wanted = recall(hits, truth_rows, truth_scores, floor)
        line = f"{name:>16}: compact median {statistics.median(lat) * 1e3:.2f} ms, p99 {pct(lat, 99) * 1e3:.2f} ms, recall {rec:.4f} of {wanted}"
        if label == "top" and "exact" in r:
            elat, _, eat = r["exact"]
            line += (
                f" | exact scan median {statistics.median(elat) * 1e3:.2f} ms, p99 {pct(elat, 99) * 1e3:.2f} ms"
                f" ({eat}) | speed-up ×{statistics.median(elat) / statistics.median(lat):.1f}"
            )
        print(f"{line} ({at})", flush=True)
    lat, hits, at = r["busy"]
    print(
        f"  top-10 with a process keeping one core busy: median {statistics.median(lat) * 1e3:.2f} ms, p99 "
        f"{pct(lat, 99) * 1e3:.2f} ms, recall {recall(hits, truth_rows, truth_scores, -1.0)[0]:.4f} ({at})"
    )
    for label, what in (("cold", "reads asked for together"), ("cold-faults", "a fault per row, as before")):
        lat, hits, at = r[label]
        print(
            f"  rows evicted from the page cache, {what}: top-10 median {statistics.median(lat) * 1e3:.2f} ms, p99 "
            f"{pct(lat, 99) * 1e3:.2f} ms, recall {recall(hits, truth_rows, truth_scores, -1.0)[0]:.4f} ({at})",
            flush=True,
        )
    for key in sorted((k for k in r if k.startswith("sweep")), key=lambda k: int(k[5:])):
        lat, hits, at = r[key]
        print(f"    {key[5:]:>4} lists read: median {statistics.median(lat) * 1e3:.2f} ms, recall "
              f"{recall(hits, truth_rows, truth_scores, -1.0)[0]:.4f} ({at})")  # fmt: skip
    print(
        f"replay of {n // 100:,} deletes + {n // 100:,} adds (1%) in {r['churn_s']:.1f} s: {r['churn_found']}/"
        f"{r['churn_checked']} found under the new id, {r['churn_stale']} old ids returned ({r['churn_load']})"
    )
    print(
        f"search process peak RSS: {r['rss_search']:.2f} GB after start-up and searches (now: {r['rss_parts']}),"
        f" {r['rss']:.2f} GB after"
        " the replay (its deleted and added rows' pages, of the row file and the gallery, count as resident)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1m")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threshold", type=float, default=0.5, help="cosine of a search threshold")
    parser.add_argument(
        "--exact-max", type=parse_size, default=5_000_000, help="largest size also scanned in-process"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="keep each size's snapshot here and search it again next time")
    parser.add_argument("--sweep", default="", help="lists read per query to compare, e.g. 32,64,128,256")
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
