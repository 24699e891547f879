"""Video operations on the wire: StartFaceSearch / GetFaceSearch, StartFaceDetection / GetFaceDetection and
the stream processors (Create / Start / Stop / Describe / List / DeleteStreamProcessor), in Rekognition's shapes.

Handlers only translate: the work is ``facetrace.video.VideoJobs`` and ``facetrace.video.StreamProcessors``,
one of each per server (``ctx.resources``), keeping jobs, processors and sightings in the store's database
(``facetrace.store.records_of``). ClientRequestToken is handled for every operation by the dispatcher
(``service/idempotency.py``). Running processors are resumed when the server starts,
and ``GET /events[?processor=NAME]`` streams their events as server-sent events (SigV4-signed like any call).

- ``Video.S3Object`` is resolved like an image's: a file in a folder mapped with ``--bucket`` (never a glob).
- A processor's source must match the operator's ``--camera-allow`` list (``service/sources.py``), checked at
  Create and again at Start; its credentials are redacted in every answer.
- A stream processor's ``Input.KinesisVideoStream.Arn`` names the source: everything after the account id is
  the URL, e.g. ``arn:aws:kinesisvideo:us-east-1:000000000000:rtsp://10.0.0.5/stream1`` (Rekognition's pattern
  accepts any text there). ``Output``, ``RoleArn`` and ``NotificationChannel`` are kept and echoed, not used:
  events go to the server-sent-events feed (``event_stream``) and to the sightings store.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from facetrace.app import Video, open_video
from facetrace.audit import Caller
from facetrace.errors import AccessDeniedError, ConflictError, InvalidParameterError, NotFoundError
from facetrace.gallery import DEFAULT_MATCH_THRESHOLD, Gallery
from facetrace.home import resolve_home
from facetrace.service.config import ServiceConfig
from facetrace.service.dispatch import KEY_SCOPE
from facetrace.service.errors import ServiceError
from facetrace.service.keys import AccessKey
from facetrace.service.operations import Context, Permission, Resources, on_startup, operation, route
from facetrace.service.protocol import PURPOSE_HEADER, purpose
from facetrace.service.sources import REFUSED, SourcePolicy
from facetrace.service.streams import SlotStreamingResponse, StreamSlots
from facetrace.video.events import Event
from facetrace.video.jobs import Job, VideoJobs
from facetrace.video.processors import StreamProcessors
from facetrace.video.sinks import EventBus, sse_message
from facetrace.video.source import SourceKind, classify, redact

__all__ = ["event_stream", "events", "processors_of", "video_of"]

JSON = dict[str, Any]


def _video(resources: Resources, gallery: Gallery) -> Video:
    """The server's video services (one per server, closed at shutdown); the first call resumes the
    processors that were running before a restart."""
    home = Path(resources.get("home", resolve_home))
    video: Video = resources.get("video", lambda: open_video(gallery, home=home, resume=True))
    return video


def video_of(resources: Resources, gallery: Gallery) -> Video:
    """The server's video services, for the other doors of the same server (the dashboard)."""
    return _video(resources, gallery)


def _jobs(ctx: Context) -> VideoJobs:
    return _video(ctx.resources, ctx.gallery).jobs


def processors_of(resources: Resources, gallery: Gallery) -> StreamProcessors:
    """The server's stream processors; the first call resumes those that were running before a restart."""
    return _video(resources, gallery).processors


@on_startup
def _resume_processors(resources: Resources, gallery: Gallery) -> None:
    """Processors survive a restart: their definitions are stored, and the running ones start again here."""
    processors_of(resources, gallery)


def _processor_not_found(name: str) -> NotFoundError:
    """The one answer for a processor that does not exist *and* for one the key may not see: two answers would
    tell a collection-limited key which names exist, and in which collections."""
    return NotFoundError(f"there is no stream processor {name!r}")


def _visible_processor(ctx: Context, name: str) -> StreamProcessors:
    """The processors, once the caller's key may see the named processor's collection."""
    manager = processors_of(ctx.resources, ctx.gallery)
    try:
        collection_id = manager.definition(name).face_search.collection_id
    except NotFoundError:
        raise _processor_not_found(name) from None
    if not ctx.key.sees(collection_id):
        raise _processor_not_found(name)
    return manager


def _video_path(ctx: Context, request: JSON) -> str:
    """The bucket file a job reads: only ``S3Object``, and never a name FFmpeg would read as a pattern."""
    video = request.get("Video") or {}
    s3 = video.get("S3Object")
    if not s3:
        raise InvalidParameterError("Video must have an S3Object")
    path = str(ctx.images.path_of(s3))
    if classify(path) is not SourceKind.FILE:  # an image glob or %d sequence would widen the read
        raise InvalidParameterError(REFUSED)
    return path


def _allowed_source(ctx: Context, source: str) -> str:
    """``source`` once the operator's ``--camera-allow`` list admits it (``service/sources.py``)."""
    return SourcePolicy(ctx.config.camera_allow).check(source)


def _job_fields(job: Job, request_video: JSON | None = None) -> JSON:
    data: JSON = {"JobStatus": job.status.value, "JobId": job.job_id}
    if job.message:
        data["StatusMessage"] = job.message
    if job.metadata is not None:
        data["VideoMetadata"] = job.metadata.to_dict()
    if job.job_tag:
        data["JobTag"] = job.job_tag
    if request_video is not None:
        data["Video"] = request_video
    return data


# -- stored video ----------------------------------------------------------------------------------------------


@operation("StartFaceSearch", Permission.READ)
def start_face_search(ctx: Context, request: JSON) -> JSON:
    path = _video_path(ctx, request)
    jobs = _jobs(ctx)
    threshold = request.get("FaceMatchThreshold")
    job_id = jobs.start_face_search(
        path,
        request["CollectionId"],
        threshold=DEFAULT_MATCH_THRESHOLD if threshold is None else threshold,  # as SearchFacesByImage
        job_tag=request.get("JobTag"),
        camera=request["Video"]["S3Object"].get("Name"),
        caller=ctx.caller,
        request=request["Video"],
    )
    return {"JobId": job_id}


def _own_job(ctx: Context, job_id: str) -> VideoJobs:
    """The jobs, once ``job_id`` is the caller's: started with this key (or the caller is an admin key limited
    to no collection, the operator's), in a collection the key sees. Anyone else's job answers exactly as a job
    that does not exist, so job ids cannot be probed."""
    jobs = _jobs(ctx)
    not_found = NotFoundError(f"there is no video job {job_id!r}")
    try:
        job = jobs.get(job_id)
    except NotFoundError:
        raise not_found from None
    operator = ctx.key.collections is None and ctx.key.may(Permission.ADMIN)
    if not operator and job.caller.principal != ctx.key.access_key_id:
        raise not_found
    if job.collection_id is not None and not ctx.key.sees(job.collection_id):
        raise not_found
    return jobs


@operation("GetFaceSearch", Permission.READ, collection_param=None)
def get_face_search(ctx: Context, request: JSON) -> JSON:
    jobs = _own_job(ctx, request["JobId"])
    page = jobs.get_face_search(
        request["JobId"],
        max_results=request.get("MaxResults") or 1000,
        next_token=request.get("NextToken"),
        sort_by=request.get("SortBy") or "TIMESTAMP",
    )
    data = _job_fields(page.job, page.job.request)
    data["Persons"] = list(page.items)
    if page.next_token:
        data["NextToken"] = page.next_token
    return data


@operation("StartFaceDetection", Permission.READ, collection_param=None)
def start_face_detection(ctx: Context, request: JSON) -> JSON:
    path = _video_path(ctx, request)
    jobs = _jobs(ctx)
    job_id = jobs.start_face_detection(
        path, job_tag=request.get("JobTag"), caller=ctx.caller, request=request["Video"]
    )
    return {"JobId": job_id}


@operation("GetFaceDetection", Permission.READ, collection_param=None)
def get_face_detection(ctx: Context, request: JSON) -> JSON:
    page = _own_job(ctx, request["JobId"]).get_face_detection(
        request["JobId"], max_results=request.get("MaxResults") or 1000, next_token=request.get("NextToken")
    )
    data = _job_fields(page.job, page.job.request)
    data["Faces"] = list(page.items)
    if page.next_token:
        data["NextToken"] = page.next_token
    return data


# -- stream processors ---------------------------------------------------------------------------------------


def _source_of(arn: str) -> str:
    parts = arn.split(":", 5)
    if len(parts) < 6 or not parts[5]:
        raise InvalidParameterError("Input.KinesisVideoStream.Arn must end with the video source's URL or path")
    return parts[5]


def _arn(ctx: Context, name: str) -> str:
    config = ctx.config
    return f"arn:aws:rekognition:{config.region}:{config.account_id}:streamprocessor/{name}"


@operation("CreateStreamProcessor", Permission.ADMIN, collection_param=None)
def create_stream_processor(ctx: Context, request: JSON) -> JSON:
    face_search = (request.get("Settings") or {}).get("FaceSearch")
    if not face_search:
        raise InvalidParameterError("Settings.FaceSearch is required (facetrace runs face search processors)")
    collection_id = face_search.get("CollectionId")
    if collection_id is None:
        raise InvalidParameterError("Settings.FaceSearch.CollectionId is required")
    if not ctx.key.sees(collection_id):
        raise AccessDeniedError(f"this key may not use collection {collection_id}")
    arn = request["Input"]["KinesisVideoStream"]["Arn"]
    definition: JSON = {
        "name": request["Name"],
        "source": _allowed_source(ctx, _source_of(arn)),
        "face_search": {"collection_id": collection_id},
        "wire": {"Input": request["Input"], "Output": request.get("Output"), "RoleArn": request.get("RoleArn")},
    }
    if face_search.get("FaceMatchThreshold") is not None:
        definition["face_search"]["face_match_threshold"] = face_search["FaceMatchThreshold"]
    processors_of(ctx.resources, ctx.gallery).create(definition)
    return {"StreamProcessorArn": _arn(ctx, request["Name"])}


def _in_use(error: ConflictError) -> ServiceError:
    """Rekognition answers a running processor's conflicts with ResourceInUseException."""
    return ServiceError("ResourceInUseException", error.message)


@operation("StartStreamProcessor", Permission.WRITE, collection_param=None)
def start_stream_processor(ctx: Context, request: JSON) -> JSON:
    manager = _visible_processor(ctx, request["Name"])
    _allowed_source(ctx, manager.definition(request["Name"]).source)  # the list may have shrunk since
    try:
        manager.start(request["Name"])
    except ConflictError as exc:
        raise _in_use(exc) from None
    return {"SessionId": str(uuid.uuid4())}


@operation("StopStreamProcessor", Permission.WRITE, collection_param=None)
def stop_stream_processor(ctx: Context, request: JSON) -> JSON:
    _visible_processor(ctx, request["Name"]).stop(request["Name"])
    return {}


@operation("DeleteStreamProcessor", Permission.ADMIN, collection_param=None)
def delete_stream_processor(ctx: Context, request: JSON) -> JSON:
    try:
        _visible_processor(ctx, request["Name"]).delete(request["Name"])
    except ConflictError as exc:
        raise _in_use(exc) from None
    return {}


@operation("DescribeStreamProcessor", Permission.READ, collection_param=None)
def describe_stream_processor(ctx: Context, request: JSON) -> JSON:
    name = request["Name"]
    manager = _visible_processor(ctx, name)
    described = manager.describe(name)
    wire = manager.definition(name).wire or {}
    data: JSON = {
        "Name": name,
        "StreamProcessorArn": _arn(ctx, name),
        "Status": described["Status"],
        "CreationTimestamp": described["CreationTimestamp"],
        "LastUpdateTimestamp": described["LastUpdateTimestamp"],
        "Input": _redacted(wire.get("Input")),
        "Settings": described["Settings"],
    }
    if described.get("StatusMessage"):
        data["StatusMessage"] = redact(described["StatusMessage"])
    for member in ("Output", "RoleArn"):
        if wire.get(member):
            data[member] = _redacted(wire[member])
    return {k: v for k, v in data.items() if v is not None}


def _redacted(value: Any) -> Any:
    """``value`` (a request member echoed back) with credentials taken out of every URL in it: a camera's
    password is never returned, whatever the key (the operator has it in their own configuration)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


@operation("ListStreamProcessors", Permission.READ, collection_param=None)
def list_stream_processors(ctx: Context, request: JSON) -> JSON:
    manager = processors_of(ctx.resources, ctx.gallery)
    limit = request.get("MaxResults") or 1000
    if ctx.key.collections is None:
        items, token = manager.list(max_results=limit, next_token=request.get("NextToken"))
    else:  # only the processors of the key's collections, paged among themselves (tokens name only those)
        items, token = _visible_processors(ctx, manager, limit, request.get("NextToken"))
    data: JSON = {"StreamProcessors": items}
    if token:
        data["NextToken"] = token
    return data


def _visible_processors(
    ctx: Context, manager: StreamProcessors, limit: int, next_token: str | None
) -> tuple[list[dict[str, str]], str | None]:
    visible: list[dict[str, str]] = []
    page, token = manager.list(max_results=1000, next_token=next_token)
    while True:
        for item in page:
            try:
                collection_id = manager.definition(item["Name"]).face_search.collection_id
            except NotFoundError:  # deleted meanwhile
                continue
            if ctx.key.sees(collection_id):
                if len(visible) == limit:
                    return visible, visible[-1]["Name"]
                visible.append(item)
        if token is None:
            return visible, None
        page, token = manager.list(max_results=1000, next_token=token)


# -- server-sent events ----------------------------------------------------------------------------------------


EventFilter = Callable[[Event], bool]
Reauthorize = Callable[[], Awaitable[EventFilter | None]]
"""Re-reads the caller's key: the filter of the events it may see now, or None when it may see none (deleted)."""

_POLL = 0.1  # seconds between looks at an idle subscription: waiting on the loop holds no thread
_BATCH = 256  # events sent per look at most


async def event_stream(
    bus: EventBus,
    processor: str | None = None,
    *,
    heartbeat: float = 15.0,
    reauthorize: Reauthorize | None = None,
    recheck: float = 5.0,
) -> AsyncIterator[str]:
    """Server-sent-events text for every event on ``bus`` (one processor's, when given), with a comment line
    every ``heartbeat`` seconds so proxies keep the connection open. For a Starlette route::

        StreamingResponse(event_stream(processors.bus, request.query_params.get("processor")),
                          media_type="text/event-stream")

    The subscription is polled on the event loop, so an idle stream holds no worker thread. With
    ``reauthorize``, the caller's key is read again before every batch of events and at least every
    ``recheck`` seconds: each event is sent only if the key, as it is now, may see it, and the stream ends once
    the key is gone.
    """
    subscription = bus.subscribe(processor=processor)
    allowed: EventFilter = _everything
    checked = last_sent = time.monotonic()
    if reauthorize is not None:
        checked = -recheck
    try:
        while not subscription.closed:
            batch: list[Event] = []
            while len(batch) < _BATCH and (event := subscription.get(0)) is not None:
                batch.append(event)
            now = time.monotonic()
            if reauthorize is not None and (batch or now - checked >= recheck):
                current = await reauthorize()
                if current is None:
                    return
                allowed, checked = current, time.monotonic()
            sent = [sse_message(event) for event in batch if allowed(event)]
            for text in sent:
                yield text
            if sent:
                last_sent = now
            elif now - last_sent >= heartbeat:
                last_sent = now
                yield ": keep-alive\n\n"
            if not batch:
                await anyio.sleep(_POLL)
    finally:
        subscription.close()


def _everything(event: Event) -> bool:
    return True


def _reauthorizer(
    lookup: Callable[[str], AccessKey | None], key: AccessKey, manager: StreamProcessors
) -> Reauthorize:
    """The key's current state → which events it may see (by each event's processor's collection, as it is
    now: a processor name reused for another collection is checked against the new one)."""

    async def reauthorize() -> EventFilter | None:
        current = await anyio.to_thread.run_sync(lookup, key.access_key_id)
        if current is None or not current.may(Permission.READ):
            return None
        if current.collections is None:
            return _everything

        def allowed(event: Event) -> bool:
            try:
                return current.sees(manager.definition(event.processor).face_search.collection_id)
            except NotFoundError:  # a processor deleted since: its collection is unknown, so nothing is sent
                return False

        return allowed

    return reauthorize


@route("/events")
async def events(request: Request, resources: Resources, gallery: Gallery) -> Response:
    """Server-sent events of the stream processors (``?processor=NAME`` for one), for any key with read
    access; a key limited to collections gets only the events of processors on its collections. A key holds at
    most ``ServiceConfig.max_event_streams_per_key`` streams at once."""
    key: AccessKey = request.scope[KEY_SCOPE]
    name = request.query_params.get("processor")
    manager = await anyio.to_thread.run_sync(processors_of, resources, gallery)
    if not key.may(Permission.READ):
        raise AccessDeniedError(f"User: {key.access_key_id} is not authorized to read these events")
    collection_id = None
    if name is not None:
        try:
            collection_id = manager.definition(name).face_search.collection_id
        except NotFoundError:
            # A key that sees every collection may subscribe before its processor is created (it learns
            # nothing); for a limited key a missing processor answers like a hidden one.
            if key.collections is not None:
                raise _processor_not_found(name) from None
        else:
            if not key.sees(collection_id):
                raise _processor_not_found(name)
    caller = Caller(key.access_key_id, purpose(request.headers.get(PURPOSE_HEADER)))
    await anyio.to_thread.run_sync(  # a subscription to identifications is audited before the first event
        lambda: gallery.record_event(caller, "SubscribeEvents", collection_id, detail={"processor": name})
    )
    config: ServiceConfig = resources.get("config", ServiceConfig)
    lookup: Callable[[str], AccessKey | None] | None = resources.get("keys.get", lambda: None)
    slots = resources.get("event_slots", lambda: StreamSlots(config.max_event_streams_per_key))
    release = slots.acquire(key.access_key_id)
    stream = event_stream(
        manager.bus,
        name,
        reauthorize=_reauthorizer(lookup, key, manager) if lookup is not None else None,
        recheck=config.events_recheck_seconds,
    )
    return SlotStreamingResponse(stream, release, media_type="text/event-stream")
