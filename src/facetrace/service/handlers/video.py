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

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from facetrace.app import Video, open_video
from facetrace.audit import Caller
from facetrace.errors import AccessDeniedError, ConflictError, InvalidParameterError, NotFoundError
from facetrace.gallery import DEFAULT_MATCH_THRESHOLD, Gallery
from facetrace.home import resolve_home
from facetrace.service.dispatch import KEY_SCOPE
from facetrace.service.errors import ServiceError
from facetrace.service.keys import AccessKey
from facetrace.service.operations import Context, Permission, Resources, on_startup, operation, route
from facetrace.service.protocol import PURPOSE_HEADER, purpose
from facetrace.service.sources import REFUSED, SourcePolicy
from facetrace.video.jobs import Job, VideoJobs
from facetrace.video.processors import StreamProcessors
from facetrace.video.sinks import EventBus, sse_message
from facetrace.video.source import SourceKind, classify, redact

__all__ = ["event_stream", "events", "processors_of"]

JSON = dict[str, Any]


def _video(resources: Resources, gallery: Gallery) -> Video:
    """The server's video services (one per server, closed at shutdown); the first call resumes the
    processors that were running before a restart."""
    home = Path(resources.get("home", resolve_home))
    video: Video = resources.get("video", lambda: open_video(gallery, home=home, resume=True))
    return video


def _jobs(ctx: Context) -> VideoJobs:
    return _video(ctx.resources, ctx.gallery).jobs


def processors_of(resources: Resources, gallery: Gallery) -> StreamProcessors:
    """The server's stream processors; the first call resumes those that were running before a restart."""
    return _video(resources, gallery).processors


@on_startup
def _resume_processors(resources: Resources, gallery: Gallery) -> None:
    """Processors survive a restart: their definitions are stored, and the running ones start again here."""
    processors_of(resources, gallery)


def _visible_processor(ctx: Context, name: str) -> StreamProcessors:
    """The processors, once the caller's key may see the named processor's collection."""
    manager = processors_of(ctx.resources, ctx.gallery)
    collection_id = manager.definition(name).face_search.collection_id
    if not ctx.key.sees(collection_id):
        raise AccessDeniedError(f"this key may not use collection {collection_id}")
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


@operation("GetFaceSearch", Permission.READ, collection_param=None)
def get_face_search(ctx: Context, request: JSON) -> JSON:
    jobs = _jobs(ctx)
    job = jobs.get(request["JobId"])
    if job.collection_id is not None and not ctx.key.sees(job.collection_id):
        raise AccessDeniedError(f"this key may not read collection {job.collection_id}")
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
    job_id = jobs.start_face_detection(path, job_tag=request.get("JobTag"), request=request["Video"])
    return {"JobId": job_id}


@operation("GetFaceDetection", Permission.READ, collection_param=None)
def get_face_detection(ctx: Context, request: JSON) -> JSON:
    page = _jobs(ctx).get_face_detection(
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
    items, token = processors_of(ctx.resources, ctx.gallery).list(
        max_results=request.get("MaxResults") or 1000, next_token=request.get("NextToken")
    )
    data: JSON = {"StreamProcessors": items}
    if token:
        data["NextToken"] = token
    return data


# -- server-sent events ----------------------------------------------------------------------------------------


async def event_stream(
    bus: EventBus, processor: str | None = None, *, heartbeat: float = 15.0
) -> AsyncIterator[str]:
    """Server-sent-events text for every event on ``bus`` (one processor's, when given), with a comment line
    every ``heartbeat`` seconds so proxies keep the connection open. For a Starlette route::

        StreamingResponse(event_stream(processors.bus, request.query_params.get("processor")),
                          media_type="text/event-stream")
    """
    subscription = bus.subscribe(processor=processor)
    try:
        while not subscription.closed:
            event = await anyio.to_thread.run_sync(subscription.get, heartbeat)
            yield ": keep-alive\n\n" if event is None else sse_message(event)
    finally:
        subscription.close()


@route("/events")
async def events(request: Request, resources: Resources, gallery: Gallery) -> Response:
    """Server-sent events of the stream processors (``?processor=NAME`` for one), for any key with read access
    that may see that processor's collection."""
    key: AccessKey = request.scope[KEY_SCOPE]
    name = request.query_params.get("processor")
    manager = await anyio.to_thread.run_sync(processors_of, resources, gallery)
    allowed = key.may(Permission.READ) and (
        key.collections is None
        or (name is not None and key.sees(manager.definition(name).face_search.collection_id))
    )
    if not allowed:
        raise AccessDeniedError(f"User: {key.access_key_id} is not authorized to read these events")
    collection = None
    if name is not None:
        with contextlib.suppress(NotFoundError):  # one may subscribe before the processor is created
            collection = manager.definition(name).face_search.collection_id
    caller = Caller(key.access_key_id, purpose(request.headers.get(PURPOSE_HEADER)))
    await anyio.to_thread.run_sync(  # a subscription to identifications is audited before the first event
        lambda: gallery.record_event(caller, "SubscribeEvents", collection, detail={"processor": name})
    )
    return StreamingResponse(event_stream(manager.bus, name), media_type="text/event-stream")
