"""Pagination tokens: they round-trip, belong to one listing, and anything else is an invalid parameter."""

from __future__ import annotations

import base64
import json

import pytest

from facetrace.errors import InvalidParameterError
from facetrace.store.paging import check_limit, decode_token, encode_token, listing_scope


def test_round_trip_and_scope() -> None:
    scope = listing_scope("faces", "c", None, None)
    token = encode_token(scope, "some-face-id")
    assert decode_token(token, scope) == "some-face-id"
    assert decode_token(None, scope) is None
    assert "some-face-id" not in token  # opaque, URL-safe
    assert token.replace("-", "").replace("_", "").isalnum()
    with pytest.raises(InvalidParameterError):
        decode_token(token, listing_scope("faces", "c", "user", None))
    assert listing_scope("faces", "c", None, ["a"]) != listing_scope("faces", "c", None, None)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "%%%",
        "x" * 5000,
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        base64.urlsafe_b64encode(json.dumps([1, "s"]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps([2, "s", "k"]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps([1, "s", 5]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps(7).encode()).decode(),
    ],
)
def test_malformed_tokens(token: str) -> None:
    with pytest.raises(InvalidParameterError):
        decode_token(token, "s")


@pytest.mark.parametrize("limit", [0, -3, True, 2.5])
def test_bad_limits(limit: object) -> None:
    with pytest.raises(InvalidParameterError):
        check_limit(limit)  # type: ignore[arg-type]
    assert check_limit(1) == 1
