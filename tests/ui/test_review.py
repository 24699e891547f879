"""The dashboard's Review page in a real browser: a review item made for real (a borderline track of Obama
from a clip built of real photos, offered by ``ReviewQueue``), confirmed (it leaves the list, a confirmed
sighting exists, the decision is audited with the session's purpose, a second answer is a conflict in words),
refused to a read key, rejected; and an unknown person shown and named."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from facetrace.review import ReviewQueue, UnknownPeople
from facetrace.store import records_of
from facetrace.store.records import ReviewItem, SightingQuery
from facetrace.video.analysis import UnresolvedTrack
from facetrace.video.identity import CollectionMatcher
from tests.review import conftest as review_fixtures
from tests.service.conftest import Server
from tests.ui.conftest import sign_in

pytestmark = pytest.mark.slow

CASE = "case-2026-41"
clips = review_fixtures.clips  # the review tests' clips made of real photos, and their unresolved tracks
borderline_tracks = review_fixtures.borderline_tracks


def _records(server: Server) -> Any:
    records = records_of(server.gallery.store)
    assert records is not None
    return records


def _desk(server: Server, photos: dict[str, Path]) -> str:
    """A fresh collection holding obama3.jpg as "obama" and biden.jpg as "biden"."""
    name = f"desk-{uuid.uuid4().hex[:8]}"
    server.gallery.create_collection(name)
    server.gallery.index_faces(name, photos["obama3.jpg"], external_image_id="obama", max_faces=1)
    server.gallery.index_faces(name, photos["biden.jpg"], external_image_id="biden", max_faces=1)
    return name


def _offer(server: Server, collection_id: str, tracks: list[UnresolvedTrack]) -> ReviewItem:
    queue = ReviewQueue(server.gallery, _records(server).reviews)
    matcher = CollectionMatcher(server.gallery, collection_id, 90.0)
    offered = [queue.offer(t, matcher, source=f"door-{collection_id}", match_threshold=99.0) for t in tracks]
    items = [i for i in offered if i is not None]
    assert len(items) == 1  # Obama's track (about 96), not the stranger's
    assert items[0].candidates[0].external_image_id == "obama"
    return items[0]


def _open_review(page: Any, server: Server, key: Any) -> None:
    sign_in(page, server, key, "/ui/collections")
    page.click("nav >> text=Review")
    page.wait_for_url(re.compile(r"/ui/purpose"))
    page.fill("input[name=purpose]", CASE)
    page.click("button:has-text('Continue')")
    page.wait_for_url(re.compile(r"/ui/review$"))


def test_confirm_stores_a_confirmed_sighting_and_a_second_answer_is_a_conflict(
    page: Any, browser: Any, ui_server: Server, photos: dict[str, Path], borderline_tracks: list[UnresolvedTrack]
) -> None:
    desk = _desk(ui_server, photos)
    item = _offer(ui_server, desk, borderline_tracks)
    _open_review(page, ui_server, ui_server.admin)
    card = page.locator(f"[data-item='{item.item_id}']")
    assert card.locator(".candidate-name").first.inner_text() == "obama"
    text = card.inner_text()
    assert f"similarity {item.candidates[0].similarity:.1f}" in text
    assert "false match rate" in text
    pictures = card.locator(".faces img")
    assert pictures.count() == len(item.thumbnails) >= 1
    assert page.evaluate("i => i.naturalWidth", pictures.first.element_handle()) > 0
    assert ui_server.audit.records(operation="DescribeReviewItem")[-1].event.detail["item_id"] == item.item_id

    other = browser.new_page()  # a second tab (or a colleague) still showing the item
    other.goto(ui_server.url + "/ui/review")
    first = card.locator("form.confirm").first
    first.locator("input[name=enrol]").check()
    first.locator("button").click()
    page.wait_for_url(re.compile(r"/ui/review\?done=enrolled$"))
    assert page.locator(f"[data-item='{item.item_id}']").count() == 0
    assert "enrolled" in page.locator("[role=status]").inner_text()

    records = _records(ui_server)
    answered = records.reviews.get(item.item_id)
    assert answered.status == "CONFIRMED"
    assert answered.enrolled_face_id is not None
    (sighting,) = records.sightings.query(SightingQuery(source=item.source), 0.0)
    assert sighting.sighting_id == answered.sighting_id
    assert sighting.confirmed_by == ui_server.admin.access_key_id
    assert sighting.external_image_id == "obama"
    confirm = ui_server.audit.records(operation="ConfirmReviewItem")[-1].event
    assert (confirm.purpose, confirm.principal) == (CASE, ui_server.admin.access_key_id)
    assert confirm.detail["item_id"] == item.item_id

    other.locator(f"[data-item='{item.item_id}'] form.reject-all button").click()  # a second answer
    assert "answered already" in other.locator("[role=alert]").inner_text()
    other.close()
    assert records.reviews.get(item.item_id).status == "CONFIRMED"


def test_a_read_key_sees_items_but_cannot_answer(
    page: Any, ui_server: Server, photos: dict[str, Path], borderline_tracks: list[UnresolvedTrack]
) -> None:
    desk = _desk(ui_server, photos)
    item = _offer(ui_server, desk, borderline_tracks)
    elsewhere = _offer(ui_server, _desk(ui_server, photos), borderline_tracks)
    reader = ui_server.keys.create("read", collections=[desk], description="ui review read test")
    _open_review(page, ui_server, reader)
    assert page.locator("[data-item]").count() == 1  # only its collection's
    assert page.request.get(f"{ui_server.url}/ui/review/{item.item_id}/0.jpg").status == 200
    assert page.request.get(f"{ui_server.url}/ui/review/{elsewhere.item_id}/0.jpg").status == 404
    card = page.locator(f"[data-item='{item.item_id}']")
    assert card.locator(".candidate-name").first.inner_text() == "obama"
    assert card.locator("form").count() == 0
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(
        f"{ui_server.url}/ui/review/{item.item_id}/confirm", form={"csrf": csrf, "person": "external:obama"}
    )
    assert answer.status == 403
    assert "needs a write key" in answer.text()
    assert _records(ui_server).reviews.get(item.item_id).status == "PENDING"


def test_reject_one_candidate_or_all_with_a_reason(
    page: Any, ui_server: Server, photos: dict[str, Path], borderline_tracks: list[UnresolvedTrack]
) -> None:
    one, every = (_offer(ui_server, _desk(ui_server, photos), borderline_tracks) for _ in range(2))
    _open_review(page, ui_server, ui_server.admin)
    form = page.locator(f"[data-item='{one.item_id}'] form.reject-one").first
    form.locator("input[name=reason]").fill("different haircut")
    form.locator("button").click()
    page.wait_for_url(re.compile(r"/ui/review\?done=rejected$"))
    records = _records(ui_server)
    if len(one.candidates) > 1:  # obama is struck, the others are still offered
        card = page.locator(f"[data-item='{one.item_id}']")
        assert "obama" not in card.locator(".candidate-name").all_inner_texts()
        assert "Already rejected: obama" in card.inner_text()
    else:  # obama was the only candidate: nobody is left
        assert page.locator(f"[data-item='{one.item_id}']").count() == 0
        assert records.reviews.get(one.item_id).status == "REJECTED"
    (decision,) = records.reviews.decisions(one.item_id)
    assert (decision.action, decision.person, decision.reason) == ("REJECT", "external:obama", "different haircut")

    card = page.locator(f"[data-item='{every.item_id}']")
    card.locator("form.reject-all input[name=reason]").fill("nobody here")
    card.locator("form.reject-all button").click()
    page.wait_for_url(re.compile(r"/ui/review\?done=rejected$"))
    assert page.locator(f"[data-item='{every.item_id}']").count() == 0
    assert records.reviews.get(every.item_id).status == "REJECTED"
    assert {d.reason for d in records.reviews.decisions(every.item_id)} == {"nobody here"}
    rejected = ui_server.audit.records(operation="RejectReviewItem")[-1].event
    assert (rejected.purpose, rejected.detail["reason"]) == (CASE, "nobody here")


def test_an_unknown_person_is_shown_and_named(
    page: Any, ui_server: Server, photos: dict[str, Path], borderline_tracks: list[UnresolvedTrack]
) -> None:
    desk = f"strangers-{uuid.uuid4().hex[:8]}"
    ui_server.gallery.create_collection(desk)
    people = UnknownPeople(ui_server.gallery, _records(ui_server).unknowns)
    obama = max(borderline_tracks, key=lambda t: t.bounding_box.left)  # either: each is a real track
    group = people.add(obama, desk, source="door")
    assert people.add(obama, desk, source="door").unknown_id == group.unknown_id  # seen again
    _open_review(page, ui_server, ui_server.admin)
    page.click("a:has-text('Unknown people')")
    page.wait_for_url(re.compile(r"/ui/unknown$"))
    card = page.locator(f"[data-unknown='{group.unknown_id}']")
    assert card.locator(".unknown-title").inner_text() == f"unknown #{group.number} — seen 2 times on 1 camera"
    assert "first seen" in card.inner_text()
    picture = card.locator(".faces img").first
    assert page.evaluate("i => i.naturalWidth", picture.element_handle()) > 0
    card.locator("input[name=user_id]").fill("visitor-1")
    card.locator("form.name-unknown button").click()
    page.wait_for_url(re.compile(r"/ui/unknown\?done=named$"))
    assert "Named visitor-1" in page.locator(f"[data-unknown='{group.unknown_id}']").inner_text()
    faces = ui_server.gallery.list_faces(desk).items
    assert len(faces) == 2
    assert {f.user_id for f in faces} == {"visitor-1"}
    named = ui_server.audit.records(operation="NameUnknownPerson")[-1].event
    assert (named.purpose, named.detail["user_id"]) == (CASE, "visitor-1")
