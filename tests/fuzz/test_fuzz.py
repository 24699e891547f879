"""Property-based fuzzing (issue 9): the request validator, the SigV4 parser, the image decoder and the video
source policy take any input and answer with their typed error or a result — never another exception.

Bounded for CI: ``max_examples`` per test and a fixed seed (``derandomize``), so a run takes seconds and a
failure reproduces; raise ``FACETRACE_FUZZ_EXAMPLES`` for a longer local run.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facetrace.errors import AuthenticationError, FacetraceError, InvalidParameterError
from facetrace.imaging import ImageLimits, load_image
from facetrace.service import sigv4
from facetrace.service.sources import SourcePolicy, is_sensitive_address
from facetrace.service.validation import validate

EXAMPLES = int(os.environ.get("FACETRACE_FUZZ_EXAMPLES", "150"))
BOUNDED = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=20), inner, max_size=5),
    max_leaves=30,
)
OPERATIONS = ["SearchFacesByImage", "IndexFaces", "ListFaces", "CreateStreamProcessor", "CompareFaces",
              "DeleteFaces", "StartFaceSearch", "AssociateFaces"]  # fmt: skip
MEMBERS = ["CollectionId", "Image", "MaxFaces", "FaceMatchThreshold", "Bytes", "S3Object", "Name", "FaceIds",
           "NextToken", "MaxResults", "Input", "Settings", "Video", "UserId", "QualityFilter"]  # fmt: skip


@BOUNDED
@given(operation=st.sampled_from(OPERATIONS), request=json_values)
def test_the_validator_answers_any_json_with_a_typed_error(operation: str, request: Any) -> None:
    with contextlib.suppress(FacetraceError):
        assert isinstance(validate(operation, request), dict)


@BOUNDED
@given(
    operation=st.sampled_from(OPERATIONS),
    request=st.dictionaries(st.sampled_from(MEMBERS), json_values, max_size=6),
)
def test_the_validator_answers_near_valid_requests_with_a_typed_error(operation: str, request: Any) -> None:
    with contextlib.suppress(FacetraceError):
        assert isinstance(validate(operation, request), dict)


def _signed_headers() -> dict[str, str]:
    request = AWSRequest(
        method="POST", url="http://127.0.0.1:8089/", data=b"{}",
        headers={"X-Amz-Target": "RekognitionService.ListCollections", "Content-Type": "application/x-amz-json-1.1"},
    )  # fmt: skip
    SigV4Auth(Credentials("FTKEY", "secret-key-of-the-fuzz"), "rekognition", "us-east-1").add_auth(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers["host"] = "127.0.0.1:8089"
    return headers


def _verify(headers: dict[str, str], body: bytes = b"{}") -> sigv4.Credential:
    return sigv4.verify(
        method="POST", raw_path="/", query_string="", headers=headers, body=body,
        lookup_secret=lambda key: "secret-key-of-the-fuzz" if key == "FTKEY" else None, now=time.time(),
    )  # fmt: skip


def test_the_fuzz_baseline_signature_verifies() -> None:
    assert _verify(_signed_headers()).access_key_id == "FTKEY"


authorization_texts = st.one_of(
    st.text(max_size=300),
    st.builds(
        lambda cred, signed, sig: f"AWS4-HMAC-SHA256 Credential={cred}, SignedHeaders={signed}, Signature={sig}",
        st.text(max_size=80), st.text(max_size=80), st.text(alphabet="0123456789abcdef", max_size=70),
    ),
)  # fmt: skip


@BOUNDED
@given(authorization=authorization_texts, date=st.text(max_size=20) | st.just("20261201T000000Z"))
def test_the_sigv4_parser_refuses_any_header_with_an_authentication_error(authorization: str, date: str) -> None:
    headers = {**_signed_headers(), "authorization": authorization, "x-amz-date": date}
    with pytest.raises(AuthenticationError):
        _verify(headers)


@BOUNDED
@given(data=st.data())
def test_any_change_to_a_signed_request_is_refused(data: st.DataObject) -> None:
    headers = _signed_headers()
    name = data.draw(st.sampled_from(sorted(h for h in headers if h != "authorization")))
    value = data.draw(st.text(min_size=1, max_size=40).filter(lambda v: v.strip() != headers[name].strip()))
    with pytest.raises(AuthenticationError):
        _verify({**headers, name: value})
    body = data.draw(st.binary(max_size=64).filter(lambda b: b != b"{}"))
    with pytest.raises(AuthenticationError):
        _verify(headers, body)


SMALL = ImageLimits(max_bytes=1 << 20, max_pixels=4_000_000)


def _seed_images(photos: dict[str, Path]) -> list[bytes]:
    from PIL import Image as PILImage

    out = []
    with PILImage.open(photos["obama.jpg"]) as img:
        small = img.convert("RGB").resize((96, 96))
        for fmt in ("PNG", "JPEG", "BMP", "WEBP"):
            buffer = io.BytesIO()
            small.save(buffer, format=fmt)
            out.append(buffer.getvalue())
    return out


@pytest.fixture(scope="module")
def seeds(photos: dict[str, Path]) -> list[bytes]:
    return _seed_images(photos)


def test_the_decoder_seeds_decode(seeds: list[bytes]) -> None:
    for data in seeds:
        assert load_image(data, SMALL).width == 96


@BOUNDED
@given(data=st.data())
def test_the_decoder_answers_damaged_images_with_a_typed_error(seeds: list[bytes], data: st.DataObject) -> None:
    original = bytearray(data.draw(st.sampled_from(seeds)))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(original) - 1))
        original[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(original)))
    try:
        image = load_image(bytes(original[: cut or len(original)]), SMALL)
        assert image.width * image.height <= SMALL.max_pixels
    except FacetraceError:
        pass


@BOUNDED
@given(blob=st.binary(max_size=2048))
def test_the_decoder_answers_random_bytes_with_a_typed_error(blob: bytes) -> None:
    with pytest.raises(FacetraceError):
        load_image(blob, SMALL)


@BOUNDED
@given(source=st.text(max_size=120) | st.builds(lambda s: "rtsp://" + s, st.text(max_size=80)))
def test_the_source_policy_admits_only_allow_listed_non_sensitive_sources(source: str) -> None:
    policy = SourcePolicy(("rtsp://10.0.0.*/**", "rtsp://*/open/**"), resolver=lambda host: [host])
    try:
        admitted = policy.check(source)
    except InvalidParameterError:
        return
    assert admitted == source
    assert "/../" not in source
    host = source.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2].split(":")[0]
    assert not is_sensitive_address(host.strip("[]")) or host.startswith("10.0.0.")
