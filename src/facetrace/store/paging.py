"""Opaque pagination tokens shared by the store implementations.

Listings are keyset-paginated: a token carries the last key of the previous page, so a page never repeats or
skips an item that existed through the whole listing, however the collection changes between pages (an
offset would shift under concurrent inserts). The token also carries a digest of the listing it came from
(which collection, which filter), so a token replayed against another listing is rejected with
``InvalidParameterError`` instead of silently returning a wrong page. Tokens are base64url so they travel
in JSON and URLs unchanged; they are not secret and not signed: forging one only lets a caller start a listing
at a key of their choosing, which the API allows anyway.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re

from facetrace.errors import InvalidPaginationTokenError, InvalidParameterError

__all__ = ["check_limit", "decode_name_token", "decode_token", "encode_token", "listing_scope"]

_VERSION = 1
_COLLECTION_NAME = re.compile(r"[a-zA-Z0-9_.\-]{1,255}")


def listing_scope(*parts: object) -> str:
    """A short digest naming one listing (e.g. ``("faces", collection, user_id, face_ids)``)."""
    raw = json.dumps([str(p) if p is not None else None for p in parts], separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def encode_token(scope: str, last_key: str) -> str:
    """A token that resumes the listing ``scope`` after ``last_key``."""
    raw = json.dumps([_VERSION, scope, last_key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str | None, scope: str) -> str | None:
    """The key to resume after, or None for the first page; ``InvalidParameterError`` for a bad token."""
    if token is None:
        return None
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise InvalidPaginationTokenError("invalid pagination token")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        version, token_scope, last_key = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        raise InvalidPaginationTokenError("invalid pagination token") from None
    if version != _VERSION or token_scope != scope or not isinstance(last_key, str):
        raise InvalidPaginationTokenError("invalid pagination token: it belongs to another listing")
    return last_key


def decode_name_token(token: str | None) -> str | None:
    """The collection name a ListCollections page token resumes after, or None for the first page.

    Collection listings use the last name itself as the token: a collection id may be 255 characters and
    Rekognition caps NextToken at 255, so a wrapped token (JSON + base64 + scope) would not fit. Names are
    already URL- and JSON-safe; a name from any other listing merely starts this one at that point.
    """
    if token is None:
        return None
    if not isinstance(token, str) or _COLLECTION_NAME.fullmatch(token) is None:
        raise InvalidPaginationTokenError("invalid pagination token")
    return token


def check_limit(limit: int) -> int:
    """Page sizes are at least one item; the API layer enforces its own maximum."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidParameterError(f"limit must be a positive integer, not {limit!r}")
    return limit
