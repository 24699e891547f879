"""The dashboard in a real browser: sign in, enrol, search (a match and an explicit no match), permissions,
CSRF, sign-out and key deletion ending a session."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import Server
from tests.ui.conftest import sign_in

pytestmark = pytest.mark.slow


def _enrol(page: Any, person: str, files: list[Path]) -> None:
    before = page.locator(".outcomes li").count()
    page.fill("input[name=person]", person)
    page.set_input_files("input[name=photos]", [str(f) for f in files])
    page.click("button:has-text('Enrol')")
    wanted = before + len(files) + 1  # an outcome per photo, then the reload link
    page.locator(".outcomes li").nth(wanted - 1).wait_for()


def test_enrol_then_search_finds_the_person_and_says_no_match_for_a_stranger(
    page: Any, ui_server: Server, photos: dict[str, Path]
) -> None:
    sign_in(page, ui_server, ui_server.admin)
    page.click("nav >> text=Collections")
    page.fill("input[name=collection_id]", "staff")
    page.click("button:has-text('Create')")
    page.wait_for_selector("text=Collection staff created")
    page.click("a:has-text('staff')")
    _enrol(page, "obama", [photos["obama.jpg"], photos["obama2.jpg"]])
    _enrol(page, "biden", [photos["biden.jpg"]])
    outcomes = page.locator(".outcomes li.ok").all_inner_texts()
    assert outcomes[:3] == ["obama.jpg: 1 face added", "obama2.jpg: 1 face added", "biden.jpg: 1 face added"]
    page.reload()
    assert page.locator(".person h3").all_inner_texts() == ["biden", "obama"]
    thumbnails = page.locator(".face img")
    assert thumbnails.count() == 3
    assert all(page.evaluate("i => i.naturalWidth", t.element_handle()) > 0 for t in thumbnails.all())

    page.click("nav >> text=Search")
    page.wait_for_url(re.compile(r"/ui/purpose"))
    page.fill("input[name=purpose]", "case-2026-17")
    page.click("button:has-text('Continue')")
    page.wait_for_url(re.compile(r"/ui/search$"))
    page.set_input_files("input[name=photo]", str(photos["obama3.jpg"]))
    page.fill("input[name=threshold]", "80")
    page.click("button:has-text('Search')")
    first = page.locator(".matches .match-name").first
    assert first.inner_text() == "obama"
    assert "expected per search" in page.locator(".meaning").inner_text()

    page.set_input_files("input[name=photo]", str(photos["Tom_Hanks_54745.png"]))
    page.click("button:has-text('Search')")
    assert page.locator(".nomatch").inner_text().startswith("No match")

    page.set_input_files("input[name=photo]", str(photos["t1.jpg"]))  # a group: the operator picks a face
    page.click("button:has-text('Search')")
    assert page.locator("form.pick .face").count() >= 3
    page.check("form.pick input[name=face] >> nth=1")
    page.click("button:has-text('Search with this face')")
    assert page.locator(".nomatch").inner_text().startswith("No match")

    records = ui_server.audit.records(operation="SearchFacesByImage")
    assert [r.event.purpose for r in records[-3:]] == ["case-2026-17"] * 3
    assert records[-3].event.principal == ui_server.admin.access_key_id
    assert records[-3].event.match_count >= 1
    assert records[-2].event.match_count == 0


def test_a_read_key_cannot_enrol(page: Any, ui_server: Server, photos: dict[str, Path]) -> None:
    if "readers" not in ui_server.gallery.list_collections().items:
        ui_server.gallery.create_collection("readers")
    reader = ui_server.keys.create("read", description="ui read test")
    sign_in(page, ui_server, reader, "/ui/collections/readers")
    assert page.locator("form[data-enrol]").count() == 0
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(
        ui_server.url + "/ui/collections/readers/enrol",
        multipart={"csrf": csrf, "photos": {"name": "a.jpg", "mimeType": "image/jpeg",
                                            "buffer": photos["obama.jpg"].read_bytes()}},
    )  # fmt: skip
    assert answer.status == 403
    assert "needs a write key" in answer.text()
    assert ui_server.gallery.describe_collection("readers").face_count == 0


def test_a_wrong_secret_is_refused_and_audited(page: Any, ui_server: Server) -> None:
    page.goto(ui_server.url + "/ui/")
    page.fill("input[name=access_key_id]", ui_server.admin.access_key_id)
    page.fill("input[name=secret]", "not-the-secret")
    page.click("button:has-text('Sign in')")
    assert "do not match" in page.locator("[role=alert]").inner_text()
    assert "/ui/signin" in page.url
    denied = [
        r.event
        for r in ui_server.audit.records(operation="DeniedAttempt")
        if r.event.detail.get("operation") == "UiSignIn"
    ][-1]
    assert denied.principal == f"claimed:{ui_server.admin.access_key_id}"
    assert denied.detail["operation"] == "UiSignIn"


def test_a_form_without_its_csrf_token_is_refused(page: Any, ui_server: Server) -> None:
    sign_in(page, ui_server, ui_server.admin, "/ui/collections")
    page.evaluate("document.querySelector('form[action=\"/ui/collections\"] input[name=csrf]').remove()")
    page.fill("input[name=collection_id]", "forged")
    page.click("button:has-text('Create')")
    assert "security token" in page.locator("[role=alert]").inner_text()
    assert "forged" not in ui_server.gallery.list_collections().items


def test_sign_out_and_key_deletion_end_the_session(page: Any, browser: Any, ui_server: Server) -> None:
    key = ui_server.keys.create("admin", description="ui sign-out test")
    sign_in(page, ui_server, key)
    cookies = browser.cookies()
    (session,) = [c for c in cookies if c["name"] == "ft_session"]
    assert session["httpOnly"]
    assert session["sameSite"] == "Strict"
    assert session["path"] == "/ui"
    assert 0 < session["expires"] - time.time() <= 8 * 3600 + 60
    page.click("button:has-text('Sign out')")
    page.wait_for_url(re.compile(r"/ui/signin"))
    browser.add_cookies(cookies)  # the old cookie, replayed, no longer opens a page
    page.goto(ui_server.url + "/ui/")
    assert "/ui/signin" in page.url

    sign_in(page, ui_server, key)
    ui_server.keys.delete(key.access_key_id)
    page.goto(ui_server.url + "/ui/")
    assert "/ui/signin" in page.url


def test_a_collection_limited_key_sees_only_its_collections(page: Any, ui_server: Server) -> None:
    for name in ("mine", "theirs"):
        if name not in ui_server.gallery.list_collections().items:
            ui_server.gallery.create_collection(name)
    limited = ui_server.keys.create("admin", collections=["mine"], description="ui limited test")
    sign_in(page, ui_server, limited, "/ui/collections")
    listed = page.locator("table a").all_inner_texts()
    assert "mine" in listed
    assert "theirs" not in listed
    assert page.request.get(ui_server.url + "/ui/collections/theirs").status == 403
    assert page.request.get(ui_server.url + "/ui/audit").status == 403  # the log spans every collection
    assert page.request.get(ui_server.url + "/ui/keys").status == 403
    assert page.locator("nav >> text=Audit").count() == 0
