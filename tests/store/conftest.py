"""Fixtures for the store tests: both implementations behind one parametrised fixture, and face factories."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facetrace.store import FaceStore, MemoryStore, SQLiteStore
from facetrace.types import BoundingBox, FaceRecord, Vector

MODEL = "sface-2021dec"
DIM = 128


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """``n`` random unit vectors (float32): random directions are nearly orthogonal, like different people."""
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((n, dim)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def face(
    user_id: str | None = None, model: str = MODEL, external: str | None = None, face_id: str | None = None
) -> FaceRecord:
    return FaceRecord(
        face_id=face_id or str(uuid.uuid4()),
        bounding_box=BoundingBox(0.1, 0.2, 0.3, 0.4),
        image_id=str(uuid.uuid4()),
        confidence=99.5,
        model=model,
        external_image_id=external,
        user_id=user_id,
    )


def faces_with_vectors(n: int, seed: int = 0, dim: int = DIM) -> list[tuple[FaceRecord, Vector]]:
    return [(face(), v) for v in unit_vectors(n, dim, seed)]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FaceStore]:
    """Each contract test runs against every implementation (PostgreSQL: a fresh database per test)."""
    impl: FaceStore
    if request.param == "memory":
        impl = MemoryStore()
    elif request.param == "sqlite":
        impl = SQLiteStore(tmp_path / "facetrace.db")
    else:
        from facetrace.store.postgres import PostgresStore

        impl = PostgresStore(request.getfixturevalue("pg_url"))
    yield impl
    impl.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "facetrace.db"


def refuse_audit_appends(path: Path) -> None:
    """Make every audit append to the SQLite database at ``path`` fail as a full disk would (a trigger on the
    audit table only: any other change alone would still succeed), until ``accept_audit_appends``."""
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TRIGGER inject_full BEFORE INSERT ON audit BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END"
    )
    db.commit()
    db.close()


def accept_audit_appends(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER inject_full")
    db.commit()
    db.close()
