"""Library errors → Rekognition's error ``__type`` and HTTP status: one table, applied in one place.

``aws_error(exc)`` is the only translation; ``middleware/errors.py`` calls it for anything a handler or a
middleware raises, and the response is ``{"__type": ..., "Message": ...}`` with the status below, which is
what botocore needs to raise the modelled exception class (``client.exceptions.InvalidParameterException``).

Errors that exist only on the wire (an unknown ``X-Amz-Target``, an S3 object that cannot be read) are
``ServiceError`` with the AWS code spelled out; they are still ``FacetraceError`` so nothing else is special.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from facetrace.errors import (
    AccessDeniedError,
    AlreadyExistsError,
    AuthenticationError,
    ConflictError,
    FacetraceError,
    ImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    InvalidImageFormatError,
    InvalidInputError,
    InvalidPaginationTokenError,
    ModelError,
    ModelMismatchError,
    NotFoundError,
    SourceOpenError,
    StoreError,
    StreamError,
    ThrottlingError,
)

__all__ = ["ERROR_TABLE", "AwsError", "ServiceError", "ThrottleLog", "aws_error"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AwsError:
    """What goes on the wire for one error."""

    type: str  # Rekognition's __type, e.g. InvalidParameterException
    status: int
    message: str


class ServiceError(FacetraceError):
    """An error that only exists on the wire, with its AWS code (e.g. ``UnknownOperationException``)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


ERROR_TABLE: dict[type[FacetraceError], tuple[str, int]] = {
    # The most specific class wins: lookup walks the exception's MRO.
    ImageTooLargeError: ("ImageTooLargeException", 400),
    InvalidImageFormatError: ("InvalidImageFormatException", 400),
    ImageTooSmallError: ("InvalidParameterException", 400),
    ImageError: ("InvalidImageFormatException", 400),
    InvalidPaginationTokenError: ("InvalidPaginationTokenException", 400),
    InvalidInputError: ("InvalidParameterException", 400),  # InvalidParameterError, NoFaceError
    NotFoundError: ("ResourceNotFoundException", 400),
    AlreadyExistsError: ("ResourceAlreadyExistsException", 400),
    ConflictError: ("ConflictException", 400),
    AccessDeniedError: ("AccessDeniedException", 400),
    ThrottlingError: ("ThrottlingException", 500),  # a fault in Rekognition's model: 5xx, and boto3 retries it
    ModelMismatchError: ("InvalidParameterException", 400),
    ModelError: ("InternalServerError", 500),
    StoreError: ("InternalServerError", 500),
    SourceOpenError: ("InvalidParameterException", 400),
    StreamError: ("InternalServerError", 500),
    FacetraceError: ("InternalServerError", 500),
}

SIGNATURE_STATUS = {"MissingAuthenticationTokenException": 403, "AccessDeniedException": 400}
"""HTTP status of the signature failures (``AuthenticationError.code``); anything not listed is 400."""


class ThrottleLog:
    """Throttling is the server working as designed, not a fault: one WARNING line per ``every`` seconds at
    most, counting the requests throttled since the last line (a flood of ERROR lines would bury real faults
    and fill the disk)."""

    def __init__(self, every: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self._lock = threading.Lock()
        self._since = 0
        self._last = -every

    def note(self, message: str) -> bool:
        """Count one throttled request; True when a line was logged."""
        with self._lock:
            self._since += 1
            now = self.clock()
            if now - self._last < self.every:
                return False
            count, self._since, self._last = self._since, 0, now
        log.warning("throttled %d request(s) in the last %.0f s; latest: %s", count, self.every, message)
        return True


_throttled = ThrottleLog()
_INTERNAL = AwsError("InternalServerError", 500, "Internal server error")


def aws_error(exc: BaseException) -> AwsError:
    """The wire form of ``exc``. Unexpected exceptions become InternalServerError without their details."""
    if isinstance(exc, ServiceError):
        return AwsError(exc.code, exc.status, exc.message)
    if isinstance(exc, AuthenticationError):
        return AwsError(exc.code, SIGNATURE_STATUS.get(exc.code, 400), exc.message)
    if isinstance(exc, FacetraceError):
        for cls in type(exc).__mro__:
            entry = ERROR_TABLE.get(cls)
            if entry is not None:
                if isinstance(exc, ThrottlingError):
                    _throttled.note(exc.message)
                elif entry[1] >= 500:
                    log.error("%s: %s", type(exc).__name__, exc.message)
                return AwsError(entry[0], entry[1], exc.message)
    log.error("unexpected error while handling a request", exc_info=exc)
    return _INTERNAL
