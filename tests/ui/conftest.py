"""One facetrace server and one Debian chromium (driven by Playwright) for the whole dashboard test session.

Playwright's own browser download is not reachable here: the system's ``chromium`` is launched by its path.
The tests skip, saying why, only when that binary is absent (``.ci/run`` installs it).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facetrace.engine import FaceEngine
from facetrace.service import ServiceConfig
from facetrace.service.keys import AccessKey
from tests.service.conftest import Server, start_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory: pytest.TempPathFactory, engine: FaceEngine) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("ui-server")
    (home / "footage").mkdir()
    config = ServiceConfig(
        port=0, workers=2, camera_allow=("udp://127.0.0.1:*",), buckets={"footage": home / "footage"}
    )  # a synthetic camera on loopback, and a folder of stored video
    running = start_server(home, engine, config)
    yield running
    running.thread.stop()
    running.gallery.store.close()


@pytest.fixture(scope="package")  # Playwright's loop is closed before tests outside tests/ui run asyncio
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=ARGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        yield context
        context.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh tab with no cookies (each test signs in as whom it needs)."""
    browser.clear_cookies()
    tab = browser.new_page()
    tab.set_default_timeout(20_000)
    yield tab
    tab.close()


def sign_in(page: Any, server: Server, key: AccessKey, then: str = "/ui/") -> None:
    page.goto(server.url + then)
    assert "/ui/signin" in page.url
    page.fill("input[name=access_key_id]", key.access_key_id)
    page.fill("input[name=secret]", key.secret)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(re.compile(re.escape(server.url + then) + "$"))
