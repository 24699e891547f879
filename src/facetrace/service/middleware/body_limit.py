"""Refuse request bodies over the limit (ImageTooLargeException) before they are buffered whole.

The limit depends on the operation: ``limit_for(target)`` is the per-image limit times the number of images
it takes (CompareFaces takes two). An over-long body is read and discarded up to ``drain`` bytes so the
client, still sending, can read the error; past that the connection is simply closed.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facetrace.errors import ImageTooLargeError


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, limit_for: Callable[[str | None], int], drain: int = 64 * 1024 * 1024
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit = self.limit_for(headers.get("x-amz-target"))
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            if int(declared) <= self.drain:
                await _discard(receive, self.drain)
            raise _too_large(int(declared), limit)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if message.get("more_body", False):
                        await _discard(receive, self.drain - received)
                    raise _too_large(received, limit)
            return message

        await self.app(scope, limited_receive, send)


def _too_large(size: int, limit: int) -> ImageTooLargeError:
    return ImageTooLargeError(f"The request body ({size} bytes or more) is over the {limit}-byte limit")


async def _discard(receive: Receive, budget: int) -> None:
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request":
            return
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return
