"""Which cluster a command uses: ``--ray``, else ``FACETRACE_RAY_ADDRESS``, else none (in-process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from facetrace.cluster.runtime import ADDRESS_ENV, configured_address, connect
from facetrace.errors import InvalidParameterError


def test_the_option_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ADDRESS_ENV, "head:6379")
    assert configured_address(None) == "head:6379"
    assert configured_address("auto") == "auto"
    monkeypatch.setenv(ADDRESS_ENV, "  ")
    assert configured_address(None) is None
    monkeypatch.delenv(ADDRESS_ENV)
    assert configured_address(None) is None
    with pytest.raises(InvalidParameterError, match="invalid Ray address"):
        configured_address("head 6379")


def test_connect_without_a_cluster_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ADDRESS_ENV, raising=False)
    with pytest.raises(InvalidParameterError, match="no Ray cluster configured"):
        connect(None)


def test_the_embedded_default_does_not_import_ray() -> None:
    code = (
        "import sys\n"
        "import facetrace.app, facetrace.video.processors, facetrace.service.app, facetrace.cli\n"
        "print('ray' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_commands_refuse_a_missing_or_malformed_cluster(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from facetrace.cli import main

    monkeypatch.delenv(ADDRESS_ENV, raising=False)
    assert main(["serve", "--home", str(tmp_path), "--ray", "head 6379"]) == 1
    assert "invalid Ray address" in capsys.readouterr().err
    assert main(["ray", "status", "--home", str(tmp_path)]) == 1
    assert "no Ray cluster" in capsys.readouterr().err
    assert main(["ray", "status", "--home", str(tmp_path), "--ray", "auto"]) == 1
    assert "--database-url" in capsys.readouterr().err
