"""Model-driven request validation: every violation collected, types strict, blobs decoded."""

from __future__ import annotations

import base64

import pytest

from facetrace.errors import ImageTooLargeError, InvalidParameterError
from facetrace.service import protocol
from facetrace.service.validation import validate


def test_valid_request_comes_back_with_blobs_decoded() -> None:
    request = {"CollectionId": "c", "Image": {"Bytes": base64.b64encode(b"jpeg").decode()}, "MaxFaces": 3}
    assert validate("SearchFacesByImage", request) == {
        "CollectionId": "c",
        "Image": {"Bytes": b"jpeg"},
        "MaxFaces": 3,
    }


@pytest.mark.parametrize("size", [1, 2, 3, 100, 250_001])
def test_blobs_decode_exactly_like_the_standard_library(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    padded = base64.b64encode(data).decode()
    for encoded in (padded, padded.rstrip("=")):
        request = {"CollectionId": "c", "Image": {"Bytes": encoded}}
        if len(encoded) % 4:  # unpadded: refused, as base64.b64decode(validate=True) refuses it
            with pytest.raises(InvalidParameterError, match="valid base64"):
                validate("SearchFacesByImage", request)
        else:
            assert validate("SearchFacesByImage", request)["Image"]["Bytes"] == data


@pytest.mark.parametrize("bad", ["QUJ", "QU=D", "QUJD\n", " QUJD", "QUJD====", "éé", "-_==", "QQ="])
def test_malformed_base64_is_refused(bad: str) -> None:
    """Including excess padding, which the standard library's decoder tolerates and pybase64 does not."""
    with pytest.raises(InvalidParameterError, match="valid base64"):
        validate("SearchFacesByImage", {"CollectionId": "c", "Image": {"Bytes": bad}})


def test_unknown_members_are_ignored() -> None:
    assert validate("DescribeCollection", {"CollectionId": "c", "Future": 1}) == {"CollectionId": "c"}


def test_collects_every_violation() -> None:
    with pytest.raises(InvalidParameterError) as caught:
        validate(
            "IndexFaces",
            {
                "CollectionId": "",
                "ExternalImageId": "has space",
                "MaxFaces": 0,
                "QualityFilter": "best",
                "DetectionAttributes": "ALL",
            },
        )
    message = caught.value.message
    assert message.startswith("6 validation errors detected")
    for expected in (
        "'CollectionId' failed to satisfy constraint: Member must have length greater than or equal to 1",
        "at 'Image' failed to satisfy constraint: Member must not be null",
        "'ExternalImageId' failed to satisfy constraint: Member must satisfy regular expression pattern",
        "'MaxFaces' failed to satisfy constraint: Member must have value greater than or equal to 1",
        "'QualityFilter' failed to satisfy constraint: Member must satisfy enum value set",
        "'DetectionAttributes' failed to satisfy constraint: Member must be a list",
    ):
        assert expected in message


@pytest.mark.parametrize(
    ("operation", "request_"),
    [
        ("ListFaces", {"CollectionId": "c", "MaxResults": True}),
        ("ListFaces", {"CollectionId": "c", "MaxResults": 1.5}),
        ("SearchFaces", {"CollectionId": "c", "FaceId": "not-a-uuid"}),
        (
            "SearchFaces",
            {"CollectionId": "c", "FaceId": "0" * 8 + "-0000-0000-0000-" + "0" * 12, "MaxFaces": 5000},
        ),
        ("SearchFaces", {"CollectionId": "c", "FaceId": "x", "FaceMatchThreshold": "90"}),
        ("DeleteFaces", {"CollectionId": "c", "FaceIds": []}),
        ("CreateCollection", {"CollectionId": "c", "Tags": {"k": 1}}),
        ("DetectFaces", {"Image": {"Bytes": "%%%"}}),
        ("DetectFaces", {"Image": {"Bytes": ""}}),
        ("DetectFaces", {"Image": "bytes"}),
        ("DetectFaces", {"Image": {"S3Object": {"Bucket": "b", "Name": "n"}}}),
    ],
)
def test_refuses(operation: str, request_: dict[str, object]) -> None:
    with pytest.raises(InvalidParameterError, match="validation error"):
        validate(operation, request_)


def test_oversized_blob_is_too_large_and_not_echoed() -> None:
    huge = base64.b64encode(b"\0" * (5 * 1024 * 1024 + 3)).decode()
    with pytest.raises(ImageTooLargeError):
        validate("DetectFaces", {"Image": {"Bytes": huge}})
    with pytest.raises(InvalidParameterError) as caught:
        validate("DetectFaces", {"Image": {"Bytes": "A" * 40 + "%"}, "Attributes": ["NOPE"]})
    assert "AAAA" not in caught.value.message


def test_long_values_are_truncated_in_messages() -> None:
    with pytest.raises(InvalidParameterError) as caught:
        validate("DescribeCollection", {"CollectionId": "x" * 100_000})
    assert len(caught.value.message) < 300


@pytest.mark.parametrize(
    "body", [b"{", b"[]", b'"x"', b'{"a": NaN}', b'{"a": Infinity}', b"\xff\xfe", b"1" * 5000]
)
def test_decode_body_refuses_non_objects(body: bytes) -> None:
    with pytest.raises(InvalidParameterError):
        protocol.decode_body(body, protocol.CONTENT_TYPE)


def test_decode_body_checks_the_content_type() -> None:
    assert protocol.decode_body(b"", None) == {}
    with pytest.raises(InvalidParameterError, match="Content-Type"):
        protocol.decode_body(b"{}", "text/plain")
