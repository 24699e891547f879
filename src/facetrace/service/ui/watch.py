"""Events arriving live (server-sent events from the server's event bus, filtered in the browser) and the
sightings timeline (where and when each person was seen, per camera, with the track's snapshot).

The event stream is the API's ``handlers.video.event_stream`` on the same bus, re-authorised against the
*session*: signing out, expiry or deleting the key ends the stream within seconds, and events of processors
whose collection the key may not see are never sent. Subscribing and reading sightings are audited.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from facetrace.errors import InvalidParameterError, NotFoundError
from facetrace.service.handlers.video import event_stream, processors_of, video_of
from facetrace.service.ui.pages import Dashboard
from facetrace.service.ui.sessions import Session
from facetrace.video.events import Event

__all__ = ["events_page", "events_stream", "sightings_page"]

TIMELINE_LIMIT = 500


def _cameras(dash: Dashboard, session: Session) -> list[str]:
    manager = processors_of(dash.resources, dash.gallery)
    listed, _ = manager.list()
    names = []
    for item in listed:
        try:
            if session.key.sees(manager.definition(item["Name"]).face_search.collection_id):
                names.append(item["Name"])
        except NotFoundError:
            continue
    return names


async def events_page(dash: Dashboard, request: Request, session: Session) -> Response:
    cameras = await anyio.to_thread.run_sync(_cameras, dash, session)
    return dash.render(request, "events.html", session, cameras=cameras)


async def events_stream(dash: Dashboard, request: Request, session: Session) -> Response:
    processor = request.query_params.get("processor") or None
    manager = processors_of(dash.resources, dash.gallery)
    await anyio.to_thread.run_sync(
        lambda: dash.gallery.record_event(
            session.caller, "SubscribeEvents", None, detail={"processor": processor, "via": "dashboard"}
        )
    )

    async def reauthorize() -> Any:
        current = await anyio.to_thread.run_sync(dash.sessions.current, request)
        if current is None:
            return None
        key = current.key

        def allowed(event: Event) -> bool:
            try:
                return key.sees(manager.definition(event.processor).face_search.collection_id)
            except NotFoundError:
                return False

        return allowed

    stream = event_stream(manager.bus, processor, reauthorize=reauthorize, heartbeat=10.0)
    return StreamingResponse(
        stream, media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


def _float(text: str | None, name: str) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidParameterError(f"{name} is a number of hours") from None


async def sightings_page(dash: Dashboard, request: Request, session: Session) -> Response:
    query = request.query_params
    person = (query.get("person") or "").strip()[:128] or None
    camera = (query.get("camera") or "").strip()[:255] or None
    hours = _float(query.get("hours"), "hours") or 24.0
    if not 0 < hours <= 24 * 366:
        raise InvalidParameterError("hours is from 0 to a year")

    def gather() -> dict[str, Any]:
        now = time.time()
        store = video_of(dash.resources, dash.gallery).sightings
        found = store.query(
            external_image_id=person, camera=camera, since=now - hours * 3600, limit=TIMELINE_LIMIT, snapshots=True
        )
        if person and not found:
            found = store.query(
                user_id=person, camera=camera, since=now - hours * 3600, limit=TIMELINE_LIMIT, snapshots=True
            )
        found = [
            s
            for s in found
            if session.key.collections is None
            or (s.collection_id is not None and session.key.sees(s.collection_id))
        ]
        dash.gallery.record_event(
            session.caller, "ListSightings", None, matched=tuple(s.face_id for s in found if s.face_id),
            detail={"via": "dashboard", "person": person, "camera": camera, "returned": len(found)},
        )  # fmt: skip
        start = min((s.started_at for s in found), default=now - hours * 3600)
        end = max((s.ended_at for s in found), default=now)
        span = max(end - start, 1.0)
        lanes: dict[str, list[dict[str, Any]]] = {}
        for s in sorted(found, key=lambda s: s.started_at):
            lanes.setdefault(s.camera, []).append(
                {
                    "who": s.user_id or s.external_image_id or "unknown",
                    "similarity": s.similarity,
                    "start": s.started_at,
                    "end": s.ended_at,
                    "left": round(100 * (s.started_at - start) / span, 3),
                    "width": round(max(0.6, 100 * (s.ended_at - s.started_at) / span), 3),
                    "snapshot": base64.b64encode(s.snapshot).decode() if s.snapshot else None,
                }
            )
        return {"lanes": lanes, "start": start, "end": end, "count": len(found)}

    values = await anyio.to_thread.run_sync(gather)
    return dash.render(
        request, "sightings.html", session, person=person or "", camera=camera or "", hours=hours, **values
    )
