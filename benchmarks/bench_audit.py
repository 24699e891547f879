"""What fail-closed auditing costs a write: one change + its audit record in one transaction (now) against the
change and the record in two databases (before schema 2: facetrace.db + audit.db, two commits, two fsyncs).

    python -m benchmarks.bench_audit [--rounds 200] [--dir /path/on/the/disk/to/test]

Each round indexes one face (a 128-d unit vector, as IndexFaces stores it) and appends its IndexFaces record;
the rounds of the two ways are interleaved so disk and load changes hit both alike. Also timed: a search's
own audit append (``store.audit.record``), the only write on a search's path, keyed (HMAC, the default since
issue 9) and unkeyed (SHA-256, ``SQLiteStore(keyed=False)``) interleaved; and the chain arithmetic alone
(``new_row``, no disk). Medians and p95 in ms.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from benchmarks.common import load_average, machine_info
from facetrace.audit import GENESIS_HASH, AuditEvent, AuditKey, new_row
from facetrace.store import SQLiteStore
from facetrace.types import BoundingBox, FaceRecord

MODEL = "sface-2021dec"


def _face(rng: np.random.Generator) -> tuple[FaceRecord, np.ndarray]:
    vector = rng.standard_normal(128).astype(np.float32)
    record = FaceRecord(str(uuid.uuid4()), BoundingBox(0.1, 0.1, 0.2, 0.2), str(uuid.uuid4()), 99.0, MODEL)
    return record, vector / np.linalg.norm(vector)


def _event(face_id: str) -> AuditEvent:
    return AuditEvent("IndexFaces", "bench", "c", match_count=1, matched_face_ids=(face_id,))


def _summary(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    return f"{name:<44} median {statistics.median(ms):7.3f} ms   p95 {ms[int(len(ms) * 0.95) - 1]:7.3f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None, help="where the databases go (default: a temp dir)")
    args = parser.parse_args()
    print(machine_info())
    print(f"load average before: {load_average()}")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        one = SQLiteStore(Path(tmp) / "one.db")
        plain = SQLiteStore(Path(tmp) / "plain.db", keyed=False)
        unkeyed_append: list[float] = []
        two, separate_audit = SQLiteStore(Path(tmp) / "two.db"), SQLiteStore(Path(tmp) / "audit.db")
        for store in (one, two):
            store.create_collection("c", MODEL)
        together: list[float] = []
        apart: list[float] = []
        search_append: list[float] = []
        for _ in range(args.rounds):
            record, vector = _face(rng)
            started = time.perf_counter()
            one.add_faces("c", [(record, vector)], audit=_event(record.face_id))
            together.append(time.perf_counter() - started)

            record, vector = _face(rng)
            started = time.perf_counter()
            two.add_faces("c", [(record, vector)])
            separate_audit.audit.record(_event(record.face_id))
            apart.append(time.perf_counter() - started)

            started = time.perf_counter()
            one.audit.record(AuditEvent("SearchFacesByImage", "bench", "c", threshold=99.0, match_count=0))
            search_append.append(time.perf_counter() - started)

            started = time.perf_counter()
            plain.audit.record(AuditEvent("SearchFacesByImage", "bench", "c", threshold=99.0, match_count=0))
            unkeyed_append.append(time.perf_counter() - started)
        assert one.audit.verify().ok
        assert one.audit.key is not None
        for store in (one, two, separate_audit, plain):
            store.close()
    print(f"{args.rounds} rounds in {tmp}")
    print(_summary("change + record, one transaction (now)", together))
    print(_summary("change, then record in audit.db (before)", apart))
    print(_summary("a search's audit append, keyed (HMAC)", search_append))
    print(_summary("a search's audit append, unkeyed (SHA-256)", unkeyed_append))
    event = AuditEvent("SearchFacesByImage", "bench", "c", threshold=99.0, match_count=1, matched_face_ids=("x",))
    key = AuditKey(b"k" * 64)
    for label, chosen in (("new_row keyed", key), ("new_row unkeyed", None)):
        times = []
        for seq in range(1, 20_001):
            started = time.perf_counter()
            new_row(seq, GENESIS_HASH, event, key=chosen)
            times.append(time.perf_counter() - started)
        print(_summary(f"{label} (no disk, 20000 rows)", times))
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
