"""The video operations over the wire, driven by unmodified boto3 (responses checked against botocore)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from facetrace.engine import FaceEngine
from facetrace.service import ServiceConfig
from tests.service.conftest import Server, start_server
from tests.video.conftest import THRESHOLD


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine: FaceEngine, scene: Path, photos) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("video-server")
    bucket = root / "bucket"
    bucket.mkdir()
    shutil.copy(scene, bucket / "scene.mp4")
    monkey = pytest.MonkeyPatch()
    monkey.setenv("FACETRACE_HOME", str(root / "home"))
    config = ServiceConfig(port=0, workers=2, buckets={"videos": bucket}, camera_allow=(f"{scene.parent}/*.mp4",))
    running = start_server(root, engine, config, home=root)
    running.gallery.create_collection("people")
    running.gallery.index_faces("people", photos["obama2.jpg"], external_image_id="obama", max_faces=1)
    running.gallery.index_faces("people", photos["biden.jpg"], external_image_id="biden", max_faces=1)
    yield running
    running.thread.stop()
    running.gallery.store.close()
    monkey.undo()


def _wait(get, **request):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 60
    while True:
        response = get(**request)
        if response["JobStatus"] != "IN_PROGRESS" or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def test_face_search_over_the_wire(server: Server) -> None:
    client = server.client()
    video = {"S3Object": {"Bucket": "videos", "Name": "scene.mp4"}}
    started = client.start_face_search(
        Video=video, CollectionId="people", FaceMatchThreshold=THRESHOLD, ClientRequestToken="t-1", JobTag="case-1"
    )
    again = client.start_face_search(
        Video=video, CollectionId="people", FaceMatchThreshold=THRESHOLD, ClientRequestToken="t-1", JobTag="case-1"
    )
    assert again["JobId"] == started["JobId"]
    with pytest.raises(client.exceptions.IdempotentParameterMismatchException):  # same token, other request
        client.start_face_search(
            Video=video, CollectionId="people", FaceMatchThreshold=THRESHOLD, ClientRequestToken="t-1"
        )
    result = _wait(client.get_face_search, JobId=started["JobId"], SortBy="INDEX", MaxResults=5)
    assert result["JobStatus"] == "SUCCEEDED"
    assert result["VideoMetadata"]["FrameWidth"] == 640
    assert result["Video"] == video
    assert result["JobTag"] == "case-1"
    persons, token = list(result["Persons"]), result.get("NextToken")
    while token:
        page = client.get_face_search(JobId=started["JobId"], SortBy="INDEX", MaxResults=5, NextToken=token)
        persons += page["Persons"]
        token = page.get("NextToken")
    names = {p["FaceMatches"][0]["Face"]["ExternalImageId"] for p in persons}
    assert names == {"obama", "biden"}
    assert [p["Person"]["Index"] for p in persons] == sorted(p["Person"]["Index"] for p in persons)


def test_face_detection_and_errors_over_the_wire(server: Server) -> None:
    client = server.client()
    started = client.start_face_detection(Video={"S3Object": {"Bucket": "videos", "Name": "scene.mp4"}})
    result = _wait(client.get_face_detection, JobId=started["JobId"])
    assert result["JobStatus"] == "SUCCEEDED"
    assert len(result["Faces"]) > 10
    with pytest.raises(client.exceptions.InvalidS3ObjectException):
        client.start_face_detection(Video={"S3Object": {"Bucket": "videos", "Name": "missing.mp4"}})
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_face_detection(JobId="nope")


def test_stream_processors_over_the_wire(server: Server, scene: Path) -> None:
    client = server.client()
    arn = f"arn:aws:kinesisvideo:us-east-1:000000000000:{scene}"
    created = client.create_stream_processor(
        Name="lobby",
        Input={"KinesisVideoStream": {"Arn": arn}},
        Output={"KinesisDataStream": {"Arn": "arn:aws:kinesis:us-east-1:000000000000:stream/out"}},
        RoleArn="arn:aws:iam::000000000000:role/facetrace",
        Settings={"FaceSearch": {"CollectionId": "people", "FaceMatchThreshold": THRESHOLD}},
    )
    assert created["StreamProcessorArn"].endswith("streamprocessor/lobby")
    described = client.describe_stream_processor(Name="lobby")
    assert described["Status"] == "STOPPED"
    assert described["Input"]["KinesisVideoStream"]["Arn"] == arn
    assert described["Settings"]["FaceSearch"]["CollectionId"] == "people"
    assert client.start_stream_processor(Name="lobby")["SessionId"]
    listed = client.list_stream_processors()["StreamProcessors"]
    assert listed[0]["Name"] == "lobby"
    assert listed[0]["Status"] in ("STARTING", "RUNNING", "STOPPED")
    with pytest.raises(client.exceptions.ResourceInUseException):
        client.delete_stream_processor(Name="lobby")
    client.stop_stream_processor(Name="lobby")
    client.delete_stream_processor(Name="lobby")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_stream_processor(Name="lobby")


def test_event_stream_yields_server_sent_events() -> None:
    import anyio

    from facetrace.service.handlers.video import event_stream
    from facetrace.video.events import StreamState, StreamStatus
    from facetrace.video.sinks import EventBus

    bus = EventBus()

    async def first_two() -> list[str]:
        stream = event_stream(bus, "cam", heartbeat=0.05)
        got = [await stream.__anext__()]  # nothing yet: a keep-alive comment
        bus.publish(StreamStatus(processor="other", camera="x", state=StreamState.CONNECTED))
        bus.publish(StreamStatus(processor="cam", camera="x", state=StreamState.STALLED, message="quiet"))
        async for text in stream:
            if not text.startswith(":"):
                got.append(text)
                break
        await stream.aclose()
        return got

    messages = anyio.run(first_two)
    assert messages[0] == ": keep-alive\n\n"
    assert messages[1].startswith("event: StreamStatus\ndata: ")
    assert '"Processor":"cam"' in messages[1]
    assert bus.subscribers == 0


def test_events_feed_delivers_identifications_over_the_wire(server: Server, scene: Path) -> None:
    """A processor runs on the server; its identifications arrive on the signed /events feed as SSE."""
    import json
    import threading

    import httpx
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"{server.url}/events?processor=feed"
    assert httpx.get(url, timeout=10).status_code in (400, 403)  # no signature: refused
    request = AWSRequest(method="GET", url=url)
    credentials = Credentials(server.admin.access_key_id, server.admin.secret)
    SigV4Auth(credentials, "rekognition", "us-east-1").add_auth(request)
    client = server.client()
    client.create_stream_processor(
        Name="feed",
        Input={"KinesisVideoStream": {"Arn": f"arn:aws:kinesisvideo:us-east-1:000000000000:{scene}"}},
        Output={"KinesisDataStream": {"Arn": "arn:aws:kinesis:us-east-1:000000000000:stream/out"}},
        RoleArn="arn:aws:iam::000000000000:role/facetrace",
        Settings={"FaceSearch": {"CollectionId": "people", "FaceMatchThreshold": THRESHOLD}},
    )
    names: set[str] = set()
    with httpx.stream("GET", url, headers=dict(request.headers), timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        threading.Timer(0.2, lambda: client.start_stream_processor(Name="feed")).start()
        deadline = time.monotonic() + 30
        for line in response.iter_lines():
            if line.startswith("data:"):
                event = json.loads(line[len("data:") :])
                if event.get("Type") == "TrackIdentified":
                    names.add(event["ExternalImageId"])
            if names == {"obama", "biden"} or time.monotonic() > deadline:
                break
    client.stop_stream_processor(Name="feed")
    client.delete_stream_processor(Name="feed")
    assert names == {"obama", "biden"}
