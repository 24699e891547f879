"""Bulk indexing on Ray: batches of image files analysed (detect + embed) by Ray tasks; the driver commits.

``RayAnalyser`` is the Ray side of ``facetrace.gallery.bulk``'s executor seam. Each task gets the bytes of
its files (workers need no access to the driver's disk) and an ``EngineSpec``, from which the worker builds
its engine once per process and keeps it; it sends back each file's faces with their vectors and does not
touch the store. The driver commits every file with its audit record and content hash, exactly as the
in-process path does, so a Ray import gives the same faces as an in-process one and resumes the same way.

Workers need the models where ``FACETRACE_MODEL_DIR`` points on their node (``facetrace models fetch``), and
``--recognizer`` / ``--calibration`` files at the same path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from facetrace.cluster.runtime import connect
from facetrace.engine import DetectionSettings, FaceEngine
from facetrace.errors import ClusterError, FacetraceError, ModelMismatchError
from facetrace.gallery.bulk import Analysis, ImageFile, analyse_files
from facetrace.validation import check_int

__all__ = ["EngineSpec", "RayAnalyser"]


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """What a worker needs to build the driver's engine (an engine itself holds per-thread model instances
    and cannot travel): the recognizer and calibration files, and whether to scan for small faces."""

    recognizer: str | None = None
    calibration: str | None = None
    small_faces: bool = False

    def build(self) -> FaceEngine:
        from facetrace.app import open_engine

        return open_engine(
            self.recognizer, self.calibration, settings=DetectionSettings(small_faces=self.small_faces)
        )


_ENGINES: dict[EngineSpec, FaceEngine] = {}


def analyse_remote(spec: EngineSpec, model: str, files: list[ImageFile]) -> list[Analysis]:
    """The task body, run in a Ray worker process: the engine is built on first use and kept."""
    engine = _ENGINES.get(spec)
    if engine is None:
        engine = _ENGINES[spec] = spec.build()
    if engine.model.key != model:
        raise ModelMismatchError(f"this worker makes {engine.model.key} vectors, the driver {model}")
    return analyse_files(engine, files)


class RayAnalyser:
    """Sends batches to Ray tasks of ``num_cpus`` each, keeping ``in_flight`` of them queued (default: two
    per CPU of the cluster), and yields each batch's analyses as it completes."""

    def __init__(
        self,
        spec: EngineSpec,
        model: str,
        *,
        address: str | None = None,
        num_cpus: float = 1.0,
        in_flight: int | None = None,
    ) -> None:
        self.spec = spec
        self._model = model
        connect(address)  # only its side effect: this process is connected (``runtime`` owns how)
        import ray as ray_module

        self._ray = ray = cast(Any, ray_module)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.in_flight = check_int(in_flight if in_flight is not None else max(2, 2 * cpus), "in_flight", 1, 4096)
        self._task = ray.remote(num_cpus=num_cpus, max_retries=3)(analyse_remote)

    @property
    def model(self) -> str:
        return self._model

    def run(self, batches: Iterator[list[ImageFile]]) -> Iterator[list[Analysis]]:
        ray = self._ray
        pending: list[Any] = []
        try:
            for batch in batches:
                pending.append(self._task.remote(self.spec, self._model, batch))
                while len(pending) >= self.in_flight:
                    done, pending = ray.wait(pending, num_returns=1)
                    yield self._get(done[0])
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                yield self._get(done[0])
        finally:
            for ref in pending:  # stopped early (an error, Ctrl-C): do not leave work running for nobody
                ray.cancel(ref)

    def _get(self, ref: Any) -> list[Analysis]:
        from ray.exceptions import RayError, RayTaskError

        try:
            found: list[Analysis] = self._ray.get(ref)
        except RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, FacetraceError):
                raise cause from None
            raise ClusterError(f"an indexing task failed on the cluster: {cause or exc}") from None
        except RayError as exc:
            raise ClusterError(f"an indexing task was lost on the cluster: {type(exc).__name__}") from None
        return found
