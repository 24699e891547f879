"""Count every ``POST /`` by operation and outcome, and time it, for ``/metrics``."""

from __future__ import annotations

import time

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facetrace.service.metrics import Metrics
from facetrace.service.protocol import ERROR_TYPE_HEADER, TARGET_PREFIX

_ERROR_HEADER = ERROR_TYPE_HEADER.lower().encode()


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/":
            await self.app(scope, receive, send)
            return
        target = Headers(scope=scope).get("x-amz-target") or ""
        operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        started = time.perf_counter()
        status, error = 500, "InternalServerError"  # unless a response starts

        async def observing_send(message: Message) -> None:
            nonlocal status, error
            if message["type"] == "http.response.start":
                status, error = int(message["status"]), ""
                for name, value in message.get("headers", []):
                    if name.lower() == _ERROR_HEADER:
                        error = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, observing_send)
        finally:
            self.metrics.observe(operation, status, error, time.perf_counter() - started)
