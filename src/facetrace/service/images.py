"""Rekognition's ``Image`` parameter → encoded image bytes: inline ``Bytes`` or an ``S3Object``.

facetrace does not talk to S3. A bucket is a local folder named with ``--bucket NAME=PATH``; an object's
``Name`` is a ``/``-separated path inside it. Names with empty, ``.`` or ``..`` segments are refused, and so is
anything that resolves (through symlinks) outside the bucket's folder. Missing buckets or objects answer
``InvalidS3ObjectException`` as Rekognition does; object versions are not supported.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from facetrace.errors import ImageTooLargeError, InvalidParameterError
from facetrace.service.errors import ServiceError

__all__ = ["ImageResolver", "check_bucket_name"]

_BUCKET = re.compile(r"[0-9A-Za-z.\-_]{3,255}")


def check_bucket_name(name: str) -> str:
    if _BUCKET.fullmatch(name) is None:
        raise ValueError(f"bucket name {name!r} must be 3–255 characters from 0-9 A-Z a-z . - _")
    return name


def _s3_error(detail: str) -> ServiceError:
    return ServiceError(
        "InvalidS3ObjectException",
        f"Unable to get object metadata from S3. Check object key, region and/or access permissions. ({detail})",
    )


class ImageResolver:
    """Turns a validated ``Image`` member into bytes, reading S3 objects from mapped folders."""

    def __init__(self, buckets: dict[str, Path], max_bytes: int) -> None:
        self._buckets = {name: Path(path).resolve() for name, path in buckets.items()}
        self._max_bytes = max_bytes

    def load(self, image: dict[str, Any]) -> bytes:
        data, s3 = image.get("Bytes"), image.get("S3Object")
        if (data is None) == (s3 is None):
            raise InvalidParameterError("Image must have exactly one of Bytes and S3Object")
        if isinstance(data, bytes):
            return data
        assert isinstance(s3, dict)
        return self.read_object(s3)

    def path_of(self, s3: dict[str, Any]) -> Path:
        """The local file for an S3Object, or ``InvalidS3ObjectException``; never outside the bucket."""
        bucket, name = s3.get("Bucket"), s3.get("Name")
        if not bucket or not name:
            raise _s3_error("S3Object needs Bucket and Name")
        if s3.get("Version") is not None:
            raise _s3_error("object versions are not supported")
        root = self._buckets.get(bucket)
        if root is None:
            raise _s3_error(f"no bucket named {bucket!r} is configured")
        parts = name.split("/")
        if any(part in ("", ".", "..") or "\0" in part for part in parts):
            raise _s3_error("object names may not have empty, '.' or '..' segments")
        path = root.joinpath(*parts)
        try:
            resolved = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise _s3_error("no such object") from None
        if not resolved.is_relative_to(root) or not resolved.is_file():
            raise _s3_error("no such object")
        return resolved

    def read_object(self, s3: dict[str, Any]) -> bytes:
        path = self.path_of(s3)
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size > self._max_bytes:
                    raise ImageTooLargeError(f"the object is {size} bytes, over the {self._max_bytes}-byte limit")
                return handle.read(self._max_bytes + 1)
        except OSError:
            raise _s3_error("the object cannot be read") from None
