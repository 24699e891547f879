"""Rekognition's wire protocol (AWS JSON 1.1): the target header, JSON bodies, and error bodies.

- Requests: ``POST /``, ``X-Amz-Target: RekognitionService.<Operation>``, a JSON object body.
- Responses: ``application/x-amz-json-1.1``; errors are ``{"__type": code, "Message": text}`` with the code
  also in ``x-amzn-ErrorType`` (botocore reads either), and every response carries ``x-amzn-RequestId``.
- A body that is not a JSON object answers InvalidParameterException (AWS itself would say
  SerializationException, which botocore has no class for); NaN and Infinity are not JSON and are refused.
"""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

import numpy as np
from starlette.responses import Response
from starlette.types import Receive

from facetrace.errors import InvalidParameterError
from facetrace.service.errors import AwsError, ServiceError
from facetrace.service.validation import own_operations, service_model

__all__ = [
    "CONTENT_TYPE",
    "ERROR_TYPE_HEADER",
    "PURPOSE_HEADER",
    "REQUEST_ID_HEADER",
    "TARGET_PREFIX",
    "decode_body",
    "encode_body",
    "error_response",
    "json_response",
    "operation_name",
    "purpose",
    "read_body",
]

CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "RekognitionService."
OWN_TARGET_PREFIX = "Facetrace."  # facetrace's own operations may also be named so
REQUEST_ID_HEADER = "x-amzn-RequestId"
ERROR_TYPE_HEADER = "x-amzn-ErrorType"
PURPOSE_HEADER = "x-facetrace-purpose"
ACCEPTED_CONTENT_TYPES = ("application/x-amz-json-1.1", "application/x-amz-json-1.0", "application/json")
_BODY_KEY = "facetrace.body"
_MAX_PURPOSE = 256


async def read_body(scope: MutableMapping[str, Any], receive: Receive) -> bytes:
    """The whole request body, read once and kept in the scope for whoever asks next."""
    cached = scope.get(_BODY_KEY)
    if cached is not None:
        assert isinstance(cached, bytes)
        return cached
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    scope[_BODY_KEY] = body
    return body


def operation_name(target: str | None) -> str:
    """The operation an ``X-Amz-Target`` names; UnknownOperationException for anything not Rekognition's."""
    if target and target.startswith(TARGET_PREFIX):
        name = target[len(TARGET_PREFIX) :]
        if name in service_model().operation_names:
            return name
    if target and target.startswith(OWN_TARGET_PREFIX) and target[len(OWN_TARGET_PREFIX) :] in own_operations():
        return target[len(OWN_TARGET_PREFIX) :]
    raise ServiceError(
        "UnknownOperationException", "The X-Amz-Target header does not name a Rekognition operation"
    )


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_body(body: bytes, content_type: str | None) -> dict[str, Any]:
    """The request as a dict; InvalidParameterError for anything that is not a JSON object."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media and media not in ACCEPTED_CONTENT_TYPES:
        raise InvalidParameterError(f"Content-Type must be {CONTENT_TYPE}")
    if not body.strip():
        return {}
    try:
        value = json.loads(body, parse_constant=_no_constants)
    except (ValueError, RecursionError):  # includes UnicodeDecodeError and over-long integers
        raise InvalidParameterError("The request body is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidParameterError("The request body must be a JSON object")
    return value


def _jsonable(value: object) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_body(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":"), default=_jsonable, allow_nan=False).encode()


def json_response(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=CONTENT_TYPE)


def error_response(error: AwsError) -> Response:
    body = encode_body({"__type": error.type, "Message": error.message})
    return Response(
        body, status_code=error.status, media_type=CONTENT_TYPE, headers={ERROR_TYPE_HEADER: error.type}
    )


def purpose(value: str | None) -> str | None:
    """The caller's purpose or case reference (``X-Facetrace-Purpose``), checked before it reaches the audit."""
    if value is None or value == "":
        return None
    if len(value) > _MAX_PURPOSE or not value.isprintable():
        raise InvalidParameterError(f"X-Facetrace-Purpose must be at most {_MAX_PURPOSE} printable characters")
    return value
