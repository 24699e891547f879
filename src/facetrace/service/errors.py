"""Library errors → Rekognition's error ``__type`` and HTTP status: one table, applied in one place.

``aws_error(exc)`` is the only translation; ``middleware/errors.py`` calls it for anything a handler or a
middleware raises, and the response is ``{"__type": ..., "Message": ...}`` with the status below, which is
what botocore needs to raise the modelled exception class (``client.exceptions.InvalidParameterException``).

Errors that exist only on the wire (an unknown ``X-Amz-Target``, an S3 object that cannot be read) are
``ServiceError`` with the AWS code spelled out; they are still ``FacetraceError`` so nothing else is special.
"""

from __future__ import annotations

import logging
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

__all__ = ["ERROR_TABLE", "AwsError", "ServiceError", "aws_error"]

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
                if entry[1] >= 500:
                    log.error("%s: %s", type(exc).__name__, exc.message)
                return AwsError(entry[0], entry[1], exc.message)
    log.error("unexpected error while handling a request", exc_info=exc)
    return _INTERNAL
