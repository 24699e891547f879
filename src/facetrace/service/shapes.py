"""Wire-only response pieces on top of ``facetrace.shapes`` (which the CLI shares).

``facetrace.shapes`` turns library records into Rekognition's record shapes (Face, FaceDetail, FaceMatch,
User...); this module adds what only responses need (ARNs, ComparedFace, the "unsuccessful" lists) and the
request → keyword-argument helper the handlers use to pass through only what the caller sent, so omitted
members keep the library's defaults.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from facetrace import shapes
from facetrace.errors import InvalidParameterError
from facetrace.gallery import UnindexedFace, UnsuccessfulFace
from facetrace.service.config import ServiceConfig

__all__ = [
    "collection_arn",
    "detail_attributes",
    "given",
    "unindexed_face",
    "unsearched_face",
    "unsuccessful_face",
]

JSON = dict[str, Any]

SUPPORTED_ATTRIBUTES = frozenset({"DEFAULT", "ALL"})


def given(request: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments for the members the caller sent (``{"MaxFaces": "max_faces"}``), nothing else."""
    return {kwarg: request[member] for member, kwarg in names.items() if request.get(member) is not None}


def detail_attributes(requested: Iterable[str] | None) -> None:
    """DEFAULT and ALL both mean what facetrace estimates; single attributes it does not estimate are refused."""
    unsupported = sorted(set(requested or ()) - SUPPORTED_ATTRIBUTES)
    if unsupported:
        raise InvalidParameterError(
            "facetrace estimates BoundingBox, Confidence, Landmarks, Pose and Quality only; "
            f"it does not estimate {', '.join(unsupported)} (use DEFAULT or ALL)"
        )


def collection_arn(config: ServiceConfig, collection_id: str) -> str:
    return f"arn:aws:rekognition:{config.region}:{config.account_id}:collection/{collection_id}"


def unindexed_face(item: UnindexedFace) -> JSON:
    return {"Reasons": list(item.reasons), "FaceDetail": shapes.face_detail(item.face.detail)}


def unsearched_face(item: UnindexedFace) -> JSON:
    return {"FaceDetails": shapes.face_detail(item.face.detail), "Reasons": list(item.reasons)}


def unsuccessful_face(item: UnsuccessfulFace, *, confidence: bool = False) -> JSON:
    data: JSON = {"FaceId": item.face_id, "Reasons": list(item.reasons)}
    if item.user_id is not None:
        data["UserId"] = item.user_id
    if confidence and item.similarity is not None:
        data["Confidence"] = round(item.similarity, 4)
    return data
