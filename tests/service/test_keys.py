"""Access keys: private file, secrets shown once and never listed, permissions and collections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facetrace.cli import main
from facetrace.errors import InvalidParameterError, NotFoundError
from facetrace.service.keys import KeyStore, Permission


def test_create_list_delete(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "facetrace.db")
    key = store.create("write", collections=["a", "b"], description="ingest")
    assert key.access_key_id.startswith("FT")
    assert len(key.access_key_id) == 20
    assert len(key.secret) >= 40
    assert (tmp_path / "facetrace.db").stat().st_mode & 0o777 == 0o600
    assert key.secret not in repr(key)
    again = KeyStore(tmp_path / "facetrace.db").get(key.access_key_id)
    assert again == key
    assert again.may(Permission.READ)
    assert again.may(Permission.WRITE)
    assert not again.may(Permission.ADMIN)
    assert again.sees("a")
    assert not again.sees("c")
    store.delete(key.access_key_id)
    assert store.list() == []
    with pytest.raises(NotFoundError):
        store.delete(key.access_key_id)


def test_refuses_bad_settings(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "facetrace.db")
    with pytest.raises(InvalidParameterError):
        store.create("root")
    with pytest.raises(InvalidParameterError):
        store.create("read", collections=["bad name"])
    with pytest.raises(InvalidParameterError):
        store.create("read", collections=[])


def test_cli_shows_the_secret_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = ["--home", str(tmp_path / "home")]
    assert main(["keys", "create", "--permission", "read", "--collection", "people", "--json", *home]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["Permission"] == "read"
    assert created["Collections"] == ["people"]
    secret = created["SecretAccessKey"]
    assert main(["keys", "list", "--json", *home]) == 0
    listing = capsys.readouterr().out
    assert created["AccessKeyId"] in listing
    assert secret not in listing
    assert main(["keys", "list", *home]) == 0
    assert secret not in capsys.readouterr().out
    assert main(["keys", "delete", created["AccessKeyId"], *home]) == 0
    assert main(["keys", "delete", created["AccessKeyId"], *home]) == 1
