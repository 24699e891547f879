"""CreateCollection, DeleteCollection, DescribeCollection, ListCollections."""

from __future__ import annotations

from typing import Any

from facetrace.errors import NotFoundError
from facetrace.service.operations import Context, Permission, operation
from facetrace.service.shapes import collection_arn
from facetrace.store.paging import decode_name_token

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
    """A key limited to collections pages through those of its collections that exist, and nothing else: its
    NextToken is always the name of a collection it may see (a token from the whole listing would name the
    next collection, hidden or not)."""
    limit = request.get("MaxResults") or DEFAULT_PAGE
    token = request.get("NextToken")
    if ctx.key.collections is not None:
        start = decode_name_token(token)
        names = sorted(c for c in set(ctx.key.collections) if start is None or c > start)
        visible: list[str] = []
        models: list[str] = []
        next_token: str | None = None
        for name in names:
            if len(visible) == limit:
                next_token = visible[-1]
                break
            try:
                models.append(ctx.gallery.describe_collection(name).model)
            except NotFoundError:
                continue
            visible.append(name)
        response: JSON = {"CollectionIds": visible, "FaceModelVersions": models}
        if next_token is not None:
            response["NextToken"] = next_token
        return response
    page = ctx.gallery.list_collections(limit=limit, next_token=token)
    response = {
        "CollectionIds": list(page.items),
        "FaceModelVersions": [ctx.gallery.describe_collection(c).model for c in page.items],
    }
    if page.next_token is not None:
        response["NextToken"] = page.next_token
    return response
