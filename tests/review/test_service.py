"""The review queue and unknown people on the wire: facetrace's own operations, SigV4, scopes and audit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facetrace.engine import FaceEngine
from facetrace.review import ReviewObserver, ReviewQueue, UnknownPeople
from facetrace.service.keys import AccessKey
from facetrace.store import records_of
from facetrace.video.analysis import UnresolvedTrack
from tests.service.conftest import Server, start_server
from tests.service.contract import check_response


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, engine: FaceEngine, photos: dict[str, Path]
) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("review-server"), engine)
    gallery = server.gallery
    for collection in ("people", "other"):  # Obama's other photo in both: one item offered in each
        gallery.create_collection(collection)
        gallery.index_faces(collection, photos["obama3.jpg"], external_image_id="obama", max_faces=1)
    yield server
    server.thread.stop()
    server.gallery.store.close()


def _call(server: Server, operation: str, body: dict[str, Any], key: AccessKey | None = None) -> tuple[int, Any]:
    response = server.raw(operation, json.dumps(body).encode(), key)
    check_response(operation, response.status_code, response.content)
    return response.status_code, response.json()


@pytest.mark.slow
def test_review_operations_scopes_and_audit(served: Server, borderline_tracks: list[UnresolvedTrack]) -> None:
    records = records_of(served.gallery.store)
    assert records is not None
    queue = ReviewQueue(served.gallery, records.reviews)
    tracks = borderline_tracks
    for collection in ("people", "other"):
        observer = ReviewObserver(queue, collection, source=f"door-{collection}", match_threshold=99.0)
        for track in tracks:
            observer.observe(track)
    UnknownPeople(served.gallery, records.unknowns).add(tracks[0], "other", source="door-other")

    status, everything = _call(served, "ListReviewItems", {})
    assert status == 200
    assert {i["CollectionId"] for i in everything["ReviewItems"]} == {"people", "other"}
    people_item = next(i for i in everything["ReviewItems"] if i["CollectionId"] == "people")

    reader = served.keys.create("read", collections=["other"])
    status, scoped = _call(served, "ListReviewItems", {}, reader)
    assert status == 200
    assert {i["CollectionId"] for i in scoped["ReviewItems"]} == {"other"}  # never another collection's
    status, denied = _call(served, "ListReviewItems", {"CollectionId": "people"}, reader)
    assert (status, denied["__type"]) == (400, "AccessDeniedException")
    status, hidden = _call(served, "DescribeReviewItem", {"ReviewItemId": people_item["ReviewItemId"]}, reader)
    assert (status, hidden["__type"]) == (400, "ResourceNotFoundException")
    status, unknowns = _call(served, "ListUnknownPeople", {}, reader)
    assert status == 200
    assert [p["CollectionId"] for p in unknowns["UnknownPeople"]] == ["other"]

    other_item = scoped["ReviewItems"][0]["ReviewItemId"]
    status, refused = _call(served, "RejectReviewItem", {"ReviewItemId": other_item}, reader)
    assert (status, refused["__type"]) == (400, "AccessDeniedException")  # a read key cannot answer
    writer = served.keys.create("write", collections=["people"])
    status, shown = _call(
        served,
        "DescribeReviewItem",
        {"ReviewItemId": people_item["ReviewItemId"], "IncludeThumbnails": True},
        writer,
    )
    assert status == 200
    assert shown["ReviewItem"]["Thumbnails"]
    status, confirmed = _call(
        served, "ConfirmReviewItem", {"ReviewItemId": people_item["ReviewItemId"], "Person": "obama"}, writer
    )
    assert status == 200
    assert confirmed["ReviewItem"]["Status"] == "CONFIRMED"
    assert confirmed["ReviewItem"]["DecidedBy"] == writer.access_key_id
    status, bad = _call(served, "ConfirmReviewItem", {"ReviewItemId": "nope"}, writer)
    assert (status, bad["__type"]) == (400, "InvalidParameterException")

    audited = {(r.event.operation, r.event.principal) for r in served.audit.records()}
    assert ("ConfirmReviewItem", writer.access_key_id) in audited
    assert ("ListReviewItems", reader.access_key_id) in audited

    own = served.raw(None, b"{}", headers={"X-Amz-Target": "Facetrace.ListUnknownPeople"})
    assert own.status_code == 200
