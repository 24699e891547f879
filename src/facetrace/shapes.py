"""Library records as Rekognition's JSON shapes (PascalCase dicts), shared by the CLI and the server.

One place decides how a ``FaceDetail`` or a ``FaceMatch`` looks on the outside, so ``facetrace search --json``
prints exactly what ``SearchFacesByImage`` returns on the wire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from facetrace.store.base import CollectionInfo
from facetrace.types import BoundingBox, FaceDetail, FaceMatch, FaceRecord, UserMatch, UserRecord

if TYPE_CHECKING:
    from facetrace.engine import Comparison

__all__ = [
    "bounding_box",
    "collection",
    "compare_faces",
    "face_detail",
    "face_match",
    "face_record",
    "user",
    "user_match",
]

JSON = dict[str, Any]


def bounding_box(box: BoundingBox) -> JSON:
    return {"Width": box.width, "Height": box.height, "Left": box.left, "Top": box.top}


def face_detail(detail: FaceDetail) -> JSON:
    """DetectFaces' FaceDetail with only what facetrace estimates (no age, gender, emotion, ethnicity)."""
    return {
        "BoundingBox": bounding_box(detail.bounding_box),
        "Landmarks": [{"Type": lm.type, "X": lm.x, "Y": lm.y} for lm in detail.landmarks],
        "Pose": {"Roll": detail.pose.roll, "Yaw": detail.pose.yaw, "Pitch": detail.pose.pitch},
        "Quality": {"Brightness": detail.quality.brightness, "Sharpness": detail.quality.sharpness},
        "Confidence": detail.confidence,
    }


def face_record(face: FaceRecord) -> JSON:
    """Rekognition's Face. ``IndexFacesModelVersion`` is left out: the service model wants ``[0-9.]+`` and
    facetrace's model keys (``sface-2021dec``) are not numbers; the response's ``FaceModelVersion`` names it."""
    data: JSON = {
        "FaceId": face.face_id,
        "BoundingBox": bounding_box(face.bounding_box),
        "ImageId": face.image_id,
        "Confidence": face.confidence,
    }
    if face.external_image_id is not None:
        data["ExternalImageId"] = face.external_image_id
    if face.user_id is not None:
        data["UserId"] = face.user_id
    return data


def face_match(match: FaceMatch) -> JSON:
    return {"Similarity": match.similarity, "Face": face_record(match.face)}


def user(record: UserRecord) -> JSON:
    return {"UserId": record.user_id, "UserStatus": record.status}


def user_match(match: UserMatch) -> JSON:
    return {"Similarity": match.similarity, "User": user(match.user)}


def collection(info: CollectionInfo) -> JSON:
    return {
        "CollectionId": info.collection_id,
        "FaceCount": info.face_count,
        "UserCount": info.user_count,
        "FaceModelVersion": info.model,
        "CreationTimestamp": info.created_at,
    }


def compare_faces(result: Comparison) -> JSON:
    """CompareFaces' response: the source face, matches (similarity rounded as on the wire), unmatched faces."""
    source = result.source.detail
    return {
        "SourceImageFace": {"BoundingBox": bounding_box(source.bounding_box), "Confidence": source.confidence},
        "FaceMatches": [
            {"Similarity": round(score, 4), "Face": face_detail(face.detail)} for face, score in result.matches
        ],
        "UnmatchedFaces": [face_detail(face.detail) for face, _ in result.unmatched],
    }
