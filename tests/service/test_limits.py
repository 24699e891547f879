"""Overload, rate limits, graceful shutdown, metrics, and the handler table's registration API."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from facetrace.engine import FaceEngine
from facetrace.errors import ThrottlingError
from facetrace.service import ServiceConfig
from facetrace.service.dispatch import WorkerPool
from facetrace.service.operations import (
    Context,
    Permission,
    load_handlers,
    register_operation,
    unregister_operation,
)
from tests.service.conftest import Server, start_server


def test_worker_pool_rejects_at_once_when_full() -> None:
    release = threading.Event()

    async def scenario() -> None:
        pool = WorkerPool(workers=1, max_pending=1)
        first = asyncio.ensure_future(pool.run(lambda: release.wait(10)))
        second = asyncio.ensure_future(pool.run(lambda: "queued"))
        await asyncio.sleep(0)
        with pytest.raises(ThrottlingError):
            await pool.run(lambda: "refused")
        release.set()
        assert await first is True
        assert await second == "queued"
        assert await pool.run(lambda: "after") == "after"
        pool.shutdown()

    asyncio.run(scenario())


class Gate:
    """A handler that blocks until released, registered as DetectText for one module."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
        self.entered.set()
        self.release.wait(30)
        ctx.gallery.create_collection("written-while-stopping", caller=ctx.caller)
        return {}


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    register_operation("DetectText", gate, Permission.WRITE, collection_param=None)
    yield gate
    gate.release.set()
    unregister_operation("DetectText")


@pytest.fixture
def small_server(tmp_path: Any, engine: FaceEngine) -> Iterator[Server]:
    config = ServiceConfig(port=0, workers=1, max_pending=0, rate=0.01, burst=4, metrics_collections=True)
    running = start_server(tmp_path, engine, config)
    yield running
    running.thread.stop()
    running.gallery.store.close()


def test_overload_throttles_fast_and_shutdown_finishes_writes(small_server: Server, gate: Gate) -> None:
    client = small_server.client()
    result: dict[str, Any] = {}
    slow = threading.Thread(target=lambda: result.update(client.detect_text(Image={"Bytes": b"x"})))
    slow.start()
    assert gate.entered.wait(10)
    with pytest.raises(client.exceptions.ThrottlingException) as caught:
        small_server.client().list_collections()
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    stopper = threading.Thread(target=small_server.thread.stop)
    stopper.start()
    while not small_server.thread.stopping:
        time.sleep(0.01)
    gate.release.set()
    slow.join(30)
    stopper.join(30)
    assert result["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert small_server.gallery.describe_collection("written-while-stopping").face_count == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(small_server.url + "/healthz", timeout=2)


def test_rate_limit_per_key(small_server: Server) -> None:
    client = small_server.client()
    for _ in range(4):
        client.list_collections()
    with pytest.raises(client.exceptions.ThrottlingException, match="Rate exceeded"):
        client.list_collections()
    other = small_server.client(small_server.keys.create("read"))
    assert other.list_collections()["CollectionIds"] == []


def test_healthz_and_metrics(small_server: Server) -> None:
    client = small_server.client()
    client.create_collection(CollectionId="metered")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_collection(CollectionId="absent")
    small_server.raw("NotAnOperation", b"{}")
    health = httpx.get(small_server.url + "/healthz")
    assert health.json()["status"] == "ok"
    assert health.headers["x-amzn-RequestId"]
    text = httpx.get(small_server.url + "/metrics").text
    assert 'facetrace_requests_total{operation="CreateCollection",status="200"} 1' in text
    assert 'facetrace_errors_total{operation="DescribeCollection",type="ResourceNotFoundException"} 1' in text
    assert 'facetrace_errors_total{operation="unknown",type="UnknownOperationException"} 1' in text
    assert 'facetrace_request_duration_seconds_count{operation="CreateCollection"} 1' in text
    assert 'facetrace_collection_faces{collection="metered"} 0' in text


def test_registration_refuses_unknown_and_duplicate_names() -> None:
    def handler(ctx: Context, request: dict[str, Any]) -> dict[str, Any]:
        return {}

    load_handlers()
    with pytest.raises(ValueError, match="not an operation"):
        register_operation("MakeCoffee", handler, Permission.READ)
    with pytest.raises(ValueError, match="registered already"):
        register_operation("SearchFaces", handler, Permission.READ)
