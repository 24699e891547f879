"""Validation of names and numbers that come from outside, with Rekognition's patterns and bounds.

The library validates every id it is given, so the CLI, the server and library users get the same clear
``InvalidParameterError`` instead of a store error or a silently odd record.
"""

from __future__ import annotations

import re

from facetrace.errors import InvalidParameterError

__all__ = [
    "check_collection_id",
    "check_external_image_id",
    "check_face_id",
    "check_face_ids",
    "check_int",
    "check_percent",
    "check_user_id",
]

_COLLECTION_ID = re.compile(r"[a-zA-Z0-9_.\-]{1,255}")
_EXTERNAL_IMAGE_ID = re.compile(r"[a-zA-Z0-9_.\-:]{1,255}")
_USER_ID = re.compile(r"[a-zA-Z0-9_.\-:]{1,128}")
_FACE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _check(pattern: re.Pattern[str], value: object, what: str, rule: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidParameterError(f"{what} {value!r} is not valid: {rule}")
    return value


def check_collection_id(value: object) -> str:
    return _check(_COLLECTION_ID, value, "collection id", "1–255 characters from a-z A-Z 0-9 _ . -")


def check_external_image_id(value: object) -> str:
    return _check(_EXTERNAL_IMAGE_ID, value, "external image id", "1–255 characters from a-z A-Z 0-9 _ . - :")


def check_user_id(value: object) -> str:
    return _check(_USER_ID, value, "user id", "1–128 characters from a-z A-Z 0-9 _ . - :")


def check_face_id(value: object) -> str:
    return _check(_FACE_ID, value, "face id", "a lowercase UUID")


def check_face_ids(values: object, *, maximum: int = 4096) -> list[str]:
    if not isinstance(values, list | tuple) or not 1 <= len(values) <= maximum:
        raise InvalidParameterError(f"face ids must be a list of 1–{maximum} ids")
    return [check_face_id(v) for v in values]


def check_percent(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 100.0:
        raise InvalidParameterError(f"{what} must be a number between 0 and 100, not {value!r}")
    return float(value)


def check_int(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParameterError(f"{what} must be an integer between {low} and {high}, not {value!r}")
    return value
