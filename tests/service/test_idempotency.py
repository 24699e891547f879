"""ClientRequestToken with Rekognition's semantics, kept in the database: same token and parameters → the
first answer again (also after a restart); other parameters → IdempotentParameterMismatchException; tokens
belong to one access key."""

from __future__ import annotations

from pathlib import Path

import pytest

from facetrace.engine import FaceEngine
from facetrace.store import SQLiteStore
from tests.service.conftest import Server, start_server


def _start(home: Path, engine: FaceEngine) -> Server:
    return start_server(home, engine, store=SQLiteStore(home / "facetrace.db"))


def _stop(server: Server) -> None:
    server.thread.stop()
    server.gallery.store.close()


def test_a_token_runs_its_request_once_even_across_a_restart(tmp_path: Path, engine: FaceEngine) -> None:
    server = _start(tmp_path, engine)
    try:
        client = server.client()
        client.create_collection(CollectionId="people")
        first = client.create_user(CollectionId="people", UserId="ann", ClientRequestToken="tok-1")
        again = client.create_user(CollectionId="people", UserId="ann", ClientRequestToken="tok-1")
        assert again["ResponseMetadata"]["HTTPStatusCode"] == first["ResponseMetadata"]["HTTPStatusCode"] == 200
        with pytest.raises(client.exceptions.IdempotentParameterMismatchException):
            client.create_user(CollectionId="people", UserId="bob", ClientRequestToken="tok-1")
        with pytest.raises(client.exceptions.ConflictException):  # a new token runs again
            client.create_user(CollectionId="people", UserId="ann", ClientRequestToken="tok-2")
        other_key = server.keys.create("admin", description="second key")
        with pytest.raises(client.exceptions.ConflictException):  # tokens are per access key
            server.client(other_key).create_user(CollectionId="people", UserId="ann", ClientRequestToken="tok-1")
    finally:
        _stop(server)

    restarted = _start(tmp_path, engine)
    try:
        client = restarted.client(other_key)
        with pytest.raises(client.exceptions.ConflictException):
            client.create_user(CollectionId="people", UserId="ann", ClientRequestToken="tok-3")
        admin = restarted.client(server.admin)  # the first server's key: kept in the same database
        assert admin.create_user(CollectionId="people", UserId="ann", ClientRequestToken="tok-1")
        with pytest.raises(admin.exceptions.IdempotentParameterMismatchException):
            admin.create_user(CollectionId="people", UserId="bob", ClientRequestToken="tok-1")
        users = [u["UserId"] for u in admin.list_users(CollectionId="people")["Users"]]
        assert users == ["ann"]
        operations = [r.event.operation for r in restarted.audit.records(operation="CreateUser")]
        assert operations == ["CreateUser"]  # the replays changed nothing and were not acts
    finally:
        _stop(restarted)
