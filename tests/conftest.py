"""Fixtures shared by every test: real photos, installed models, one engine per session, isolated homes."""

from __future__ import annotations

from pathlib import Path

import pytest

from facetrace.engine import FaceEngine
from facetrace.models.assets import ARTIFACTS, fetch_artifact
from tests.photos import PHOTOS, photo, shared_data
from tests.postgres import pg_url, postgres_server

__all__ = ["pg_url", "postgres_server"]  # fixtures for every test directory (tests/postgres.py)


@pytest.fixture(scope="session", autouse=True)
def _models_installed() -> None:
    """Install the default models once (a no-op when they are already cached and verified)."""
    for artifact in ARTIFACTS.values():
        fetch_artifact(artifact)


@pytest.fixture(scope="session")
def photos() -> dict[str, Path]:
    """Name → path of every registry test photo (obama.jpg, biden.jpg, t1.jpg, ...)."""
    return {name: photo(name) for name in PHOTOS}


@pytest.fixture(scope="session")
def engine() -> FaceEngine:
    """The default engine (YuNet + SFace), shared: building models costs ~0.3 s."""
    return FaceEngine.create()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh FACETRACE_HOME for one test."""
    path = tmp_path / "home"
    monkeypatch.setenv("FACETRACE_HOME", str(path))
    return path


@pytest.fixture(scope="session")
def shared() -> Path:
    """``../shared/data``; tests that need it are skipped on a fresh clone without it."""
    path = shared_data()
    if path is None:
        pytest.skip("../shared/data is not present")
    return path
