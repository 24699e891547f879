"""Rekognition's ``Image`` parameter → encoded image bytes: inline ``Bytes`` or an ``S3Object``.

facetrace does not talk to S3. A bucket is a local folder named with ``--bucket NAME=PATH``; an object's
``Name`` is a ``/``-separated path inside it. Names with empty, ``.`` or ``..`` segments are refused, and the object is opened one path component at a time relative to the bucket's
folder, never following a symbolic link (``os.open`` with ``dir_fd`` and ``O_NOFOLLOW``), so swapping a folder for
a link while the request runs cannot lead outside the bucket (a check of the resolved path followed by an open by
name could: 1 read in 400 escaped in the attack of issue 9). Links inside a bucket are therefore not served. Missing buckets or objects answer
``InvalidS3ObjectException`` as Rekognition does; object versions are not supported.
"""

from __future__ import annotations

import os
import re
import stat
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
        """The local file for an S3Object, or ``InvalidS3ObjectException``; never outside the bucket.

        For readers that open by name (FFmpeg for video jobs): the path is checked link-free at this moment;
        ``read_object`` reads through the checked descriptor itself and has no such window.
        """
        root, parts = self._locate(s3)
        os.close(self._open(root, parts))
        return root.joinpath(*parts)

    def _locate(self, s3: dict[str, Any]) -> tuple[Path, list[str]]:
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
        return root, parts

    @staticmethod
    def _open(root: Path, parts: list[str]) -> int:
        """A read-only descriptor of the regular file ``root/parts``, walked without following any link."""
        nofollow = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            raise _s3_error("no such object") from None
        try:
            for part in parts[:-1]:
                inner = os.open(part, nofollow | os.O_DIRECTORY, dir_fd=folder)
                os.close(folder)
                folder = inner
            leaf = os.open(parts[-1], nofollow | os.O_NONBLOCK, dir_fd=folder)  # NONBLOCK: a FIFO never hangs
        except OSError:
            raise _s3_error("no such object") from None
        finally:
            os.close(folder)
        if not stat.S_ISREG(os.fstat(leaf).st_mode):
            os.close(leaf)
            raise _s3_error("no such object")
        return leaf

    def read_object(self, s3: dict[str, Any]) -> bytes:
        root, parts = self._locate(s3)
        descriptor = self._open(root, parts)
        try:
            with os.fdopen(descriptor, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size > self._max_bytes:
                    raise ImageTooLargeError(f"the object is {size} bytes, over the {self._max_bytes}-byte limit")
                return handle.read(self._max_bytes + 1)
        except OSError:
            raise _s3_error("the object cannot be read") from None
