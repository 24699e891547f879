"""Two real `facetrace serve` processes on one PostgreSQL, as behind a load balancer (docs/deploy.md).

What must hold: a face indexed through one server is found through the other on its next search; a server
killed with SIGKILL in the middle of a burst of IndexFaces loses no acknowledged face; searches audited by
both servers at once form one valid audit chain in the database; an access key created with
`facetrace keys create --database-url` works on both (and a deleted one on neither); a video job started
through one is read through the other; one ClientRequestToken sent to both acts once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from facetrace.cli import main
from facetrace.store.postgres import PostgresStore
from tests.video.conftest import THRESHOLD, actors, scene

__all__ = ["actors", "scene"]  # the synthetic video's fixtures (tests/video/conftest.py)

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One `facetrace serve` subprocess on the shared database (its own home holds only the access keys)."""

    def __init__(
        self, home: Path, database_url: str, key: dict[str, str], *, via_env: bool = False, bucket: Path
    ) -> None:
        self.home, self.database_url, self.key = home, database_url, key
        self.via_env = via_env
        self.bucket = bucket
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = home / "server.log"

    def start(self) -> None:
        command = [sys.executable, "-m", "facetrace", "serve", "--home", str(self.home), "--port", str(self.port),
                   "--bucket", f"videos={self.bucket}"]  # fmt: skip
        env = dict(os.environ)
        if self.via_env:
            env["FACETRACE_DATABASE_URL"] = self.database_url
        else:
            command += ["--database-url", self.database_url]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 90
        while True:
            assert self.process.poll() is None, self.output()
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"the server did not start: {self.output()}"
                time.sleep(0.1)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def client(self, key: dict[str, str] | None = None) -> Any:
        key = key or self.key
        return boto3.client(
            "rekognition",
            endpoint_url=self.url,
            region_name="eu-central-1",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            config=Config(retries={"total_max_attempts": 1}, read_timeout=60, max_pool_connections=16),
        )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def create_key(capsys: pytest.CaptureFixture[str], database_url: str, permission: str = "admin") -> dict[str, str]:
    """`facetrace keys create --database-url`: the key is written into the shared database."""
    assert main(["keys", "create", "--permission", permission, "--json", "--database-url", database_url]) == 0
    key: dict[str, str] = json.loads(capsys.readouterr().out)
    return key


@pytest.fixture(scope="module")
def bucket(tmp_path_factory: pytest.TempPathFactory, scene: Path) -> Path:
    """The S3 bucket ``videos`` both servers serve, holding the synthetic scene of tests/video."""
    folder = tmp_path_factory.mktemp("bucket")
    shutil.copy(scene, folder / "scene.mp4")
    return folder


@pytest.fixture
def pair(
    tmp_path: Path, pg_url: str, bucket: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[tuple[Server, Server]]:
    """Servers A (``--database-url``) and B (``$FACETRACE_DATABASE_URL``) on one fresh database, each with its
    own (empty) home: the access key is created once, in the database, and works on both."""
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    for home in (home_a, home_b):
        home.mkdir(mode=0o700)
    key = create_key(capsys, pg_url)
    # The test server trusts local connections, so a password in the URL is accepted and ignored: enough to
    # check that no server ever prints it.
    with_password = pg_url.replace("://postgres:@", "://postgres:pw-never-shown@")
    assert "pw-never-shown" in with_password
    servers = (
        Server(home_a, with_password, key, bucket=bucket),
        Server(home_b, with_password, key, via_env=True, bucket=bucket),
    )
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()
        for server in servers:
            assert key["SecretAccessKey"] not in server.output()
            assert "pw-never-shown" not in server.output()
            assert "postgres:***@" in server.output()  # the start-up line names the database, masked


def test_index_on_one_server_search_on_the_other_and_one_audit_chain(
    pair: tuple[Server, Server], photos: dict[str, Path], pg_url: str
) -> None:
    a, b = pair[0].client(), pair[1].client()
    a.create_collection(CollectionId="people")
    obama = a.index_faces(
        CollectionId="people", Image={"Bytes": photos["obama.jpg"].read_bytes()}, ExternalImageId="obama"
    )
    face_id = obama["FaceRecords"][0]["Face"]["FaceId"]
    # The very next search through B sees it: B catches up with the change log before it scans.
    found = b.search_faces_by_image(CollectionId="people", Image={"Bytes": photos["obama2.jpg"].read_bytes()})
    assert [m["Face"]["FaceId"] for m in found["FaceMatches"]] == [face_id]
    assert b.describe_collection(CollectionId="people")["FaceCount"] == 1
    # Deleted through B, gone from A's searches.
    biden = b.index_faces(CollectionId="people", Image={"Bytes": photos["biden.jpg"].read_bytes()})
    biden_id = biden["FaceRecords"][0]["Face"]["FaceId"]
    assert a.search_faces(CollectionId="people", FaceId=biden_id)["SearchedFaceId"] == biden_id
    b.delete_faces(CollectionId="people", FaceIds=[face_id])
    assert (
        a.search_faces_by_image(CollectionId="people", Image={"Bytes": photos["obama2.jpg"].read_bytes()})[
            "FaceMatches"
        ]
        == []
    )

    # Both servers audit searches at once, into one chain.
    probe = photos["biden.jpg"].read_bytes()
    errors: list[BaseException] = []

    def searches(client: Any) -> None:
        try:
            for _ in range(8):
                client.search_faces_by_image(CollectionId="people", Image={"Bytes": probe})
                client.search_faces(CollectionId="people", FaceId=biden_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=searches, args=(c,)) for c in (pair[0].client(), pair[1].client()) * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    store = PostgresStore(pg_url, listen=False)
    try:
        verified = store.audit.verify()
        records = store.audit.records()
    finally:
        store.close()
    assert verified.ok, verified.reason
    searches_audited = [r for r in records if r.event.operation in ("SearchFacesByImage", "SearchFaces")]
    assert len(searches_audited) == 4 * 16 + 3  # the threads' searches and the three before
    assert verified.count == len(records)


def test_kill_9_during_a_burst_loses_no_acknowledged_face(
    pair: tuple[Server, Server], photos: dict[str, Path]
) -> None:
    a_server, b_server = pair
    a, b = a_server.client(), b_server.client()
    a.create_collection(CollectionId="burst")
    image = photos["biden.jpg"].read_bytes()
    acknowledged: list[str] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def burst(client: Any) -> None:
        while not stop.is_set():
            try:
                reply = client.index_faces(CollectionId="burst", Image={"Bytes": image})
            except BaseException as exc:  # the server died under us: that request was never acknowledged
                failures.append(exc)
                return
            acknowledged.extend(r["Face"]["FaceId"] for r in reply["FaceRecords"])

    threads = [threading.Thread(target=burst, args=(a_server.client(),)) for _ in range(3)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    while len(acknowledged) < 12 and time.monotonic() < deadline:
        time.sleep(0.02)
    a_server.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert len(acknowledged) >= 12
    assert failures, "the burst should still have been running when the server was killed"

    # Every acknowledged face is there through B, with its vector: found by its own id.
    listed: set[str] = set()
    token: str | None = None
    while True:
        page = b.list_faces(CollectionId="burst", MaxResults=100, **({"NextToken": token} if token else {}))
        listed.update(f["FaceId"] for f in page["Faces"])
        token = page.get("NextToken")
        if not token:
            break
    assert set(acknowledged) <= listed
    for face_id in acknowledged:
        assert (
            b.search_faces(CollectionId="burst", FaceId=face_id, FaceMatchThreshold=99)["SearchedFaceId"]
            == face_id
        )
    assert b.describe_collection(CollectionId="burst")["FaceCount"] == len(listed)

    # A restarted server loads everything back from the database.
    a_server.start()
    restarted = a_server.client()
    hits = restarted.search_faces_by_image(
        CollectionId="burst", Image={"Bytes": image}, FaceMatchThreshold=99, MaxFaces=4096
    )
    assert {m["Face"]["FaceId"] for m in hits["FaceMatches"]} == listed


def test_keys_video_jobs_and_request_tokens_are_shared(
    pair: tuple[Server, Server], photos: dict[str, Path], pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    a_server, b_server = pair
    # A key created with the CLI while both servers run works on both at once, and a deleted one on neither.
    reader = create_key(capsys, pg_url, permission="read")
    for server in pair:
        assert server.client(reader).list_collections()["CollectionIds"] == []
    assert main(["keys", "delete", reader["AccessKeyId"], "--database-url", pg_url]) == 0
    for server in pair:
        with pytest.raises(ClientError) as refused:
            server.client(reader).list_collections()
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 403)

    a, b = a_server.client(), b_server.client()
    a.create_collection(CollectionId="people")
    obama = a.index_faces(
        CollectionId="people", Image={"Bytes": photos["obama2.jpg"].read_bytes()}, ExternalImageId="obama",
        MaxFaces=1,
    )  # fmt: skip
    obama_id = obama["FaceRecords"][0]["Face"]["FaceId"]

    # One token sent to both servers at once: one user created, the same answer twice, one audit record.
    answers: list[Any] = []
    errors: list[BaseException] = []

    def create_user(client: Any) -> None:
        try:
            answers.append(client.create_user(CollectionId="people", UserId="ann", ClientRequestToken="tok-1"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create_user, args=(c,)) for c in (a_server.client(), b_server.client())]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(answers) == 2

    # A video job started through A is read through B, while it runs and when it is done.
    started = a.start_face_search(
        Video={"S3Object": {"Bucket": "videos", "Name": "scene.mp4"}},
        CollectionId="people",
        FaceMatchThreshold=THRESHOLD,
    )
    first = b.get_face_search(JobId=started["JobId"])
    assert first["JobStatus"] in ("IN_PROGRESS", "SUCCEEDED")
    deadline = time.monotonic() + 120
    while True:
        result = b.get_face_search(JobId=started["JobId"])
        if result["JobStatus"] != "IN_PROGRESS":
            break
        assert time.monotonic() < deadline, "the job never finished"
        time.sleep(0.3)
    assert result["JobStatus"] == "SUCCEEDED", result.get("StatusMessage")
    matched = {m["Face"]["FaceId"] for person in result["Persons"] for m in person.get("FaceMatches", ())}
    assert matched == {obama_id}
    assert result == a.get_face_search(JobId=started["JobId"]) | {"ResponseMetadata": result["ResponseMetadata"]}

    # Deleting the face through B takes it out of the job's stored results (the cascade, on PostgreSQL).
    b.delete_faces(CollectionId="people", FaceIds=[obama_id])
    redacted = a.get_face_search(JobId=started["JobId"])
    assert [p for p in redacted["Persons"] if p.get("FaceMatches")] == []

    store = PostgresStore(pg_url, listen=False)
    try:
        operations = [r.event.operation for r in store.audit.records()]
    finally:
        store.close()
    assert operations.count("CreateUser") == 1
