"""Child process for the crash test: writes to an SQLite store forever, printing each acknowledged write.

Run as ``python crash_writer.py DB START``. Batch ``b`` adds three faces whose ids and vectors are derived
from ``b`` (see ``batch``), and every fifth batch also creates a user and associates the batch's first face,
so the parent can tell exactly what each ``ack b`` line promised.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import numpy as np

from facetrace.store import SQLiteStore
from facetrace.types import BoundingBox, FaceRecord, Vector

MODEL = "sface-2021dec"
PER_BATCH = 3


def batch(b: int) -> list[tuple[FaceRecord, Vector]]:
    rng = np.random.default_rng(b)
    vectors = rng.standard_normal((PER_BATCH, 128)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        (
            FaceRecord(
                face_id=str(uuid.UUID(int=b * PER_BATCH + i + 1)),
                bounding_box=BoundingBox(0.1, 0.1, 0.5, 0.5),
                image_id=str(uuid.UUID(int=10**9 + b)),
                confidence=90.0 + i,
                model=MODEL,
            ),
            vectors[i],
        )
        for i in range(PER_BATCH)
    ]


def user_of(b: int) -> str | None:
    return f"user-{b}" if b % 5 == 0 else None


def main() -> None:
    store = SQLiteStore(Path(sys.argv[1]))
    b = int(sys.argv[2])
    if b == 0:
        store.create_collection("c", MODEL)
    while True:
        store.add_faces("c", batch(b))
        user = user_of(b)
        if user is not None:
            store.create_user("c", user)
            store.associate_faces("c", user, [batch(b)[0][0].face_id])
        print(f"ack {b}", flush=True)
        b += 1


if __name__ == "__main__":
    main()
