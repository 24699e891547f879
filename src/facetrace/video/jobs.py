"""Stored-video analysis as asynchronous jobs: Rekognition's StartFaceSearch / GetFaceSearch and
StartFaceDetection / GetFaceDetection.

``start_face_search`` returns a job id at once; a pool thread then decodes the video, analyses
``sample_fps`` frames per second of footage with the same tracker and track identification as live streams,
and keeps, for every track matched in the collection, each analysed frame it appears in: timestamp (ms),
person index, bounding box, face details and the track's stable face match. Tracks are identified from
their whole template, so a person is reported from the first frame of the track, before the frame where the
match became certain. ``start_face_detection`` keeps every face in every analysed frame (no recognition).

Results are paged (``max_results``, ``next_token``) and sorted by TIMESTAMP or INDEX. Jobs and their
results are kept in the store's database (``JobRepository``: the ``video_jobs`` table of facetrace.db) so
they outlive a restart; a job that was running when the process died is reported FAILED. A face search's
results are audited before they are kept or released, and only then do its identified tracks become
sightings (one transaction). Deleting a face removes it from every job's results; deleting the collection
deletes its jobs.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import enum
import json
import logging
import queue
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from facetrace import shapes
from facetrace.audit import LOCAL_CALLER, Caller
from facetrace.errors import (
    FacetraceError,
    InvalidPaginationTokenError,
    InvalidParameterError,
    NotFoundError,
    StoreError,
)
from facetrace.gallery import DEFAULT_MATCH_THRESHOLD, Gallery
from facetrace.store.records import JobRecord, JobRepository
from facetrace.types import FaceMatch
from facetrace.validation import check_int, check_percent
from facetrace.video.analysis import AnalysisSettings, FrameAnalyzer, Observation, TrackObserver
from facetrace.video.events import TrackEnded, TrackIdentified
from facetrace.video.identity import CollectionMatcher, IdentitySettings
from facetrace.video.segments import (
    SegmentContext,
    SegmentExecutor,
    SegmentResult,
    SegmentSettings,
    SegmentTask,
    plan_segments,
    probe,
    stitch,
    unresolved,
)
from facetrace.video.sightings import DEFAULT_RETENTION_DAYS, Sighting, SightingStore
from facetrace.video.source import Frame, SourceSettings, VideoMetadata, VideoSource

if TYPE_CHECKING:
    from facetrace.review import ReviewQueue

__all__ = ["Job", "JobKind", "JobSettings", "JobStatus", "ResultPage", "SortBy", "VideoJobs"]

log = logging.getLogger(__name__)


class JobStatus(enum.StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class JobKind(enum.StrEnum):
    FACE_SEARCH = "FaceSearch"
    FACE_DETECTION = "FaceDetection"


class SortBy(enum.StrEnum):
    INDEX = "INDEX"
    TIMESTAMP = "TIMESTAMP"


@dataclass(frozen=True, slots=True)
class JobSettings:
    """``sample_fps``: frames analysed per second of footage (at most the video's own rate).

    Faces are tracked between analysed frames, so 5 per second finds anyone in view for a fraction of a
    second. Each track is embedded only a few times (``analysis.identity``) and searched once more with
    everything it gathered when it ends; that final answer names the whole track.
    """

    sample_fps: float = 5.0
    analysis: AnalysisSettings = field(
        default_factory=lambda: AnalysisSettings(
            details=True,
            max_embeds_per_frame=2,
            # min_sample_weight 0.1: live streams' 0.15 was chosen for their CPU budget and measured on
            # live analysis only; stored video keeps the weight its recall was measured with
            identity=IdentitySettings(
                sample_interval=0.4, quick_samples=3, recheck_interval=1.5, min_sample_weight=0.1
            ),
        )
    )
    retention_days: float = DEFAULT_RETENTION_DAYS
    segments: SegmentSettings = field(default_factory=SegmentSettings)
    """How a job is cut when ``VideoJobs`` has a segment executor (``facetrace.video.segments``)."""

    def __post_init__(self) -> None:
        if not 0.1 <= self.sample_fps <= 120.0:
            raise InvalidParameterError("sample_fps must be between 0.1 and 120")


@dataclass(eq=False)
class Job:
    """One job's state. Read ``status``, ``progress`` (0–100) and ``metadata``; results come paged."""

    job_id: str
    kind: JobKind
    video: str
    collection_id: str | None = None
    threshold: float | None = None
    job_tag: str | None = None
    camera: str | None = None
    status: JobStatus = JobStatus.IN_PROGRESS
    message: str | None = None
    progress: float = 0.0
    metadata: VideoMetadata | None = None
    created_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    caller: Caller = LOCAL_CALLER  # who started it: the audit record of its results names them
    request: dict[str, Any] | None = None  # the wire request's Video member, echoed by Get*
    review_threshold: float | None = None  # tracks between this and ``threshold`` go to the review queue
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def describe(self) -> dict[str, Any]:
        """Job fields in Rekognition's names (without the results)."""
        data: dict[str, Any] = {"JobId": self.job_id, "JobStatus": self.status.value, "Video": self.video}
        if self.message:
            data["StatusMessage"] = self.message
        if self.job_tag:
            data["JobTag"] = self.job_tag
        if self.metadata is not None:
            data["VideoMetadata"] = self.metadata.to_dict()
        data["Progress"] = round(self.progress, 1)
        return data


@dataclass(frozen=True, slots=True)
class ResultPage:
    job: Job
    items: tuple[dict[str, Any], ...]  # Persons (face search) or Faces (face detection)
    next_token: str | None


class VideoJobs:
    """Runs and remembers stored-video jobs. Thread-safe."""

    def __init__(
        self,
        gallery: Gallery,
        *,
        repository: JobRepository | None = None,
        sightings: SightingStore | None = None,
        settings: JobSettings | None = None,
        workers: int = 1,
        review: ReviewQueue | None = None,
        executor: SegmentExecutor | None = None,
    ) -> None:
        """``repository`` keeps jobs and results across restarts (None: in memory only); ``review`` receives
        the tracks whose best match falls between a job's review threshold and its threshold. ``executor``:
        cut each video into segments analysed in parallel there (threads, or Ray tasks:
        ``facetrace.cluster.jobs``) and stitch their tracks (review items are made of the stitched tracks);
        None analyses it in one pass."""
        self.gallery = gallery
        self.review = review
        self.executor = executor
        self.settings = settings or JobSettings()
        self.sightings = sightings
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._pool = ThreadPoolExecutor(max_workers=check_int(workers, "workers", 1, 16), thread_name_prefix="job")
        self._repository = repository
        if repository is not None:
            repository.fail_interrupted("interrupted by a restart", time.time())

    # -- starting ----------------------------------------------------------------------------------------

    def start_face_search(
        self,
        video: str | Path,
        collection_id: str,
        *,
        threshold: float = DEFAULT_MATCH_THRESHOLD,
        job_tag: str | None = None,
        camera: str | None = None,
        caller: Caller = LOCAL_CALLER,
        request: dict[str, Any] | None = None,
        review_threshold: float | None = None,
    ) -> str:
        """Search ``video`` for the faces of ``collection_id``; returns the job id at once. With
        ``review_threshold`` (below ``threshold``) tracks whose best match falls between the two become
        review items (``facetrace.review``)."""
        threshold = check_percent(threshold, "threshold")
        if (
            review_threshold is not None
            and not 0.0 <= check_percent(review_threshold, "review_threshold") < threshold
        ):
            raise InvalidParameterError("the review threshold must be below the threshold")
        CollectionMatcher(self.gallery, collection_id, threshold)  # fails now on a bad collection
        job = Job(
            job_id=_job_id(), kind=JobKind.FACE_SEARCH, video=str(video), collection_id=collection_id,
            threshold=threshold, job_tag=_tag(job_tag), camera=camera, caller=caller, request=request,
            review_threshold=review_threshold,
        )  # fmt: skip
        self._record(caller, "StartFaceSearch", collection_id, threshold, {"job_id": job.job_id})
        return self._submit(job)

    def start_face_detection(
        self,
        video: str | Path,
        *,
        job_tag: str | None = None,
        caller: Caller = LOCAL_CALLER,
        request: dict[str, Any] | None = None,
    ) -> str:
        """Find every face in ``video``; returns the job id at once (``caller`` owns it: the service shows a
        job only to the key that started it)."""
        job = Job(
            job_id=_job_id(), kind=JobKind.FACE_DETECTION, video=str(video), job_tag=_tag(job_tag), caller=caller,
            request=request,
        )  # fmt: skip
        return self._submit(job)

    def _submit(self, job: Job) -> str:
        if SourceSettings(job.video).is_live and not _recorded_over_http(job.video):
            raise InvalidParameterError("stored-video jobs need a file, not a live stream")
        with self._lock:
            self._jobs[job.job_id] = job
        self._save(job)
        self._pool.submit(self._run, job)
        return job.job_id

    # -- reading -----------------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            job = self._load(job_id)
        if job is None:
            raise NotFoundError(f"there is no video job {job_id!r}")
        return job

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """Block until the job is done (or ``timeout`` seconds pass); returns it either way."""
        job = self.get(job_id)
        job.done.wait(timeout)
        return job

    def get_face_search(
        self,
        job_id: str,
        *,
        max_results: int = 1000,
        next_token: str | None = None,
        sort_by: SortBy | str = SortBy.TIMESTAMP,
    ) -> ResultPage:
        job = self._expect(job_id, JobKind.FACE_SEARCH)
        try:
            order = SortBy(sort_by)
        except ValueError:
            raise InvalidParameterError("SortBy must be INDEX or TIMESTAMP") from None
        items = job.results
        if order is SortBy.INDEX:
            items = sorted(items, key=lambda item: (item["Person"]["Index"], item["Timestamp"]))
        return _page(job, items, max_results, next_token)

    def get_face_detection(
        self, job_id: str, *, max_results: int = 1000, next_token: str | None = None
    ) -> ResultPage:
        return _page(
            self._expect(job_id, JobKind.FACE_DETECTION), self.get(job_id).results, max_results, next_token
        )

    def _expect(self, job_id: str, kind: JobKind) -> Job:
        job = self.get(job_id)
        if job.kind is not kind:
            raise NotFoundError(f"job {job_id} is a {job.kind.value} job, not a {kind.value} job")
        return job

    def close(self, wait: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)

    # -- running -----------------------------------------------------------------------------------------

    def _run(self, job: Job) -> None:
        try:
            if job.kind is JobKind.FACE_SEARCH:
                sightings = self._search(job)
                try:
                    self._record_results(job)  # results nobody could audit are neither kept nor released
                except FacetraceError:
                    job.results.clear()
                    raise
                if self.sightings is not None:  # only what was audited becomes a sighting
                    self.sightings.add_many(sightings)
            else:
                self._detect(job)
            job.status = JobStatus.SUCCEEDED
        except FacetraceError as exc:
            job.status, job.message = JobStatus.FAILED, exc.message
        except Exception as exc:
            log.exception("video job %s failed", job.job_id)
            job.status, job.message = JobStatus.FAILED, f"internal error: {type(exc).__name__}"
        job.finished_at = time.time()
        if job.status is JobStatus.SUCCEEDED:
            job.progress = 100.0
        saved = False
        try:
            self._save(job)
            saved = True
        except StoreError as exc:
            log.error("cannot save video job %s: %s", job.job_id, exc.message)
        job.done.set()
        if saved and self._repository is not None:
            with self._lock:  # read back from the database from now on: deletions redact stored results
                self._jobs.pop(job.job_id, None)

    def _frames(self, job: Job) -> Iterator[Frame]:
        """Sampled frames of the job's video, decoded one step ahead in a helper thread."""
        source = VideoSource(SourceSettings(job.video, live=False, decoder_threads=0))
        container = source.open_container()  # fail early, and learn the metadata
        container.close()
        job.metadata = meta = source.metadata
        assert meta is not None
        fps = meta.frame_rate or 30.0
        interval = 1.0 / min(self.settings.sample_fps, fps)
        tolerance = 0.5 / fps
        total = max(1, int((meta.duration_ms or 0) / 1000.0 * fps))
        pending: queue.Queue[Frame | BaseException | None] = queue.Queue(maxsize=4)
        stop = threading.Event()

        def read() -> None:
            due = 0.0  # sample by time, not frame count: right for variable frame rates too
            try:
                for frame in source.frames():
                    if stop.is_set():
                        return
                    if frame.stream_time + tolerance >= due:
                        while due <= frame.stream_time + tolerance:
                            due += interval
                        frame.bgr()
                        pending.put(frame)
                pending.put(None)
            except BaseException as exc:  # handed over to the job thread
                pending.put(exc)

        reader = threading.Thread(target=read, name=f"job-read-{job.job_id[:8]}", daemon=True)
        reader.start()
        decoded = 0
        try:
            while True:
                item = pending.get()
                if item is None:
                    if not decoded:  # a text file named .jpg, an empty or broken video: not "0 faces found"
                        raise InvalidParameterError("no video frame could be decoded: is it a video?")
                    return
                if isinstance(item, BaseException):
                    raise item
                job.progress = min(99.0, 100.0 * item.index / total)
                decoded += 1
                yield item
        finally:
            stop.set()
            source.close()
            while reader.is_alive():
                with contextlib.suppress(queue.Empty):
                    pending.get(timeout=0.1)

    def _detect(self, job: Job) -> None:
        settings = replace(self.settings.analysis, details=True, keep_unidentified=True, snapshot_px=0)
        if self.executor is not None:
            for result in self._segments(job, settings, None):
                segment = result.segment
                for part in result.tracks:
                    job.results.extend(
                        {"Timestamp": ms, "Face": shapes.face_detail(observation.detail)}
                        for ms, observation in part.observations
                        if observation.detail is not None
                        and segment.start * 1000 - 0.5 <= ms < segment.end * 1000 - 0.5
                    )
            job.results.sort(key=lambda item: item["Timestamp"])  # stable: faces of a frame keep their order
            return
        analyzer = FrameAnalyzer(self.gallery.engine, settings=settings)
        for frame in self._frames(job):
            ms = round(frame.stream_time * 1000)
            for observation in analyzer.process(frame).observations:
                if observation.detail is not None:
                    job.results.append({"Timestamp": ms, "Face": shapes.face_detail(observation.detail)})

    def _search(self, job: Job) -> list[Sighting]:
        """Fill ``job.results``; returns the sightings to store once the results are audited."""
        assert job.collection_id is not None
        assert job.threshold is not None
        matcher = CollectionMatcher(self.gallery, job.collection_id, job.threshold)
        observer = self._review_observer(job)
        if self.executor is not None:
            return self._search_segmented(job, matcher, observer)
        analyzer = FrameAnalyzer(
            self.gallery.engine,
            matcher=matcher,
            settings=replace(self.settings.analysis, report_unresolved=observer is not None),
            processor=job.job_id,
            camera=job.camera or Path(job.video).name,
        )
        seen: list[tuple[int, Observation]] = []
        matches: dict[int, FaceMatch] = {}
        ended: list[TrackEnded] = []
        for frame in self._frames(job):
            result = analyzer.process(frame)
            ms = round(frame.stream_time * 1000)
            seen.extend((ms, observation) for observation in result.observations)
            for event in result.events:
                if isinstance(event, TrackIdentified) and event.match is not None:
                    matches[event.track_id] = event.match
                elif isinstance(event, TrackEnded):
                    ended.append(event)
            self._offer(observer, analyzer)
        ended.extend(event for event in analyzer.finish() if isinstance(event, TrackEnded))
        self._offer(observer, analyzer)
        for event in ended:
            if event.match is not None:
                matches[event.track_id] = event.match
        index = {track_id: i for i, track_id in enumerate(sorted(matches))}
        for ms, observation in seen:
            match = matches.get(observation.track_id)
            if match is None:
                continue
            person: dict[str, Any] = {
                "Index": index[observation.track_id],
                "BoundingBox": shapes.bounding_box(observation.box),
            }
            if observation.detail is not None:
                person["Face"] = shapes.face_detail(observation.detail)
            job.results.append({"Timestamp": ms, "Person": person, "FaceMatches": [shapes.face_match(match)]})
        return self._sightings(job, ended, matches)

    def _review_observer(self, job: Job) -> TrackObserver | None:
        if self.review is None or job.review_threshold is None or job.collection_id is None:
            return None
        from facetrace.review import ReviewObserver

        assert job.threshold is not None
        return ReviewObserver(
            self.review, job.collection_id, source=job.job_id, review_threshold=job.review_threshold,
            match_threshold=job.threshold, retention_days=self.settings.retention_days, caller=job.caller,
        )  # fmt: skip

    @staticmethod
    def _offer(observer: TrackObserver | None, analyzer: FrameAnalyzer) -> None:
        tracks = analyzer.take_unresolved()
        if observer is not None:
            for track in tracks:
                observer.observe(track)

    def _segments(
        self, job: Job, settings: AnalysisSettings, matcher: CollectionMatcher | None
    ) -> list[SegmentResult]:
        """Plan the job's segments at keyframes and run them on the executor."""
        assert self.executor is not None
        meta, keyframes = probe(job.video)
        job.metadata = meta
        duration = (meta.duration_ms or 0) / 1000.0
        plan = plan_segments(max(duration, 0.001), keyframes, self.settings.segments, self.executor.workers)
        tasks = [
            SegmentTask(
                job.video, segment, self.settings.sample_fps, meta.frame_rate, settings, matcher is not None
            )
            for segment in plan
        ]
        context = SegmentContext(self.gallery.engine, matcher, job.collection_id, job.threshold, self.gallery)
        return self.executor.run(tasks, context)

    def _search_segmented(
        self, job: Job, matcher: CollectionMatcher, observer: TrackObserver | None
    ) -> list[Sighting]:
        """``_search`` over segments: the stitched tracks give the same Persons a single pass gives, and the
        review queue (``observer``) the same items; a track's sighting and review item carry its index among
        the stitched tracks as track id."""
        analysis = replace(self.settings.analysis, report_unresolved=observer is not None)
        results = self._segments(job, analysis, matcher)
        tracks = stitch(
            results, self.settings.segments, matcher=matcher, identity=analysis.identity,
            reid_min_cosine=analysis.tracker.reid_min_cosine, max_lost_seconds=analysis.tracker.max_lost_seconds,
        )  # fmt: skip
        named = [track for track in tracks if track.match is not None]
        found: list[tuple[int, int, dict[str, Any]]] = []
        for index, track in enumerate(named):
            assert track.match is not None
            for ms, observation in track.observations:
                person: dict[str, Any] = {"Index": index, "BoundingBox": shapes.bounding_box(observation.box)}
                if observation.detail is not None:
                    person["Face"] = shapes.face_detail(observation.detail)
                found.append((ms, index, {"Timestamp": ms, "Person": person,
                                          "FaceMatches": [shapes.face_match(track.match)]}))  # fmt: skip
        found.sort(key=lambda item: (item[0], item[1]))
        job.results.extend(item for _, _, item in found)
        base = job.created_at
        camera = job.camera or Path(job.video).name
        if observer is not None:
            for left in unresolved(tracks, analysis.identity, processor=job.job_id, camera=camera, base_time=base):
                observer.observe(left)
        sightings: list[Sighting] = []
        for track in named:
            match = track.match
            assert match is not None
            best = max(track.parts, key=lambda part: part.snapshot_weight)
            last = track.parts[-1]
            sightings.append(
                Sighting(
                    sighting_id=str(uuid.uuid4()), source=job.job_id, camera=camera, track_id=track.index,
                    started_at=base + track.first_ms / 1000.0, ended_at=base + track.last_ms / 1000.0,
                    start_stream_ms=track.first_ms, end_stream_ms=track.last_ms,
                    face_id=match.face.face_id, user_id=match.face.user_id,
                    external_image_id=match.face.external_image_id, similarity=match.similarity,
                    bounding_box=last.last_box, snapshot=best.snapshot,
                    expires_at=base + self.settings.retention_days * 86400.0, collection_id=job.collection_id,
                )
            )  # fmt: skip
        return sightings

    def _sightings(self, job: Job, ended: list[TrackEnded], matches: dict[int, FaceMatch]) -> list[Sighting]:
        base = job.created_at
        camera = job.camera or Path(job.video).name
        found: list[Sighting] = []
        for event in ended:
            match = matches.get(event.track_id)
            if match is None:
                continue
            found.append(
                Sighting(
                    sighting_id=str(uuid.uuid4()), source=job.job_id, camera=camera, track_id=event.track_id,
                    started_at=base + event.start_stream_ms / 1000.0, ended_at=base + event.end_stream_ms / 1000.0,
                    start_stream_ms=event.start_stream_ms, end_stream_ms=event.end_stream_ms,
                    face_id=match.face.face_id, user_id=match.face.user_id,
                    external_image_id=match.face.external_image_id, similarity=match.similarity,
                    bounding_box=event.bounding_box, snapshot=event.snapshot,
                    expires_at=base + self.settings.retention_days * 86400.0, collection_id=job.collection_id,
                )
            )  # fmt: skip
        return found

    # -- persistence -------------------------------------------------------------------------------------

    def _save(self, job: Job) -> None:
        if self._repository is None:
            return
        finished = job.finished_at is not None
        results = zlib.compress(json.dumps(job.results).encode("utf-8")) if finished else None
        named = (match["Face"]["FaceId"] for item in job.results for match in item.get("FaceMatches", ()))
        self._repository.save(
            JobRecord(
                job_id=job.job_id, kind=job.kind.value, video=job.video, collection_id=job.collection_id,
                threshold=job.threshold, job_tag=job.job_tag, camera=job.camera, status=job.status.value,
                message=job.message, created_at=job.created_at, finished_at=job.finished_at,
                metadata=json.dumps(job.metadata.to_dict()) if job.metadata else None, results=results,
                principal=job.caller.principal, purpose=job.caller.purpose,
                request=json.dumps(job.request) if job.request is not None else None,
                face_ids=tuple(dict.fromkeys(named)) if finished else (),
            )
        )  # fmt: skip

    def _load(self, job_id: str) -> Job | None:
        if self._repository is None:
            return None
        row = self._repository.get(job_id)
        if row is None:
            return None
        job = Job(
            job_id=row.job_id, kind=JobKind(row.kind), video=row.video, collection_id=row.collection_id,
            threshold=row.threshold, job_tag=row.job_tag, camera=row.camera, status=JobStatus(row.status),
            message=row.message, created_at=row.created_at, finished_at=row.finished_at,
            caller=Caller(row.principal, row.purpose),
            request=json.loads(row.request) if row.request else None,
        )  # fmt: skip
        if row.metadata:
            meta = json.loads(row.metadata)
            job.metadata = VideoMetadata(
                codec=meta["Codec"], format=meta["Format"], frame_rate=meta["FrameRate"], width=meta["FrameWidth"],
                height=meta["FrameHeight"], duration_ms=meta.get("DurationMillis"), color_range=meta["ColorRange"],
            )  # fmt: skip
        if row.results:
            job.results = json.loads(zlib.decompress(row.results).decode("utf-8"))
        job.progress = 100.0 if job.status is JobStatus.SUCCEEDED else 0.0
        job.done.set()
        return job

    def _record_results(self, job: Job) -> None:
        """What the search found, audited when it is known (the start was audited when it was asked for)."""
        matched = tuple(
            dict.fromkeys(
                match["Face"]["FaceId"] for person in job.results for match in person.get("FaceMatches", ())
            )
        )
        self.gallery.record_event(
            job.caller, "GetFaceSearch", job.collection_id, threshold=job.threshold,
            match_count=len(matched), matched=matched, detail={"job_id": job.job_id},
        )  # fmt: skip

    def _record(
        self, caller: Caller, operation: str, collection_id: str, threshold: float, detail: dict[str, Any]
    ) -> None:
        """Audited like any search, through the gallery's audit trail."""
        self.gallery.record_event(caller, operation, collection_id, threshold=threshold, detail=detail)


def _recorded_over_http(video: str) -> bool:
    """An HTTP(S) playlist (HLS) counts as live for a stream worker, but a job can read it as recorded footage:
    to the end of a finished (VOD) playlist, or to the end of what an EVENT playlist holds so far."""
    return urlsplit(video).scheme.lower() in ("http", "https")


def _job_id() -> str:
    return uuid.uuid4().hex


def _tag(tag: str | None) -> str | None:
    if tag is not None and (not 1 <= len(tag) <= 1024 or not all(c.isalnum() or c in "_.-:" for c in tag)):
        raise InvalidParameterError("JobTag must be 1-1024 characters from a-z A-Z 0-9 _ . - :")
    return tag


def _page(job: Job, items: list[dict[str, Any]], max_results: int, next_token: str | None) -> ResultPage:
    """One page of ``items`` while the job runs (empty) or after it ends."""
    check_int(max_results, "max_results", 1, 1000)
    if job.status is not JobStatus.SUCCEEDED:
        return ResultPage(job, (), None)
    start = _decode_token(next_token, job.job_id) if next_token else 0
    chunk = items[start : start + max_results]
    end = start + len(chunk)
    token = _encode_token(job.job_id, end) if end < len(items) else None
    return ResultPage(job, tuple(chunk), token)


def _encode_token(job_id: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{job_id}:{offset}".encode()).decode("ascii")


def _decode_token(token: str, job_id: str) -> int:
    try:
        owner, _, offset = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii").partition(":")
        value = int(offset)
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidPaginationTokenError("the pagination token is not valid") from None
    if owner != job_id or value < 0:
        raise InvalidPaginationTokenError("the pagination token belongs to another job")
    return value
