"""The system-of-record repositories on both backends: what a request pays for keys, tokens and leases.

    python benchmarks/bench_records.py                # SQLite and PostgreSQL (pgserver on this machine)
    python benchmarks/bench_records.py --database-url postgresql://user:pw@host/empty_db --repeat 500

Per backend, medians (and p90) over ``--repeat`` calls after a warm-up:
- key lookup: ``keys.get`` of an existing key (every signed request does one);
- token-bearing request: ``Idempotency.run`` with a fresh ClientRequestToken and a handler that does nothing
  (lock, look-up, store the answer; PostgreSQL: plus the advisory lock on its own connection);
- replayed token: ``Idempotency.run`` with a token already answered;
- lease renew (PostgreSQL): one heartbeat (renews every lease of the process in one UPDATE) with 10 leases.

PostgreSQL runs on this machine (pgserver, Unix socket, default settings, fsync on), SQLite in WAL with
synchronous=FULL on the same disk. Other engineers share the machine: the load is printed per step.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_search import load, machine
from benchmarks.common import timed
from facetrace.service.idempotency import Idempotency
from facetrace.store import FaceStore, SQLiteStore, records_of
from facetrace.store.records import KeyRecord


def open_store(kind: str, target: str) -> FaceStore:
    if kind == "sqlite":
        return SQLiteStore(Path(target) / "facetrace.db")
    from facetrace.store.postgres import PostgresStore

    return PostgresStore(target, listen=False)


def start_postgres(folder: Path) -> tuple[str, Any]:
    """A throwaway PostgreSQL 16 (pgserver, from the dev extra) in ``folder``: its URL and handle."""
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    handle = pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    return handle.get_uri("postgres"), handle


def _report(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    print(
        f"  {name:<28} median {statistics.median(samples) * 1000:7.3f} ms   p90 {p90 * 1000:7.3f} ms   ({load()})"
    )


def bench(kind: str, target: str, repeat: int) -> None:
    store = open_store(kind, target)
    records = records_of(store)
    assert records is not None
    try:
        records.keys.add(KeyRecord("FTBENCH", "secret", "write", None, "bench", 1.0))
        _report("key lookup", timed(lambda: records.keys.get("FTBENCH"), repeat, warmup=20))
        idempotency = Idempotency(records.tokens)
        counter = itertools.count()

        def fresh() -> bytes:
            token = f"t-{next(counter)}"
            return idempotency.run("FTBENCH", "CreateUser", {"UserId": "u", "ClientRequestToken": token}, _nothing)

        _report("token-bearing request", timed(fresh, repeat, warmup=20))
        idempotency.run("FTBENCH", "CreateUser", {"UserId": "u", "ClientRequestToken": "again"}, _nothing)
        replay: Callable[[], bytes] = lambda: idempotency.run(  # noqa: E731
            "FTBENCH", "CreateUser", {"UserId": "u", "ClientRequestToken": "again"}, _nothing
        )
        _report("replayed token", timed(replay, repeat, warmup=20))
        if records.leases is not None:
            leases = records.leases
            for i in range(10):
                assert leases.acquire(f"processor:bench-{i}")
            renew = getattr(leases, "renew", None)
            if renew is not None:
                _report("lease renew (10 leases)", timed(renew, repeat, warmup=5))
    finally:
        store.close()


def _nothing() -> bytes:
    return b"{}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=300, help="timed calls per measurement (default 300)")
    parser.add_argument("--database-url", help="an EMPTY PostgreSQL database (default: start one with pgserver)")
    args = parser.parse_args(argv)
    print(machine(), flush=True)
    with tempfile.TemporaryDirectory(prefix="facetrace-bench-") as tmp:
        print("sqlite:")
        bench("sqlite", tmp, args.repeat)
        url, handle = (args.database_url, None) if args.database_url else start_postgres(Path(tmp))
        try:
            print("postgres:")
            bench("postgres", url, args.repeat)
        finally:
            if handle is not None:
                handle.cleanup()


if __name__ == "__main__":
    main()
