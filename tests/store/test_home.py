"""The data home: where it is, and that facetrace creates it private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from facetrace.errors import StoreError
from facetrace.home import ensure_home, resolve_home


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACETRACE_HOME", str(tmp_path / "env"))
    assert resolve_home() == tmp_path / "env"
    assert resolve_home(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("FACETRACE_HOME")
    assert resolve_home().name == "facetrace"


def test_created_private_even_with_a_loose_umask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    old = os.umask(0o000)
    try:
        home = ensure_home(tmp_path / "a" / "b")
    finally:
        os.umask(old)
    assert home.is_dir()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert ensure_home(home) == home  # idempotent


def test_a_file_in_the_way_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "home"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError):
        ensure_home(blocker)
