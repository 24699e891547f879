"""One embedder shared by many threads: calls queue up and run on a fixed number of model instances.

The server runs a request per worker thread; with an embedder per thread, every busy worker runs the
recognizer at once, and more workers than cores means the cores are oversubscribed (each inference slower,
latencies spread). ``BatchingEmbedder`` puts every caller's crops in one first-come-first-served queue,
served by ``runners`` threads (one per core), each with its own model instance (onnxruntime sessions are not
shared between threads here). Each runner takes what is waiting, up to ``max_batch`` faces, as one batch,
runs it, and hands every caller back its own rows, or the error the batch raised.

Whether a batch pays depends on the CPU and the model. Measured on the 2-core development VM
(``benchmarks/bench_pipeline.py --section batching``, SFace, one onnxruntime thread, real aligned crops):
the CPU time per face *grows* with the batch (+4–11% at 2, +13–23% at 4, +17–34% at 8 in three runs), as one face's
activations already fit in the caches and a batch's do not. So ``max_batch`` defaults to 1 there and the
queue's work is to bound and order inference; on a CPU or accelerator where a batch is cheaper per face,
raise it. Video streams may use the same class to batch embeddings across streams.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from facetrace.errors import InvalidParameterError, ModelLoadError
from facetrace.models.base import Embedder
from facetrace.types import ModelInfo

__all__ = ["BatchingEmbedder"]


@dataclass(eq=False)
class _Job:
    crops: npt.NDArray[np.uint8]
    done: threading.Event = field(default_factory=threading.Event)
    vectors: npt.NDArray[np.float32] | None = None
    error: BaseException | None = None


class BatchingEmbedder:
    """An ``Embedder`` for any number of threads, backed by ``runners`` instances from ``factory``."""

    def __init__(self, factory: Callable[[], Embedder], *, runners: int = 1, max_batch: int = 1) -> None:
        if not 1 <= runners <= 64 or not 1 <= max_batch <= 256:
            raise InvalidParameterError("runners must be 1–64 and max_batch 1–256")
        self.max_batch = max_batch
        models = [factory() for _ in range(runners)]  # built here: a missing model fails now, not per call
        self._info = models[0].info
        self._input_size = models[0].input_size
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._batches = 0
        self._faces = 0
        self._threads = [
            threading.Thread(target=self._run, args=(model,), name=f"facetrace-embed-{index}", daemon=True)
            for index, model in enumerate(models)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def input_size(self) -> int:
        return self._input_size

    @property
    def stats(self) -> tuple[int, int]:
        """(batches run, faces embedded) so far: faces ÷ batches is the mean batch."""
        return self._batches, self._faces

    def embed(self, crops: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Like ``Embedder.embed``; blocks until this call's crops are done (in arrival order)."""
        size = self._input_size
        if crops.ndim != 4 or crops.shape[1:] != (size, size, 3):
            raise ModelLoadError(f"expected (N, {size}, {size}, 3) crops, got {crops.shape}")
        if len(crops) == 0:
            return np.zeros((0, self._info.dim), dtype=np.float32)
        job = _Job(crops)
        with self._cond:
            if self._closed:
                raise ModelLoadError("the embedder has been closed")
            self._queue.append(job)
            self._cond.notify()
        job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.vectors is not None
        return job.vectors

    def close(self) -> None:
        """Stop the runners once the queue is empty (callers already waiting still get their answers)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()

    def _take(self) -> list[_Job] | None:
        """The next batch: the oldest job, then younger ones while they fit in ``max_batch`` faces."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            jobs = [self._queue.popleft()]
            count = len(jobs[0].crops)
            while self._queue and count + len(self._queue[0].crops) <= self.max_batch:
                count += len(self._queue[0].crops)
                jobs.append(self._queue.popleft())
            return jobs

    def _run(self, model: Embedder) -> None:
        while (jobs := self._take()) is not None:
            try:
                crops = jobs[0].crops if len(jobs) == 1 else np.concatenate([job.crops for job in jobs])
                vectors = model.embed(crops)
                if len(vectors) != len(crops):
                    raise ModelLoadError(f"the embedder returned {len(vectors)} vectors for {len(crops)} crops")
                start = 0
                for job in jobs:
                    job.vectors = vectors[start : start + len(job.crops)]
                    start += len(job.crops)
                with self._cond:
                    self._batches += 1
                    self._faces += len(crops)
            except BaseException as exc:  # every caller of the batch gets the error; the runner goes on
                for job in jobs:
                    job.error = exc
            finally:
                for job in jobs:
                    job.done.set()
