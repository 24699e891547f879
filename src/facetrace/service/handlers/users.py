"""CreateUser, DeleteUser, ListUsers, AssociateFaces, DisassociateFaces, SearchUsers, SearchUsersByImage.

ClientRequestToken (boto3 always sends one) is handled by the dispatcher (``service/idempotency.py``): the
same token with the same parameters gets the first answer again; a new token runs the request again, so a
repeated CreateUser then answers ResourceAlreadyExistsException.
"""

from __future__ import annotations

from typing import Any

from facetrace import shapes
from facetrace.errors import AlreadyExistsError, ConflictError
from facetrace.service.operations import Context, Permission, operation
from facetrace.service.shapes import given, unsearched_face, unsuccessful_face

JSON = dict[str, Any]
DEFAULT_PAGE = 500
_SEARCH = {"MaxUsers": "max_users", "UserMatchThreshold": "threshold"}


@operation("CreateUser", Permission.WRITE)
def create_user(ctx: Context, request: JSON) -> JSON:
    try:
        ctx.gallery.create_user(request["CollectionId"], request["UserId"], caller=ctx.caller)
    except AlreadyExistsError as exc:  # Rekognition's model: a duplicate user is a ConflictException
        raise ConflictError(exc.message) from None
    return {}


@operation("DeleteUser", Permission.WRITE)
def delete_user(ctx: Context, request: JSON) -> JSON:
    ctx.gallery.delete_user(request["CollectionId"], request["UserId"], caller=ctx.caller)
    return {}


@operation("ListUsers", Permission.READ)
def list_users(ctx: Context, request: JSON) -> JSON:
    page = ctx.gallery.list_users(
        request["CollectionId"],
        limit=request.get("MaxResults") or DEFAULT_PAGE,
        next_token=request.get("NextToken"),
    )
    response: JSON = {"Users": [shapes.user(user) for user in page.items]}
    if page.next_token is not None:
        response["NextToken"] = page.next_token
    return response


@operation("AssociateFaces", Permission.WRITE)
def associate_faces(ctx: Context, request: JSON) -> JSON:
    result = ctx.gallery.associate_faces(
        request["CollectionId"],
        request["UserId"],
        request["FaceIds"],
        caller=ctx.caller,
        **given(request, {"UserMatchThreshold": "threshold"}),
    )
    return {
        "AssociatedFaces": [{"FaceId": face_id} for face_id in result.associated],
        "UnsuccessfulFaceAssociations": [unsuccessful_face(f, confidence=True) for f in result.unsuccessful],
        "UserStatus": result.user.status,
    }


@operation("DisassociateFaces", Permission.WRITE)
def disassociate_faces(ctx: Context, request: JSON) -> JSON:
    result = ctx.gallery.disassociate_faces(
        request["CollectionId"], request["UserId"], request["FaceIds"], caller=ctx.caller
    )
    return {
        "DisassociatedFaces": [{"FaceId": face_id} for face_id in result.disassociated],
        "UnsuccessfulFaceDisassociations": [unsuccessful_face(f) for f in result.unsuccessful],
        "UserStatus": result.user.status,
    }


@operation("SearchUsers", Permission.READ)
def search_users(ctx: Context, request: JSON) -> JSON:
    result = ctx.gallery.search_users(
        request["CollectionId"],
        caller=ctx.caller,
        **given(request, {**_SEARCH, "FaceId": "face_id", "UserId": "user_id"}),
    )
    response: JSON = {
        "UserMatches": [shapes.user_match(match) for match in result.matches],
        "FaceModelVersion": result.model,
    }
    if result.searched_face_id is not None:
        response["SearchedFace"] = {"FaceId": result.searched_face_id}
    if result.searched_user_id is not None:
        response["SearchedUser"] = {"UserId": result.searched_user_id}
    return response


@operation("SearchUsersByImage", Permission.READ)
def search_users_by_image(ctx: Context, request: JSON) -> JSON:
    result = ctx.gallery.search_users_by_image(
        request["CollectionId"],
        ctx.images.load(request["Image"]),
        caller=ctx.caller,
        **given(request, {**_SEARCH, "QualityFilter": "quality_filter"}),
    )
    return {
        "UserMatches": [shapes.user_match(match) for match in result.matches],
        "FaceModelVersion": result.model,
        "SearchedFace": {"FaceDetail": shapes.face_detail(result.searched_face.detail)},
        "UnsearchedFaces": [unsearched_face(item) for item in result.unsearched],
    }
