"""Stored video in the dashboard: browse a bucket folder, search a clip for a collection's faces, see each
person's appearances, and play the clip from an appearance (the file is served with HTTP Range support)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from facetrace.engine import FaceEngine
from tests.service.conftest import Server
from tests.ui.conftest import sign_in
from tests.video.conftest import Actor, sprite, write_video

pytestmark = pytest.mark.slow


def test_a_video_search_shows_appearances_and_plays_from_one(
    page: Any, ui_server: Server, engine: FaceEngine, photos: dict[str, Path]
) -> None:
    gallery = ui_server.gallery
    gallery.create_collection("lobby-people")
    gallery.index_faces("lobby-people", photos["obama2.jpg"], external_image_id="obama", max_faces=1)
    gallery.index_faces("lobby-people", photos["biden.jpg"], external_image_id="biden", max_faces=1)
    actors = [
        Actor("obama", sprite(engine, photos["obama.jpg"], 80), 0.0, 1.5, (40, 20), (300, 30)),
        Actor("biden", sprite(engine, photos["biden.jpg"], 80), 2.0, 3.8, (500, 40), (360, 30)),
    ]
    (ui_server.home / "footage" / "lobby").mkdir()
    write_video(ui_server.home / "footage" / "lobby" / "scene.mp4", actors)

    sign_in(page, ui_server, ui_server.admin, "/ui/videos")
    page.click("a:has-text('footage')")
    page.click("a:has-text('lobby')")
    form = page.locator("form:has(button:has-text('Search scene.mp4'))")
    form.locator("select[name=collection_id]").select_option("lobby-people")
    form.locator("button").click()
    page.wait_for_url(re.compile(r"/ui/videos/jobs/"))
    page.locator("[data-job-state=SUCCEEDED]").wait_for(timeout=60_000)
    assert page.locator(".appearance-who").all_inner_texts() == ["obama", "biden"]  # in order of first appearance
    biden = page.locator("section:has(h3:has-text('biden')) button.appearance").first
    start = float(biden.get_attribute("data-seek") or "nan")
    assert 1.8 <= start <= 2.6

    bar = page.locator("section:has(h3:has-text('biden')) .track .sighting").first
    assert 45 < float(page.evaluate("b => parseFloat(b.style.left)", bar.element_handle())) < 65  # 2.0 s of 3.8

    player = page.locator("video[data-player]")
    deadline = time.monotonic() + 15
    while page.evaluate("v => v.readyState", player.element_handle()) < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    biden.click()
    position = page.evaluate("v => v.currentTime", player.element_handle())
    assert abs(position - start) < 0.5

    source = player.get_attribute("src")
    partial = page.request.get(ui_server.url + source, headers={"Range": "bytes=0-99"})
    assert partial.status == 206
    assert len(partial.body()) == 100
    records = [r.event.operation for r in ui_server.audit.records(collection_id="lobby-people")]
    assert "StartFaceSearch" in records
    assert "GetFaceSearch" in records
