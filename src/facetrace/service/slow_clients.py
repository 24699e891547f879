"""What a client that sends slowly, or sends without credentials, may hold: a bounded time and bounded bytes.

- Headers: ``HeaderDeadlineProtocol`` (uvicorn's h11 protocol) closes a connection whose request line and
  headers are not complete ``header_timeout`` seconds after the connection opened or, between requests, after
  the next request's first byte; h11 itself caps the headers at ``MAX_HEADER_BYTES``.
- Bodies: ``BodyDeadlineMiddleware`` answers ``RequestTimeoutException`` (408) to a request whose body is not
  complete ``body_timeout`` seconds after it started, and the connection is closed.
- Unauthenticated bytes: ``UnverifiedBytes`` caps the body bytes held, across all requests, for signatures not
  yet verified (``middleware/auth.py`` checks the Authorization header's shape and the access key id before
  reading a byte of body, so a stranger without a key id gets nothing read at all).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import h11
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from facetrace.errors import ThrottlingError
from facetrace.service.errors import ServiceError

__all__ = ["MAX_HEADER_BYTES", "BodyDeadlineMiddleware", "UnverifiedBytes", "header_deadline_protocol"]

MAX_HEADER_BYTES = 16 * 1024
"""Request line and headers, at most (h11's incomplete-event limit): a SigV4 request needs ~1 KiB."""


def header_deadline_protocol(header_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing connections whose headers take longer than ``header_timeout`` s."""

    class HeaderDeadlineProtocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._header_timer is None and self._awaiting_headers():
                self._arm()
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            super().connection_lost(exc)

        def _awaiting_headers(self) -> bool:
            cycle: Any = self.cycle
            return bool(self.conn.their_state is h11.IDLE and (cycle is None or cycle.response_complete))

        def _arm(self) -> None:
            self._header_timer = self.loop.call_later(header_timeout, self._expire)

        def _expire(self) -> None:
            self._header_timer = None
            if self._awaiting_headers() and not self.transport.is_closing():
                self.transport.close()

    return HeaderDeadlineProtocol


class BodyDeadlineMiddleware:
    """The whole request body within ``seconds`` of the request's start; then 408 and the connection closed.

    Only the body is timed: once its last chunk has arrived, ``receive`` waits as long as the app likes (a
    streaming response waits on it for the client's disconnect).
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = time.monotonic() + self.seconds
        complete = False

        async def timed_receive() -> Message:
            nonlocal complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                    message = await receive()
            except TimeoutError:
                raise ServiceError(
                    "RequestTimeoutException",
                    f"The request body was not received within {self.seconds:g} seconds",
                    408,
                ) from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed_receive, send)


class UnverifiedBytes:
    """Body bytes buffered, over all requests, for signatures not yet checked: at most ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.peak = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> None:
        """Account ``size`` more bytes, or ``ThrottlingError`` when that would pass the limit."""
        with self._lock:
            if self.held + size > self.limit:
                raise ThrottlingError("Rate exceeded: too many request bytes awaiting authentication")
            self.held += size
            self.peak = max(self.peak, self.held)

    def give(self, size: int) -> None:
        with self._lock:
            self.held -= size
