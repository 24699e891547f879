"""Fail closed on the wire: when the database takes no writes, no change and no search happens, boto3 gets an
AWS-shaped InternalServerError saying the audit store is unavailable, and /healthz says degraded.

The database is made unwritable the way it happens in production: another process holds its write lock
(``BEGIN EXCLUSIVE``) longer than the store waits for it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from facetrace.engine import FaceEngine
from facetrace.store import SQLiteStore
from tests.service.conftest import Server, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine: FaceEngine) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("failclosed")
    running = start_server(home, engine, store=SQLiteStore(home / "facetrace.db", timeout=0.3))
    yield running
    running.thread.stop()
    running.gallery.store.close()


def test_nothing_changes_while_the_audit_store_is_unavailable(
    server: Server, image_bytes: Any, tmp_path: Path
) -> None:
    client = server.client()
    client.create_collection(CollectionId="people")
    face_id = client.index_faces(CollectionId="people", Image={"Bytes": image_bytes("obama.jpg")})["FaceRecords"][
        0
    ]["Face"]["FaceId"]
    assert httpx.get(server.url + "/healthz").json()["status"] == "ok"
    before = server.audit.verify()

    blocker = sqlite3.connect(server.home / "facetrace.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        calls = [
            lambda: client.create_collection(CollectionId="other"),
            lambda: client.index_faces(CollectionId="people", Image={"Bytes": image_bytes("biden.jpg")}),
            lambda: client.delete_faces(CollectionId="people", FaceIds=[face_id]),
            lambda: client.search_faces_by_image(
                CollectionId="people", Image={"Bytes": image_bytes("obama2.jpg")}
            ),
        ]
        for call in calls:
            with pytest.raises(client.exceptions.InternalServerError) as caught:
                call()
            error = caught.value.response
            assert error["ResponseMetadata"]["HTTPStatusCode"] == 500
            assert "audit store unavailable" in error["Error"]["Message"]
            assert "Traceback" not in error["Error"]["Message"]
        health = httpx.get(server.url + "/healthz")
        assert health.status_code == 503
        assert health.json()["status"] == "degraded"
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    assert httpx.get(server.url + "/healthz").json()["status"] == "ok"
    assert client.list_collections()["CollectionIds"] == ["people"]
    faces = client.list_faces(CollectionId="people")["Faces"]
    assert [f["FaceId"] for f in faces] == [face_id]
    after = server.audit.verify(expect_head=before.head)
    assert (after.ok, after.count) == (
        True,
        before.count + 1,
    )  # the ListFaces just above, a read of enrolment data
    operations = [r.event.operation for r in server.audit.records()]
    assert operations == ["CreateCollection", "IndexFaces", "ListFaces"]
