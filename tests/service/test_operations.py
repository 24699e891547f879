"""Every supported operation through unmodified boto3 against a real server, paginators included.

Responses are checked against botocore's output shapes by the ``before-parse`` hook in conftest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.service.conftest import Server

FACE_DETAIL_KEYS = {"BoundingBox", "Confidence", "Landmarks", "Pose", "Quality"}


@pytest.fixture(scope="module")
def client(server: Server) -> Any:
    return server.client()


@pytest.fixture(scope="module")
def people(client: Any, image_bytes: Callable[[str], bytes]) -> dict[str, str]:
    """Collection "people" with obama.jpg, obama2.jpg and biden.jpg indexed: external id → face id."""
    client.create_collection(CollectionId="people")
    faces = {}
    for name in ("obama", "obama2", "biden"):
        response = client.index_faces(
            CollectionId="people", Image={"Bytes": image_bytes(f"{name}.jpg")}, ExternalImageId=name
        )
        assert len(response["FaceRecords"]) == 1
        faces[name] = response["FaceRecords"][0]["Face"]["FaceId"]
    return faces


def test_collection_lifecycle(client: Any) -> None:
    created = client.create_collection(CollectionId="lifecycle")
    assert created["StatusCode"] == 200
    assert created["ResponseMetadata"]["HTTPHeaders"]["server-timing"].startswith("handler;dur=")
    assert created["CollectionArn"].endswith(":collection/lifecycle")
    described = client.describe_collection(CollectionId="lifecycle")
    assert (described["FaceCount"], described["UserCount"]) == (0, 0)
    assert described["FaceModelVersion"] == created["FaceModelVersion"]
    assert "lifecycle" in client.list_collections()["CollectionIds"]
    assert client.delete_collection(CollectionId="lifecycle")["StatusCode"] == 200
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_collection(CollectionId="lifecycle")


def test_index_faces_reports_records_and_unindexed(client: Any, image_bytes: Callable[[str], bytes]) -> None:
    client.create_collection(CollectionId="group")
    response = client.index_faces(
        CollectionId="group", Image={"Bytes": image_bytes("t1.jpg")}, MaxFaces=2, DetectionAttributes=["ALL"]
    )
    assert len(response["FaceRecords"]) == 2
    assert response["UnindexedFaces"], "t1.jpg has more than two faces"
    assert any("EXCEEDS_MAX_FACES" in face["Reasons"] for face in response["UnindexedFaces"])
    for record in response["FaceRecords"]:
        assert set(record["FaceDetail"]) == FACE_DETAIL_KEYS
        assert "IndexFacesModelVersion" not in record["Face"]  # the model wants [0-9.]+: see service.shapes
    assert client.describe_collection(CollectionId="group")["FaceCount"] == 2


def test_detect_faces_returns_only_estimated_attributes(client: Any, image_bytes: Callable[[str], bytes]) -> None:
    for attributes in (["DEFAULT"], ["ALL"]):
        details = client.detect_faces(Image={"Bytes": image_bytes("t1.jpg")}, Attributes=attributes)["FaceDetails"]
        assert len(details) > 2
        for detail in details:
            assert set(detail) == FACE_DETAIL_KEYS
            assert [mark["Type"] for mark in detail["Landmarks"]] == [
                "eyeLeft", "eyeRight", "nose", "mouthLeft", "mouthRight",
            ]  # fmt: skip
    with pytest.raises(client.exceptions.InvalidParameterException, match="EMOTIONS"):
        client.detect_faces(Image={"Bytes": image_bytes("obama.jpg")}, Attributes=["EMOTIONS"])


def test_search_faces_by_image_finds_the_same_person(
    server: Server, people: dict[str, str], image_bytes: Callable[[str], bytes]
) -> None:
    client = server.client()
    client.meta.events.register(
        "before-sign.rekognition.SearchFacesByImage",
        lambda request, **_: request.headers.add_header("X-Facetrace-Purpose", "case 7"),
    )
    response = client.search_faces_by_image(
        CollectionId="people", Image={"Bytes": image_bytes("obama3.jpg")}, FaceMatchThreshold=90
    )
    matched = {match["Face"]["ExternalImageId"] for match in response["FaceMatches"]}
    assert matched == {"obama", "obama2"}
    assert all(match["Similarity"] >= 90 for match in response["FaceMatches"])
    assert 0 < response["SearchedFaceBoundingBox"]["Width"] <= 1
    record = server.audit.records(operation="SearchFacesByImage")[-1]
    assert record.event.purpose == "case 7"
    assert record.event.principal == server.admin.access_key_id
    assert set(record.event.matched_face_ids) == {people["obama"], people["obama2"]}
    assert record.event.threshold == 90


def test_search_faces_by_face_id_excludes_itself(client: Any, people: dict[str, str]) -> None:
    response = client.search_faces(CollectionId="people", FaceId=people["obama"], FaceMatchThreshold=90)
    assert response["SearchedFaceId"] == people["obama"]
    assert [m["Face"]["FaceId"] for m in response["FaceMatches"]] == [people["obama2"]]


def test_no_match_is_an_empty_list(client: Any, people: dict[str, str]) -> None:
    response = client.search_faces(CollectionId="people", FaceId=people["biden"])
    assert response["FaceMatches"] == []


def test_compare_faces(client: Any, image_bytes: Callable[[str], bytes]) -> None:
    same = client.compare_faces(
        SourceImage={"Bytes": image_bytes("obama.jpg")},
        TargetImage={"Bytes": image_bytes("obama2.jpg")},
        SimilarityThreshold=80,
    )
    assert len(same["FaceMatches"]) == 1
    assert same["FaceMatches"][0]["Similarity"] >= 80
    assert same["UnmatchedFaces"] == []
    assert set(same["SourceImageFace"]) == {"BoundingBox", "Confidence"}
    other = client.compare_faces(
        SourceImage={"Bytes": image_bytes("obama.jpg")}, TargetImage={"Bytes": image_bytes("biden.jpg")}
    )
    assert other["FaceMatches"] == []
    assert len(other["UnmatchedFaces"]) == 1


def test_list_faces_paginator_walks_every_face(client: Any, people: dict[str, str]) -> None:
    pages = list(
        client.get_paginator("list_faces").paginate(CollectionId="people", PaginationConfig={"PageSize": 1})
    )
    assert len(pages) >= 3
    assert all(len(page["Faces"]) <= 1 for page in pages)
    assert {face["FaceId"] for page in pages for face in page["Faces"]} == set(people.values())
    only = client.list_faces(CollectionId="people", FaceIds=[people["biden"]])["Faces"]
    assert [face["ExternalImageId"] for face in only] == ["biden"]


def test_list_collections_paginator(client: Any) -> None:
    names = {f"paged-{i}" for i in range(5)}
    for name in names:
        client.create_collection(CollectionId=name)
    result = (
        client.get_paginator("list_collections").paginate(PaginationConfig={"PageSize": 2}).build_full_result()
    )
    assert names <= set(result["CollectionIds"])
    assert len(result["CollectionIds"]) == len(result["FaceModelVersions"])


def test_users(client: Any, people: dict[str, str], image_bytes: Callable[[str], bytes]) -> None:
    client.create_user(CollectionId="people", UserId="barack")
    with pytest.raises(client.exceptions.ConflictException):
        client.create_user(CollectionId="people", UserId="barack")
    associated = client.associate_faces(
        CollectionId="people", UserId="barack", FaceIds=[people["obama"], people["obama2"]]
    )
    assert {f["FaceId"] for f in associated["AssociatedFaces"]} == {people["obama"], people["obama2"]}
    assert associated["UserStatus"] == "ACTIVE"
    refused = client.associate_faces(
        CollectionId="people", UserId="barack", FaceIds=[people["biden"]], UserMatchThreshold=80
    )
    assert refused["AssociatedFaces"] == []
    assert refused["UnsuccessfulFaceAssociations"][0]["Reasons"] == ["LOW_MATCH_CONFIDENCE"]

    by_face = client.search_users(CollectionId="people", FaceId=people["obama2"], UserMatchThreshold=80)
    assert [m["User"]["UserId"] for m in by_face["UserMatches"]] == ["barack"]
    assert by_face["SearchedFace"] == {"FaceId": people["obama2"]}
    by_image = client.search_users_by_image(
        CollectionId="people", Image={"Bytes": image_bytes("obama3.jpg")}, UserMatchThreshold=80
    )
    assert [m["User"]["UserId"] for m in by_image["UserMatches"]] == ["barack"]
    assert set(by_image["SearchedFace"]["FaceDetail"]) == FACE_DETAIL_KEYS

    blocked = client.delete_faces(CollectionId="people", FaceIds=[people["obama"]])
    assert blocked["DeletedFaces"] == []
    assert blocked["UnsuccessfulFaceDeletions"][0]["Reasons"] == ["ASSOCIATED_TO_AN_EXISTING_USER"]
    released = client.disassociate_faces(CollectionId="people", UserId="barack", FaceIds=[people["obama2"]])
    assert released["DisassociatedFaces"] == [{"FaceId": people["obama2"]}]
    client.delete_user(CollectionId="people", UserId="barack")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.delete_user(CollectionId="people", UserId="barack")


def test_search_users_by_image_reports_unsearched_faces(client: Any, image_bytes: Callable[[str], bytes]) -> None:
    client.create_collection(CollectionId="crowd")
    response = client.search_users_by_image(CollectionId="crowd", Image={"Bytes": image_bytes("t1.jpg")})
    assert response["UserMatches"] == []
    assert response["UnsearchedFaces"]
    assert all(face["Reasons"] == ["FACE_NOT_LARGEST"] for face in response["UnsearchedFaces"])


def test_list_users_paginator(client: Any) -> None:
    client.create_collection(CollectionId="userlist")
    for index in range(3):
        client.create_user(CollectionId="userlist", UserId=f"user-{index}")
    pages = list(
        client.get_paginator("list_users").paginate(CollectionId="userlist", PaginationConfig={"PageSize": 1})
    )
    users = [user for page in pages for user in page["Users"]]
    assert [user["UserId"] for user in users] == ["user-0", "user-1", "user-2"]
    assert {user["UserStatus"] for user in users} == {"CREATED"}


def test_delete_faces(client: Any, image_bytes: Callable[[str], bytes]) -> None:
    client.create_collection(CollectionId="deleting")
    face_id = client.index_faces(CollectionId="deleting", Image={"Bytes": image_bytes("biden.jpg")})[
        "FaceRecords"
    ][0]["Face"]["FaceId"]
    missing = "00000000-0000-0000-0000-000000000000"
    response = client.delete_faces(CollectionId="deleting", FaceIds=[face_id, missing])
    assert response["DeletedFaces"] == [face_id]
    assert response["UnsuccessfulFaceDeletions"] == [{"FaceId": missing, "Reasons": ["FACE_NOT_FOUND"]}]
    assert client.describe_collection(CollectionId="deleting")["FaceCount"] == 0
