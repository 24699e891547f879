"""Issue 9 item 17: a request waits for a worker a bounded time, and throttling logs one WARNING at a time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest

from facetrace.engine import FaceEngine
from facetrace.service import ServiceConfig, errors
from facetrace.service.operations import Context, Permission, register_operation, unregister_operation
from tests.service.conftest import Server, start_server

SLOW = "GetCelebrityInfo"  # an operation facetrace does not serve, borrowed for a handler that holds a worker


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine: FaceEngine) -> Iterator[Server]:
    config = ServiceConfig(port=0, workers=1, max_pending=8, max_queue_wait=0.5, rate=1000, burst=1000)
    running = start_server(tmp_path_factory.mktemp("throttle"), engine, config)

    def slow(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
        time.sleep(3)
        return {"Name": "slow", "Urls": []}

    register_operation(SLOW, slow, Permission.READ, collection_param=None)
    yield running
    unregister_operation(SLOW)
    running.thread.stop()
    running.gallery.store.close()


def test_queue_wait_is_bounded_and_throttling_logs_warnings(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(errors, "_throttled", errors.ThrottleLog())  # nothing logged in the last 10 s
    client = server.client()
    holder = threading.Thread(target=lambda: client.get_celebrity_info(Id="x"))
    holder.start()
    time.sleep(0.3)  # the only worker is now busy for 3 s
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("facetrace.service.errors")
    logger.addHandler(handler)
    monkeypatch.setattr(logger, "level", logging.DEBUG)
    monkeypatch.setattr(logger, "disabled", False)
    waits = []
    for _ in range(5):
        started = time.monotonic()
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            client.list_collections()
        waits.append(time.monotonic() - started)
        assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    holder.join(10)
    logger.removeHandler(handler)
    assert max(waits) < 0.5 + 1.0  # not the 3 s the worker is busy for
    assert all(r.levelno == logging.WARNING for r in records)
    assert len(records) == 1  # five throttled requests, one line
    assert "CollectionIds" in client.list_collections()  # the worker is free again
