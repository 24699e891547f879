"""A real PostgreSQL for the tests: one server per test session, one fresh database per test.

The server comes from the ``pgserver`` package (PostgreSQL 16 binaries on PyPI, installed by the ``dev``
extra): it runs ``initdb`` and ``pg_ctl`` in a temporary folder, listening on a Unix socket only. As root
it runs PostgreSQL as a dedicated system user ``pgserver`` (PostgreSQL refuses to run as root), which it
creates with ``useradd``. Instead, ``FACETRACE_TEST_POSTGRES_URL`` may name an existing server (a URL to a
database whose user may CREATE DATABASE), e.g. a CI service container.

If no PostgreSQL can be had, the tests that need one FAIL with the reason: a silently skipped backend is an
untested backend. Set ``FACETRACE_TEST_POSTGRES=skip`` to skip them on purpose.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

OPT_OUT = "FACETRACE_TEST_POSTGRES"
SERVER_URL = "FACETRACE_TEST_POSTGRES_URL"


@dataclass(frozen=True)
class PostgresServer:
    """A running server: ``admin_url`` connects to its maintenance database."""

    admin_url: str

    def database_url(self, name: str) -> str:
        base, sep, query = self.admin_url.partition("?")
        head = base.rsplit("/", 1)[0]
        return f"{head}/{name}{sep}{query}"

    def create_database(self) -> str:
        import psycopg

        name = f"ft_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)


def _start_pgserver() -> tuple[PostgresServer, Any, Path]:
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())  # pgserver's lock file; avoids a warning
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    folder = Path(tempfile.mkdtemp(prefix="facetrace-pg-"))
    handle = pgserver.get_server(folder / "data", cleanup_mode="delete")
    return PostgresServer(handle.get_uri()), handle, folder


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL for the whole session (started in ~4 s, stopped and deleted at the end)."""
    if os.environ.get(OPT_OUT, "").lower() in ("skip", "0", "no", "off"):
        pytest.skip(f"PostgreSQL tests switched off ({OPT_OUT}={os.environ[OPT_OUT]})")
    url = os.environ.get(SERVER_URL)
    if url:
        yield PostgresServer(url)
        return
    try:
        server, handle, folder = _start_pgserver()
    except Exception as exc:
        pytest.fail(
            f"cannot start PostgreSQL for the tests ({type(exc).__name__}: {exc}). Install the dev extra "
            f"(pip install -e '.[dev]', it brings pgserver), or point {SERVER_URL} at a server, or set "
            f"{OPT_OUT}=skip to skip the PostgreSQL tests.",
            pytrace=False,
        )
    try:
        yield server
    finally:
        _stop_now(handle)
        handle.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def _stop_now(handle: Any) -> None:
    """Stop without the shutdown checkpoint (``-m immediate``): the data is deleted next anyway, and a
    checkpoint of every test database took ~20 s on a busy machine. ``cleanup`` then only deletes."""
    try:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=handle.pgdata, user=handle.system_user)
    except Exception:  # cleanup() stops it the slow way
        return


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server (~0.1 s to create)."""
    return postgres_server.create_database()
