"""The two durable backends side by side: embedded SQLite vs PostgreSQL (several servers, docs/deploy.md).

    python benchmarks/bench_store_backends.py                 # 1M faces (minutes; PostgreSQL via pgserver)
    python benchmarks/bench_store_backends.py --faces 100k --queries 100
    python benchmarks/bench_store_backends.py --database-url postgresql://user:pw@host/empty_db

For each backend, on a collection of N faces:
- fill: bulk add_faces in batches of 2,000 (how long an import of N faces takes);
- server start: open a fresh store and load the collection's index (PostgreSQL: ``preload``; SQLite: the
  first search loads it);
- search: top-10 latency (median, p99) on the loaded store: the in-memory scan plus the backend's checks
  (PostgreSQL: one query to catch up with the change log, one to re-read the hits);
- write → visible elsewhere: another process holds its own loaded store on the same database and searches
  back to back; the time from a 1-face add_faces returning here to that process's first search that finds
  the face (p50, p99); its resolution is one search;
- IndexFaces-like writes: 1-face add_faces with its audit record in the same transaction (``audit=``, as the
  gallery writes them on both backends), from one and from two writer processes at once;
- audit appends per second: 2 processes × 2 threads appending for a few seconds, then the chain is verified.

Vectors are synthetic, shaped like a face gallery (``bench_search.gallery``: identities of 5 faces around a
random centre), not real SFace vectors: for storage and a brute-force scan only the count and width matter.
PostgreSQL runs on this machine (pgserver: PostgreSQL 16 on a Unix socket, default settings, fsync on), as does
SQLite (WAL, synchronous=FULL), on the same disk. Other engineers share the machine: load is printed per step.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_search import OtherLoad, gallery, load, machine, parse_size, percentile, probes
from facetrace.audit import AuditEvent
from facetrace.store import FaceStore, SQLiteStore
from facetrace.types import BoundingBox, FaceRecord

MODEL = "sface-2021dec"
DIM = 128
COLLECTION = "bench"
FILL_BATCH = 2000


def record(face_id: str | None = None) -> FaceRecord:
    return FaceRecord(
        face_id=face_id or str(uuid.uuid4()),
        bounding_box=BoundingBox(0.1, 0.2, 0.3, 0.4),
        image_id=str(uuid.uuid4()),
        confidence=99.0,
        model=MODEL,
    )


def open_store(kind: str, target: str, *, listen: bool = True) -> FaceStore:
    if kind == "sqlite":
        return SQLiteStore(Path(target) / "facetrace.db")
    from facetrace.store.postgres import PostgresStore

    return PostgresStore(target, listen=listen)


def index_faces(store: FaceStore, n: int, rng: np.random.Generator) -> None:
    """``n`` IndexFaces-like writes: one face each, with its audit record in the same transaction."""
    for _ in range(n):
        vector = rng.standard_normal(DIM).astype(np.float32)
        vector /= np.linalg.norm(vector)
        event = AuditEvent("IndexFaces", "bench", collection_id=COLLECTION, match_count=1)
        store.add_faces(COLLECTION, [(record(), vector)], audit=event)


# --- child processes ------------------------------------------------------------------------------------


def _watcher(kind: str, target: str, pipe: Connection) -> None:
    """Hold a loaded store; for each (face id, vector) sent, search back to back until it is found."""
    store = open_store(kind, target)
    store.search(COLLECTION, np.eye(DIM, dtype=np.float32)[0], limit=1, min_cosine=2.0)  # load the index
    pipe.send("ready")
    while (message := pipe.recv()) is not None:
        face_id, vector = message
        pipe.send("watching")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            hits = store.search(COLLECTION, vector, limit=1, min_cosine=0.999)
            if hits and hits[0].face.face_id == face_id:
                pipe.send(time.monotonic())
                break
        else:
            pipe.send(None)
    store.close()


def _writer(kind: str, target: str, n: int, seed: int, start: Any, out: Any) -> None:
    store = open_store(kind, target, listen=False)
    start.wait()
    began = time.monotonic()
    index_faces(store, n, np.random.default_rng(seed))
    out.put(time.monotonic() - began)
    store.close()


def _auditor(kind: str, target: str, seconds: float, threads: int, start: Any, out: Any) -> None:
    store = open_store(kind, target, listen=False)
    audit = store.audit
    counts = [0] * threads
    start.wait()
    stop = time.monotonic() + seconds

    def work(i: int) -> None:
        while time.monotonic() < stop:
            audit.record(AuditEvent("SearchFacesByImage", f"bench-{i}", collection_id=COLLECTION, match_count=0))
            counts[i] += 1

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.put(sum(counts))
    store.close()


# --- measurements -----------------------------------------------------------------------------------------


def step(title: str, fn: Callable[[], str]) -> None:
    with OtherLoad() as other:
        result = fn()
    print(f"  {title:<34} {result}   [{other}; {load()}]", flush=True)


def run_processes(target_fn: Callable[..., None], args_list: list[tuple[Any, ...]]) -> list[Any]:
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=target_fn, args=(*args, start, out)) for args in args_list]
    for p in procs:
        p.start()
    time.sleep(3.0)  # let them import and connect before the clock starts
    start.set()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    return results


def bench_backend(kind: str, target: str, n: int, queries: int, writes: int, visibility: int) -> None:
    print(f"\n{kind}: {n:,} faces", flush=True)
    matrix = gallery(n, DIM, seed=n)
    store = open_store(kind, target)
    store.create_collection(COLLECTION, MODEL)

    def fill() -> str:
        began = time.monotonic()
        for i in range(0, n, FILL_BATCH):
            store.add_faces(COLLECTION, [(record(), matrix[j]) for j in range(i, min(n, i + FILL_BATCH))])
        took = time.monotonic() - began
        return f"{took:.1f} s ({n / took:,.0f} faces/s, batches of {FILL_BATCH})"

    step("fill", fill)
    store.close()

    fresh: list[FaceStore] = []

    def start() -> str:
        began = time.monotonic()
        opened = open_store(kind, target)
        if kind == "postgres":
            opened.preload()  # type: ignore[attr-defined]
        else:
            opened.search(COLLECTION, matrix[0], limit=1, min_cosine=0.99)
        fresh.append(opened)
        return f"{time.monotonic() - began:.2f} s (open + load {n:,} vectors)"

    step("server start (index load)", start)
    loaded = fresh[0]

    def search() -> str:
        times = []
        for probe in probes(matrix, queries, seed=1):
            began = time.perf_counter()
            loaded.search(COLLECTION, probe, limit=10, min_cosine=0.3)
            times.append((time.perf_counter() - began) * 1000)
        return f"median {statistics.median(times):.1f} ms, p99 {percentile(times, 99):.1f} ms ({queries} queries, top 10)"

    step("search", search)

    def visible() -> str:
        ctx = mp.get_context("spawn")
        here, there = ctx.Pipe()
        watcher = ctx.Process(target=_watcher, args=(kind, target, there))
        watcher.start()
        assert here.recv() == "ready"
        delays = []
        rng = np.random.default_rng(7)
        for _ in range(visibility):
            vector = rng.standard_normal(DIM).astype(np.float32)
            vector /= np.linalg.norm(vector)
            face = record()
            here.send((face.face_id, vector))
            assert here.recv() == "watching"
            loaded.add_faces(COLLECTION, [(face, vector)])
            committed = time.monotonic()
            found = here.recv()
            if found is not None:
                delays.append((found - committed) * 1000)
        here.send(None)
        watcher.join()
        return (
            f"p50 {statistics.median(delays):.1f} ms, p99 {percentile(delays, 99):.1f} ms "
            f"({len(delays)}/{visibility} seen; resolution: one search in the other process)"
        )

    step("write -> visible in another process", visible)
    loaded.close()

    for writers in (1, 2):

        def writes_per_second(writers: int = writers) -> str:
            times = run_processes(_writer, [(kind, target, writes, 100 + w) for w in range(writers)])
            total = writes * writers
            return f"{total / max(times):,.0f} faces/s ({writers} x {writes} one-face calls, each audited)"

        step(f"IndexFaces-like, {writers} writer(s)", writes_per_second)

    def audit_rate() -> str:
        seconds = 5.0
        counts = run_processes(_auditor, [(kind, target, seconds, 2) for _ in range(2)])
        checker = open_store(kind, target, listen=False)
        verified = checker.audit.verify()
        checker.close()
        state = "one valid chain" if verified.ok else f"BROKEN: {verified.reason}"
        return f"{sum(counts) / seconds:,.0f} appends/s (2 processes x 2 threads, {seconds:.0f} s; {state}, {verified.count:,} records)"

    step("audit appends under contention", audit_rate)


def start_postgres(folder: Path) -> tuple[str, Any]:
    import os

    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    handle = pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    return handle.get_uri("postgres"), handle


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--faces", type=parse_size, default=1_000_000, help="collection size (default 1M)")
    parser.add_argument("--queries", type=int, default=200, help="searches timed per backend")
    parser.add_argument("--writes", type=int, default=300, help="IndexFaces-like calls per writer")
    parser.add_argument("--visibility", type=int, default=50, help="write -> visible samples")
    parser.add_argument("--database-url", help="an EMPTY PostgreSQL database (default: start one with pgserver)")
    parser.add_argument("--backends", default="sqlite,postgres", help="comma-separated: sqlite,postgres")
    args = parser.parse_args(argv)
    print(machine(), flush=True)
    with tempfile.TemporaryDirectory(prefix="facetrace-bench-") as tmp:
        folder = Path(tmp)
        handle = None
        for kind in args.backends.split(","):
            if kind == "sqlite":
                target = str(folder / "sqlite")
                Path(target).mkdir()
            else:
                if args.database_url:
                    target = args.database_url
                else:
                    url, handle = start_postgres(folder)
                    import psycopg

                    with psycopg.connect(url, autocommit=True) as conn:
                        conn.execute("CREATE DATABASE facetrace_bench")
                    target = url.replace("/postgres?", "/facetrace_bench?")
                    with psycopg.connect(url) as conn:
                        print(f"PostgreSQL: {conn.execute('SELECT version()').fetchone()[0]}")  # type: ignore[index]
            bench_backend(kind, target, args.faces, args.queries, args.writes, args.visibility)
        if handle is not None:
            handle.cleanup()


if __name__ == "__main__":
    main()
