"""Long-lived responses (the ``/events`` feed): how many one key may hold, and releasing the slot however the
response ends (finished, failed, or the client gone before the first byte).

A stream holds no worker thread (it waits on the event loop), so the only limit it needs is per key: without
one, a single key could open connections until the process runs out of file descriptors.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterable, Callable

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from facetrace.service.errors import ServiceError

__all__ = ["SlotStreamingResponse", "StreamSlots"]


class StreamSlots:
    """At most ``per_key`` open streams per access key."""

    def __init__(self, per_key: int) -> None:
        self.per_key = per_key
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, access_key_id: str) -> Callable[[], None]:
        """Take a slot (``ThrottlingException``, HTTP 429, past the limit); returns the release, idempotent."""
        with self._lock:
            held = self._open.get(access_key_id, 0)
            if held >= self.per_key:
                raise ServiceError(
                    "ThrottlingException",
                    f"Rate exceeded: this access key already holds {held} event streams (the limit)",
                    429,
                )
            self._open[access_key_id] = held + 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                left = self._open.get(access_key_id, 1) - 1
                if left > 0:
                    self._open[access_key_id] = left
                else:
                    self._open.pop(access_key_id, None)

        return release

    def held(self, access_key_id: str) -> int:
        with self._lock:
            return self._open.get(access_key_id, 0)


class SlotStreamingResponse(StreamingResponse):
    """A streaming response that gives its slot back when it ends, however it ends."""

    def __init__(self, content: AsyncIterable[str], release: Callable[[], None], media_type: str) -> None:
        super().__init__(content, media_type=media_type)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
