"""A camera in the dashboard: added and started from the browser, its live view (drawn from the running
pipeline) names the person walking through a synthetic MPEG-TS stream sent over UDP on loopback."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from facetrace.engine import FaceEngine
from tests.service.conftest import Server
from tests.ui.conftest import sign_in
from tests.video.conftest import Actor, UdpSender, free_udp_port, sprite

pytestmark = pytest.mark.slow


def test_the_live_view_names_a_person_from_the_running_pipeline(
    page: Any, ui_server: Server, engine: FaceEngine, photos: dict[str, Path]
) -> None:
    gallery = ui_server.gallery
    gallery.create_collection("watch")
    gallery.index_faces("watch", photos["obama2.jpg"], external_image_id="obama", max_faces=1)
    port = free_udp_port()
    walker = [Actor("obama", sprite(engine, photos["obama.jpg"], 90), 0.0, 4.0, (120, 60), (420, 60))]

    sign_in(page, ui_server, ui_server.admin, "/ui/cameras")
    page.fill("input[name=name]", "door")
    page.fill("input[name=source]", f"udp://127.0.0.1:{port}")
    page.select_option("select[name=collection_id]", "watch")
    page.fill("input[name=threshold]", "80")
    page.click("button:has-text('Add camera')")
    page.wait_for_selector("text=Camera door added")
    page.click("td >> a:has-text('door')")
    page.wait_for_url(re.compile(r"/ui/cameras/door$"))
    page.click("button:has-text('Start')")
    page.wait_for_url(re.compile(r"/ui/cameras/door$"))
    with UdpSender(port, walker, seconds=25.0, loop=4.0):
        identified = page.locator("ul.now li.identified").first
        identified.wait_for(timeout=20_000)
        assert identified.inner_text().startswith("obama (similarity")
        frame = page.locator("img[data-live]")
        assert page.evaluate("i => i.naturalWidth", frame.element_handle()) == 640
        page.goto(ui_server.url + "/ui/cameras")
        row = page.locator("tr:has(a:has-text('door'))")
        assert row.locator(".state").inner_text().startswith("running")
        row.locator("button:has-text('Stop')").click()
        page.wait_for_selector("tr:has(a:has-text('door')) >> text=stopped")
    operations = [r.event.operation for r in ui_server.audit.records(principal=ui_server.admin.access_key_id)]
    for act in ("CreateStreamProcessor", "StartStreamProcessor", "UiLiveView", "StopStreamProcessor"):
        assert act in operations
