"""``POST /``: find the operation in the handler table, check the key may call it, run it in the worker pool.

Library calls (inference, SQLite) block, so they run in a bounded thread pool sized to the cores; the event
loop only moves bytes. ``WorkerPool`` admits at most ``workers + max_pending`` requests at once and answers
ThrottlingException *immediately* past that, so an overloaded server says so instead of letting clients
time out. Decoding JSON and validating happen in the worker too: a 7 MB body never blocks the loop.

Successful responses carry ``Server-Timing: handler;dur=<ms>``, the time spent in the handler (the library
call and the response shapes), so a client can tell the service's own cost from the library's.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from facetrace.audit import Caller
from facetrace.errors import AccessDeniedError, InvalidParameterError, ThrottlingError
from facetrace.gallery import Gallery
from facetrace.service import protocol
from facetrace.service.access_audit import record_act, record_read
from facetrace.service.config import ServiceConfig
from facetrace.service.idempotency import Idempotency
from facetrace.service.images import ImageResolver
from facetrace.service.keys import AccessKey
from facetrace.service.operations import Context, Operation, Resources, lookup
from facetrace.service.validation import validate

__all__ = ["Dispatcher", "WorkerPool"]

T = TypeVar("T")
KEY_SCOPE = "facetrace.key"
REQUEST_ID_SCOPE = "facetrace.request_id"


class WorkerPool:
    """A thread pool with admission control: ``run`` raises ``ThrottlingError`` at once when it is full."""

    def __init__(self, workers: int, max_pending: int, max_wait: float = 5.0) -> None:
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="facetrace-worker")
        self._workers = workers
        self._capacity = workers + max_pending
        self._admitted = 0
        self._lock = threading.Lock()
        self.max_wait = max_wait  # seconds an admitted request may wait for a worker before ThrottlingException

    @property
    def in_flight(self) -> int:
        return self._admitted

    async def run(self, func: Callable[[], T]) -> T:
        with self._lock:
            if self._admitted >= self._capacity:
                raise ThrottlingError("Rate exceeded: the server is busy; retry with backoff")
            self._admitted += 1
        try:
            started = threading.Event()

            def run() -> T:
                started.set()
                return func()

            future = self._executor.submit(run)
            waiting = asyncio.wrap_future(future)
            try:
                # shield: a timeout must not cancel a call that has started (no half-done writes)
                return await asyncio.wait_for(asyncio.shield(waiting), self.max_wait)
            except TimeoutError:
                if not started.is_set() and future.cancel():  # still queued: it never runs
                    raise ThrottlingError(
                        f"Rate exceeded: no worker was free within {self.max_wait:g} s; retry with backoff"
                    ) from None
                # A call that has started runs to the end even if the client goes away.
                return await waiting
        finally:
            with self._lock:
                self._admitted -= 1

    def warm(self, func: Callable[[], object], timeout: float = 600.0) -> None:
        """Run ``func`` once on every worker thread, all at once, and wait for them (raises what it raised).

        Each task waits at a barrier until every task has started, so no thread takes two and each worker
        thread exists and has run ``func`` (e.g. built its per-thread models) before the first request."""
        barrier = threading.Barrier(self._workers)

        def run() -> None:
            barrier.wait(timeout)
            func()

        for future in [self._executor.submit(run) for _ in range(self._workers)]:
            future.result()

    def shutdown(self) -> None:
        """Wait for running calls to finish."""
        self._executor.shutdown(wait=True)


class Dispatcher:
    """Everything ``POST /`` needs, built once per app."""

    def __init__(
        self,
        gallery: Gallery,
        config: ServiceConfig,
        pool: WorkerPool,
        resources: Resources,
        idempotency: Idempotency,
    ) -> None:
        self.gallery = gallery
        self.config = config
        self.pool = pool
        self.resources = resources
        self.idempotency = idempotency
        self.images = ImageResolver(config.buckets, gallery.engine.limits.max_bytes)

    async def __call__(self, request: Request) -> Response:
        name = protocol.operation_name(request.headers.get("x-amz-target"))
        entry = lookup(name)
        if entry is None:
            raise InvalidParameterError(
                f"facetrace does not support {name}; it serves Rekognition's face operations (docs/server.md)"
            )
        key: AccessKey = request.scope[KEY_SCOPE]
        if not key.may(entry.permission):
            raise AccessDeniedError(f"User: {key.access_key_id} is not authorized to perform: rekognition:{name}")
        caller = Caller(key.access_key_id, protocol.purpose(request.headers.get(protocol.PURPOSE_HEADER)))
        body = await protocol.read_body(request.scope, request.receive)
        content_type = request.headers.get("content-type")
        context = Context(
            gallery=self.gallery,
            caller=caller,
            key=key,
            images=self.images,
            config=self.config,
            resources=self.resources,
            request_id=request.scope.get(REQUEST_ID_SCOPE, ""),
        )
        payload, seconds = await self.pool.run(
            lambda: _handle(entry, context, body, content_type, self.idempotency)
        )
        response = protocol.json_response(payload)
        response.headers["Server-Timing"] = f"handler;dur={seconds * 1000:.3f}"
        return response


def _handle(
    entry: Operation, context: Context, body: bytes, content_type: str | None, idempotency: Idempotency
) -> tuple[bytes, float]:
    """Decode, validate, check the collection, run the handler (once per ClientRequestToken); the response
    and the handler's own time."""
    params = validate(entry.name, protocol.decode_body(body, content_type))
    _check_collection(entry, context.key, params)
    started = time.perf_counter()

    def run() -> bytes:  # reads and administrative acts the library does not audit (service/access_audit.py)
        record_act(context.gallery, context.caller, entry.name, params)
        answer = entry.handler(context, params)
        record_read(context.gallery, context.caller, entry.name, params, answer)
        return protocol.encode_body(answer)

    encoded = idempotency.run(context.key.access_key_id, entry.name, params, run)
    return encoded, time.perf_counter() - started


def _check_collection(entry: Operation, key: AccessKey, params: dict[str, Any]) -> None:
    if entry.collection_param is None or key.collections is None:
        return
    collection = params.get(entry.collection_param)
    if isinstance(collection, str) and not key.sees(collection):
        raise AccessDeniedError(
            f"User: {key.access_key_id} is not authorized to use collection {collection} "
            f"(rekognition:{entry.name})"
        )
