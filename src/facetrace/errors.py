"""Every error facetrace raises on purpose, rooted at one base class.

Third-party failures (OpenCV, Pillow, onnxruntime, SQLite, PyAV) are translated into this tree at the
boundary where they happen, so callers only ever catch facetrace errors. The HTTP service maps these classes
onto Rekognition's ``__type`` names in one table (``facetrace.service.errors``); nothing here knows about HTTP.

    FacetraceError
    ├── InvalidInputError               bad input from outside: the caller can fix it
    │   ├── InvalidParameterError       a value out of range, malformed id, bad option
    │   ├── NoFaceError                 an operation needed a face and the image has none
    │   └── ImageError
    │       ├── InvalidImageFormatError not an image, truncated, empty, unsupported format
    │       ├── ImageTooLargeError      too many bytes or too many pixels (decompression bomb)
    │       └── ImageTooSmallError      a side shorter than the minimum
    ├── NotFoundError                   collection, face, user, job or processor does not exist
    ├── AlreadyExistsError              it exists already
    ├── ConflictError                   the resource is in a state that forbids the request
    ├── AccessDeniedError               authenticated, but not allowed
    ├── AuthenticationError             the request's signature or key is not valid
    ├── ThrottlingError                 too many requests, or the server is saturated
    ├── ModelError
    │   ├── ModelNotInstalledError      weights are not on this machine (run ``facetrace models fetch``)
    │   ├── ModelLoadError              the file is there but cannot be loaded or has the wrong shape
    │   └── ModelMismatchError          vectors of two different models were about to be compared
    ├── StoreError                      storage failed (disk full, corrupt database)
    ├── StreamError                     a video source failed
    │   ├── SourceOpenError             cannot open the source
    │   └── StreamStalledError          no frame arrived within the stall timeout
    └── ClusterError                    the Ray cluster cannot be joined, or a task on it failed
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "AlreadyExistsError",
    "AuthenticationError",
    "ClusterError",
    "ConflictError",
    "FacetraceError",
    "ImageError",
    "ImageFileError",
    "ImageTooLargeError",
    "ImageTooSmallError",
    "InvalidImageFormatError",
    "InvalidInputError",
    "InvalidParameterError",
    "ModelError",
    "ModelLoadError",
    "ModelMismatchError",
    "ModelNotInstalledError",
    "NoFaceError",
    "NotFoundError",
    "SourceOpenError",
    "StoreError",
    "StreamError",
    "StreamStalledError",
    "ThrottlingError",
]


class FacetraceError(Exception):
    """Base of every error facetrace raises deliberately.

    ``message`` is safe to show to the caller: it never contains secrets or image bytes.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInputError(FacetraceError):
    """The input cannot be used; the caller can fix it and retry."""


class InvalidParameterError(InvalidInputError):
    """A parameter is missing, malformed or out of range."""


class InvalidPaginationTokenError(InvalidParameterError):
    """A NextToken that no listing gave out, or one from another listing (InvalidPaginationTokenException)."""


class NoFaceError(InvalidInputError):
    """The operation needs a face and none was found in the image."""


class ImageError(InvalidInputError):
    """The image itself is unusable."""


class InvalidImageFormatError(ImageError):
    """Not an image, truncated, empty, or in a format facetrace does not read."""


class ImageFileError(ImageError):
    """The image file is missing, unreadable or not a regular file (not a problem of its contents)."""


class ImageTooLargeError(ImageError):
    """More bytes or more pixels than the configured limits allow."""


class ImageTooSmallError(ImageError):
    """A side of the image is shorter than the minimum."""


class NotFoundError(FacetraceError):
    """The named collection, face, user, job or processor does not exist."""


class AlreadyExistsError(FacetraceError):
    """A resource with that name exists already."""


class ConflictError(FacetraceError):
    """The resource's current state forbids the request (e.g. deleting a running processor)."""


class AccessDeniedError(FacetraceError):
    """The caller is known but lacks the permission for this operation or collection."""


class AuthenticationError(FacetraceError):
    """The request is not signed, or its signature, key or date is not valid.

    ``code`` names the specific AWS signature failure (e.g. ``InvalidSignatureException``).
    """

    def __init__(self, message: str, code: str = "UnrecognizedClientException") -> None:
        super().__init__(message)
        self.code = code


class ThrottlingError(FacetraceError):
    """Too many requests for this key, or the server is saturated; retry later."""


class ModelError(FacetraceError):
    """A face model cannot be used."""


class ModelNotInstalledError(ModelError):
    """The model's weights are not on this machine."""


class ModelLoadError(ModelError):
    """The model file exists but cannot be loaded or does not have the expected inputs and outputs."""


class ModelMismatchError(ModelError):
    """Two face vectors come from different models and must not be compared."""


class StoreError(FacetraceError):
    """The storage backend failed; nothing acknowledged before the failure is lost."""


class StreamError(FacetraceError):
    """A video source failed."""


class SourceOpenError(StreamError):
    """The video source cannot be opened (missing file, refused connection, unknown format)."""


class StreamStalledError(StreamError):
    """A live source delivered no frame within its stall timeout."""


class ClusterError(FacetraceError):
    """The Ray cluster cannot be joined, or work sent to it failed (a worker died, a task raised)."""
