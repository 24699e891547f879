"""SearchFaces, SearchFacesByImage.

An omitted FaceMatchThreshold keeps the library's default (``facetrace.gallery.DEFAULT_MATCH_THRESHOLD``,
99), which is stricter than Rekognition's documented 80: facetrace errs towards "no match" (docs/server.md).
"""

from __future__ import annotations

from typing import Any

from facetrace import shapes
from facetrace.service.operations import Context, Permission, operation
from facetrace.service.shapes import given

JSON = dict[str, Any]
_SEARCH = {"MaxFaces": "max_faces", "FaceMatchThreshold": "threshold"}


@operation("SearchFaces", Permission.READ)
def search_faces(ctx: Context, request: JSON) -> JSON:
    result = ctx.gallery.search_faces(
        request["CollectionId"], request["FaceId"], caller=ctx.caller, **given(request, _SEARCH)
    )
    return {
        "SearchedFaceId": result.searched_face_id,
        "FaceMatches": [shapes.face_match(match) for match in result.matches],
        "FaceModelVersion": result.model,
    }


@operation("SearchFacesByImage", Permission.READ)
def search_faces_by_image(ctx: Context, request: JSON) -> JSON:
    result = ctx.gallery.search_faces_by_image(
        request["CollectionId"],
        ctx.images.load(request["Image"]),
        caller=ctx.caller,
        **given(request, {**_SEARCH, "QualityFilter": "quality_filter"}),
    )
    detail = result.searched_face.detail
    return {
        "SearchedFaceBoundingBox": shapes.bounding_box(detail.bounding_box),
        "SearchedFaceConfidence": detail.confidence,
        "FaceMatches": [shapes.face_match(match) for match in result.matches],
        "FaceModelVersion": result.model,
    }
