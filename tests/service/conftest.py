"""One real uvicorn server per test module, on 127.0.0.1 and a free port, driven by unmodified boto3."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from facetrace.audit import AuditTrail
from facetrace.engine import FaceEngine
from facetrace.gallery import Gallery
from facetrace.service import KeyStore, ServerThread, ServiceConfig, create_app
from facetrace.service.keys import AccessKey
from facetrace.store import SQLiteStore
from tests.service.contract import check_response

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=60)


@dataclass
class Server:
    """A running server and what it is made of."""

    url: str
    gallery: Gallery
    keys: KeyStore
    audit: AuditTrail  # the store's own trail
    home: Path
    admin: AccessKey
    thread: ServerThread
    extra: dict[str, Any] = field(default_factory=dict)

    def client(self, key: AccessKey | None = None, *, secret: str | None = None, **options: Any) -> Any:
        """A boto3 Rekognition client for ``key`` (default: the admin key), with no retries."""
        key = key or self.admin
        client = boto3.client(
            "rekognition",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=key.access_key_id,
            aws_secret_access_key=secret if secret is not None else key.secret,
            config=options.pop("config", NO_RETRIES),
            **options,
        )
        client.meta.events.register("before-parse.rekognition.*", _check_contract)
        return client

    def raw(
        self,
        target: str | None,
        body: bytes,
        key: AccessKey | None = None,
        *,
        headers: dict[str, str] | None = None,
        sign: bool = True,
    ) -> httpx.Response:
        """POST ``body`` as it is (signed with botocore's SigV4 unless ``sign`` is false)."""
        return signed_post(self.url, target, body, key or self.admin, headers=headers, sign=sign)


def signed_post(
    url: str,
    target: str | None,
    body: bytes,
    key: AccessKey,
    *,
    headers: dict[str, str] | None = None,
    sign: bool = True,
    timeout: float = 60.0,
) -> httpx.Response:
    all_headers = {"Content-Type": "application/x-amz-json-1.1", **(headers or {})}
    if target is not None:
        all_headers["X-Amz-Target"] = f"RekognitionService.{target}"
    request = AWSRequest(method="POST", url=url + "/", data=body, headers=all_headers)
    if sign:
        SigV4Auth(Credentials(key.access_key_id, key.secret), "rekognition", "us-east-1").add_auth(request)
    return httpx.post(url + "/", content=body, headers=dict(request.headers.items()), timeout=timeout)


def _check_contract(operation_model: Any, response_dict: dict[str, Any], **_: Any) -> None:
    check_response(operation_model.name, response_dict["status_code"], response_dict["body"])


def start_server(
    tmp: Path,
    engine: FaceEngine,
    config: ServiceConfig | None = None,
    *,
    store: SQLiteStore | None = None,
    **app_options: Any,
) -> Server:
    store = store or SQLiteStore(tmp / "facetrace.db")  # the durable store, audited in its own database
    gallery = Gallery(engine, store)
    keys = KeyStore(store.records.keys)  # in the same database
    admin = keys.create("admin", description="tests")
    config = config or ServiceConfig(port=0, workers=2)
    app_options.setdefault("home", tmp)  # handler modules' state (video) stays in the test's folder
    thread = ServerThread(create_app(gallery, keys, config, **app_options), config).start()
    return Server(thread.url, gallery, keys, store.audit, tmp, admin, thread)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, engine: FaceEngine) -> Iterator[Server]:
    """A server with default settings, shared by one test module."""
    running = start_server(tmp_path_factory.mktemp("server"), engine)
    yield running
    running.thread.stop()
    running.gallery.store.close()


@pytest.fixture(scope="module")
def image_bytes(photos: dict[str, Path]) -> Callable[[str], bytes]:
    cache: dict[str, bytes] = {}

    def read(name: str) -> bytes:
        if name not in cache:
            cache[name] = photos[name].read_bytes()
        return cache[name]

    return read
