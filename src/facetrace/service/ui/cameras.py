"""Cameras: the stream processors with their state and numbers, add / start / stop, and a live view drawn from
the running pipeline (``StreamWorker.latest_frame``: no second decoder), refreshed by the browser ≥ 2 fps.

The processors are the server's own (``handlers.video.processors_of``, shared with the API), so a camera added
here is the API's stream processor and the reverse. Acts are audited before they happen like the API's
(``access_audit.record_act``); opening a live view is recorded once per page (``UiLiveView``), and the
identifications it shows are the pipeline's, audited by its audit sink.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from facetrace.errors import AccessDeniedError, InvalidParameterError
from facetrace.service.access_audit import record_act
from facetrace.service.handlers.video import processors_of
from facetrace.service.keys import Permission
from facetrace.service.sources import SourcePolicy
from facetrace.service.ui.pages import Dashboard, _form, _needs, _text, _threshold, _visible
from facetrace.service.ui.sessions import Session
from facetrace.video.live import annotated_jpeg
from facetrace.video.processors import StreamProcessors
from facetrace.video.source import redact

__all__ = ["camera", "camera_act", "camera_rows", "cameras", "frame", "now"]


def _processors(dash: Dashboard) -> StreamProcessors:
    return processors_of(dash.resources, dash.gallery)


def _camera(dash: Dashboard, session: Session, name: str) -> StreamProcessors:
    manager = _processors(dash)
    definition = manager.definition(name)  # NotFoundError for an unknown name
    if not session.key.sees(definition.face_search.collection_id):
        raise AccessDeniedError(f"your key may not use collection {definition.face_search.collection_id}")
    return manager


def camera_rows(dash: Dashboard, session: Session) -> list[dict[str, Any]]:
    manager = _processors(dash)
    listed, _ = manager.list()
    rows = []
    for item in listed:
        described = manager.describe(item["Name"])
        collection_id = described["Settings"]["FaceSearch"]["CollectionId"]
        if not session.key.sees(collection_id):
            continue
        metrics = described.get("Metrics") or {}
        rows.append(
            {
                "name": item["Name"],
                "status": item["Status"],
                "camera": described["Input"]["Camera"],
                "source": described["Input"]["Source"],
                "collection_id": collection_id,
                "fps": metrics.get("AnalysedFps"),
                "dropped": metrics.get("FramesDropped"),
                "latency": (metrics.get("EventLatencyMillis") or {}).get("p50"),
                "message": described.get("StatusMessage", ""),
            }
        )
    return rows


async def cameras(dash: Dashboard, request: Request, session: Session) -> Response:
    message = ""
    if request.method == "POST":
        _needs(session, Permission.ADMIN)
        form = await _form(request)
        name, source = _text(form, "name"), _text(form, "source")
        collection_id = _visible(session, _text(form, "collection_id"))
        threshold = _threshold(form) if _text(form, "threshold") else 80.0
        checked = SourcePolicy(dash.config.camera_allow).check(source)  # the operator's --camera-allow
        params = {"Name": name, "Settings": {"FaceSearch": {"CollectionId": collection_id}}}

        def create() -> None:
            record_act(dash.gallery, session.caller, "CreateStreamProcessor", params)
            _processors(dash).create(
                {"name": name, "source": checked, "face_search": {"collection_id": collection_id,
                                                                   "face_match_threshold": threshold}}
            )  # fmt: skip

        await anyio.to_thread.run_sync(create)
        message = f"Camera {name} added (stopped): start it below."
    rows = await anyio.to_thread.run_sync(camera_rows, dash, session)
    choices = [c for c in dash.gallery.list_collections(limit=1000).items if session.key.sees(c)]
    return dash.render(request, "cameras.html", session, rows=rows, collections=choices, message=message)


async def camera_act(dash: Dashboard, request: Request, session: Session) -> Response:
    name, act = request.path_params["name"], request.path_params["act"]
    if act not in ("start", "stop"):
        raise InvalidParameterError("a camera can be started or stopped")
    _needs(session, Permission.WRITE)

    def run() -> None:
        manager = _camera(dash, session, name)
        if act == "start":
            SourcePolicy(dash.config.camera_allow).check(manager.definition(name).source)  # the list may shrink
            record_act(dash.gallery, session.caller, "StartStreamProcessor", {"Name": name})
            manager.start(name)
        else:
            record_act(dash.gallery, session.caller, "StopStreamProcessor", {"Name": name})
            manager.stop(name)

    await anyio.to_thread.run_sync(run)
    return RedirectResponse(_safe_back(request), status_code=303)


def _safe_back(request: Request) -> str:
    back = request.query_params.get("back", "")
    return back if back.startswith("/ui/cameras") else "/ui/cameras"


async def camera(dash: Dashboard, request: Request, session: Session) -> Response:
    name = request.path_params["name"]

    def gather() -> dict[str, Any]:
        manager = _camera(dash, session, name)
        definition = manager.definition(name)
        dash.gallery.record_event(
            session.caller, "UiLiveView", definition.face_search.collection_id, detail={"Name": name}
        )
        return {"name": name, "state": manager.status(name), "source": redact(definition.source),
                "collection_id": definition.face_search.collection_id}  # fmt: skip

    return dash.render(request, "camera.html", session, **await anyio.to_thread.run_sync(gather))


def _latest(dash: Dashboard, session: Session, name: str) -> Any:
    worker = _camera(dash, session, name).worker(name)
    return None if worker is None else worker.latest_frame()


async def frame(dash: Dashboard, request: Request, session: Session) -> Response:
    name = request.path_params["name"]

    def draw() -> bytes | None:
        latest = _latest(dash, session, name)
        return None if latest is None else annotated_jpeg(*latest)

    jpeg = await anyio.to_thread.run_sync(draw)
    if jpeg is None:
        return Response("no frame analysed yet", status_code=404, media_type="text/plain")
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


async def now(dash: Dashboard, request: Request, session: Session) -> Response:
    """Who is in the live picture now, for the list beside it (what the picture shows, as text)."""
    name = request.path_params["name"]
    latest = await anyio.to_thread.run_sync(_latest, dash, session, name)
    faces = []
    if latest is not None:
        _, result = latest
        for seen in result.observations:
            faces.append({"track": seen.track_id, "name": seen.name, "similarity": seen.similarity})
    status = await anyio.to_thread.run_sync(lambda: _processors(dash).status(name))
    return JSONResponse({"status": status, "faces": faces}, headers={"Cache-Control": "no-store"})
