"""CreateCollection, DeleteCollection, DescribeCollection, ListCollections."""

from __future__ import annotations

from typing import Any

from facetrace.service.operations import Context, Permission, operation
from facetrace.service.shapes import collection_arn

JSON = dict[str, Any]
DEFAULT_PAGE = 1000


@operation("CreateCollection", Permission.ADMIN)
def create_collection(ctx: Context, request: JSON) -> JSON:
    # Tags are accepted and not stored: facetrace has no tagging.
    info = ctx.gallery.create_collection(request["CollectionId"], caller=ctx.caller)
    return {
        "StatusCode": 200,
        "CollectionArn": collection_arn(ctx.config, info.collection_id),
        "FaceModelVersion": info.model,
    }


@operation("DeleteCollection", Permission.ADMIN)
def delete_collection(ctx: Context, request: JSON) -> JSON:
    ctx.gallery.delete_collection(request["CollectionId"], caller=ctx.caller)
    return {"StatusCode": 200}


@operation("DescribeCollection", Permission.READ)
def describe_collection(ctx: Context, request: JSON) -> JSON:
    info = ctx.gallery.describe_collection(request["CollectionId"])
    return {
        "FaceCount": info.face_count,
        "UserCount": info.user_count,
        "FaceModelVersion": info.model,
        "CollectionARN": collection_arn(ctx.config, info.collection_id),
        "CreationTimestamp": info.created_at,
    }


@operation("ListCollections", Permission.READ, collection_param=None)
def list_collections(ctx: Context, request: JSON) -> JSON:
    """A key limited to collections sees only those (a page may then hold fewer than MaxResults)."""
    page = ctx.gallery.list_collections(
        limit=request.get("MaxResults") or DEFAULT_PAGE, next_token=request.get("NextToken")
    )
    visible = [c for c in page.items if ctx.key.sees(c)]
    models = [ctx.gallery.describe_collection(c).model for c in visible]
    response: JSON = {"CollectionIds": visible, "FaceModelVersions": models}
    if page.next_token is not None:
        response["NextToken"] = page.next_token
    return response
