"""Which cluster a command uses: ``--ray``, else ``FACETRACE_RAY_ADDRESS``, else none (in-process)."""

from __future__ import annotations

import subprocess
import sys

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
