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
    # seen for 2.5 s of every 5: each pass is a track of its own, so events keep coming
    walker = [Actor("obama", sprite(engine, photos["obama.jpg"], 90), 0.0, 2.5, (120, 60), (420, 60))]

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
    with UdpSender(port, walker, seconds=30.0, loop=5.0):
        identified = page.locator("ul.now li.identified").first
        identified.wait_for(timeout=20_000)
        assert identified.inner_text().startswith("obama (similarity")
        frame = page.locator("img[data-live]")
        assert page.evaluate("i => i.naturalWidth", frame.element_handle()) == 640
        page.goto(ui_server.url + "/ui/events")  # the next walk-through arrives as a server-sent event
        event = page.locator("ul.events .event-who").first
        page.locator("text=connected: new events appear at the top").wait_for()
        event.wait_for(timeout=20_000)
        assert re.search(r"door · Track(Identified|Ended) · obama \(similarity \d", event.inner_text())
        assert page.locator("ul.events img").first.get_attribute("src").startswith("data:image/jpeg;base64,")
        page.goto(ui_server.url + "/ui/cameras")
        row = page.locator("tr:has(a:has-text('door'))")
        assert row.locator(".state").inner_text().startswith("running")
        row.locator("button:has-text('Stop')").click()
        page.wait_for_selector("tr:has(a:has-text('door')) >> text=stopped")
    page.goto(ui_server.url + "/ui/sightings?person=obama")
    assert page.locator(".lane h3").first.inner_text() == "door"
    assert page.locator(".sighting-who").first.inner_text() == "obama"
    assert page.locator(".track .sighting").count() >= 1
    operations = [r.event.operation for r in ui_server.audit.records(principal=ui_server.admin.access_key_id)]
    acts = ("CreateStreamProcessor", "StartStreamProcessor", "UiLiveView", "StopStreamProcessor", "SubscribeEvents",
            "ListSightings")  # fmt: skip
    for act in acts:
        assert act in operations
