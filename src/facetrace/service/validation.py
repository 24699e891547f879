"""Requests checked against botocore's Rekognition service model, every violation reported at once.

The contract is data (``botocore/data/rekognition/2016-06-27/service-2.json``): required members, string
lengths and patterns, enums, numeric ranges, list and map sizes, and JSON types. ``validate`` walks an
operation's input shape, collects every problem, and raises one ``InvalidParameterError`` whose message lists
them in AWS's words ("2 validation errors detected: Value '' at 'CollectionId' failed to satisfy
constraint: ..."). It returns a copy of the request with blobs base64-decoded to ``bytes``.

Members the model does not define are ignored (as AWS does, so newer SDKs keep working). A blob over its
maximum size is an ``ImageTooLargeError`` (the only blobs these operations take are images). Values are
echoed in messages only when short, and blob contents never.
"""

from __future__ import annotations

import binascii
import copy
import functools
import json
import math
import re
from importlib import resources
from typing import Any

import botocore.session
import pybase64
from botocore.model import ServiceModel, Shape, StructureShape

from facetrace.errors import ImageTooLargeError, InvalidParameterError

__all__ = ["own_operations", "service_model", "validate"]

_ECHO_LIMIT = 64
_MAX_VIOLATIONS = 20


@functools.cache
def service_model() -> ServiceModel:
    """Rekognition's 2016-06-27 model as shipped with the installed botocore, with facetrace's own operations
    (the review queue and unknown people, ``facetrace/data/facetrace-operations.json``) merged in: they are
    validated, signed and dispatched exactly as Rekognition's are."""
    session = botocore.session.get_session()
    data = copy.deepcopy(
        session.get_component("data_loader").load_service_model("rekognition", "service-2", "2016-06-27")
    )
    own = json.loads(resources.files("facetrace.data").joinpath(OWN_OPERATIONS).read_text(encoding="utf-8"))
    clash = (set(own["operations"]) & set(data["operations"])) | (set(own["shapes"]) & set(data["shapes"]))
    if clash:  # a newer botocore defined one of ours: ours must be renamed, never silently shadow AWS's
        raise RuntimeError(f"facetrace's own operations clash with Rekognition's: {sorted(clash)}")
    data["operations"].update(own["operations"])
    data["shapes"].update(own["shapes"])
    return ServiceModel(data, service_name="rekognition")


OWN_OPERATIONS = "facetrace-operations.json"


@functools.cache
def own_operations() -> frozenset[str]:
    """The operations facetrace adds beside Rekognition's (X-Amz-Target ``RekognitionService.<name>`` or
    ``Facetrace.<name>``)."""
    own = json.loads(resources.files("facetrace.data").joinpath(OWN_OPERATIONS).read_text(encoding="utf-8"))
    return frozenset(own["operations"])


# Java's Unicode classes, which Python's ``re`` lacks, widened to the nearest class it has (never stricter).
_JAVA_CLASSES = {r"\p{L}": r"\w", r"\p{N}": r"\d", r"\p{Z}": r"\s"}


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str] | None:
    """The compiled pattern; None (no check) if even the widened form does not compile."""
    for java, python in _JAVA_CLASSES.items():
        pattern = pattern.replace(java, python)
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _echo(value: object) -> str:
    if value is None:
        return "null"
    text = repr(value) if not isinstance(value, str) else "'" + value + "'"
    return text if len(text) <= _ECHO_LIMIT else text[: _ECHO_LIMIT - 3] + "..."


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.too_large: list[str] = []

    def fail(self, path: str, value: object, rule: str) -> None:
        self.problems.append(f"Value {_echo(value)} at '{path}' failed to satisfy constraint: {rule}")

    def check(self, shape: Shape, value: Any, path: str) -> Any:
        kind = shape.type_name
        checker = getattr(self, f"_{kind}", None)
        if checker is None:  # timestamp and others no face operation takes: accept as sent
            return value
        return checker(shape, value, path)

    def _structure(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            self.fail(path, _type_name(value), "Member must be a structure (a JSON object)")
            return None
        assert isinstance(shape, StructureShape)
        out: dict[str, Any] = {}
        for name in shape.required_members:
            if value.get(name) is None:
                self.fail(_join(path, name), None, "Member must not be null")
        for name, member in shape.members.items():
            if name in value and value[name] is not None:
                out[name] = self.check(member, value[name], _join(path, name))
        return out

    def _list(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, list):
            self.fail(path, _type_name(value), "Member must be a list")
            return None
        self._length(shape, value, len(value), path, "length")
        member = shape.member
        return [self.check(member, item, f"{path}.{index + 1}") for index, item in enumerate(value)]

    def _map(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            self.fail(path, _type_name(value), "Member must be a map (a JSON object)")
            return None
        self._length(shape, value, len(value), path, "length")
        key_shape, value_shape = shape.key, shape.value
        return {
            self.check(key_shape, key, f"{path}.key"): self.check(value_shape, item, f"{path}.{key}")
            for key, item in value.items()
        }

    def _string(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            self.fail(path, _type_name(value), "Member must be a string")
            return None
        meta = shape.metadata
        if not self._length(shape, value, len(value), path, "length"):
            return value
        enum = shape.enum
        if enum and value not in enum:
            self.fail(path, value, "Member must satisfy enum value set: [" + ", ".join(enum) + "]")
        elif "pattern" in meta:
            compiled = _pattern(meta["pattern"])
            if compiled is not None and compiled.fullmatch(value) is None:
                self.fail(path, value, f"Member must satisfy regular expression pattern: {meta['pattern']}")
        return value

    def _integer(self, shape: Shape, value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, value if _short(value) else _type_name(value), "Member must be an integer")
            return None
        self._range(shape, value, path)
        return value

    _long = _integer

    def _float(self, shape: Shape, value: Any, path: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.fail(path, value if _short(value) else _type_name(value), "Member must be a number")
            return None
        self._range(shape, value, path)
        return float(value)

    _double = _float

    def _boolean(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, bool):
            self.fail(path, value if _short(value) else _type_name(value), "Member must be a boolean")
            return None
        return value

    def _blob(self, shape: Shape, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            self.fail(path, _type_name(value), "Member must be base64-encoded bytes (a string)")
            return None
        meta = shape.metadata
        maximum = meta.get("max")
        if maximum is not None and len(value) > 4 * ((maximum + 2) // 3):
            self.too_large.append(f"{path} is larger than {maximum} bytes")
            return None
        try:
            data = pybase64.b64decode(value, validate=True)  # base64's semantics, SIMD: ~50x faster
        except (binascii.Error, ValueError):
            self.fail(path, "<bytes>", "Member must be valid base64")
            return None
        if len(data) < meta.get("min", 0):
            self.fail(path, "<bytes>", f"Member must have length greater than or equal to {meta['min']}")
        if maximum is not None and len(data) > maximum:
            self.too_large.append(f"{path} is {len(data)} bytes, larger than {maximum}")
        return data

    def _length(self, shape: Shape, value: object, size: int, path: str, what: str) -> bool:
        meta = shape.metadata
        if "min" in meta and size < meta["min"]:
            self.fail(path, value, f"Member must have {what} greater than or equal to {meta['min']}")
            return False
        if "max" in meta and size > meta["max"]:
            self.fail(path, value, f"Member must have {what} less than or equal to {meta['max']}")
            return False
        return True

    def _range(self, shape: Shape, value: float, path: str) -> None:
        meta = shape.metadata
        if "min" in meta and value < meta["min"]:
            self.fail(path, value, f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            self.fail(path, value, f"Member must have value less than or equal to {meta['max']}")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _short(value: object) -> bool:
    return isinstance(value, int | float | bool) or (isinstance(value, str) and len(value) <= _ECHO_LIMIT)


def _type_name(value: object) -> str:
    return {dict: "<object>", list: "<list>", str: "<string>", bool: "<boolean>", type(None): "null"}.get(
        type(value), "<number>"
    )


def validate(operation: str, request: object) -> dict[str, Any]:
    """Check ``request`` (decoded JSON) against ``operation``'s input shape; blobs come back as bytes."""
    shape = service_model().operation_model(operation).input_shape
    if shape is None:
        return {}
    checker = _Checker()
    result = checker.check(shape, request, "")
    if checker.problems:
        problems = checker.problems + checker.too_large
        count = len(problems)
        shown = problems[:_MAX_VIOLATIONS]
        more = f"; and {count - len(shown)} more" if count > len(shown) else ""
        noun = "error" if count == 1 else "errors"
        raise InvalidParameterError(f"{count} validation {noun} detected: " + "; ".join(shown) + more)
    if checker.too_large:
        raise ImageTooLargeError("; ".join(checker.too_large))
    assert isinstance(result, dict)
    return result
