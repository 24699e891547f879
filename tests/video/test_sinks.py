"""Event sinks: JSON lines, webhook with retries, the in-process bus behind the SSE feed."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from facetrace.errors import InvalidParameterError
from facetrace.types import BoundingBox
from facetrace.video.events import StreamState, StreamStatus, TrackStarted
from facetrace.video.sinks import EventBus, JsonLinesSink, WebhookSink, sse_message


def event(track: int, processor: str = "p1") -> TrackStarted:
    return TrackStarted(
        processor=processor, camera="door", track_id=track, stream_time_ms=track * 100, frame_time=time.time(),
        bounding_box=BoundingBox(0.1, 0.1, 0.2, 0.2), snapshot=b"\xff\xd8",
    )  # fmt: skip


def test_json_lines(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path / "out" / "events.jsonl")
    sink.publish(event(1))
    sink.publish(StreamStatus(processor="p1", camera="door", state=StreamState.STALLED, message="quiet"))
    sink.close()
    lines = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    assert [line["Type"] for line in lines] == ["TrackStarted", "StreamStatus"]
    assert lines[0]["TrackId"] == 1
    assert lines[0]["Snapshot"] == "/9g="  # base64 of the JPEG bytes
    assert lines[1]["State"] == "STALLED"


class _Hook(BaseHTTPRequestHandler):
    fail_first = 2
    received: list[dict] = []  # noqa: RUF012
    calls = 0

    def do_POST(self) -> None:
        type(self).calls += 1
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).calls <= type(self).fail_first:
            self.send_response(503)
            self.end_headers()
            return
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


def test_webhook_retries_with_backoff_until_delivered() -> None:
    _Hook.received, _Hook.calls, _Hook.fail_first = [], 0, 2
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sink = WebhookSink(f"http://127.0.0.1:{server.server_port}/hook", retries=4, backoff=0.05)
        sink.publish(event(1))
        sink.publish(event(2))
        sink.close(timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert [item["TrackId"] for item in _Hook.received] == [1, 2]
    assert _Hook.calls == 4  # two refusals, then both delivered
    assert (sink.delivered, sink.failed, sink.dropped) == (2, 0, 0)


def test_webhook_gives_up_after_its_retries() -> None:
    _Hook.received, _Hook.calls, _Hook.fail_first = [], 0, 100
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sink = WebhookSink(f"http://127.0.0.1:{server.server_port}/", retries=2, backoff=0.02)
        sink.publish(event(1))
        deadline = time.monotonic() + 10
        while sink.failed == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        sink.close()
    finally:
        server.shutdown()
        server.server_close()
    assert sink.failed == 1
    assert _Hook.calls == 3  # the first try and two retries


def test_webhook_url_is_checked() -> None:
    with pytest.raises(InvalidParameterError):
        WebhookSink("ftp://example.com/")


def test_bus_fans_out_and_drops_the_oldest_for_a_slow_subscriber() -> None:
    bus = EventBus()
    everyone = bus.subscribe()
    slow = bus.subscribe(maxsize=2)
    only_p2 = bus.subscribe(processor="p2")
    for k in range(5):
        bus.publish(event(k))
    bus.publish(event(9, processor="p2"))
    assert [everyone.get(0).track_id for _ in range(6)] == [0, 1, 2, 3, 4, 9]
    assert [slow.get(0).track_id for _ in range(2)] == [4, 9]
    assert slow.dropped == 4
    assert only_p2.get(0).track_id == 9
    assert only_p2.get(0.01) is None
    with everyone:
        assert bus.subscribers == 3
    assert bus.subscribers == 2


def test_sse_message_format() -> None:
    text = sse_message(event(3))
    assert text.startswith("event: TrackStarted\ndata: {")
    assert text.endswith("}\n\n")
    assert json.loads(text.split("data: ", 1)[1])["TrackId"] == 3
