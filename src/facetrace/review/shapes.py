"""Review items and unknown people as JSON (PascalCase, like Rekognition's shapes), made once here for both the
CLI (``--json``) and the service, so they cannot drift apart."""

from __future__ import annotations

import base64
from typing import Any

from facetrace import shapes
from facetrace.calibration import false_match_rate
from facetrace.store.records import ReviewCandidate, ReviewDecision, ReviewItem, UnknownFace, UnknownPerson

__all__ = ["candidate_dict", "decision_dict", "review_item_dict", "unknown_face_dict", "unknown_person_dict"]


def candidate_dict(candidate: ReviewCandidate) -> dict[str, Any]:
    """One candidate with what its similarity means: the false match rate of a threshold set there."""
    data: dict[str, Any] = {
        "Person": candidate.person,
        "FaceId": candidate.face_id,
        "Similarity": candidate.similarity,
        "FalseMatchRate": float(f"{false_match_rate(candidate.similarity):.2g}"),
    }
    if candidate.user_id:
        data["UserId"] = candidate.user_id
    if candidate.external_image_id:
        data["ExternalImageId"] = candidate.external_image_id
    if candidate.rejected_by:
        data["RejectedBy"] = candidate.rejected_by
    return data


def review_item_dict(item: ReviewItem, *, thumbnails: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "ReviewItemId": item.item_id,
        "CollectionId": item.collection_id,
        "Status": item.status,
        "Source": item.source,
        "Camera": item.camera,
        "TrackId": item.track_id,
        "StartedAt": round(item.started_at, 3),
        "EndedAt": round(item.ended_at, 3),
        "StartStreamTimeMillis": item.start_stream_ms,
        "EndStreamTimeMillis": item.end_stream_ms,
        "ReviewThreshold": item.review_threshold,
        "FaceMatchThreshold": item.match_threshold,
        "Candidates": [candidate_dict(c) for c in item.candidates],
        "CreatedAt": round(item.created_at, 3),
        "ExpiresAt": round(item.expires_at, 3),
    }
    if item.bounding_box is not None:
        data["BoundingBox"] = shapes.bounding_box(item.bounding_box)
    for key, value in (
        ("DecidedAt", item.decided_at), ("DecidedBy", item.decided_by), ("ConfirmedPerson", item.confirmed_person),
        ("SightingId", item.sighting_id), ("EnrolledFaceId", item.enrolled_face_id),
    ):  # fmt: skip
        if value is not None:
            data[key] = value
    if thumbnails:
        data["Thumbnails"] = [base64.b64encode(jpeg).decode("ascii") for jpeg in item.thumbnails]
    return data


def decision_dict(decision: ReviewDecision) -> dict[str, Any]:
    data: dict[str, Any] = {
        "Action": decision.action,
        "Person": decision.person,
        "Reviewer": decision.reviewer,
        "DecidedAt": round(decision.decided_at, 3),
    }
    if decision.reason:
        data["Reason"] = decision.reason
    return data


def unknown_person_dict(person: UnknownPerson) -> dict[str, Any]:
    data: dict[str, Any] = {
        "UnknownId": person.unknown_id,
        "Number": person.number,
        "CollectionId": person.collection_id,
        "Seen": person.seen,
        "Cameras": list(person.cameras),
        "FirstSeen": round(person.first_seen, 3),
        "LastSeen": round(person.last_seen, 3),
        "ExpiresAt": round(person.expires_at, 3),
    }
    if person.named_user is not None:
        data["UserId"] = person.named_user
    return data


def unknown_face_dict(face: UnknownFace, *, thumbnail: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "Source": face.source,
        "Camera": face.camera,
        "TrackId": face.track_id,
        "SeenAt": round(face.seen_at, 3),
        "Weight": round(face.weight, 4),
    }
    if thumbnail and face.thumbnail is not None:
        data["Thumbnail"] = base64.b64encode(face.thumbnail).decode("ascii")
    return data
