"""Signatures, keys and permissions, through boto3 and raw HTTP against a real server."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from typing import Any

import botocore.auth
import httpx
import pytest

from facetrace.engine import FaceEngine
from facetrace.service.keys import AccessKey
from tests.service.conftest import Server, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine: FaceEngine) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("auth"), engine)
    admin = running.client()
    for name in ("mine", "theirs"):
        admin.create_collection(CollectionId=name)
    yield running
    running.thread.stop()
    running.gallery.store.close()


def _error(call: Callable[[], Any]) -> tuple[str, int]:
    import botocore.exceptions

    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_wrong_secret_and_unknown_key(server: Server) -> None:
    wrong = server.client(secret=server.admin.secret + "x")
    assert _error(wrong.list_collections) == ("InvalidSignatureException", 400)
    stranger = AccessKey("FTUNKNOWNKEY00000000", "s" * 40, server.admin.permission)
    assert _error(server.client(stranger).list_collections) == ("UnrecognizedClientException", 400)


def test_tampered_body_is_refused(server: Server) -> None:
    client = server.client()

    def tamper(request: Any, **_: Any) -> None:  # after signing, as a man in the middle would
        request.body = request.body.replace(b'"mine"', b'"theirs"')

    client.meta.events.register("before-send.rekognition.DescribeCollection", tamper)
    assert _error(lambda: client.describe_collection(CollectionId="mine")) == ("InvalidSignatureException", 400)


@pytest.mark.parametrize(("minutes", "accepted"), [(-20, False), (20, False), (-10, True), (10, True)])
def test_clock_skew(server: Server, monkeypatch: pytest.MonkeyPatch, minutes: int, accepted: bool) -> None:
    skewed = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=minutes)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: skewed.replace(tzinfo=None))
    client = server.client()
    if accepted:
        assert "CollectionIds" in client.list_collections()
    else:
        code, _ = _error(client.list_collections)
        assert code == "InvalidSignatureException"


def test_missing_and_malformed_authorization(server: Server) -> None:
    target = {"X-Amz-Target": "RekognitionService.ListCollections"}
    missing = server.raw("ListCollections", b"{}", sign=False)
    assert (missing.status_code, missing.json()["__type"]) == (403, "MissingAuthenticationTokenException")
    assert missing.headers["x-amzn-RequestId"]
    malformed = httpx.post(server.url + "/", content=b"{}", headers={**target, "Authorization": "Basic abc"})
    assert malformed.json()["__type"] == "IncompleteSignatureException"
    assert httpx.get(server.url + "/healthz").json()["status"] == "ok"


def test_read_only_key_cannot_write(server: Server, image_bytes: Callable[[str], bytes]) -> None:
    reader = server.client(server.keys.create("read"))
    assert "mine" in reader.list_collections()["CollectionIds"]
    assert reader.describe_collection(CollectionId="mine")["FaceCount"] == 0
    for call in (
        lambda: reader.create_collection(CollectionId="new"),
        lambda: reader.delete_collection(CollectionId="mine"),
        lambda: reader.index_faces(CollectionId="mine", Image={"Bytes": image_bytes("obama.jpg")}),
        lambda: reader.create_user(CollectionId="mine", UserId="u"),
    ):
        assert _error(call) == ("AccessDeniedException", 400)
    assert server.client().describe_collection(CollectionId="mine")["FaceCount"] == 0


def test_write_key_cannot_create_collections(server: Server) -> None:
    writer = server.client(server.keys.create("write"))
    writer.create_user(CollectionId="mine", UserId="writer-made")
    assert _error(lambda: writer.create_collection(CollectionId="nope")) == ("AccessDeniedException", 400)


def test_collection_limited_key_sees_only_its_collections(
    server: Server, image_bytes: Callable[[str], bytes]
) -> None:
    limited = server.client(server.keys.create("admin", collections=["mine"]))
    assert limited.list_collections()["CollectionIds"] == ["mine"]
    pages = limited.get_paginator("list_collections").paginate(PaginationConfig={"PageSize": 1})
    assert [c for page in pages for c in page["CollectionIds"]] == ["mine"]
    assert limited.describe_collection(CollectionId="mine")["FaceCount"] == 0
    for call in (
        lambda: limited.describe_collection(CollectionId="theirs"),
        lambda: limited.list_faces(CollectionId="theirs"),
        lambda: limited.delete_collection(CollectionId="theirs"),
        lambda: limited.describe_collection(CollectionId="does-not-exist"),  # no existence leak either
        lambda: limited.search_faces_by_image(CollectionId="theirs", Image={"Bytes": image_bytes("obama.jpg")}),
    ):
        assert _error(call) == ("AccessDeniedException", 400)
    assert len(limited.detect_faces(Image={"Bytes": image_bytes("obama.jpg")})["FaceDetails"]) == 1


def test_keys_take_effect_while_running(server: Server) -> None:
    key = server.keys.create("read")
    client = server.client(key)
    assert "CollectionIds" in client.list_collections()
    server.keys.delete(key.access_key_id)
    assert _error(client.list_collections)[0] == "UnrecognizedClientException"


def test_purpose_header_is_checked(server: Server) -> None:
    client = server.client()
    client.meta.events.register(
        "before-sign.rekognition.CreateUser",
        lambda request, **_: request.headers.add_header("X-Facetrace-Purpose", "x" * 300),
    )
    assert _error(lambda: client.create_user(CollectionId="mine", UserId="p"))[0] == "InvalidParameterException"
