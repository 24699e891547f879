"""Stored-video segments as Ray tasks: the Ray side of ``facetrace.video.segments``' executor seam.

``RaySegmentExecutor.run`` sends each segment to a Ray task that reserves ``num_cpus``; the task builds the
engine from an ``EngineSpec`` (once per worker process) and, for a face search, a matcher over a snapshot of
the collection (its faces, vectors and users, put in the object store once per job and cached by the
worker), analyses its segment with ``analyse_segment`` and returns the tracks. Stitching, naming, audit and
storage stay with the driver (``VideoJobs``), exactly as for in-process segments.

Workers read the video themselves: its path (or URL) must be readable on every node (shared storage, object
storage over HTTP). The snapshot costs one vector read per face on the driver; a collection of 100,000 SFace
faces is about 50 MB in the object store.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from facetrace.cluster.indexing import EngineSpec
from facetrace.cluster.runtime import connect
from facetrace.engine import FaceEngine
from facetrace.errors import ClusterError, FacetraceError, ModelMismatchError
from facetrace.gallery import Gallery
from facetrace.store import MemoryStore
from facetrace.types import FaceRecord, Vector
from facetrace.video.identity import CollectionMatcher, Matcher
from facetrace.video.segments import SegmentContext, SegmentResult, SegmentTask, analyse_segment

__all__ = ["CollectionSnapshot", "RaySegmentExecutor"]


@dataclass(frozen=True, slots=True)
class CollectionSnapshot:
    """A read-only copy of one collection for matching on workers: faces with vectors, and the users."""

    snapshot_id: str
    collection_id: str
    model: str
    threshold: float
    faces: tuple[tuple[FaceRecord, Vector], ...]
    users: tuple[str, ...]

    @classmethod
    def of(cls, gallery: Gallery, collection_id: str, threshold: float) -> CollectionSnapshot:
        store = gallery.store
        info = store.describe_collection(collection_id)
        faces: list[tuple[FaceRecord, Vector]] = []
        token: str | None = None
        while True:
            page = store.list_faces(collection_id, limit=4096, next_token=token)
            faces.extend((face, store.get_vector(collection_id, face.face_id)) for face in page.items)
            token = page.next_token
            if token is None:
                break
        users: list[str] = []
        token = None
        while True:
            listed = store.list_users(collection_id, limit=500, next_token=token)
            users.extend(user.user_id for user in listed.items)
            token = listed.next_token
            if token is None:
                break
        return cls(uuid.uuid4().hex, collection_id, info.model, threshold, tuple(faces), tuple(users))

    def matcher(self, engine: FaceEngine) -> Matcher:
        """A ``CollectionMatcher`` over an in-memory copy (the same exact search as the driver's store)."""
        store = MemoryStore()
        store.create_collection(self.collection_id, self.model)
        for user in self.users:
            store.create_user(self.collection_id, user)
        if self.faces:
            store.add_faces(self.collection_id, list(self.faces))
        return CollectionMatcher(Gallery(engine, store), self.collection_id, self.threshold)


_ENGINES: dict[EngineSpec, FaceEngine] = {}
_MATCHERS: dict[str, Matcher] = {}


def analyse_remote(
    spec: EngineSpec, model: str, snapshot: CollectionSnapshot | None, task: SegmentTask
) -> SegmentResult:
    """The task body, in a Ray worker process: engine and matcher are built on first use and kept."""
    engine = _ENGINES.get(spec)
    if engine is None:
        engine = _ENGINES[spec] = spec.build()
    if engine.model.key != model:
        raise ModelMismatchError(f"this worker makes {engine.model.key} vectors, the driver {model}")
    matcher: Matcher | None = None
    if snapshot is not None:
        matcher = _MATCHERS.get(snapshot.snapshot_id)
        if matcher is None:
            _MATCHERS.clear()  # one job's collection at a time per worker
            matcher = _MATCHERS[snapshot.snapshot_id] = snapshot.matcher(engine)
    return analyse_segment(task, engine, matcher)


class RaySegmentExecutor:
    """Segments as Ray tasks of ``num_cpus`` each; ``workers`` (for planning) defaults to the cluster's CPUs
    divided by that."""

    def __init__(
        self,
        spec: EngineSpec | None = None,
        *,
        address: str | None = None,
        num_cpus: float = 1.0,
        workers: int | None = None,
    ) -> None:
        self.spec = spec or EngineSpec()
        connect(address)  # only its side effect: this process is connected (``runtime`` owns how)
        import ray as ray_module

        self._ray = ray = cast(Any, ray_module)
        self._workers = workers or max(1, int(ray.cluster_resources().get("CPU", 1) // max(num_cpus, 1e-3)))
        self._task = ray.remote(num_cpus=num_cpus, max_retries=2)(analyse_remote)

    @property
    def workers(self) -> int:
        return self._workers

    def run(self, tasks: Sequence[SegmentTask], context: SegmentContext) -> list[SegmentResult]:
        from ray.exceptions import RayError, RayTaskError

        ray = self._ray
        model = context.engine.model.key
        snapshot: Any = None
        if context.matcher is not None:
            if (
                context.collection_id is None
                or context.threshold is None
                or not hasattr(context.matcher, "gallery")
            ):
                raise ClusterError("a face search on the cluster needs a collection matcher")
            gallery: Gallery = context.matcher.gallery
            snapshot = ray.put(CollectionSnapshot.of(gallery, context.collection_id, context.threshold))
        refs = [self._task.remote(self.spec, model, snapshot, task) for task in tasks]
        try:
            results: list[SegmentResult] = ray.get(refs)
        except RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, FacetraceError):
                raise cause from None
            raise ClusterError(f"a video segment failed on the cluster: {cause or exc}") from None
        except RayError as exc:
            for ref in refs:
                ray.cancel(ref)
            raise ClusterError(f"a video segment was lost on the cluster: {type(exc).__name__}") from None
        return results
