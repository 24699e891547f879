"""Issue 9, item 4: a camera's password never comes back — not in answers (to any key), events or logs."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from facetrace.engine import FaceEngine
from facetrace.service import ServiceConfig
from facetrace.video.source import redact
from tests.service.conftest import Server, start_server

SECRET = "s3cret-Pa55"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine: FaceEngine) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("credentials")
    port = _closed_port()
    config = ServiceConfig(port=0, workers=2, camera_allow=(f"rtsp://127.0.0.1:{port}/**",))
    running = start_server(root, engine, config)
    running.gallery.create_collection("people")
    running.extra["camera"] = f"rtsp://cam:{SECRET}@127.0.0.1:{port}/live"
    yield running
    running.thread.stop()
    running.gallery.store.close()


def _events(server: Server, seconds: float) -> list[str]:
    url = f"{server.url}/events?processor=door"
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(server.admin.access_key_id, server.admin.secret), "rekognition", "us-east-1").add_auth(
        request
    )
    lines: list[str] = []
    deadline = time.monotonic() + seconds
    with httpx.stream("GET", url, headers=dict(request.headers), timeout=seconds + 10) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            lines.append(line)
            if time.monotonic() > deadline or sum(x.startswith("data:") for x in lines) >= 3:
                break
    return lines


def test_camera_credentials_are_never_returned(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="facetrace")
    caplog.set_level(logging.DEBUG, logger="uvicorn")
    admin = server.client()
    reader = server.client(server.keys.create("read", description="reader"))
    arn = "arn:aws:kinesisvideo:us-east-1:000000000000:" + server.extra["camera"]
    admin.create_stream_processor(
        Name="door",
        Input={"KinesisVideoStream": {"Arn": arn}},
        Output={"KinesisDataStream": {"Arn": "arn:aws:kinesis:us-east-1:000000000000:stream/out"}},
        RoleArn="arn:aws:iam::000000000000:role/facetrace",
        Settings={"FaceSearch": {"CollectionId": "people"}},
    )
    answers = [admin.describe_stream_processor(Name="door"), reader.describe_stream_processor(Name="door")]
    admin.start_stream_processor(Name="door")  # connection refused: it retries, publishing StreamStatus events
    events = _events(server, 8)
    answers += [admin.describe_stream_processor(Name="door"), reader.list_stream_processors()]
    admin.stop_stream_processor(Name="door")
    admin.delete_stream_processor(Name="door")

    assert answers[0]["Input"]["KinesisVideoStream"]["Arn"] == redact(arn)
    assert redact(arn).endswith("rtsp://***@127.0.0.1:" + arn.rsplit(":", 1)[1])
    server_log = "\n".join(  # the server's own log (botocore's debug log of the client holds the request)
        r.getMessage() for r in caplog.records if r.name.startswith(("facetrace", "uvicorn"))
    )
    text = json.dumps(answers, default=str) + "\n".join(events) + server_log
    assert any(line.startswith("data:") for line in events)  # the failing camera did report
    assert "127.0.0.1" in server_log  # its attempts were logged
    assert SECRET not in text
    assert "cam:" not in text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://admin:hunter2@10.0.0.5/s", "rtsp://***@10.0.0.5/s"),
        ("rtsp://a@b:hunter2@10.0.0.5/s", "rtsp://***@10.0.0.5/s"),  # two @: FFmpeg takes the last
        ("error opening rtsp://u:hunter2@h/x: refused", "error opening rtsp://***@h/x: refused"),
        ("rtsp://10.0.0.5/s?user=x@y", "rtsp://10.0.0.5/s?user=x@y"),
        ("udp://0.0.0.0:5000", "udp://0.0.0.0:5000"),
    ],
)
def test_redact(url: str, shown: str) -> None:
    assert redact(url) == shown
