"""Each error arrives as AWS sends it, so boto3 raises the modelled exception class; S3Object images."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from PIL import Image as PILImage

from facetrace.engine import FaceEngine
from facetrace.errors import StoreError
from facetrace.service import ServiceConfig
from tests.service.conftest import NO_RETRIES, Server, start_server

LENIENT = Config(retries={"total_max_attempts": 1}, parameter_validation=False)  # let bad input reach the server


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, Path]) -> Path:
    root = tmp_path_factory.mktemp("bucket")
    (root / "people").mkdir()
    (root / "people" / "obama.jpg").write_bytes(photos["obama.jpg"].read_bytes())
    (root / "notes.txt").write_text("not an image")
    outside = root.parent / "outside.jpg"
    outside.write_bytes(photos["biden.jpg"].read_bytes())
    os.symlink(outside, root / "escape.jpg")
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine: FaceEngine, bucket: Path) -> Iterator[Server]:
    config = ServiceConfig(port=0, workers=2, buckets={"photos": bucket})
    running = start_server(tmp_path_factory.mktemp("errors"), engine, config)
    running.client().create_collection(CollectionId="existing")
    yield running
    running.thread.stop()
    running.gallery.store.close()


@pytest.fixture(scope="module")
def client(server: Server) -> Any:
    return server.client(config=LENIENT)


def test_invalid_parameter_lists_every_violation(client: Any) -> None:
    with pytest.raises(client.exceptions.InvalidParameterException) as caught:
        client.list_faces(CollectionId="bad name!", MaxResults=99999, UserId="")
    message = caught.value.response["Error"]["Message"]
    assert message.startswith("3 validation errors detected")
    for member in ("'CollectionId'", "'MaxResults'", "'UserId'"):
        assert member in message
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_wrong_types_and_enums(client: Any, image_bytes: Callable[[str], bytes]) -> None:
    with pytest.raises(client.exceptions.InvalidParameterException) as caught:
        client.search_faces_by_image(
            CollectionId="existing", Image={"Bytes": image_bytes("obama.jpg")}, QualityFilter="SHARP"
        )
    assert "enum value set" in caught.value.response["Error"]["Message"]
    with pytest.raises(client.exceptions.InvalidParameterException, match="must not be null"):
        client.describe_collection()


def test_raw_protocol_errors(server: Server) -> None:
    cases = {
        b"{not json": "InvalidParameterException",
        b"[1, 2]": "InvalidParameterException",
        b'{"CollectionId": NaN}': "InvalidParameterException",
        b'{"CollectionId": 12}': "InvalidParameterException",
        b'{"CollectionId": "existing", "MaxResults": "10"}': "InvalidParameterException",
        b'{"CollectionId": "' + b"x" * 300 + b'"}': "InvalidParameterException",
        b"[" * 100_000 + b"]" * 100_000: "InvalidParameterException",
    }
    for body, code in cases.items():
        response = server.raw("ListFaces", body)
        assert response.status_code == 400
        assert response.json()["__type"] == code, body[:40]
        assert response.headers["x-amzn-RequestId"]
    image = json.dumps({"Image": {"Bytes": "***not base64***"}}).encode()
    assert server.raw("DetectFaces", image).json()["Message"].count("base64") == 1


def test_unknown_and_unsupported_operations(server: Server, client: Any) -> None:
    unknown = server.raw("NoSuchOperation", b"{}")
    assert (unknown.status_code, unknown.json()["__type"]) == (400, "UnknownOperationException")
    assert server.raw(None, b"{}").json()["__type"] == "UnknownOperationException"
    with pytest.raises(client.exceptions.InvalidParameterException, match="does not support DetectLabels"):
        client.detect_labels(Image={"Bytes": b"x"})


def test_image_errors(client: Any) -> None:
    with pytest.raises(client.exceptions.InvalidImageFormatException):
        client.detect_faces(Image={"Bytes": b"definitely not an image"})
    with pytest.raises(client.exceptions.ImageTooLargeException):
        client.detect_faces(Image={"Bytes": b"\xff" * (5 * 1024 * 1024 + 1)})
    bomb = io.BytesIO()
    PILImage.new("1", (10_000, 5_000)).save(bomb, format="PNG")  # 50 MP in a few KB
    assert len(bomb.getvalue()) < 100_000
    with pytest.raises(client.exceptions.ImageTooLargeException):
        client.detect_faces(Image={"Bytes": bomb.getvalue()})
    blank = io.BytesIO()
    PILImage.new("RGB", (200, 200), "white").save(blank, format="PNG")
    with pytest.raises(client.exceptions.InvalidParameterException, match="no faces"):
        client.search_faces_by_image(CollectionId="existing", Image={"Bytes": blank.getvalue()})


def test_body_over_the_limit_is_refused_before_reading_it_all(server: Server) -> None:
    body = b'{"CollectionId": "existing", "Pad": "' + b"x" * 8_000_000 + b'"}'
    response = server.raw("ListFaces", body)
    assert (response.status_code, response.json()["__type"]) == (400, "ImageTooLargeException")
    # CompareFaces takes two images, so twice the limit: the same body reaches validation.
    assert server.raw("CompareFaces", body).json()["__type"] == "InvalidParameterException"


def test_not_found_and_already_exists(client: Any) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.list_faces(CollectionId="missing")
    with pytest.raises(client.exceptions.ResourceAlreadyExistsException):
        client.create_collection(CollectionId="existing")


def test_store_failure_is_an_internal_server_error(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**_: Any) -> Any:
        raise StoreError("disk full")

    client = server.client()
    monkeypatch.setattr(server.gallery.store, "list_collections", broken)
    with pytest.raises(client.exceptions.InternalServerError, match="disk full"):
        client.list_collections()
    monkeypatch.setattr(server.gallery.store, "list_collections", lambda **_: 1 / 0)
    with pytest.raises(client.exceptions.InternalServerError) as caught:
        client.list_collections()
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert "division" not in caught.value.response["Error"]["Message"]  # no internals leak


def test_s3_object_from_a_mapped_folder(server: Server) -> None:
    client = server.client(config=NO_RETRIES)
    found = client.detect_faces(Image={"S3Object": {"Bucket": "photos", "Name": "people/obama.jpg"}})
    assert len(found["FaceDetails"]) == 1
    for s3 in (
        {"Bucket": "photos", "Name": "../outside.jpg"},
        {"Bucket": "photos", "Name": "people/../../outside.jpg"},
        {"Bucket": "photos", "Name": "escape.jpg"},  # a symlink out of the bucket
        {"Bucket": "photos", "Name": "/etc/passwd"},
        {"Bucket": "photos", "Name": "people/missing.jpg"},
        {"Bucket": "other", "Name": "people/obama.jpg"},
        {"Bucket": "photos", "Name": "people/obama.jpg", "Version": "2"},
    ):
        with pytest.raises(client.exceptions.InvalidS3ObjectException):
            client.detect_faces(Image={"S3Object": s3})
    with pytest.raises(client.exceptions.InvalidImageFormatException):
        client.detect_faces(Image={"S3Object": {"Bucket": "photos", "Name": "notes.txt"}})
