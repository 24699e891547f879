"""The dashboard's routes: sign in/out, overview, collections (people, faces, enrol, delete), search by photo,
compare, audit and keys.

Each handler is small: check the session (``_page``), call the library in a worker thread with the session's
``Caller``, render a template. Errors of the library (``FacetraceError``) become a page saying what went wrong,
with the status the API would give; nothing else is caught here (``ErrorPage`` shows a plain 500).
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources as package_files
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio.to_thread
import jinja2
from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from facetrace.audit import Caller, check_purpose
from facetrace.calibration import false_match_rate
from facetrace.errors import (
    AccessDeniedError,
    AlreadyExistsError,
    FacetraceError,
    ImageTooLargeError,
    InvalidParameterError,
    NoFaceError,
    NotFoundError,
)
from facetrace.gallery import Gallery
from facetrace.service.access_audit import DeniedAttempts
from facetrace.service.config import ServiceConfig
from facetrace.service.keys import KeyStore, Permission
from facetrace.service.middleware.body_limit import BodyLimitMiddleware
from facetrace.service.operations import Resources
from facetrace.service.ui.sessions import PRE_COOKIE, Session, SessionManager, csrf_ok
from facetrace.store.ui_records import MemorySessions, ui_records_of
from facetrace.thumbnails import face_thumbnail
from facetrace.validation import check_collection_id, check_face_id, check_user_id

__all__ = ["create_ui"]

MAX_PHOTOS = 50  # photos per enrolment form
PROBE_SECONDS = 600.0  # how long a photo with several faces waits for the operator to pick one
LISTED_FACES = 200
AUDIT_ROWS = 200
_REASONS = {
    "EXCEEDS_MAX_FACES": "more faces than asked for (only the largest is enrolled)",
    "EXTREME_POSE": "the head is turned too far",
    "EXCESSIVE_POSE": "the head is turned too far",
    "LOW_BRIGHTNESS": "too dark",
    "LOW_SHARPNESS": "too blurred",
    "LOW_CONFIDENCE": "not clearly a face",
    "SMALL_BOUNDING_BOX": "the face is too small",
    "LOW_FACE_QUALITY": "the face is of too low quality to recognise",
}


def _status(exc: FacetraceError) -> int:
    if isinstance(exc, AccessDeniedError):
        return 403
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, AlreadyExistsError):
        return 409
    if isinstance(exc, ImageTooLargeError):
        return 413
    return 400 if isinstance(exc, InvalidParameterError | NoFaceError) else 500


def _when(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass
class _Probe:
    """A photo with several faces, waiting for the operator to pick the one to search."""

    owner: str
    collection_id: str
    threshold: float
    image: bytes
    created: float


class Dashboard:
    """State shared by the pages of one server."""

    def __init__(self, gallery: Gallery, keys: KeyStore, config: ServiceConfig, resources: Resources) -> None:
        self.gallery = gallery
        self.resources = resources
        self.keys = keys
        self.config = config
        kept = ui_records_of(gallery.store)
        self.sessions = SessionManager(kept.sessions if kept is not None else MemorySessions(), keys)
        self.thumbnails = kept.thumbnails if kept is not None else None
        loader = jinja2.PackageLoader("facetrace.service.ui", "templates")
        self.templates = jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)
        self.templates.filters["when"] = _when
        self.denied = DeniedAttempts(gallery.store.audit)  # failed sign-ins, rate-limited like the API's
        self._probes: dict[str, _Probe] = {}
        self._probe_lock = threading.Lock()

    # -- rendering -------------------------------------------------------------------------------------

    def render(
        self, request: Request, template: str, session: Session | None, /, status: int = 200, **values: Any
    ) -> HTMLResponse:
        body = self.templates.get_template(template).render(
            session=session,
            admin=session is not None and session.key.may(Permission.ADMIN),
            whole_admin=session is not None
            and session.key.may(Permission.ADMIN)
            and session.key.collections is None,
            writer=session is not None and session.key.may(Permission.WRITE),
            path=request.url.path,
            **values,
        )
        response = HTMLResponse(body, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; img-src 'self' data: blob:; media-src 'self'; object-src 'none'; "
            "frame-ancestors 'none'; form-action 'self'"
        )
        return response

    def error(self, request: Request, session: Session | None, status: int, message: str) -> HTMLResponse:
        return self.render(request, "error.html", session, status=status, message=message)

    # -- probes waiting for a face to be picked --------------------------------------------------------

    def keep_probe(self, probe: _Probe) -> str:
        token = secrets.token_urlsafe(16)
        with self._probe_lock:
            now = time.time()
            for name in [n for n, p in self._probes.items() if now - p.created > PROBE_SECONDS]:
                del self._probes[name]
            self._probes[token] = probe
        return token

    def take_probe(self, token: str, owner: str) -> _Probe | None:
        with self._probe_lock:
            probe = self._probes.get(token)
            if probe is None or probe.owner != owner or time.time() - probe.created > PROBE_SECONDS:
                return None
            return self._probes.pop(token)


Handler = Callable[[Dashboard, Request, Session], Awaitable[Response]]


def _page(
    dash: Dashboard, handler: Handler, *, needs_purpose: bool = False
) -> Callable[[Request], Awaitable[Response]]:
    """A route that needs a session (else: to the sign-in page) and, for POST, the session's CSRF token."""

    async def endpoint(request: Request) -> Response:
        session = await anyio.to_thread.run_sync(dash.sessions.current, request)
        if session is None:
            target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""), safe="")
            return RedirectResponse(f"/ui/signin?next={target}", status_code=303)
        if request.method == "POST":
            form = await _form(request)
            if not csrf_ok(session.csrf, form.get("csrf")):
                return dash.error(
                    request, session, 403, "This form is missing its security token; reload the page."
                )
        if needs_purpose and not session.purpose:
            return RedirectResponse(f"/ui/purpose?next={quote(request.url.path, safe='')}", status_code=303)
        try:
            return await handler(dash, request, session)
        except FacetraceError as exc:
            return dash.error(request, session, _status(exc), exc.message)
        finally:
            if request.method == "POST":
                await (await _form(request)).close()  # uploaded photos' temporary files

    return endpoint


async def _form(request: Request) -> FormData:
    """The request's form (parsed once; Starlette caches it on the request)."""
    return await request.form(max_files=MAX_PHOTOS, max_fields=100)


def _text(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else default


async def _photos(form: FormData, name: str, limit: int) -> list[tuple[str, bytes]]:
    """The files under ``name``: (file name, bytes), each at most ``limit`` bytes."""
    photos = []
    for item in form.getlist(name):
        if isinstance(item, UploadFile) and item.filename:
            data = await item.read(limit + 1)
            if len(data) > limit:
                raise InvalidParameterError(f"{item.filename} is larger than {limit // 2**20} MiB")
            photos.append((item.filename[:200], data))
    return photos


def _safe_next(value: str | None) -> str:
    return value if value and value.startswith("/ui/") and not value.startswith("//") else "/ui/"


# -- sign in / out ---------------------------------------------------------------------------------------


async def signin_form(dash: Dashboard, request: Request, message: str = "", status: int = 200) -> Response:
    token = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
    response = dash.render(
        request,
        "signin.html",
        None,
        status=status,
        pre_csrf=token,
        next=_safe_next(request.query_params.get("next")),
        message=message,
    )
    response.set_cookie(
        PRE_COOKIE, token, max_age=3600, path="/ui", httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip
    return response


async def signin(dash: Dashboard, request: Request) -> Response:
    if request.method == "GET":
        return await signin_form(dash, request)
    form = await _form(request)
    if not csrf_ok(request.cookies.get(PRE_COOKIE), form.get("csrf")):
        return dash.error(request, None, 403, "This form is missing its security token; reload the page.")
    key_id, secret = _text(form, "access_key_id"), _text(form, "secret")
    signed = await anyio.to_thread.run_sync(dash.sessions.sign_in, key_id, secret)
    if signed is None:
        client = request.client.host if request.client else None
        await anyio.to_thread.run_sync(
            lambda: dash.denied.record(
                "UnrecognizedClientException",
                key_id=None,
                authorization=f"Credential={key_id[:128]}/",
                target="UiSignIn",
                client=client,
            )  # the claimed key id, marked claimed: as for a bad signature on the API
        )
        return await signin_form(dash, request, "That access key and secret do not match a key.", 401)
    token, key = signed
    await anyio.to_thread.run_sync(lambda: dash.gallery.record_event(_caller(key.access_key_id), "UiSignIn", None))
    response = RedirectResponse(_safe_next(_text(form, "next")), status_code=303)
    dash.sessions.set_cookie(response, request, token)
    response.delete_cookie(PRE_COOKIE, path="/ui")
    return response


def _caller(key_id: str) -> Caller:
    return Caller(key_id)


async def signout(dash: Dashboard, request: Request, session: Session) -> Response:
    await anyio.to_thread.run_sync(dash.sessions.sign_out, session)
    response = RedirectResponse("/ui/signin", status_code=303)
    dash.sessions.clear_cookie(response, request)
    return response


async def purpose(dash: Dashboard, request: Request, session: Session) -> Response:
    target = _safe_next(request.query_params.get("next"))
    if request.method == "GET":
        return dash.render(request, "purpose.html", session, next=target, message="")
    form = await _form(request)
    text = _text(form, "purpose")
    try:
        if not text:
            raise InvalidParameterError("say why you search: a case or incident reference")
        check_purpose(text)
    except FacetraceError as exc:
        return dash.render(request, "purpose.html", session, status=400, next=target, message=exc.message)
    await anyio.to_thread.run_sync(dash.sessions.set_purpose, session, text)
    return RedirectResponse(_safe_next(_text(form, "next")), status_code=303)


# -- overview --------------------------------------------------------------------------------------------


def _collections(dash: Dashboard, session: Session) -> list[Any]:
    names = dash.gallery.list_collections(limit=1000).items
    return [dash.gallery.describe_collection(n) for n in names if session.key.sees(n)]


async def overview(dash: Dashboard, request: Request, session: Session) -> Response:
    def gather() -> dict[str, Any]:
        collections = _collections(dash, session)
        from facetrace.service.handlers.video import video_of
        from facetrace.service.ui.cameras import camera_rows

        cameras = camera_rows(dash, session)
        trail = dash.gallery.store.audit
        whole = session.key.may(Permission.ADMIN) and session.key.collections is None
        verification = trail.verify() if whole else None

        recent = video_of(dash.resources, dash.gallery).sightings.query(limit=50, snapshots=True)
        latest = [
            s
            for s in recent
            if session.key.collections is None
            or (s.collection_id is not None and session.key.sees(s.collection_id))
        ][:8]
        if collections or latest:
            dash.gallery.record_event(
                session.caller, "ListSightings", None, matched=tuple(s.face_id for s in latest if s.face_id),
                detail={"via": "dashboard overview", "collections": len(collections), "returned": len(latest)},
            )  # fmt: skip
        latest_rows = [
            {"who": s.user_id or s.external_image_id or "unknown", "camera": s.camera, "when": s.started_at,
             "similarity": s.similarity,
             "snapshot": base64.b64encode(s.snapshot).decode() if s.snapshot else None}
            for s in latest
        ]  # fmt: skip
        return {
            "collections": collections,
            "cameras": cameras,
            "latest": latest_rows,
            "verification": verification,
        }

    return dash.render(request, "overview.html", session, **await anyio.to_thread.run_sync(gather))


# -- collections -----------------------------------------------------------------------------------------


def _visible(session: Session, collection_id: str) -> str:
    check_collection_id(collection_id)
    if not session.key.sees(collection_id):
        raise AccessDeniedError(f"your key may not use collection {collection_id}")
    return collection_id


def _needs(session: Session, level: Permission) -> None:
    if not session.key.may(level):
        raise AccessDeniedError(f"your key is {session.key.permission}; this needs a {level} key")


def _needs_whole_admin(session: Session) -> None:
    """The audit log and the keys span every collection: an admin key limited to some sees neither."""
    _needs(session, Permission.ADMIN)
    if session.key.collections is not None:
        raise AccessDeniedError("the audit log and the keys need an admin key not limited to collections")


async def collections(dash: Dashboard, request: Request, session: Session) -> Response:
    message = ""
    if request.method == "POST":
        _needs(session, Permission.ADMIN)
        form = await _form(request)
        name = check_collection_id(_text(form, "collection_id"))
        if session.key.collections is not None:
            raise AccessDeniedError("a key limited to collections cannot create new ones")
        keep = form.get("thumbnails") == "on"
        await anyio.to_thread.run_sync(
            lambda: dash.gallery.create_collection(name, thumbnails=keep, caller=session.caller)
        )
        message = f"Collection {name} created" + ("" if keep else " (no thumbnails are kept)") + "."
    found = await anyio.to_thread.run_sync(_collections, dash, session)
    return dash.render(request, "collections.html", session, collections=found, message=message)


async def collection(dash: Dashboard, request: Request, session: Session) -> Response:
    collection_id = _visible(session, request.path_params["collection_id"])

    def gather() -> dict[str, Any]:
        info = dash.gallery.describe_collection(collection_id)
        faces = dash.gallery.list_faces(collection_id, limit=LISTED_FACES).items
        users = dash.gallery.list_users(collection_id, limit=LISTED_FACES).items
        people: dict[str, list[Any]] = {}
        for face in faces:
            people.setdefault(face.user_id or face.external_image_id or "(no name)", []).append(face)
        kept = dash.thumbnails.enabled(collection_id) if dash.thumbnails is not None else False
        dash.gallery.record_event(
            session.caller, "ListFaces", collection_id, matched=tuple(f.face_id for f in faces),
            detail={"via": "dashboard", "returned": len(faces)},
        )  # fmt: skip
        people = dict(sorted(people.items()))
        return {"info": info, "people": people, "users": users, "faces": faces, "thumbnails": kept}

    values = await anyio.to_thread.run_sync(gather)
    return dash.render(request, "collection.html", session, message="", outcomes=[], **values)


def _outcome(name: str, result: Any) -> dict[str, Any]:
    added = len(result.indexed)
    refused = []
    for item in result.unindexed:
        words = ", ".join(_REASONS.get(r, r.lower().replace("_", " ")) for r in item.reasons)
        refused.append(words)
    if added and not refused:
        text = f"{added} face added" if added == 1 else f"{added} faces added"
    elif added:
        text = f"{added} face(s) added; {len(refused)} refused: " + "; ".join(refused)
    else:
        text = "no face added: " + ("; ".join(refused) if refused else "no face found")
    return {"photo": name, "ok": added > 0, "text": text, "faces": [i.record.face_id for i in result.indexed]}


async def enrol(dash: Dashboard, request: Request, session: Session) -> Response:
    collection_id = _visible(session, request.path_params["collection_id"])
    _needs(session, Permission.WRITE)
    form = await _form(request)
    person = _text(form, "person")
    if person:
        check_user_id(person)
    photos = await _photos(form, "photos", dash.config.max_body_bytes)
    if not photos:
        raise InvalidParameterError("choose at least one photo")

    def index_all() -> list[dict[str, Any]]:
        outcomes = []
        if person:
            try:
                dash.gallery.get_user(collection_id, person)
            except NotFoundError:
                dash.gallery.create_user(collection_id, person, caller=session.caller)
        for name, data in photos:
            try:
                result = dash.gallery.index_faces(
                    collection_id, data, external_image_id=person or None, max_faces=1, caller=session.caller
                )
            except FacetraceError as exc:
                outcomes.append({"photo": name, "ok": False, "text": f"not enrolled: {exc.message}", "faces": []})
                continue
            outcome = _outcome(name, result)
            if person and outcome["faces"]:
                dash.gallery.associate_faces(collection_id, person, outcome["faces"], caller=session.caller)
            outcomes.append(outcome)
        return outcomes

    outcomes = await anyio.to_thread.run_sync(index_all)
    if request.headers.get("x-fragment") == "1":
        return dash.render(request, "outcomes.html", session, outcomes=outcomes)
    return dash.render(request, "enrolled.html", session, collection_id=collection_id, outcomes=outcomes)


async def delete_faces(dash: Dashboard, request: Request, session: Session) -> Response:
    collection_id = _visible(session, request.path_params["collection_id"])
    _needs(session, Permission.WRITE)
    form = await _form(request)
    face_ids = [check_face_id(f) for f in form.getlist("face_id") if isinstance(f, str)]
    if form.get("confirm") != "yes":
        return dash.render(request, "confirm.html", session, what=f"{len(face_ids)} face(s) of {collection_id}",
                           action=request.url.path, fields=[("face_id", f) for f in face_ids])  # fmt: skip

    def delete() -> None:
        found = dash.gallery.list_faces(collection_id, face_ids=face_ids).items
        for face in found:
            if face.user_id is not None:
                dash.gallery.disassociate_faces(collection_id, face.user_id, [face.face_id], caller=session.caller)
        dash.gallery.delete_faces(collection_id, face_ids, caller=session.caller)

    await anyio.to_thread.run_sync(delete)
    return RedirectResponse(f"/ui/collections/{collection_id}", status_code=303)


async def delete_collection(dash: Dashboard, request: Request, session: Session) -> Response:
    collection_id = _visible(session, request.path_params["collection_id"])
    _needs(session, Permission.ADMIN)
    form = await _form(request)
    if form.get("confirm") != "yes":
        return dash.render(request, "confirm.html", session, what=f"collection {collection_id} and all its faces",
                           action=request.url.path, fields=[])  # fmt: skip
    await anyio.to_thread.run_sync(lambda: dash.gallery.delete_collection(collection_id, caller=session.caller))
    return RedirectResponse("/ui/collections", status_code=303)


async def thumbnail(dash: Dashboard, request: Request, session: Session) -> Response:
    collection_id = _visible(session, request.path_params["collection_id"])
    face_id = check_face_id(request.path_params["face_id"])
    if dash.thumbnails is None:
        return Response(status_code=404)
    jpeg = await anyio.to_thread.run_sync(dash.thumbnails.get, collection_id, face_id)
    if jpeg is None:
        return Response(status_code=404)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


# -- search and compare ----------------------------------------------------------------------------------


def _meaning(threshold: float, size: int) -> dict[str, Any]:
    fmr = false_match_rate(threshold)
    return {"fmr": fmr, "expected": fmr * size, "size": size}


def _threshold(form: FormData) -> float:
    try:
        value = float(_text(form, "threshold", "") or 99)
    except ValueError:
        raise InvalidParameterError("the threshold is a number from 0 to 100") from None
    if not 0 <= value <= 100:
        raise InvalidParameterError("the threshold is a number from 0 to 100")
    return value


async def search(dash: Dashboard, request: Request, session: Session) -> Response:
    choices = await anyio.to_thread.run_sync(_collections, dash, session)
    if request.method == "GET":
        return dash.render(request, "search.html", session, collections=choices, result=None, faces=None)
    form = await _form(request)
    token = _text(form, "probe")
    if token:  # a face picked among several
        probe = dash.take_probe(token, session.token_hash)
        if probe is None:
            raise InvalidParameterError("that photo is no longer held; choose it again")
        collection_id, threshold, image = probe.collection_id, probe.threshold, probe.image
        try:
            chosen: int | None = int(_text(form, "face"))
        except ValueError:
            raise InvalidParameterError("pick one of the faces") from None
    else:
        collection_id = _visible(session, _text(form, "collection_id"))
        threshold = _threshold(form)
        photos = await _photos(form, "photo", dash.config.max_body_bytes)
        if not photos:
            raise InvalidParameterError("choose a photo to search with")
        image, chosen = photos[0][1], None

    def run() -> dict[str, Any]:
        decoded, faces = dash.gallery.engine.analyze(image)
        if not faces:
            raise NoFaceError("there is no face in this photo")
        if chosen is None and len(faces) > 1:
            pictures = [
                base64.b64encode(face_thumbnail(decoded.pixels, f.detection) or b"").decode() for f in faces
            ]
            held = dash.keep_probe(_Probe(session.token_hash, collection_id, threshold, image, time.time()))
            return {"faces": pictures, "probe": held}
        if chosen is not None and not 0 <= chosen < len(faces):
            raise InvalidParameterError("pick one of the faces")
        face = faces[chosen or 0]
        if face.vector is None:
            raise NoFaceError("this face could not be described")
        matches = dash.gallery.search_vector(
            collection_id, face.vector, max_faces=10, threshold=threshold, quality=face.quality_score
        )
        dash.gallery.record_event(
            session.caller, "SearchFacesByImage", collection_id, threshold=threshold,
            match_count=len(matches), matched=tuple(m.face.face_id for m in matches), detail={"via": "dashboard"},
        )  # fmt: skip
        size = dash.gallery.describe_collection(collection_id).face_count
        probe = base64.b64encode(face_thumbnail(decoded.pixels, face.detection) or b"").decode()
        return {
            "result": {"matches": matches, "collection_id": collection_id, "threshold": threshold,
                       "probe": probe, **_meaning(threshold, size)},
        }  # fmt: skip

    values = await anyio.to_thread.run_sync(run)
    values.setdefault("result", None)
    values.setdefault("faces", None)
    return dash.render(request, "search.html", session, collections=choices, **values)


async def compare(dash: Dashboard, request: Request, session: Session) -> Response:
    if request.method == "GET":
        return dash.render(request, "compare.html", session, result=None)
    form = await _form(request)
    threshold = _threshold(form) if _text(form, "threshold") else 80.0
    source = await _photos(form, "source", dash.config.max_body_bytes)
    target = await _photos(form, "target", dash.config.max_body_bytes)
    if not source or not target:
        raise InvalidParameterError("choose two photos: the person, and the photo to look for them in")

    def run() -> dict[str, Any]:
        try:
            result = dash.gallery.compare_faces(
                source[0][1], target[0][1], threshold=threshold, caller=session.caller
            )
        except NoFaceError as exc:
            raise NoFaceError(f"{exc.message} (first photo, {source[0][0]}, or second, {target[0][0]})") from None
        pairs = [(s, True) for _, s in result.matches] + [(s, False) for _, s in result.unmatched]
        best = max((s for s, _ in pairs), default=None)
        return {"threshold": threshold, "pairs": pairs, "best": best, "matched": bool(result.matches),
                **_meaning(threshold, 1)}  # fmt: skip

    result = await anyio.to_thread.run_sync(run)
    return dash.render(request, "compare.html", session, result=result)


# -- audit and keys --------------------------------------------------------------------------------------


async def audit(dash: Dashboard, request: Request, session: Session) -> Response:
    _needs_whole_admin(session)
    query = request.query_params
    filters = {
        "operation": (query.get("operation") or "").strip()[:64] or None,
        "principal": (query.get("principal") or "").strip()[:128] or None,
        "collection_id": (query.get("collection_id") or "").strip()[:255] or None,
    }

    def gather() -> dict[str, Any]:
        trail = dash.gallery.store.audit
        rows = trail.records(
            operation=filters["operation"], principal=filters["principal"], collection_id=filters["collection_id"]
        )
        return {"rows": list(reversed(rows[-AUDIT_ROWS:])), "total": len(rows), "verification": trail.verify()}

    values = await anyio.to_thread.run_sync(gather)
    return dash.render(request, "audit.html", session, filters=filters, **values)


async def keys_page(dash: Dashboard, request: Request, session: Session) -> Response:
    _needs_whole_admin(session)
    created = None
    if request.method == "POST":
        form = await _form(request)
        action = _text(form, "action")
        if action == "delete":
            key_id = _text(form, "access_key_id")
            if form.get("confirm") != "yes":
                return dash.render(request, "confirm.html", session, what=f"access key {key_id}",
                                   action=request.url.path,
                                   fields=[("action", "delete"), ("access_key_id", key_id)])  # fmt: skip

            def delete() -> None:
                dash.gallery.record_event(session.caller, "DeleteAccessKey", None, detail={"key": key_id[:64]})
                dash.keys.delete(key_id)
                dash.sessions.end_key(key_id)

            await anyio.to_thread.run_sync(delete)
            if key_id == session.key.access_key_id:
                return RedirectResponse("/ui/signin", status_code=303)
        else:
            scope = [c.strip() for c in _text(form, "collections").split(",") if c.strip()]
            permission = Permission.parse(_text(form, "permission", "read"))

            def create() -> Any:
                dash.gallery.record_event(
                    session.caller, "CreateAccessKey", None,
                    detail={"permission": str(permission), "collections": ",".join(scope)[:256] or None},
                )  # fmt: skip
                return dash.keys.create(
                    permission, collections=scope or None, description=_text(form, "description")
                )

            created = await anyio.to_thread.run_sync(create)
    listed = await anyio.to_thread.run_sync(dash.keys.list)
    return dash.render(request, "keys.html", session, keys=listed, created=created)


class _PlainErrors:
    """A library error raised outside a page (the body limit, before any page runs) as a short text answer
    with the API's status, not a traceback or a 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except FacetraceError as exc:
            status = 413 if isinstance(exc, ImageTooLargeError) else _status(exc)
            await PlainTextResponse(exc.message, status_code=status)(scope, receive, send)


def create_ui(gallery: Gallery, keys: KeyStore, config: ServiceConfig, resources: Resources) -> Starlette:
    """The dashboard as an ASGI app serving ``/ui/...`` (mounted by ``service.app.create_app``; ``resources``:
    the server's, so cameras are the API's stream processors)."""
    from facetrace.service.ui import cameras as cams
    from facetrace.service.ui import review, videos, watch

    dash = Dashboard(gallery, keys, config, resources)
    static = Path(str(package_files.files("facetrace.service.ui") / "static"))

    async def signin_endpoint(request: Request) -> Response:
        return await signin(dash, request)

    async def root(request: Request) -> Response:
        return RedirectResponse("/ui/", status_code=307)

    def page(handler: Handler, **options: bool) -> Callable[[Request], Awaitable[Response]]:
        return _page(dash, handler, **options)

    per_form = config.max_body_bytes * MAX_PHOTOS  # enrolment takes up to MAX_PHOTOS photos in one form
    return Starlette(
        middleware=[
            Middleware(_PlainErrors),
            Middleware(BodyLimitMiddleware, limit_for=lambda _target: per_form),
        ],
        routes=[
            Route("/ui", root),
            Route("/ui/signin", signin_endpoint, methods=["GET", "POST"]),
            Route("/ui/signout", page(signout), methods=["POST"]),
            Route("/ui/purpose", page(purpose), methods=["GET", "POST"]),
            Route("/ui/", page(overview)),
            Route("/ui/collections", page(collections), methods=["GET", "POST"]),
            Route("/ui/collections/{collection_id}", page(collection)),
            Route("/ui/collections/{collection_id}/enrol", page(enrol), methods=["POST"]),
            Route("/ui/collections/{collection_id}/delete-faces", page(delete_faces), methods=["POST"]),
            Route("/ui/collections/{collection_id}/delete", page(delete_collection), methods=["POST"]),
            Route("/ui/collections/{collection_id}/faces/{face_id}.jpg", page(thumbnail)),
            Route("/ui/search", page(search, needs_purpose=True), methods=["GET", "POST"]),
            Route("/ui/compare", page(compare, needs_purpose=True), methods=["GET", "POST"]),
            Route("/ui/audit", page(audit)),
            Route("/ui/keys", page(keys_page), methods=["GET", "POST"]),
            Route("/ui/cameras", page(cams.cameras), methods=["GET", "POST"]),
            Route("/ui/events", page(watch.events_page)),
            Route("/ui/events/stream", page(watch.events_stream)),
            Route("/ui/sightings", page(watch.sightings_page)),
            Route("/ui/videos", page(videos.videos_page)),
            Route("/ui/videos/search", page(videos.videos_search), methods=["POST"]),
            Route("/ui/videos/jobs/{job_id}", page(videos.job_page)),
            Route("/ui/videos/file", page(videos.play)),
            Route("/ui/cameras/{name}", page(cams.camera)),
            Route("/ui/cameras/{name}/frame.jpg", page(cams.frame)),
            Route("/ui/cameras/{name}/now.json", page(cams.now)),
            Route("/ui/cameras/{name}/{act}", page(cams.camera_act), methods=["POST"]),
            Route("/ui/review", page(review.review_page, needs_purpose=True)),
            Route("/ui/review/{item_id}/{n}.jpg", page(review.item_thumbnail)),
            Route("/ui/review/{item_id}/{act}", page(review.review_answer), methods=["POST"]),
            Route("/ui/unknown", page(review.unknowns_page, needs_purpose=True)),
            Route("/ui/unknown/{unknown_id}/{n}.jpg", page(review.unknown_thumbnail)),
            Route("/ui/unknown/{unknown_id}/name", page(review.name_unknown), methods=["POST"]),
            Mount("/ui/static", StaticFiles(directory=static), name="static"),
        ],
    )
