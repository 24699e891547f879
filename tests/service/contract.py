"""Check a raw JSON response against its output shape in botocore's model, strictly.

botocore's parser silently drops members it does not know and does not check enums, ranges or patterns, so a
wrong response could still "work" through boto3. Every response the tests receive goes through here (a
``before-parse`` hook), failing on: a member the shape does not define, a wrong JSON type, a value outside
its enum, range or pattern.
"""

from __future__ import annotations

import json
import re
from typing import Any

from botocore.model import Shape

from facetrace.service.validation import service_model


def problems(shape: Shape, value: Any, path: str = "$") -> list[str]:
    kind, meta = shape.type_name, shape.metadata
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        found = []
        for name, item in value.items():
            member = shape.members.get(name)  # type: ignore[attr-defined]
            if member is None:
                found.append(f"{path}.{name}: not a member of {shape.name}")
            else:
                found += problems(member, item, f"{path}.{name}")
        return found
    if kind == "list":
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        found = [f"{path}: {len(value)} items, max {meta['max']}"] if len(value) > meta.get("max", 1 << 60) else []
        for index, item in enumerate(value):
            found += problems(shape.member, item, f"{path}[{index}]")  # type: ignore[attr-defined]
        return found
    if kind == "string":
        if not isinstance(value, str):
            return [f"{path}: expected a string, got {value!r}"]
        if shape.enum and value not in shape.enum:
            return [f"{path}: {value!r} not in {shape.enum}"]
        if "pattern" in meta and re.fullmatch(meta["pattern"], value) is None:
            return [f"{path}: {value!r} does not match {meta['pattern']}"]
        if not meta.get("min", 0) <= len(value) <= meta.get("max", 1 << 60):
            return [f"{path}: length {len(value)} outside [{meta.get('min')}, {meta.get('max')}]"]
        return []
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{path}: expected an integer, got {value!r}"]
    elif kind in ("float", "double", "timestamp"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return [f"{path}: expected a number, got {value!r}"]
    elif kind == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: expected a boolean"]
    else:
        return []
    if kind != "timestamp" and not meta.get("min", -(1 << 60)) <= value <= meta.get("max", 1 << 60):
        return [f"{path}: {value} outside [{meta.get('min')}, {meta.get('max')}]"]
    return []


def check_response(operation: str, status: int, body: bytes) -> None:
    """Raise AssertionError if a successful response does not fit ``operation``'s output shape."""
    data = json.loads(body) if body else {}
    if status >= 300:
        assert set(data) <= {"__type", "Message", "message"}, data
        assert isinstance(data.get("__type"), str), data
        assert isinstance(data.get("Message"), str), data
        return
    shape = service_model().operation_model(operation).output_shape
    found = problems(shape, data) if shape is not None else ([] if not data else ["unexpected body"])
    assert not found, f"{operation} response does not fit the model: {found}"
