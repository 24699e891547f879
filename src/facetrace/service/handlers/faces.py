"""IndexFaces, ListFaces, DeleteFaces."""

from __future__ import annotations

from typing import Any

from facetrace import shapes
from facetrace.service.operations import Context, Permission, operation
from facetrace.service.shapes import detail_attributes, given, unindexed_face, unsuccessful_face

JSON = dict[str, Any]
DEFAULT_PAGE = 1000


@operation("IndexFaces", Permission.WRITE)
def index_faces(ctx: Context, request: JSON) -> JSON:
    detail_attributes(request.get("DetectionAttributes"))
    result = ctx.gallery.index_faces(
        request["CollectionId"],
        ctx.images.load(request["Image"]),
        caller=ctx.caller,
        **given(
            request,
            {"ExternalImageId": "external_image_id", "MaxFaces": "max_faces", "QualityFilter": "quality_filter"},
        ),
    )
    return {
        "FaceRecords": [
            {"Face": shapes.face_record(item.record), "FaceDetail": shapes.face_detail(item.face.detail)}
            for item in result.indexed
        ],
        "FaceModelVersion": result.model,
        "UnindexedFaces": [unindexed_face(item) for item in result.unindexed],
    }


@operation("ListFaces", Permission.READ)
def list_faces(ctx: Context, request: JSON) -> JSON:
    collection_id = request["CollectionId"]
    page = ctx.gallery.list_faces(
        collection_id,
        limit=request.get("MaxResults") or DEFAULT_PAGE,
        **given(request, {"NextToken": "next_token", "UserId": "user_id", "FaceIds": "face_ids"}),
    )
    response: JSON = {
        "Faces": [shapes.face_record(face) for face in page.items],
        "FaceModelVersion": ctx.gallery.describe_collection(collection_id).model,
    }
    if page.next_token is not None:
        response["NextToken"] = page.next_token
    return response


@operation("DeleteFaces", Permission.WRITE)
def delete_faces(ctx: Context, request: JSON) -> JSON:
    result = ctx.gallery.delete_faces(request["CollectionId"], request["FaceIds"], caller=ctx.caller)
    return {
        "DeletedFaces": list(result.deleted),
        "UnsuccessfulFaceDeletions": [unsuccessful_face(item) for item in result.unsuccessful],
    }
