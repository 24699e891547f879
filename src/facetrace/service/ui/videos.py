"""Stored video: browse the ``--bucket`` folders, run a face search on a file, see each person's appearances on
a timeline with thumbnails, and play the video from the moment clicked (an HTML5 ``<video>`` fed by
``FileResponse``, which answers HTTP Range requests, so the browser seeks without downloading the whole file).

Paths are resolved like the API's S3 objects (``ImageResolver.path_of``: inside the bucket, no links, no
``..``). A job is the library's ``VideoJobs`` job (the API's too), shown only to the key that started it or an
admin key; its results and appearances come from the sightings it stored, with their snapshots. Starting a
search is audited by the library; opening results is audited here (``GetFaceSearch``).
"""

from __future__ import annotations

import base64
import mimetypes
import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response

from facetrace.errors import AccessDeniedError, InvalidParameterError, NotFoundError
from facetrace.service.handlers.video import video_of
from facetrace.service.images import ImageResolver
from facetrace.service.keys import Permission
from facetrace.service.ui.pages import Dashboard, _form, _needs, _text, _threshold, _visible, _when
from facetrace.service.ui.sessions import Session

__all__ = ["job_page", "play", "videos_page", "videos_search"]

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi", ".ts", ".mpg", ".mpeg"})
MAX_LISTED = 500


def _parts(name: str) -> list[str]:
    parts = [p for p in name.split("/") if p]
    if any(p in (".", "..") or "\0" in p for p in parts):
        raise InvalidParameterError("a folder name may not have '.' or '..' segments")
    return parts


def _listing(dash: Dashboard, bucket: str, folder: str) -> tuple[list[str], list[str]]:
    """(sub-folders, video files) of ``bucket/folder``, links not followed."""
    root = dash.config.buckets.get(bucket)
    if root is None:
        raise NotFoundError(f"no bucket named {bucket!r} is configured (serve --bucket NAME=PATH)")
    where = Path(root).resolve().joinpath(*_parts(folder))
    folders, files = [], []
    try:
        with os.scandir(where) as entries:
            for entry in entries:
                mode = entry.stat(follow_symlinks=False).st_mode
                if stat.S_ISDIR(mode) and not entry.name.startswith("."):
                    folders.append(entry.name)
                elif stat.S_ISREG(mode) and Path(entry.name).suffix.lower() in VIDEO_SUFFIXES:
                    files.append(entry.name)
                if len(folders) + len(files) >= MAX_LISTED:
                    break
    except OSError:
        raise NotFoundError(f"there is no folder {folder or '/'} in bucket {bucket}") from None
    return sorted(folders), sorted(files)


def _resolver(dash: Dashboard) -> ImageResolver:
    return ImageResolver(dash.config.buckets, dash.config.max_body_bytes)


async def videos_page(dash: Dashboard, request: Request, session: Session) -> Response:
    bucket = request.query_params.get("bucket") or ""
    folder = (request.query_params.get("folder") or "").strip("/")
    buckets = sorted(dash.config.buckets)
    folders: list[str] = []
    files: list[str] = []
    if bucket:
        folders, files = await anyio.to_thread.run_sync(_listing, dash, bucket, folder)
    collections = [c for c in dash.gallery.list_collections(limit=1000).items if session.key.sees(c)]
    up = "/".join(folder.split("/")[:-1]) if folder else None
    return dash.render(
        request, "videos.html", session, buckets=buckets, bucket=bucket, folder=folder, folders=folders,
        files=files, collections=collections, up=up,
    )  # fmt: skip


async def videos_search(dash: Dashboard, request: Request, session: Session) -> Response:
    _needs(session, Permission.WRITE)  # StartFaceSearch needs a write key on the API too
    form = await _form(request)
    bucket, name = _text(form, "bucket"), _text(form, "name")
    collection_id = _visible(session, _text(form, "collection_id"))
    threshold = _threshold(form) if _text(form, "threshold") else 80.0

    def start() -> str:
        path = _resolver(dash).path_of({"Bucket": bucket, "Name": name})
        jobs = video_of(dash.resources, dash.gallery).jobs
        return jobs.start_face_search(
            path, collection_id, threshold=threshold, camera=f"{bucket}/{name}", caller=session.caller,
            request={"S3Object": {"Bucket": bucket, "Name": name}},
        )  # fmt: skip

    job_id = await anyio.to_thread.run_sync(start)
    return RedirectResponse(f"/ui/videos/jobs/{quote(job_id)}", status_code=303)


def _appearances(sightings: list[Any]) -> dict[str, list[dict[str, Any]]]:
    people: dict[str, list[dict[str, Any]]] = {}
    length = max((s.end_stream_ms for s in sightings), default=1) or 1
    for s in sorted(sightings, key=lambda s: s.start_stream_ms):
        people.setdefault(s.user_id or s.external_image_id or s.face_id or "unknown", []).append(
            {
                "start": s.start_stream_ms / 1000.0,
                "end": s.end_stream_ms / 1000.0,
                "similarity": s.similarity,
                "left": round(100 * s.start_stream_ms / length, 3),
                "width": round(max(0.8, 100 * (s.end_stream_ms - s.start_stream_ms) / length), 3),
                "snapshot": base64.b64encode(s.snapshot).decode() if s.snapshot else None,
            }
        )
    return people


async def job_page(dash: Dashboard, request: Request, session: Session) -> Response:
    job_id = request.path_params["job_id"]

    def gather() -> dict[str, Any]:
        video = video_of(dash.resources, dash.gallery)
        job = video.jobs.get(job_id)
        if job.caller.principal != session.key.access_key_id and not session.key.may(Permission.ADMIN):
            raise AccessDeniedError("this job was started by another key")
        if job.collection_id is not None and not session.key.sees(job.collection_id):
            raise AccessDeniedError(f"your key may not use collection {job.collection_id}")
        source = (job.request or {}).get("S3Object") or {}
        done = job.status.value != "IN_PROGRESS"
        people: dict[str, list[dict[str, Any]]] = {}
        if done:
            sightings = video.sightings.query(source=job.job_id, limit=10000, snapshots=True)
            people = _appearances(sightings)
            dash.gallery.record_event(
                session.caller, "GetFaceSearch", job.collection_id,
                matched=tuple(s.face_id for s in sightings if s.face_id),
                detail={"JobId": job.job_id, "via": "dashboard", "returned": len(sightings)},
            )  # fmt: skip
        play = None
        if source.get("Bucket") and source.get("Name"):
            play = f"/ui/videos/file?bucket={quote(source['Bucket'])}&name={quote(source['Name'])}"
        return {
            "job": job, "done": done, "people": people, "play": play, "started": _when(job.created_at),
            "name": source.get("Name") or Path(job.video).name,
        }  # fmt: skip

    return dash.render(request, "video_job.html", session, **await anyio.to_thread.run_sync(gather))


async def play(dash: Dashboard, request: Request, session: Session) -> Response:
    bucket = request.query_params.get("bucket") or ""
    name = request.query_params.get("name") or ""
    path = await anyio.to_thread.run_sync(lambda: _resolver(dash).path_of({"Bucket": bucket, "Name": name}))
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, headers={"Cache-Control": "private, no-store"})
