"""The Review page: tracks the pipeline could not name for sure (``ReviewQueue``), answered by a person, and
unknown people seen again and again (``UnknownPeople``), named by a person.

Everything is the review library's (the server's queue and groups, ``handlers.review.queue_of``/``people_of``);
these handlers only check the session and render. Seeing items needs a read key scoped like the API's
ListReviewItems; confirming, rejecting and naming need a write key, the session's CSRF token (``pages._page``)
and a purpose, which the library writes to the audit with the decision (``session.caller``). Listings and each
thumbnail served are audited reads (ListReviewItems, DescribeReviewItem, ListUnknownPeople,
DescribeUnknownPerson, ``via: dashboard``), like the API's.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from facetrace.calibration import false_match_rate
from facetrace.errors import ConflictError, InvalidParameterError, NotFoundError
from facetrace.review import ReviewQueue, UnknownPeople
from facetrace.service.handlers.review import people_of, queue_of
from facetrace.service.keys import Permission
from facetrace.service.ui.pages import Dashboard, _form, _needs, _text
from facetrace.service.ui.sessions import Session
from facetrace.store.records import ReviewItem, UnknownPerson

__all__ = ["item_thumbnail", "name_unknown", "review_answer", "review_page", "unknown_thumbnail", "unknowns_page"]

LISTED = 100
UNKNOWN_FACES_SHOWN = 3
_MESSAGES = {
    "confirmed": "Confirmed: the sighting is stored.",
    "enrolled": "Confirmed: the sighting is stored and the face enrolled to that person.",
    "rejected": "Rejected.",
    "named": "Named: the user was created with this person's faces.",
}


def _queue(dash: Dashboard) -> ReviewQueue:
    return queue_of(dash.resources, dash.gallery)


def _people(dash: Dashboard) -> UnknownPeople:
    return people_of(dash.resources, dash.gallery)


def _purpose(session: Session) -> None:
    if not session.purpose:
        raise InvalidParameterError("say the purpose (a case reference) before answering: open Review again")


def _visible_item(dash: Dashboard, session: Session, item_id: str, *, thumbnails: bool = False) -> ReviewItem:
    item = _queue(dash).get(item_id, thumbnails=thumbnails)
    if not session.key.sees(item.collection_id):  # one answer for "none" and "not yours", as the API's
        raise NotFoundError(f"there is no review item {item_id!r}")
    return item


def _visible_person(dash: Dashboard, session: Session, unknown_id: str) -> UnknownPerson:
    person = _people(dash).get(unknown_id)
    if not session.key.sees(person.collection_id):
        raise NotFoundError(f"there is no unknown person {unknown_id!r}")
    return person


def _who(candidate: Any) -> str:
    return str(candidate.user_id or candidate.external_image_id or candidate.face_id)


def _item_row(item: ReviewItem) -> dict[str, Any]:
    return {
        "item": item,
        "candidates": [
            {"c": c, "who": _who(c), "fmr": false_match_rate(c.similarity)}
            for c in item.candidates
            if not c.rejected_by
        ],
        "struck": [_who(c) for c in item.candidates if c.rejected_by],
    }


async def review_page(dash: Dashboard, request: Request, session: Session) -> Response:
    """Pending review items of the key's collections, newest first."""

    def gather() -> dict[str, Any]:
        items = _queue(dash).items(status="PENDING", collection_ids=session.key.collections, limit=LISTED)
        with_pictures = []
        for listed in items:
            try:
                with_pictures.append(_queue(dash).get(listed.item_id, thumbnails=True))
            except NotFoundError:
                continue  # expired between the listing and now
        dash.gallery.record_event(
            session.caller, "ListReviewItems", None, match_count=len(items),
            matched=tuple(c.face_id for i in items for c in i.candidates),
            detail={"via": "dashboard", "returned": len(items)},
        )  # fmt: skip
        return {"rows": [_item_row(i) for i in with_pictures]}

    values = await anyio.to_thread.run_sync(gather)
    message = _MESSAGES.get(request.query_params.get("done") or "", "")
    return dash.render(request, "review.html", session, message=message, **values)


async def item_thumbnail(dash: Dashboard, request: Request, session: Session) -> Response:
    """One of a review item's thumbnails (JPEG); each one served is an audited read."""
    index = _index(request.path_params["n"])

    def read() -> bytes | None:
        item = _visible_item(dash, session, request.path_params["item_id"], thumbnails=True)
        if index >= len(item.thumbnails):
            return None
        dash.gallery.record_event(
            session.caller, "DescribeReviewItem", item.collection_id,
            detail={"via": "dashboard thumbnail", "item_id": item.item_id, "thumbnail": index},
        )  # fmt: skip
        return item.thumbnails[index]

    jpeg = await anyio.to_thread.run_sync(read)
    if jpeg is None:
        return Response(status_code=404)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


async def review_answer(dash: Dashboard, request: Request, session: Session) -> Response:
    """Confirm (``act`` confirm, optionally enrolling the face) or reject (one candidate, or all) an item."""
    act = request.path_params["act"]
    if act not in ("confirm", "reject"):
        raise NotFoundError("there is no such answer")
    _needs(session, Permission.WRITE)
    _purpose(session)
    form = await _form(request)
    person = _text(form, "person") or None
    enrol = form.get("enrol") == "yes"
    reason = _text(form, "reason") or None

    def answer() -> str:
        item = _visible_item(dash, session, request.path_params["item_id"])
        queue = _queue(dash)
        if act == "confirm":
            queue.confirm(item.item_id, person=person, enrol=enrol, caller=session.caller)
            return "enrolled" if enrol else "confirmed"
        queue.reject(item.item_id, person=person, reason=reason, caller=session.caller)
        return "rejected"

    try:
        done = await anyio.to_thread.run_sync(answer)
    except ConflictError as exc:  # answered meanwhile, by someone else or in another tab
        message = f"This item was answered already ({exc.message}); nothing was changed."
        return dash.error(request, session, 409, message)
    return RedirectResponse(f"/ui/review?done={done}", status_code=303)


async def unknowns_page(dash: Dashboard, request: Request, session: Session) -> Response:
    """Unknown people of the key's collections: how often, where, when; the latest few faces of each."""

    def gather() -> dict[str, Any]:
        people = _people(dash)
        found = people.people(collection_ids=session.key.collections, limit=LISTED)
        rows = [
            {"p": p, "faces": len(people.faces(p.unknown_id))}
            for p in found
        ]  # fmt: skip
        dash.gallery.record_event(
            session.caller, "ListUnknownPeople", None, match_count=len(found),
            detail={"via": "dashboard", "returned": len(found)},
        )  # fmt: skip
        return {"rows": rows}

    values = await anyio.to_thread.run_sync(gather)
    message = _MESSAGES.get(request.query_params.get("done") or "", "")
    return dash.render(request, "unknowns.html", session, message=message, shown=UNKNOWN_FACES_SHOWN, **values)


async def unknown_thumbnail(dash: Dashboard, request: Request, session: Session) -> Response:
    """One face of an unknown person (JPEG); each one served is an audited read."""
    index = _index(request.path_params["n"])

    def read() -> bytes | None:
        person = _visible_person(dash, session, request.path_params["unknown_id"])
        faces = _people(dash).faces(person.unknown_id, thumbnails=True)
        if index >= len(faces) or faces[index].thumbnail is None:
            return None
        dash.gallery.record_event(
            session.caller, "DescribeUnknownPerson", person.collection_id,
            detail={"via": "dashboard thumbnail", "unknown_id": person.unknown_id, "face": index},
        )  # fmt: skip
        return faces[index].thumbnail

    jpeg = await anyio.to_thread.run_sync(read)
    if jpeg is None:
        return Response(status_code=404)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


async def name_unknown(dash: Dashboard, request: Request, session: Session) -> Response:
    """Name an unknown person: the library creates the user with the group's heaviest faces."""
    _needs(session, Permission.WRITE)
    _purpose(session)
    form = await _form(request)
    user_id = _text(form, "user_id")
    if not user_id:
        raise InvalidParameterError("give the person's user id")

    def name() -> None:
        person = _visible_person(dash, session, request.path_params["unknown_id"])
        _people(dash).name(person.unknown_id, user_id, caller=session.caller)

    try:
        await anyio.to_thread.run_sync(name)
    except ConflictError as exc:
        return dash.error(request, session, 409, f"{exc.message}; nothing was changed.")
    return RedirectResponse("/ui/unknown?done=named", status_code=303)


def _index(text: str) -> int:
    try:
        index = int(text)
    except ValueError:
        raise NotFoundError("there is no such picture") from None
    if not 0 <= index < 100:
        raise NotFoundError("there is no such picture")
    return index
