"""Issue 9's attacks on the video operations and the /events feed, by limited keys against a real server."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from facetrace.engine import FaceEngine
from facetrace.service import ServiceConfig
from facetrace.service.keys import AccessKey
from tests.service.conftest import Server, start_server
from tests.video.conftest import THRESHOLD


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine: FaceEngine, scene: Path, photos) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("video-hardening")
    bucket = root / "bucket"
    bucket.mkdir()
    shutil.copy(scene, bucket / "scene.mp4")
    config = ServiceConfig(port=0, workers=2, buckets={"videos": bucket}, camera_allow=(f"{scene.parent}/*.mp4",))
    running = start_server(root, engine, config, home=root)
    for name in ("alpha", "beta"):
        running.gallery.create_collection(name)
        running.gallery.index_faces(name, photos["obama2.jpg"], external_image_id="obama", max_faces=1)
        running.gallery.index_faces(name, photos["biden.jpg"], external_image_id="biden", max_faces=1)
    client = running.client()
    for processor, collection in (("p-alpha", "alpha"), ("p-beta", "beta"), ("p-beta2", "beta")):
        client.create_stream_processor(
            Name=processor,
            Input={"KinesisVideoStream": {"Arn": f"arn:aws:kinesisvideo:us-east-1:000000000000:{scene}"}},
            Output={"KinesisDataStream": {"Arn": "arn:aws:kinesis:us-east-1:000000000000:stream/out"}},
            RoleArn="arn:aws:iam::000000000000:role/facetrace",
            Settings={"FaceSearch": {"CollectionId": collection, "FaceMatchThreshold": THRESHOLD}},
        )
    yield running
    running.thread.stop()
    running.gallery.store.close()


def _error(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def signed_get(url: str, key: AccessKey) -> dict[str, str]:
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(key.access_key_id, key.secret), "rekognition", "us-east-1").add_auth(request)
    return dict(request.headers.items())


# -- item 3 ------------------------------------------------------------------------------------------------


def test_list_stream_processors_shows_only_the_keys_collections(server: Server) -> None:
    limited = server.client(server.keys.create("admin", collections=["alpha"]))
    names: list[str] = []
    page = limited.list_stream_processors(MaxResults=1)
    while True:
        names += [p["Name"] for p in page["StreamProcessors"]]
        assert page.get("NextToken") in (None, "p-alpha")
        if "NextToken" not in page:
            break
        page = limited.list_stream_processors(MaxResults=1, NextToken=page["NextToken"])
    assert names == ["p-alpha"]
    everything = [p["Name"] for p in server.client().list_stream_processors()["StreamProcessors"]]
    assert everything == ["p-alpha", "p-beta", "p-beta2"]


def test_hidden_and_missing_processors_answer_alike(server: Server) -> None:
    limited = server.client(server.keys.create("admin", collections=["alpha"]))
    for call in (
        limited.describe_stream_processor,
        limited.start_stream_processor,
        limited.delete_stream_processor,
    ):
        hidden = _error(lambda c=call: c(Name="p-beta"))  # type: ignore[misc]
        missing = _error(lambda c=call: c(Name="p-nope"))  # type: ignore[misc]
        assert hidden[0] == missing[0] == "ResourceNotFoundException"
        assert hidden[1].replace("p-beta", "X") == missing[1].replace("p-nope", "X")
    key = server.keys.create("read", collections=["alpha"])
    answers = []
    for name in ("p-beta", "p-nope"):
        url = f"{server.url}/events?processor={name}"
        response = httpx.get(url, headers=signed_get(url, key), timeout=10)
        answers.append(
            (response.status_code, response.json()["__type"], response.json()["Message"].replace(name, "X"))
        )
    assert answers[0] == answers[1]
    assert answers[0][1] == "ResourceNotFoundException"


# -- item 15: video jobs and their tokens belong to the key that started them ----------------------------------

VIDEO = {"S3Object": {"Bucket": "videos", "Name": "scene.mp4"}}


def test_jobs_are_read_only_by_the_key_that_started_them(server: Server) -> None:
    owner = server.client(server.keys.create("read", collections=["alpha"]))
    other_key = server.keys.create("read", collections=["alpha"])  # same scope, another key
    other = server.client(other_key)
    detection = owner.start_face_detection(Video=VIDEO)["JobId"]
    search = owner.start_face_search(Video=VIDEO, CollectionId="alpha", FaceMatchThreshold=THRESHOLD)["JobId"]
    assert owner.get_face_detection(JobId=detection)["JobId"] == detection
    assert owner.get_face_search(JobId=search)["JobId"] == search
    for get, job_id in ((other.get_face_detection, detection), (other.get_face_search, search)):
        taken = _error(lambda g=get, j=job_id: g(JobId=j))  # type: ignore[misc]
        absent = _error(lambda g=get, j=job_id: g(JobId=j[:-4] + "0000"))  # type: ignore[misc]
        assert taken[0] == absent[0] == "ResourceNotFoundException"
        assert taken[1].replace(job_id, "X") == absent[1].replace(job_id[:-4] + "0000", "X")
    assert (
        server.client().get_face_detection(JobId=detection)["JobId"] == detection
    )  # the operator's key reads all


def test_client_request_token_is_per_key(server: Server) -> None:
    first = server.client(server.keys.create("read"))
    second = server.client(server.keys.create("read"))
    mine = first.start_face_detection(Video=VIDEO, ClientRequestToken="shared-token", JobTag="mine")["JobId"]
    theirs = second.start_face_detection(Video=VIDEO, ClientRequestToken="shared-token", JobTag="mine")["JobId"]
    assert theirs != mine  # not the first key's job
    again = first.start_face_detection(Video=VIDEO, ClientRequestToken="shared-token", JobTag="mine")["JobId"]
    assert again == mine  # the token still answers its own key
    with pytest.raises(second.exceptions.IdempotentParameterMismatchException):  # the second key's own token
        second.start_face_detection(Video=VIDEO, ClientRequestToken="shared-token", JobTag="theirs")
    assert first.get_face_detection(JobId=mine)["JobTag"] == "mine"  # unchanged
    assert _error(lambda: second.get_face_detection(JobId=mine))[0] == "ResourceNotFoundException"


# -- items 5 and 6: /events re-authorises, holds no worker thread, and is limited per key -----------------------


def _open_stream(server: Server, key: AccessKey, query: str = "") -> socket.socket:
    """A raw signed ``GET /events`` whose response headers have been read (the stream then stays open)."""
    url = f"{server.url}/events{query}"
    headers = signed_get(url, key)
    sock = socket.create_connection(("127.0.0.1", server.thread.port), timeout=10)
    host = f"127.0.0.1:{server.thread.port}"
    lines = [f"GET /events{query} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    sock.sendall("\r\n".join(lines).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    sock.settimeout(None)
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    return sock


def test_a_deleted_keys_stream_ends(server: Server) -> None:
    key = server.keys.create("read")
    url = f"{server.url}/events"
    started = time.monotonic()
    ended_after = None
    with httpx.stream("GET", url, headers=signed_get(url, key), timeout=httpx.Timeout(10, read=12)) as response:
        assert response.status_code == 200
        threading.Timer(0.5, server.keys.delete, args=(key.access_key_id,)).start()
        try:
            for _ in response.iter_lines():
                pass
            ended_after = time.monotonic() - started
        except httpx.ReadTimeout:
            pass
    assert ended_after is not None  # the stream ended by itself ...
    assert ended_after < 0.5 + 5 + 2  # ... within the 5 s re-check (and some slack)


def test_events_out_of_the_keys_collections_are_never_sent(server: Server) -> None:
    limited = server.keys.create("read", collections=["alpha"])
    seen: dict[str, list[dict[str, Any]]] = {"limited": [], "admin": []}

    def read(who: str, key: AccessKey, until: float) -> None:
        url = f"{server.url}/events"
        with httpx.stream("GET", url, headers=signed_get(url, key), timeout=30) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if line.startswith("data:"):
                    seen[who].append(json.loads(line[len("data:") :]))
                if time.monotonic() > until:
                    break

    until = time.monotonic() + 20
    readers = [
        threading.Thread(target=read, args=("limited", limited, until)),
        threading.Thread(target=read, args=("admin", server.admin, until)),
    ]
    for reader in readers:
        reader.start()
    time.sleep(0.5)
    client = server.client()
    for name in ("p-alpha", "p-beta"):
        client.start_stream_processor(Name=name)
    for reader in readers:
        reader.join(40)
    for name in ("p-alpha", "p-beta"):
        client.stop_stream_processor(Name=name)
    identified = {e["Processor"] for e in seen["admin"] if e.get("Type") == "TrackIdentified"}
    assert identified == {"p-alpha", "p-beta"}  # both processors did find faces ...
    assert any(e.get("Type") == "TrackIdentified" for e in seen["limited"])
    assert {e["Processor"] for e in seen["limited"]} == {"p-alpha"}  # ... the limited key saw only its own


def test_idle_streams_hold_no_worker_and_are_limited_per_key(server: Server, photos: dict[str, Path]) -> None:
    keys = [server.keys.create("read") for _ in range(10)]
    per_key = server.thread.config.max_event_streams_per_key
    streams = [_open_stream(server, key) for key in keys for _ in range(per_key)]  # 80 idle streams
    try:
        assert len(streams) == 80
        started = time.monotonic()
        assert httpx.get(server.url + "/healthz", timeout=10).json()["status"] == "ok"
        faces = server.client().detect_faces(Image={"Bytes": photos["obama.jpg"].read_bytes()})["FaceDetails"]
        assert len(faces) == 1
        assert time.monotonic() - started < 10
        url = f"{server.url}/events"
        over = httpx.get(url, headers=signed_get(url, keys[0]), timeout=10)
        assert (over.status_code, over.json()["__type"]) == (429, "ThrottlingException")
    finally:
        for stream in streams:
            stream.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # closed streams give their slots back
        with httpx.stream("GET", url, headers=signed_get(url, keys[0]), timeout=10) as response:
            if response.status_code == 200:
                break
        time.sleep(0.2)
    else:
        pytest.fail("the closed streams' slots were not given back")
