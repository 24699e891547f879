"""Issue 9's attacks on the video operations and the /events feed, by limited keys against a real server."""

from __future__ import annotations

import shutil
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
    config = ServiceConfig(port=0, workers=2, buckets={"videos": bucket})
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
