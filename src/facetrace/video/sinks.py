"""Where events go: a JSON-lines file, a webhook, an in-process bus (the server's SSE feed), a callback.

Every sink has the same two methods, ``publish(event)`` and ``close()``. A sink whose class (or instance)
sets ``required = True`` is part of the act itself — the audit trail of a stream's identifications: a stream
worker hands events to required sinks first, and when one of them fails the stream stops (FAILED, with a
``StreamStatus`` event saying why) instead of identifying people unaudited. Any other sink (webhook, JSON
lines, the bus) may fail without stopping the stream. ``publish`` is called from a stream
worker and must not block it: the webhook sink hands events to its own thread through a bounded queue (and
counts what it had to drop), the bus gives each subscriber a bounded queue and drops that subscriber's oldest
events when it falls behind.
"""

from __future__ import annotations

import collections
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Protocol

from facetrace.errors import InvalidParameterError, StoreError
from facetrace.video.events import Event

__all__ = [
    "CallbackSink",
    "EventBus",
    "EventSink",
    "JsonLinesSink",
    "Subscription",
    "WebhookSink",
    "is_required",
    "sse_message",
]

log = logging.getLogger(__name__)


class EventSink(Protocol):
    def publish(self, event: Event) -> None:
        """Take one event; return quickly."""
        ...

    def close(self) -> None: ...


def is_required(sink: EventSink) -> bool:
    """True when ``sink`` declares ``required = True``: its failure must stop the stream (fail closed)."""
    return getattr(sink, "required", False) is True


def _line(event: Event) -> str:
    return json.dumps(event.to_dict(), separators=(",", ":"), sort_keys=False)


class JsonLinesSink:
    """Appends one JSON object per line to ``path`` (flushed per event). Thread-safe."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise StoreError(f"cannot open {self.path} for events: {exc.strerror or exc}") from None

    def publish(self, event: Event) -> None:
        line = _line(event) + "\n"
        with self._lock:
            try:
                self._file.write(line)
                self._file.flush()
            except (OSError, ValueError) as exc:
                log.error("cannot write event to %s: %s", self.path, exc)

    def close(self) -> None:
        with self._lock:
            self._file.close()


class CallbackSink:
    """Calls ``function(event)`` in the worker's thread (keep it short); ``required``: see the module doc."""

    def __init__(self, function: Callable[[Event], None], *, required: bool = False) -> None:
        self._function = function
        self.required = required

    def publish(self, event: Event) -> None:
        self._function(event)

    def close(self) -> None:
        return None


class WebhookSink:
    """POSTs each event as JSON to ``url`` from a background thread, retrying with exponential backoff.

    A 2xx answer delivers the event; 4xx (except 408 and 429) is final; other failures are retried
    ``retries`` times, waiting ``backoff``, 2·``backoff``, … seconds (at most ``max_backoff``). While the
    endpoint is down, events wait in a queue of ``queue_size``; beyond that the oldest are dropped and counted.
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        queue_size: int = 1000,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise InvalidParameterError("a webhook URL must start with http:// or https://")
        if retries < 0 or backoff <= 0 or timeout <= 0 or queue_size < 1:
            raise InvalidParameterError("webhook retries must be >= 0; backoff, timeout and queue size positive")
        self.url = url
        self.headers = {"Content-Type": "application/json", **dict(headers or {})}
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, retries, backoff, max_backoff
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self._queue: collections.deque[Event] = collections.deque(maxlen=queue_size)
        self._ready = threading.Condition()
        self._closing = threading.Event()
        self._abort = threading.Event()
        self._thread = threading.Thread(target=self._run, name="facetrace-webhook", daemon=True)
        self._thread.start()

    def publish(self, event: Event) -> None:
        with self._ready:
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1
            self._queue.append(event)
            self._ready.notify()

    def close(self, timeout: float = 5.0) -> None:
        """Stop after delivering what is queued (waiting at most ``timeout`` seconds)."""
        self._closing.set()
        with self._ready:
            self._ready.notify()
        self._thread.join(timeout)
        if self._thread.is_alive():  # still retrying: give up on what is left
            self._abort.set()
            self._thread.join(1.0)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closing.is_set():
                    self._ready.wait()
                if not self._queue or self._abort.is_set():
                    return
                event = self._queue.popleft()
            if self._deliver(_line(event).encode("utf-8")):
                self.delivered += 1
            else:
                self.failed += 1

    def _deliver(self, body: bytes) -> bool:
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                if self._abort.wait(delay):
                    return False
            request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                    if 200 <= response.status < 300:
                        return True
            except urllib.error.HTTPError as exc:
                exc.close()
                if 400 <= exc.code < 500 and exc.code not in (408, 429):
                    log.warning("webhook %s refused an event: HTTP %s", self.url, exc.code)
                    return False
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                log.info("webhook %s failed (attempt %d): %s", self.url, attempt + 1, exc)
        return False


def sse_message(event: Event) -> str:
    """One server-sent-events message: ``event:`` is the event type, ``data:`` its JSON."""
    return f"event: {event.type.value}\ndata: {_line(event)}\n\n"


class Subscription:
    """One subscriber's bounded queue; iterate it, or ``get`` with a timeout. Close it when done."""

    def __init__(self, bus: EventBus, maxsize: int, processor: str | None) -> None:
        self._bus = bus
        self._queue: queue.Queue[Event] = queue.Queue(maxsize)
        self.processor = processor
        self.dropped = 0
        self.closed = False

    def offer(self, event: Event) -> None:
        if self.processor is not None and event.processor != self.processor:
            return
        while True:
            try:
                self._queue.put_nowait(event)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after ``timeout`` seconds without one."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def events(self, timeout: float, until: float | None = None) -> Iterator[Event]:
        """Events as they come, until closed or (with ``until``, a monotonic deadline) time is up."""
        while not self.closed and (until is None or time.monotonic() < until):
            event = self.get(timeout)
            if event is not None:
                yield event

    def close(self) -> None:
        self.closed = True
        self._bus.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """In-process publish/subscribe: every subscriber sees every event published after it subscribed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscription] = []

    def subscribe(self, *, maxsize: int = 1000, processor: str | None = None) -> Subscription:
        """A new subscription (only ``processor``'s events when given)."""
        subscription = Subscription(self, max(1, maxsize), processor)
        with self._lock:
            self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscribers:
                self._subscribers.remove(subscription)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def publish(self, event: Event) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription.offer(event)

    def close(self) -> None:
        with self._lock:
            subscribers, self._subscribers = self._subscribers, []
        for subscription in subscribers:
            subscription.closed = True
