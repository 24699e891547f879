"""facetrace's own operations beside Rekognition's: the review queue and unknown people (``facetrace.review``).

ListReviewItems, DescribeReviewItem, ConfirmReviewItem, RejectReviewItem, ListUnknownPeople,
DescribeUnknownPerson, NameUnknownPerson: defined in ``facetrace/data/facetrace-operations.json`` (merged into
the service model, so requests are validated and signed like Rekognition's), named by X-Amz-Target
``RekognitionService.<name>`` or ``Facetrace.<name>``.

Scopes: an item or unknown person belongs to a collection; a collection-limited key lists only its
collections' and is told "not found" for the others (one answer for "does not exist" and "not yours", so a key
cannot probe other collections). Confirm, reject and name need write permission. Decisions are audited by the
library with the caller's key; listings and descriptions (candidate faces, thumbnails) are audited reads
(``service/access_audit.py``).
"""

from __future__ import annotations

from typing import Any

from facetrace.errors import NotFoundError, StoreError
from facetrace.gallery import Gallery
from facetrace.review import ReviewQueue, UnknownPeople
from facetrace.review.shapes import decision_dict, review_item_dict, unknown_face_dict, unknown_person_dict
from facetrace.service.operations import Context, Permission, Resources, operation
from facetrace.store import records_of
from facetrace.store.records import Records

__all__ = ["people_of", "queue_of"]

JSON = dict[str, Any]
DEFAULT_PAGE = 100


def _records(gallery: Gallery) -> Records:
    records = records_of(gallery.store)
    if records is None:
        raise StoreError("this server's store keeps no review queue or unknown people")
    return records


def queue_of(resources: Resources, gallery: Gallery) -> ReviewQueue:
    """The server's review queue (one per server, shared by the API and the dashboard)."""
    return resources.get("review.queue", lambda: ReviewQueue(gallery, _records(gallery).reviews))


def people_of(resources: Resources, gallery: Gallery) -> UnknownPeople:
    """The server's unknown people (one per server, shared by the API and the dashboard)."""
    return resources.get("review.unknowns", lambda: UnknownPeople(gallery, _records(gallery).unknowns))


def _queue(ctx: Context) -> ReviewQueue:
    return queue_of(ctx.resources, ctx.gallery)


def _people(ctx: Context) -> UnknownPeople:
    return people_of(ctx.resources, ctx.gallery)


def _scope(ctx: Context, request: JSON) -> tuple[str, ...] | None:
    """The collections the caller may list: the one asked for (the dispatcher checked the key sees it), else
    the key's own (None: every collection)."""
    if request.get("CollectionId"):
        return (request["CollectionId"],)
    return ctx.key.collections


def _page(request: JSON) -> tuple[int, int]:
    return int(request.get("MaxResults") or DEFAULT_PAGE), int(request.get("NextToken") or 0)


@operation("ListReviewItems", Permission.READ)
def list_review_items(ctx: Context, request: JSON) -> JSON:
    limit, offset = _page(request)
    status = request.get("Status", "PENDING")
    items = _queue(ctx).items(
        status=None if status == "ALL" else status, collection_ids=_scope(ctx, request), limit=limit + 1,
        offset=offset,
    )  # fmt: skip
    response: JSON = {"ReviewItems": [review_item_dict(item) for item in items[:limit]]}
    if len(items) > limit:
        response["NextToken"] = str(offset + limit)
    return response


def _visible_item(ctx: Context, item_id: str, *, thumbnails: bool = False) -> Any:
    queue = _queue(ctx)
    item = queue.get(item_id, thumbnails=thumbnails)
    if not ctx.key.sees(item.collection_id):
        raise NotFoundError(f"there is no review item {item_id!r}")
    return item


@operation("DescribeReviewItem", Permission.READ, collection_param=None)
def describe_review_item(ctx: Context, request: JSON) -> JSON:
    item = _visible_item(ctx, request["ReviewItemId"], thumbnails=bool(request.get("IncludeThumbnails")))
    data = review_item_dict(item, thumbnails=bool(request.get("IncludeThumbnails")))
    data["Decisions"] = [decision_dict(d) for d in _queue(ctx).decisions(item.item_id)]
    return {"ReviewItem": data}


@operation("ConfirmReviewItem", Permission.WRITE, collection_param=None)
def confirm_review_item(ctx: Context, request: JSON) -> JSON:
    item = _visible_item(ctx, request["ReviewItemId"])
    done = _queue(ctx).confirm(
        item.item_id, person=request.get("Person"), enrol=bool(request.get("Enrol")), caller=ctx.caller
    )
    return {"ReviewItem": review_item_dict(done)}


@operation("RejectReviewItem", Permission.WRITE, collection_param=None)
def reject_review_item(ctx: Context, request: JSON) -> JSON:
    item = _visible_item(ctx, request["ReviewItemId"])
    done = _queue(ctx).reject(
        item.item_id, person=request.get("Person"), reason=request.get("Reason"), caller=ctx.caller
    )
    return {"ReviewItem": review_item_dict(done)}


@operation("ListUnknownPeople", Permission.READ)
def list_unknown_people(ctx: Context, request: JSON) -> JSON:
    limit, offset = _page(request)
    found = _people(ctx).people(collection_ids=_scope(ctx, request), limit=limit + 1, offset=offset)
    response: JSON = {"UnknownPeople": [unknown_person_dict(p) for p in found[:limit]]}
    if len(found) > limit:
        response["NextToken"] = str(offset + limit)
    return response


def _visible_person(ctx: Context, unknown_id: str) -> Any:
    person = _people(ctx).get(unknown_id)
    if not ctx.key.sees(person.collection_id):
        raise NotFoundError(f"there is no unknown person {unknown_id!r}")
    return person


@operation("DescribeUnknownPerson", Permission.READ, collection_param=None)
def describe_unknown_person(ctx: Context, request: JSON) -> JSON:
    person = _visible_person(ctx, request["UnknownId"])
    thumbnails = bool(request.get("IncludeThumbnails"))
    faces = _people(ctx).faces(person.unknown_id, thumbnails=thumbnails)
    data = unknown_person_dict(person)
    data["Faces"] = [unknown_face_dict(face, thumbnail=thumbnails) for face in faces]
    return {"UnknownPerson": data}


@operation("NameUnknownPerson", Permission.WRITE, collection_param=None)
def name_unknown_person(ctx: Context, request: JSON) -> JSON:
    person = _visible_person(ctx, request["UnknownId"])
    face_ids = _people(ctx).name(
        person.unknown_id, request["UserId"], max_faces=int(request.get("MaxFaces") or 5), caller=ctx.caller
    )
    return {"UserId": request["UserId"], "FaceIds": face_ids}
