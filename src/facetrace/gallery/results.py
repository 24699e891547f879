"""What the gallery's operations return: frozen records, one per Rekognition response shape."""

from __future__ import annotations

from dataclasses import dataclass

from facetrace.engine import AnalyzedFace
from facetrace.types import FaceMatch, FaceRecord, UserMatch, UserRecord

__all__ = [
    "Association",
    "Deletion",
    "Disassociation",
    "FaceSearch",
    "ImageSearch",
    "IndexResult",
    "IndexedFace",
    "UnindexedFace",
    "UnsuccessfulFace",
    "UserImageSearch",
    "UserSearch",
]


@dataclass(frozen=True, slots=True)
class IndexedFace:
    record: FaceRecord
    face: AnalyzedFace


@dataclass(frozen=True, slots=True)
class UnindexedFace:
    face: AnalyzedFace
    reasons: tuple[str, ...]  # UnindexedReason values (and FACE_NOT_LARGEST for unsearched faces)


@dataclass(frozen=True, slots=True)
class IndexResult:
    indexed: tuple[IndexedFace, ...]
    unindexed: tuple[UnindexedFace, ...]
    model: str
    image_id: str


@dataclass(frozen=True, slots=True)
class UnsuccessfulFace:
    face_id: str
    reasons: tuple[str, ...]
    user_id: str | None = None
    similarity: float | None = None


@dataclass(frozen=True, slots=True)
class Deletion:
    deleted: tuple[str, ...]
    unsuccessful: tuple[UnsuccessfulFace, ...]


@dataclass(frozen=True, slots=True)
class FaceSearch:
    searched_face_id: str
    matches: tuple[FaceMatch, ...]  # empty means: no match at or above the threshold
    model: str


@dataclass(frozen=True, slots=True)
class ImageSearch:
    searched_face: AnalyzedFace
    matches: tuple[FaceMatch, ...]
    model: str


@dataclass(frozen=True, slots=True)
class Association:
    associated: tuple[str, ...]
    unsuccessful: tuple[UnsuccessfulFace, ...]
    user: UserRecord


@dataclass(frozen=True, slots=True)
class Disassociation:
    disassociated: tuple[str, ...]
    unsuccessful: tuple[UnsuccessfulFace, ...]
    user: UserRecord


@dataclass(frozen=True, slots=True)
class UserSearch:
    matches: tuple[UserMatch, ...]
    searched_face_id: str | None
    searched_user_id: str | None
    model: str


@dataclass(frozen=True, slots=True)
class UserImageSearch:
    searched_face: AnalyzedFace
    matches: tuple[UserMatch, ...]
    unsearched: tuple[UnindexedFace, ...]
    model: str
