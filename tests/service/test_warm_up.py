"""Issue 13 item 3: every worker builds its models before the server accepts requests.

Measured before this: 8 clients arriving at a fresh server got 4 ThrottlingExceptions, every worker building
its detector at once against the 5 s queue wait (docs/server.md, "Throughput at the CPU bound").
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from facetrace.engine import FaceEngine
from facetrace.models import Detector, create_detector
from facetrace.service import ServiceConfig
from facetrace.service.dispatch import WorkerPool
from tests.photos import photo
from tests.service.conftest import Server, start_server

WORKERS = 3


class CountingDetectors:
    """A detector factory that remembers which threads built a detector."""

    def __init__(self) -> None:
        self.threads: list[str] = []
        self._lock = threading.Lock()

    def __call__(self) -> Detector:
        with self._lock:
            self.threads.append(threading.current_thread().name)
        return create_detector("yunet")


@pytest.fixture(scope="module")
def counted(
    tmp_path_factory: pytest.TempPathFactory, engine: FaceEngine
) -> Iterator[tuple[Server, CountingDetectors]]:
    detectors = CountingDetectors()
    counting = FaceEngine(detectors, engine._embedder_factory, calibration=engine.calibration)
    running = start_server(tmp_path_factory.mktemp("warm"), counting, ServiceConfig(port=0, workers=WORKERS))
    yield running, detectors
    running.thread.stop()
    running.gallery.store.close()


def test_every_worker_has_its_detector_before_the_first_request(
    counted: tuple[Server, CountingDetectors],
) -> None:
    server, detectors = counted
    workers = [name for name in detectors.threads if name.startswith("facetrace-worker")]
    assert sorted(set(workers)) == sorted(workers)  # one each, built before any request
    assert len(workers) == WORKERS
    built = len(detectors.threads)
    client = server.client()
    client.create_collection(CollectionId="warm")
    data = photo("obama.jpg").read_bytes()
    client.index_faces(CollectionId="warm", Image={"Bytes": data}, ExternalImageId="obama")
    probe = photo("obama2.jpg").read_bytes()

    def search(_: int) -> int:
        answer = server.client().search_faces_by_image(
            CollectionId="warm", Image={"Bytes": probe}, FaceMatchThreshold=80
        )
        return len(answer["FaceMatches"])

    with ThreadPoolExecutor(WORKERS * 2) as pool:
        assert list(pool.map(search, range(WORKERS * 2))) == [1] * (WORKERS * 2)
    assert len(detectors.threads) == built  # requests found their worker's detector ready


def test_warm_runs_once_on_each_worker_thread_and_reports_failures() -> None:
    pool = WorkerPool(workers=4, max_pending=0)
    seen: list[str] = []
    lock = threading.Lock()

    def note() -> None:
        with lock:
            seen.append(threading.current_thread().name)

    pool.warm(note)
    assert len(set(seen)) == 4
    assert len(seen) == 4

    def broken() -> None:
        raise RuntimeError("no model")

    with pytest.raises(RuntimeError, match="no model"):
        pool.warm(broken)
    pool.shutdown()
