"""``facetrace video search|faces``, ``facetrace watch`` and ``facetrace sightings``: faces in video.

facetrace video search COLLECTION VIDEO   who from the collection appears in a video file, and when
facetrace video faces VIDEO                every face in a video file (no recognition)
facetrace watch SOURCE --collection NAME   follow a live stream (or a file, in real time), print events
facetrace sightings find --external-image-id NAME [--since ...]   where and when someone was seen
facetrace sightings sweep                  delete sightings past their retention now
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from facetrace.cli import add_command
from facetrace.cli.common import local_caller, open_library, record_local
from facetrace.cli.output import EXIT_OK, about, emit, progress, show_table, stderr, stdout
from facetrace.errors import InvalidParameterError
from facetrace.gallery import Gallery
from facetrace.home import ensure_home
from facetrace.review import ReviewObserver, ReviewQueue
from facetrace.store import DB_FILENAME, database_url, open_store, records_of
from facetrace.validation import check_int
from facetrace.video.analysis import AnalysisSettings, TrackObserver
from facetrace.video.events import Event, StreamStatus, TrackEvent
from facetrace.video.identity import CollectionMatcher
from facetrace.video.jobs import Job, JobSettings, JobStatus, VideoJobs
from facetrace.video.pipeline import AuditStop, StreamConfig, StreamWorker
from facetrace.video.processors import AuditSink
from facetrace.video.segments import SegmentExecutor, ThreadExecutor
from facetrace.video.sightings import DEFAULT_RETENTION_DAYS, SightingSink, SightingStore, sighting_dict
from facetrace.video.sinks import CallbackSink, EventSink, JsonLinesSink, WebhookSink
from facetrace.video.source import SourceSettings


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    video = add_command(subparsers, "video")
    actions = video.add_subparsers(dest="action", metavar="ACTION", required=True)
    search = actions.add_parser(
        "search", parents=[common], help="find the collection's people in a video (StartFaceSearch)"
    )
    search.add_argument("collection", metavar="COLLECTION")
    search.add_argument("video", metavar="VIDEO", help="video file (mp4, mkv, avi, mov, ...) or its URL")
    search.add_argument("--threshold", type=float, default=99.0, help="least similarity for a match (0-100)")
    search.add_argument("--sort-by", choices=("TIMESTAMP", "INDEX"), default="TIMESTAMP")
    search.add_argument("--camera", help="camera name recorded with the sightings (default: the file name)")
    search.add_argument("--no-sightings", action="store_true", help="do not record sightings of this search")
    search.add_argument(
        "--review-threshold", type=float, default=90.0,
        help="tracks whose best match is at or above this but below --threshold go to the review queue"
        " (facetrace review; default 90; 0 or the threshold: none)",
    )  # fmt: skip
    _sampling(search)
    search.set_defaults(func=_search)

    faces = actions.add_parser("faces", parents=[common], help="every face in a video (StartFaceDetection)")
    faces.add_argument("video", metavar="VIDEO")
    faces.add_argument(
        "--min-confidence",
        type=float,
        default=50.0,
        help="leave out detections below this confidence, 50-100 (default 50: every detection; "
        "90 drops most hair, hands and posters in crowds)",
    )
    _sampling(faces)
    faces.set_defaults(func=_faces)

    watch = add_command(subparsers, "watch", parents=[common])
    watch.add_argument("source", metavar="SOURCE", help="rtsp://, http(s):// (HLS), udp://, /dev/video0, file")
    watch.add_argument("--collection", required=True, help="the collection to search")
    watch.add_argument("--camera", help="camera name in events and sightings (default: 'watch')")
    watch.add_argument("--threshold", type=float, default=99.0, help="least similarity for a match (0-100)")
    watch.add_argument("--detect-every", type=int, default=2, help="analyse every n-th frame (default 2)")
    watch.add_argument("--rtsp-transport", choices=("tcp", "udp"), default="tcp")
    watch.add_argument("--stall-timeout", type=float, default=5.0, help="seconds without data before reconnecting")
    watch.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    watch.add_argument("--jsonl", help="also append events to this JSON-lines file")
    watch.add_argument("--webhook", help="also POST every event to this URL")
    watch.add_argument("--keep-unidentified", action="store_true", help="also report faces nobody matched")
    watch.add_argument(
        "--review-threshold", type=float, default=90.0,
        help="tracks whose best match is at or above this but below --threshold go to the review queue"
        " (facetrace review; default 90; 0 or the threshold: none)",
    )  # fmt: skip
    watch.add_argument(
        "--retention-days", type=float, default=DEFAULT_RETENTION_DAYS, help="keep sightings this long"
    )
    watch.add_argument("--no-sightings", action="store_true", help="do not record sightings")
    watch.set_defaults(func=_watch)

    sightings = add_command(subparsers, "sightings")
    verbs = sightings.add_subparsers(dest="action", metavar="ACTION", required=True)
    find = verbs.add_parser("find", parents=[common], help="sightings of a person, newest first")
    find.add_argument("--face-id")
    find.add_argument("--user-id")
    find.add_argument("--external-image-id")
    find.add_argument("--camera")
    find.add_argument("--since", help="ISO date/time or unix seconds")
    find.add_argument("--until", help="ISO date/time or unix seconds")
    find.add_argument("--limit", type=int, default=100)
    find.add_argument("--snapshots", action="store_true", help="include the JPEG snapshots (base64) in --json")
    find.set_defaults(func=_find)
    sweep = verbs.add_parser("sweep", parents=[common], help="delete sightings past their retention now")
    sweep.set_defaults(func=_sweep)


def _sampling(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sample-fps", type=float, default=5.0, help="frames analysed per second of video (default 5)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--segments",
        type=int,
        default=0,
        metavar="N",
        help="cut the video into segments analysed by N threads at once, tracks stitched (default: one pass)",
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="analyse the segments on a Ray cluster: ADDRESS, 'auto', or (none given) $FACETRACE_RAY_ADDRESS, "
        "else a local one; the video must be readable on every node. Put it after the video",
    )


def _executor(args: argparse.Namespace) -> SegmentExecutor | None:
    """Segments on Ray (``--ray``), on threads (``--segments N``), or none (one pass)."""
    if getattr(args, "ray", None) is not None:
        from facetrace.cluster.indexing import EngineSpec
        from facetrace.cluster.jobs import RaySegmentExecutor

        spec = EngineSpec(
            recognizer=getattr(args, "recognizer", None), calibration=getattr(args, "calibration", None)
        )
        return RaySegmentExecutor(spec, address=args.ray or None)
    if args.segments:
        return ThreadExecutor(check_int(args.segments, "--segments", 1, 64))
    return None


def _sightings(args: argparse.Namespace, gallery: Gallery | None = None) -> SightingStore:
    """The sightings in the gallery's own database when one is open, else in the PostgreSQL database of
    ``--database-url`` (or ``$FACETRACE_DATABASE_URL``), else in the home's."""
    records = records_of(gallery.store) if gallery is not None else None
    if records is not None:
        return SightingStore(records.sightings)
    url = database_url(getattr(args, "database_url", None))
    if url is not None:
        return SightingStore.owning(open_store(url=url, listen=False))
    return SightingStore(ensure_home(Path(args.home) if getattr(args, "home", None) else None) / DB_FILENAME)


def _run_job(args: argparse.Namespace, jobs: VideoJobs, job_id: str) -> Job:
    job = jobs.get(job_id)
    with progress(100, "analysing", enabled=not args.quiet and not args.json) as advance:
        done = 0
        while not job.done.wait(0.2):
            step = int(job.progress) - done
            if step > 0:
                advance(step)
                done += step
        advance(100 - done)
    return job


# -- video search / faces ------------------------------------------------------------------------------------


def _search(args: argparse.Namespace) -> int:
    gallery = open_library(args)
    sightings = None if args.no_sightings else _sightings(args, gallery)
    records = records_of(gallery.store)
    review_threshold = args.review_threshold if 0 < args.review_threshold < args.threshold else None
    review = (
        ReviewQueue(gallery, records.reviews) if records is not None and review_threshold is not None else None
    )
    jobs = VideoJobs(
        gallery, sightings=sightings, settings=JobSettings(sample_fps=args.sample_fps), review=review,
        executor=_executor(args),
    )  # fmt: skip
    try:
        job_id = jobs.start_face_search(
            args.video, args.collection, threshold=args.threshold, camera=args.camera, caller=local_caller(args),
            review_threshold=review_threshold if review is not None else None,
        )  # fmt: skip
        job = _run_job(args, jobs, job_id)
        if job.status is JobStatus.FAILED:
            raise about(args.video, InvalidParameterError(job.message or "the video could not be analysed"))
        page = jobs.get_face_search(job_id, sort_by=args.sort_by, max_results=1000)
        persons = list(page.items)
        while page.next_token:
            page = jobs.get_face_search(job_id, sort_by=args.sort_by, max_results=1000, next_token=page.next_token)
            persons.extend(page.items)
    finally:
        jobs.close()
    data = {**job.describe(), "Persons": persons}

    def render(console: Console) -> None:
        table = Table("person", "face", "external id", "user", "similarity", "from", "to", "frames")
        summary: dict[int, list[Any]] = {}
        for item in persons:
            face = item["FaceMatches"][0]["Face"]
            row = summary.setdefault(
                item["Person"]["Index"],
                [face.get("ExternalImageId", ""), face.get("UserId", ""), face["FaceId"], 0.0, None, None, 0],
            )
            row[3] = max(row[3], item["FaceMatches"][0]["Similarity"])
            row[4] = item["Timestamp"] if row[4] is None else min(row[4], item["Timestamp"])
            row[5] = item["Timestamp"] if row[5] is None else max(row[5], item["Timestamp"])
            row[6] += 1
        for index, (external, user, face_id, similarity, first, last, count) in sorted(summary.items()):
            table.add_row(
                str(index), face_id, external or "-", user or "-", f"{similarity:.1f}",
                _clock(first), _clock(last), str(count),
            )  # fmt: skip
        meta = data.get("VideoMetadata", {})
        console.print(
            f"[bold]{args.video}[/]: {meta.get('DurationMillis', 0) / 1000:.1f} s, "
            f"{meta.get('FrameWidth')}x{meta.get('FrameHeight')} @ {meta.get('FrameRate')} fps; "
            f"{len(summary)} person(s) from [bold]{args.collection}[/] at threshold {args.threshold:g}"
        )
        if summary:
            show_table(console, table)

    emit(args, data, render)
    return EXIT_OK


def _faces(args: argparse.Namespace) -> int:
    if not 50.0 <= args.min_confidence <= 100.0:
        raise InvalidParameterError("--min-confidence must be between 50 and 100")
    gallery = open_library(args)
    jobs = VideoJobs(gallery, settings=JobSettings(sample_fps=args.sample_fps), executor=_executor(args))
    try:
        job = _run_job(args, jobs, jobs.start_face_detection(args.video))
        if job.status is JobStatus.FAILED:
            raise about(args.video, InvalidParameterError(job.message or "the video could not be analysed"))
        faces = [face for face in job.results if face["Face"]["Confidence"] >= args.min_confidence]
    finally:
        jobs.close()
    data = {**job.describe(), "Faces": faces}

    def render(console: Console) -> None:
        per_time: dict[int, int] = {}
        for face in faces:
            per_time[face["Timestamp"]] = per_time.get(face["Timestamp"], 0) + 1
        console.print(
            f"[bold]{args.video}[/]: {len(faces)} face detections in {len(per_time)} analysed frames; "
            f"at most {max(per_time.values(), default=0)} faces at once"
        )
        table = Table("time", "faces")
        for timestamp, count in sorted(per_time.items()):
            table.add_row(_clock(timestamp), str(count))
        if per_time:
            show_table(console, table)

    emit(args, data, render)
    return EXIT_OK


def _clock(ms: int | None) -> str:
    if ms is None:
        return "-"
    return f"{ms // 60000:02d}:{ms % 60000 / 1000:06.3f}"


# -- watch ---------------------------------------------------------------------------------------------------


def _watch(args: argparse.Namespace) -> int:
    gallery = open_library(args)
    camera = args.camera or "watch"
    matcher = CollectionMatcher(gallery, args.collection, args.threshold)
    audit = AuditSink(gallery, local_caller(args), args.collection, matcher.threshold, f"watch:{camera}")
    sinks: list[EventSink] = [audit, CallbackSink(lambda event: _print_event(args, event))]
    if args.jsonl:
        sinks.append(JsonLinesSink(args.jsonl))
    if args.webhook:
        sinks.append(WebhookSink(args.webhook))
    if not args.no_sightings:
        sinks.append(
            SightingSink(
                _sightings(args, gallery), f"watch:{camera}", retention_days=args.retention_days,
                keep_unidentified=args.keep_unidentified, collection_id=args.collection,
            )
        )  # fmt: skip
    config = StreamConfig(
        name=f"watch:{camera}",
        camera=camera,
        source=SourceSettings(
            args.source, rtsp_transport=args.rtsp_transport, stall_timeout=args.stall_timeout, realtime=True
        ),
        analysis=AnalysisSettings(keep_unidentified=args.keep_unidentified),
        detect_every=args.detect_every,
    )
    observers = _review_observers(args, gallery, f"watch:{camera}")
    if observers:
        config = replace(config, analysis=replace(config.analysis, report_unresolved=True))
    stop = threading.Event()
    worker = StreamWorker(config, gallery.engine, matcher=matcher, sinks=sinks, stop=stop, observers=observers)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set()) if main_thread else None
    if not args.json:
        stderr.print(f"watching {config.source.url} for [bold]{args.collection}[/] (Ctrl-C to stop)")
    worker.start()
    deadline = None if args.duration is None else time.monotonic() + args.duration
    try:
        while worker.is_alive() and not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            worker.join(0.2)
    finally:
        stop.set()
        worker.stop()
        worker.join(10)
        if main_thread:
            signal.signal(signal.SIGINT, previous)
        for sink in sinks:
            sink.close()
    metrics = worker.metrics.snapshot()
    if not args.json:
        stderr.print(
            f"frames: {metrics['FramesDecoded']} decoded, {metrics['FramesAnalysed']} analysed, "
            f"{metrics['FramesDropped']} dropped; events: {metrics['Events']}; "
            f"event latency p95: {_ms(metrics['EventLatencyMillis']['p95'])}"
        )
    if isinstance(worker.error, AuditStop):
        stderr.print(f"[bold red]stopped[/]: {worker.error.message}")
        return 1
    return 1 if worker.error is not None and metrics["FramesAnalysed"] == 0 else EXIT_OK


def _review_observers(args: argparse.Namespace, gallery: Gallery, source: str) -> list[TrackObserver]:
    """The review queue for ``watch`` (the home's or database's), when a review threshold below the
    identification threshold is asked for and the store keeps one."""
    records = records_of(gallery.store)
    if records is None or not 0 < args.review_threshold < args.threshold:
        return []
    return [
        ReviewObserver(
            ReviewQueue(gallery, records.reviews), args.collection, source=source,
            review_threshold=args.review_threshold, match_threshold=args.threshold,
            retention_days=args.retention_days, caller=local_caller(args),
        )
    ]  # fmt: skip


def _print_event(args: argparse.Namespace, event: Event) -> None:
    if args.json:  # one event per line (JSON lines), as they happen
        data = event.to_dict()
        data.pop("Snapshot", None)
        sys.stdout.write(json.dumps(data, separators=(",", ":")) + "\n")
        sys.stdout.flush()
        return
    stamp = dt.datetime.fromtimestamp(event.wall_time).strftime("%H:%M:%S")
    if isinstance(event, StreamStatus):
        stderr.print(f"{stamp} [dim]{event.camera}: stream {event.state.value.lower()} {event.message}[/]")
    elif isinstance(event, TrackEvent):
        who = "unknown"
        if event.match is not None:
            face = event.match.face
            who = (
                f"[bold]{face.external_image_id or face.user_id or face.face_id}[/] ({event.match.similarity:.1f})"
            )
        stdout.print(f"{stamp} {event.camera} track {event.track_id}: {event.type.value} {who}")


# -- sightings -----------------------------------------------------------------------------------------------


def _when(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidParameterError(f"{text!r} is neither an ISO date/time nor unix seconds") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return moment.timestamp()


def _find(args: argparse.Namespace) -> int:
    store = _sightings(args)
    found = store.query(
        face_id=args.face_id, user_id=args.user_id, external_image_id=args.external_image_id, camera=args.camera,
        since=_when(args.since), until=_when(args.until), limit=args.limit, snapshots=args.snapshots,
    )  # fmt: skip
    store.close()
    asked = {"face_id": args.face_id, "user_id": args.user_id, "external_image_id": args.external_image_id,
             "camera": args.camera, "since": args.since, "until": args.until}  # fmt: skip
    record_local(  # where and when someone was seen: audited before it is shown
        args, "FindSightings", detail={**{k: v for k, v in asked.items() if v is not None}, "returned": len(found)}
    )
    data = {"Sightings": [sighting_dict(s, snapshot=args.snapshots) for s in found]}

    def render(console: Console) -> None:
        table = Table("when", "camera", "source", "who", "similarity", "seconds")
        for s in found:
            table.add_row(
                dt.datetime.fromtimestamp(s.started_at).strftime("%Y-%m-%d %H:%M:%S"), s.camera, s.source[:24],
                s.external_image_id or s.user_id or s.face_id or "unidentified",
                "-" if s.similarity is None else f"{s.similarity:.1f}", f"{s.ended_at - s.started_at:.1f}",
            )  # fmt: skip
        console.print(f"{len(found)} sighting(s)")
        if found:
            show_table(console, table)

    emit(args, data, render)
    return EXIT_OK


def _sweep(args: argparse.Namespace) -> int:
    store = _sightings(args)
    deleted = store.sweep()
    store.close()
    emit(args, {"Deleted": deleted}, lambda c: c.print(f"deleted {deleted} expired sighting(s)"))
    return EXIT_OK


def _ms(value: float | None) -> str:
    return "n/a (no events)" if value is None else f"{value} ms"
