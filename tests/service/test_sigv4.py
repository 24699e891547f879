"""SigV4 verification against requests signed by botocore itself (an independent implementation)."""

from __future__ import annotations

import time

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from facetrace.errors import AuthenticationError
from facetrace.service import sigv4

SECRETS = {"AKTEST": "secret-one"}


def _signed(
    body: bytes = b'{"CollectionId":"c"}', url: str = "http://127.0.0.1:8089/", **headers: str
) -> tuple[AWSRequest, dict[str, str]]:
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={
            "X-Amz-Target": "RekognitionService.ListFaces",
            "Content-Type": "application/x-amz-json-1.1",
            **headers,
        },
    )
    SigV4Auth(Credentials("AKTEST", SECRETS["AKTEST"]), "rekognition", "eu-west-1").add_auth(request)
    prepared = request.prepare()
    return request, {name.lower(): value for name, value in prepared.headers.items()} | {"host": "127.0.0.1:8089"}


def _flip_last(text: str) -> str:
    return text[:-1] + ("1" if text.endswith("0") else "0")


def _verify(request: AWSRequest, headers: dict[str, str], body: bytes | None = None, **options: object) -> object:
    path, _, query = request.url.split("8089", 1)[1].partition("?")
    settings: dict[str, object] = {"now": time.time(), **options}
    return sigv4.verify(
        method="POST",
        raw_path=path,
        query_string=query,
        headers=headers,
        body=request.body if body is None else body,
        lookup_secret=SECRETS.get,
        **settings,  # type: ignore[arg-type]
    )


def test_accepts_what_botocore_signs() -> None:
    request, headers = _signed()
    credential = _verify(request, headers)
    assert credential == sigv4.Credential("AKTEST", headers["x-amz-date"][:8], "eu-west-1", "rekognition")


def test_accepts_a_query_string_and_extra_signed_headers() -> None:
    request, headers = _signed(url="http://127.0.0.1:8089/?b=2&a=x%20y", **{"X-Facetrace-Purpose": "case  1"})
    assert "x-facetrace-purpose" in headers["authorization"]
    _verify(request, headers)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda h: h.update({"authorization": _flip_last(h["authorization"])}), "InvalidSignatureException"),
        (lambda h: h.update({"x-amz-target": "RekognitionService.DeleteCollection"}), "InvalidSignatureException"),
        (lambda h: h.update({"x-amz-content-sha256": "0" * 64}), "InvalidSignatureException"),
        (lambda h: h.pop("authorization"), "MissingAuthenticationTokenException"),
        (lambda h: h.pop("x-amz-date"), "IncompleteSignatureException"),
        (lambda h: h.update({"x-amz-date": "yesterday"}), "IncompleteSignatureException"),
        (lambda h: h.update({"authorization": "AWS4-HMAC-SHA256 Credential=x"}), "IncompleteSignatureException"),
        (
            lambda h: h.update({"authorization": h["authorization"].replace("AKTEST/", "AKOTHER/")}),
            "UnrecognizedClientException",
        ),
        (
            lambda h: h.update({"authorization": h["authorization"].replace("/rekognition/", "/s3/")}),
            "InvalidSignatureException",
        ),
    ],
)
def test_refuses_changed_requests(change: object, code: str) -> None:
    request, headers = _signed()
    change(headers)  # type: ignore[operator]
    with pytest.raises(AuthenticationError) as caught:
        _verify(request, headers)
    assert caught.value.code == code


def test_refuses_a_changed_body_and_a_stale_date() -> None:
    request, headers = _signed()
    with pytest.raises(AuthenticationError, match="does not match"):
        _verify(request, headers, body=b'{"CollectionId":"d"}')
    with pytest.raises(AuthenticationError, match="Signature expired"):
        _verify(request, headers, now=time.time() + 901)
    with pytest.raises(AuthenticationError, match="not yet current"):
        _verify(request, headers, now=time.time() - 901)
    _verify(request, headers, now=time.time() + 800)
