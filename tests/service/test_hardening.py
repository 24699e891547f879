"""Attacks from issue 9 against a real server, each refused (docs/security.md lists them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import botocore.exceptions
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from facetrace.engine import FaceEngine
from facetrace.service.keys import AccessKey
from tests.service.conftest import Server, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine: FaceEngine) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("hardening"), engine)
    admin = running.client()
    for name in ("alpha", "hidden-beta"):
        admin.create_collection(CollectionId=name)
    yield running
    running.thread.stop()
    running.gallery.store.close()


def _signed_headers(server: Server, key: AccessKey, headers: dict[str, str], signed_extra: bool) -> dict[str, str]:
    """Headers of a request signed by botocore, with the target (and purpose) left out of SignedHeaders when
    ``signed_extra`` is false (as a client that signs only host and x-amz-date would)."""
    unsigned = {} if signed_extra else headers
    signed = {"Content-Type": "application/x-amz-json-1.1", **({} if not signed_extra else headers)}
    request = AWSRequest(method="POST", url=server.url + "/", data=b'{"CollectionId":"alpha"}', headers=signed)
    SigV4Auth(Credentials(key.access_key_id, key.secret), "rekognition", "us-east-1").add_auth(request)
    return {**dict(request.headers.items()), **unsigned}


# -- item 13: X-Amz-Target and X-Facetrace-Purpose must be signed ---------------------------------------------


def test_signature_replayed_with_another_target_is_refused(server: Server) -> None:
    body = b'{"CollectionId":"alpha"}'
    signed = _signed_headers(server, server.admin, {"X-Amz-Target": "RekognitionService.DescribeCollection"}, True)
    assert "x-amz-target" in signed["Authorization"]
    ok = httpx.post(server.url + "/", content=body, headers=signed)
    assert ok.status_code == 200, ok.text
    replayed = {**signed, "X-Amz-Target": "RekognitionService.ListFaces"}
    answer = httpx.post(server.url + "/", content=body, headers=replayed)
    assert (answer.status_code, answer.json()["__type"]) == (400, "InvalidSignatureException")


@pytest.mark.parametrize(
    "extra",
    [
        {"X-Amz-Target": "RekognitionService.ListFaces"},
        {"X-Amz-Target": "RekognitionService.DescribeCollection", "X-Facetrace-Purpose": "case-7"},
    ],
)
def test_target_and_purpose_outside_signed_headers_are_refused(server: Server, extra: dict[str, str]) -> None:
    body = b'{"CollectionId":"alpha"}'
    if "X-Facetrace-Purpose" in extra:  # the target signed, the purpose added afterwards
        headers = _signed_headers(server, server.admin, {"X-Amz-Target": extra["X-Amz-Target"]}, True)
        headers["X-Facetrace-Purpose"] = extra["X-Facetrace-Purpose"]
    else:
        headers = _signed_headers(server, server.admin, extra, False)
    answer = httpx.post(server.url + "/", content=body, headers=headers)
    assert answer.status_code == 400
    assert answer.json()["__type"] == "IncompleteSignatureException"
    assert "SignedHeaders" in answer.json()["Message"]


# -- item 3: a collection-limited key learns no hidden name ---------------------------------------------------


def _error(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def test_list_collections_pages_only_what_a_limited_key_sees(server: Server) -> None:
    server.client().create_collection(CollectionId="aaa-hidden")  # sorts before alpha: the old token named it
    limited = server.client(server.keys.create("admin", collections=["alpha", "zeta-absent"]))
    seen: list[str] = []
    tokens: list[str] = []
    page = limited.list_collections(MaxResults=1)
    while True:
        seen += page["CollectionIds"]
        if "NextToken" not in page:
            break
        tokens.append(page["NextToken"])
        page = limited.list_collections(MaxResults=1, NextToken=page["NextToken"])
    assert seen == ["alpha"]
    assert set(tokens) <= {"alpha"}
    whole = server.client().list_collections(MaxResults=1)
    assert whole["CollectionIds"] == ["aaa-hidden"]  # the unlimited key still pages through every collection


def test_hidden_and_missing_collections_answer_alike(server: Server) -> None:
    limited = server.client(server.keys.create("admin", collections=["alpha"]))
    hidden = _error(lambda: limited.describe_collection(CollectionId="hidden-beta"))
    missing = _error(lambda: limited.describe_collection(CollectionId="hidden-gamm"))  # same length, absent
    assert hidden[0] == missing[0] == "AccessDeniedException"
    assert hidden[1].replace("hidden-beta", "X") == missing[1].replace("hidden-gamm", "X")
    for call in (limited.list_faces, limited.list_users, limited.delete_collection):
        assert _error(lambda c=call: c(CollectionId="hidden-beta"))[0] == "AccessDeniedException"  # type: ignore[misc]


# -- item 16: errors as Rekognition's model names them -------------------------------------------------------


def test_duplicate_user_is_a_conflict_and_bad_tokens_are_invalid_pagination(server: Server) -> None:
    client = server.client()
    client.create_user(CollectionId="alpha", UserId="someone")
    with pytest.raises(client.exceptions.ConflictException):
        client.create_user(CollectionId="alpha", UserId="someone")
    for call in (
        lambda: client.list_faces(CollectionId="alpha", NextToken="not-a-token!"),
        lambda: client.list_users(CollectionId="alpha", NextToken="bm90IGEgdG9rZW4"),
        lambda: client.list_collections(NextToken="bad token"),
    ):
        with pytest.raises(client.exceptions.InvalidPaginationTokenException):
            call()


# -- item 14: /metrics is for this machine or for a key, and names no collection by default -------------------


def test_metrics_needs_loopback_host_or_a_signature(server: Server) -> None:
    url = server.url + "/metrics"
    local = httpx.get(url, timeout=10)
    assert local.status_code == 200
    assert "facetrace_requests_total" in local.text
    assert "alpha" not in local.text  # no collection names unless configured
    rebound = httpx.get(url, headers={"Host": f"attacker.example:{server.thread.port}"}, timeout=10)
    assert (rebound.status_code, rebound.json()["__type"]) == (403, "MissingAuthenticationTokenException")
    request = AWSRequest(method="GET", url=url, headers={"Host": f"attacker.example:{server.thread.port}"})
    SigV4Auth(Credentials(server.admin.access_key_id, server.admin.secret), "rekognition", "us-east-1").add_auth(
        request
    )
    signed = httpx.get(url, headers=dict(request.headers.items()), timeout=10)
    assert signed.status_code == 200
