"""`facetrace serve` as users run it: a subprocess on the embedded store, stopped with SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config

from facetrace.cli import main
from facetrace.store import open_store


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_subprocess_persists_and_stops_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], photos: dict[str, Path]
) -> None:
    home = tmp_path / "home"
    assert main(["keys", "create", "--permission", "admin", "--json", "--home", str(home)]) == 0
    key = json.loads(capsys.readouterr().out)
    port = _free_port()
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    (bucket / "obama.jpg").write_bytes(photos["obama.jpg"].read_bytes())
    command = [sys.executable, "-m", "facetrace", "serve", "--home", str(home), "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--bucket", f"photos={bucket}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        client = boto3.client(
            "rekognition",
            endpoint_url=url,
            region_name="eu-central-1",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            config=Config(retries={"total_max_attempts": 1}),
        )
        client.create_collection(CollectionId="kept")
        indexed = client.index_faces(
            CollectionId="kept", Image={"S3Object": {"Bucket": "photos", "Name": "obama.jpg"}}
        )
        assert len(indexed["FaceRecords"]) == 1
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0].decode()
    # uvicorn re-raises the signal once it has shut down gracefully, so the exit is "killed by SIGTERM".
    assert server.returncode in (0, -signal.SIGTERM), output
    assert key["SecretAccessKey"] not in output
    store = open_store(home)
    assert store.describe_collection("kept").face_count == 1
    operations = [r.event.operation for r in store.audit.records()]
    assert operations == ["CreateAccessKey", "CreateCollection", "IndexFaces"]  # `keys create` is audited too
    assert store.audit.verify().ok
    assert not (home / "audit.db").exists()  # one database: the trail is in facetrace.db
    store.close()
