"""Issue 9, item 10: reads of enrolment data, administrative acts, /events subscriptions, denied attempts (rate
limited) and local key and listing commands leave audit records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from facetrace.audit import AuditRecord, Caller
from facetrace.cli import main
from facetrace.engine import FaceEngine
from facetrace.errors import StoreError
from facetrace.gallery import Gallery
from facetrace.service import ServiceConfig
from facetrace.service.access_audit import DeniedAttempts, record_read
from facetrace.store import MemoryStore
from tests.service.conftest import Server, start_server

KINESIS = "arn:aws:kinesisvideo:us-east-1:000000000000:"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, engine: FaceEngine, photos: dict[str, Path]
) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("access-audit")
    config = ServiceConfig(port=0, workers=2, camera_allow=("rtsp://10.0.0.*/**",))
    running = start_server(root, engine, config)
    running.gallery.create_collection("people")
    running.gallery.index_faces("people", photos["obama.jpg"], external_image_id="obama", max_faces=1)
    yield running
    running.thread.stop()
    running.gallery.store.close()


def _since(server: Server, seq: int) -> list[AuditRecord]:
    return server.audit.records(after=seq)


def _last_seq(server: Server) -> int:
    records = server.audit.records()
    return records[-1].seq if records else 0


def test_reads_of_enrolment_data_are_audited(server: Server) -> None:
    start = _last_seq(server)
    reader = server.keys.create("read", description="reader")
    client = server.client(reader)
    faces = client.list_faces(CollectionId="people")["Faces"]
    client.list_users(CollectionId="people")
    client.describe_collection(CollectionId="people")
    records = _since(server, start)
    assert [r.event.operation for r in records] == ["ListFaces", "ListUsers", "DescribeCollection"]
    assert {r.event.principal for r in records} == {reader.access_key_id}
    assert records[0].event.matched_face_ids == (faces[0]["FaceId"],)
    assert records[0].event.detail["returned"] == 1


def test_stream_processor_acts_are_audited(server: Server) -> None:
    start = _last_seq(server)
    client = server.client()
    client.create_stream_processor(
        Name="gate",
        Input={"KinesisVideoStream": {"Arn": KINESIS + "rtsp://10.0.0.9/live"}},
        Output={"KinesisDataStream": {"Arn": "arn:aws:kinesis:us-east-1:000000000000:stream/out"}},
        RoleArn="arn:aws:iam::000000000000:role/facetrace",
        Settings={"FaceSearch": {"CollectionId": "people"}},
    )
    client.describe_stream_processor(Name="gate")
    client.list_stream_processors()
    client.delete_stream_processor(Name="gate")
    records = _since(server, start)
    assert [r.event.operation for r in records] == [
        "CreateStreamProcessor", "DescribeStreamProcessor", "ListStreamProcessors", "DeleteStreamProcessor",
    ]  # fmt: skip
    assert records[0].event.collection_id == "people"
    assert records[0].event.detail["Name"] == "gate"


def test_denied_attempts_are_audited(server: Server) -> None:
    start = _last_seq(server)
    reader = server.keys.create("read", description="reader")
    with pytest.raises(Exception, match="AccessDenied"):
        server.client(reader).create_collection(CollectionId="mine")
    with pytest.raises(Exception, match=r"[Ss]ignature"):
        server.client(reader, secret="wrong" * 8).list_collections()
    assert httpx.post(server.url + "/", content=b"{}", timeout=10).status_code >= 400  # unsigned
    records = [r for r in _since(server, start) if r.event.operation == "DeniedAttempt"]
    assert [r.event.principal for r in records] == [
        reader.access_key_id,
        f"claimed:{reader.access_key_id}",
        "anonymous",
    ]
    assert records[0].event.detail["operation"] == "CreateCollection"
    assert records[1].event.detail["error"] == "InvalidSignatureException"


def test_events_subscriptions_are_audited(server: Server) -> None:
    start = _last_seq(server)
    url = f"{server.url}/events?processor=not-yet-created"  # a subscription may come before its processor
    request = AWSRequest(method="GET", url=url, headers={"X-Facetrace-Purpose": "case-9"})
    SigV4Auth(Credentials(server.admin.access_key_id, server.admin.secret), "rekognition", "us-east-1").add_auth(
        request
    )
    with httpx.stream("GET", url, headers=dict(request.headers), timeout=10) as response:
        assert response.status_code == 200
    (record,) = [r for r in _since(server, start) if r.event.operation == "SubscribeEvents"]
    assert (record.event.principal, record.event.purpose) == (server.admin.access_key_id, "case-9")
    assert record.event.detail["processor"] == "not-yet-created"


def test_a_flood_of_denied_attempts_is_recorded_at_a_bounded_rate() -> None:
    store = MemoryStore()
    denied = DeniedAttempts(store.audit, per_minute=60)
    recorded = sum(
        denied.record("InvalidSignatureException", key_id=None, authorization=None, target=None, client="1.2.3.4")
        for _ in range(5000)
    )
    assert 60 <= recorded <= 62  # the bucket, plus what refilled while the loop ran
    assert denied.suppressed >= 5000 - recorded
    assert len(store.audit.records()) == recorded


def test_a_read_is_not_answered_when_its_record_cannot_be_written(engine: FaceEngine) -> None:
    store = MemoryStore()
    gallery = Gallery(engine, store)
    gallery.create_collection("people")
    store.audit.fail_with = "disk full"
    with pytest.raises(StoreError, match="audit store unavailable"):
        record_read(gallery, Caller("k"), "ListFaces", {"CollectionId": "people"}, {"Faces": []})


def test_local_commands_are_audited(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    assert main(["collections", "create", "people", "--json"]) == 0
    assert main(["faces", "list", "people", "--purpose", "case-3", "--json"]) == 0
    assert main(["sightings", "find", "--external-image-id", "obama", "--json"]) == 0
    capsys.readouterr()
    assert main(["keys", "create", "--json"]) == 0
    key_id = json.loads(capsys.readouterr().out)["AccessKeyId"]
    assert main(["keys", "delete", key_id, "--json"]) == 0
    capsys.readouterr()
    assert main(["audit", "list", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)["Records"]
    assert [r["Operation"] for r in records] == [
        "CreateCollection", "ListFaces", "FindSightings", "CreateAccessKey", "DeleteAccessKey",
    ]  # fmt: skip
    assert records[1]["Purpose"] == "case-3"
    assert records[2]["Detail"]["external_image_id"] == "obama"
    assert records[3]["Detail"]["access_key_id"] == key_id
    assert all(r["Principal"].startswith("local:") for r in records)
