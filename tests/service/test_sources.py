"""Item 1 of issue 9: video sources from the wire come only from the operator's allow-list.

Each attack first as it was reported (a file outside every bucket, a loopback listener, an answer that tells
whether a path exists), then the unit rules of ``SourcePolicy`` with a fake resolver.
"""

from __future__ import annotations

import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from facetrace.engine import FaceEngine
from facetrace.errors import InvalidParameterError
from facetrace.service import ServiceConfig
from facetrace.service.sources import REFUSED, SourcePolicy, is_sensitive_address
from tests.service.conftest import Server, start_server

KINESIS = "arn:aws:kinesisvideo:us-east-1:000000000000:"


class Listener:
    """A loopback TCP listener that counts the connections it is offered (the SSRF target)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, engine: FaceEngine, photos: dict[str, Path]
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("sources")
    bucket = root / "bucket"
    bucket.mkdir()
    secret = root / "outside"
    secret.mkdir()
    shutil.copy(photos["obama2.jpg"], secret / "private.jpg")
    (bucket / "%03d.jpg").write_bytes(b"")
    config = ServiceConfig(
        port=0, workers=2, buckets={"videos": bucket}, camera_allow=("rtsp://10.0.0.*/**", "rtsp://*/open/**")
    )
    running = start_server(root, engine, config)
    running.gallery.create_collection("people")
    running.extra["outside"] = secret
    yield running
    running.thread.stop()
    running.gallery.store.close()


def _create(server: Server, name: str, source: str) -> None:
    server.client().create_stream_processor(
        Name=name,
        Input={"KinesisVideoStream": {"Arn": KINESIS + source}},
        Output={"KinesisDataStream": {"Arn": "arn:aws:kinesis:us-east-1:000000000000:stream/out"}},
        RoleArn="arn:aws:iam::000000000000:role/facetrace",
        Settings={"FaceSearch": {"CollectionId": "people"}},
    )


def _refusal(server: Server, source: str) -> str:
    client = server.client()
    with pytest.raises(client.exceptions.InvalidParameterException) as info:
        _create(server, "probe", source)
    return str(info.value.response["Error"]["Message"])


def test_a_file_outside_every_bucket_is_refused_and_existence_is_not_revealed(server: Server) -> None:
    outside: Path = server.extra["outside"]
    existing = _refusal(server, str(outside / "private.jpg"))
    glob = _refusal(server, str(outside / "*.jpg"))
    missing = _refusal(server, str(outside / "nothing-here.jpg"))
    assert existing == missing == glob == REFUSED
    assert server.client().list_stream_processors()["StreamProcessors"] == []


def test_a_url_source_cannot_reach_a_loopback_listener(server: Server) -> None:
    listener = Listener()
    try:
        for url in (
            f"http://127.0.0.1:{listener.port}/stream",
            f"rtsp://127.0.0.1:{listener.port}/open/cam",  # matches rtsp://*/open/** but the host is loopback
            f"rtsp://localhost:{listener.port}/open/cam",  # a name that resolves to loopback
            f"rtsp://10.0.0.5@127.0.0.1:{listener.port}/x",  # the allowed host as a user name
            f"tcp://127.0.0.1:{listener.port}",
            "rtsp://169.254.169.254/open/latest/meta-data",
            f"rtsp://[::ffff:127.0.0.1]:{listener.port}/open/x",
        ):
            assert _refusal(server, url) == REFUSED
    finally:
        listener.close()
    assert listener.connections == 0


def test_video_jobs_read_only_plain_bucket_files(server: Server) -> None:
    client = server.client()
    with pytest.raises(client.exceptions.InvalidParameterException) as info:  # a %d sequence inside the bucket
        client.start_face_detection(Video={"S3Object": {"Bucket": "videos", "Name": "%03d.jpg"}})
    assert info.value.response["Error"]["Message"] == REFUSED
    with pytest.raises(client.exceptions.InvalidS3ObjectException):
        client.start_face_detection(Video={"S3Object": {"Bucket": "videos", "Name": "../outside/private.jpg"}})


def test_an_allow_listed_camera_is_accepted(server: Server) -> None:
    _create(server, "lobby", "rtsp://user:pw@10.0.0.7/live/1")
    server.client().delete_stream_processor(Name="lobby")


def _policy(*patterns: str, addresses: dict[str, list[str]] | None = None) -> SourcePolicy:
    table = addresses or {}
    return SourcePolicy(patterns, resolver=lambda host: table.get(host, [host]))


@pytest.mark.parametrize(
    "source",
    [
        "rtsp://10.0.0.5/live",
        "rtsp://admin:secret@10.0.0.5/live/sub",
        "rtsp://10.0.0.5:554/a/b/c",
    ],
)
def test_patterns_admit(source: str) -> None:
    assert _policy("rtsp://10.0.0.*/**").check(source) == source


@pytest.mark.parametrize(
    "source",
    [
        "rtsp://10.0.1.5/live",
        "rtsp://10.0.0.5@192.168.1.1/live",  # the allowed address as user info
        "rtsp://a@b@10.0.0.5/live",  # two @: hosts differ between parsers
        "rtsp://10.0.0.5\\@evil/live",
        "rtsp://10.0.0.5/live/../../x",
        "rtsp://10.0.0.5/live/%2e%2e/x",
        "/etc/passwd",
        "file:///etc/passwd",
        "/dev/video0",
        "rtsp://10.0.0.5/live\n",
        "",
        "A://[",  # does not parse as a URL (found by the fuzz test)
        "rtsp://[::1/x",
    ],
)
def test_patterns_refuse(source: str) -> None:
    with pytest.raises(InvalidParameterError, match="not allowed"):
        _policy("rtsp://10.0.0.*/**").check(source)


def test_an_empty_list_refuses_everything() -> None:
    with pytest.raises(InvalidParameterError):
        SourcePolicy(()).check("rtsp://10.0.0.5/live")


def test_every_resolved_address_is_checked() -> None:
    rebinding = {"cam.example": ["10.0.0.9", "127.0.0.1"], "ok.example": ["10.0.0.9"], "gone.example": []}
    policy = _policy("rtsp://*.example/**", addresses=rebinding)
    assert policy.check("rtsp://ok.example/s")
    for source in ("rtsp://cam.example/s", "rtsp://gone.example/s"):
        with pytest.raises(InvalidParameterError):
            policy.check(source)


def test_loopback_only_when_named_literally() -> None:
    assert _policy("rtsp://127.0.0.1:8554/**").check("rtsp://127.0.0.1:8554/cam") == "rtsp://127.0.0.1:8554/cam"
    with pytest.raises(InvalidParameterError):
        _policy("rtsp://*:8554/**").check("rtsp://127.0.0.1:8554/cam")


def test_local_paths_need_a_pattern_and_cannot_climb(tmp_path: Path) -> None:
    policy = _policy(f"{tmp_path}/cams/*.mp4")
    assert policy.check(f"{tmp_path}/cams/a.mp4")
    for source in (f"{tmp_path}/cams/../secret.mp4", f"{tmp_path}/cams/sub/a.mp4", f"{tmp_path}/other.mp4"):
        with pytest.raises(InvalidParameterError):
            policy.check(source)


@pytest.mark.parametrize(
    ("address", "sensitive"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("169.254.169.254", True),
        ("169.254.1.1", True),
        ("fe80::1%eth0", True),
        ("fd00:ec2::254", True),
        ("0.0.0.0", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.5", False),
        ("192.168.1.20", False),
        ("not-an-address", True),
    ],
)
def test_sensitive_addresses(address: str, sensitive: bool) -> None:
    assert is_sensitive_address(address) is sensitive
