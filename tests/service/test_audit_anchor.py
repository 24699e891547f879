"""Issue 9, item 11: the audit chain anchored by a key kept apart from the log and by signed checkpoints.

Each attack is done as someone who can write facetrace.db but has not got the audit key: re-chain after an
edit, replace the whole log, drop the tail, empty it, forge a tail. Records written before a key existed keep
verifying (backward compatibility) and verify says which range is keyed.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from facetrace.audit import (
    AUDIT_KEY_ENV,
    AUDIT_KEY_FILENAME,
    GENESIS_HASH,
    AuditEvent,
    AuditKey,
    Caller,
    Checkpoint,
    MemoryAuditTrail,
    load_audit_key,
    new_row,
    sign_checkpoint,
    verify_rows,
)
from facetrace.cli import main
from facetrace.errors import InvalidParameterError, StoreError
from facetrace.store import SQLiteStore
from tests.service.test_audit import _event, _fill, _tamper

OTHER = AuditKey(b"an attacker's own key, 32 bytes or more")


def _rows(path: Path) -> list[tuple[int, str, str]]:
    db = sqlite3.connect(path)
    rows = [
        (int(s), str(p), str(h)) for s, p, h in db.execute("SELECT seq, payload, hash FROM audit ORDER BY seq")
    ]
    db.close()
    return rows


def _rewrite(path: Path, rows: list[tuple[int, str, str]]) -> None:
    """Replace the whole log, as someone with write access to the file could."""
    db = sqlite3.connect(path)
    db.executescript(
        "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete; DELETE FROM audit;"
    )
    db.executemany("INSERT INTO audit VALUES (?, ?, ?)", rows)
    db.commit()
    db.close()


def _unkeyed_chain(
    events: list[AuditEvent], start: int = 1, prev: str = GENESIS_HASH
) -> list[tuple[int, str, str]]:
    rows = []
    for offset, event in enumerate(events):
        row = new_row(start + offset, prev, event)
        rows.append(row)
        prev = row[2]
    return rows


def _with_key_id(payload: str, key_id: str) -> str:
    body = json.loads(payload)
    body["key_id"] = key_id
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(AUDIT_KEY_ENV, raising=False)
    return tmp_path


def _store(home: Path) -> SQLiteStore:
    return SQLiteStore(home / "facetrace.db")


def _checkpointed(home: Path, records: int) -> tuple[Checkpoint, SQLiteStore]:
    store = _store(home)
    _fill(store.audit, records)
    assert store.audit.key is not None
    return sign_checkpoint(store.audit, store.audit.key, Caller("local:test")), store


def test_the_key_is_made_private_and_records_are_keyed(home: Path) -> None:
    store = _store(home)
    _fill(store.audit, 3)
    assert (home / AUDIT_KEY_FILENAME).stat().st_mode & 0o777 == 0o600
    result = store.audit.verify()
    assert (result.ok, result.keyed_from, result.authenticated) == (True, 1, True)
    assert "records 1-3 keyed, authenticated" in result.coverage
    assert all('"key_id":' in payload for _, payload, _ in _rows(home / "facetrace.db"))
    store.close()


def test_a_key_readable_by_others_is_refused(home: Path) -> None:
    _store(home).close()
    os.chmod(home / AUDIT_KEY_FILENAME, 0o644)
    with pytest.raises(StoreError, match="private"):
        load_audit_key(home)


def test_rechaining_after_an_edit_is_caught_without_a_checkpoint(home: Path) -> None:
    store = _store(home)
    _fill(store.audit, 5)
    store.close()
    rows = _rows(home / "facetrace.db")
    edited = AuditEvent("SearchFacesByImage", "key-1", "people", "case 1", 90.0, 0)  # hide a match
    forged = rows[:1] + _unkeyed_chain([edited] + [_event(i) for i in range(2, 5)], start=2, prev=rows[0][2])
    _rewrite(home / "facetrace.db", forged)
    result = _store(home).audit.verify()
    assert (result.ok, result.broken_seq) == (False, 2)
    assert "unkeyed record after keyed" in (result.reason or "")


def test_a_replaced_log_is_caught_by_a_checkpoint_and_warned_about_without(home: Path) -> None:
    checkpoint, store = _checkpointed(home, 4)
    store.close()
    _rewrite(home / "facetrace.db", _unkeyed_chain([_event(i) for i in range(6)]))
    again = _store(home)
    plain = again.audit.verify()
    assert plain.ok  # a consistent SHA-256 chain ...
    assert plain.warning is not None  # ... that has no keyed record although a key exists
    assert "unkeyed" in plain.coverage
    anchored = again.audit.verify(checkpoint=checkpoint)
    assert not anchored.ok
    assert "re-chained or replaced" in (anchored.reason or "")


@pytest.mark.parametrize("keep", [3, 0])  # records dropped from the end; the log emptied
def test_truncation_and_emptying_are_caught_by_a_checkpoint(home: Path, keep: int) -> None:
    checkpoint, store = _checkpointed(home, 4)
    store.close()
    _tamper(home / "facetrace.db", f"DELETE FROM audit WHERE seq > {keep}")
    again = _store(home)
    assert again.audit.verify().ok  # the chain alone cannot tell
    result = again.audit.verify(checkpoint=checkpoint)
    assert not result.ok
    assert "truncated" in (result.reason or "")


def test_a_forged_tail_is_caught(home: Path) -> None:
    checkpoint, store = _checkpointed(home, 3)
    store.close()
    rows = _rows(home / "facetrace.db")
    head, key_id = rows[-1], checkpoint.key_id
    for forged in (
        new_row(head[0] + 1, head[2], _event(7)),  # unkeyed
        new_row(head[0] + 1, head[2], _event(7), key=OTHER),  # keyed with another key
        (head[0] + 1, _with_key_id(new_row(head[0] + 1, head[2], _event(7))[1], key_id), "f" * 64),  # no key
    ):
        _rewrite(home / "facetrace.db", [*rows, forged])
        result = _store(home).audit.verify(checkpoint=checkpoint)
        assert (result.ok, result.broken_seq) == (False, head[0] + 1), result.reason
    _rewrite(home / "facetrace.db", rows)
    assert _store(home).audit.verify(checkpoint=checkpoint).ok


def test_records_from_before_the_key_still_verify_and_the_range_is_reported(home: Path) -> None:
    legacy = SQLiteStore(home / "facetrace.db", keyed=False)
    _fill(legacy.audit, 3)
    old_head = legacy.audit.verify().head
    legacy.close()
    store = _store(home)  # the upgrade: a key is made, later records are keyed
    _fill(store.audit, 2)
    result = store.audit.verify(expect_head=old_head)
    assert (result.ok, result.count, result.keyed_from) == (True, 5, 4)
    assert result.coverage.startswith("records 1-3 unkeyed, records 4-5 keyed, authenticated")
    store.close()


def test_a_checkpoint_cannot_be_edited_or_signed_with_another_key(home: Path) -> None:
    checkpoint, store = _checkpointed(home, 2)
    moved = Checkpoint(checkpoint.seq - 1, checkpoint.head, checkpoint.time, checkpoint.key_id, checkpoint.mac)
    resigned = Checkpoint.sign(OTHER, checkpoint.seq, checkpoint.head)
    for bad in (moved, resigned):
        result = store.audit.verify(checkpoint=bad)
        assert not result.ok
        assert "signature" in (result.reason or "")
    assert Checkpoint.from_json(checkpoint.to_json()) == checkpoint
    with pytest.raises(InvalidParameterError):
        Checkpoint.from_json('{"seq": "x"}')
    store.close()


def test_without_the_key_keyed_records_are_linked_but_not_authenticated() -> None:
    key = AuditKey(b"k" * 32)
    trail = MemoryAuditTrail(key)
    _fill(trail, 2)
    rows = list(trail._rows)
    result = verify_rows(rows)
    assert (result.ok, result.authenticated, result.keyed_from) == (True, False, 1)
    assert "NOT authenticated" in result.coverage


def test_cli_checkpoint_then_verify(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _store(home)
    _fill(store.audit, 3)
    store.close()
    saved = home / "elsewhere.checkpoints"
    assert main(["audit", "checkpoint", "--home", str(home), "--out", str(saved), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["Seq"] == 4  # three records and the checkpoint's own
    assert saved.read_text().strip() == printed["Checkpoint"]
    assert main(["audit", "verify", "--home", str(home), "--checkpoint", str(saved), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["Ok"], report["CheckpointSeq"], report["KeyedFrom"]) == (True, 4, 1)
    assert "match the signed checkpoint" in report["Covers"]
    _tamper(home / "facetrace.db", "DELETE FROM audit WHERE seq = 4")
    assert main(["audit", "verify", "--home", str(home), "--checkpoint", str(saved), "--json"]) != 0
    assert json.loads(capsys.readouterr().out)["Ok"] is False


def test_a_detail_named_key_id_does_not_make_a_record_keyed() -> None:
    trail = MemoryAuditTrail()
    trail.record(AuditEvent("CreateAccessKey", "local:x", detail={"key_id": "not-a-key"}))
    trail.record(AuditEvent("ListFaces", "local:x"))
    result = trail.verify()
    assert (result.ok, result.keyed_from) == (True, None)


def test_a_key_kept_elsewhere_is_used_and_none_is_made_in_the_home(
    home: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path_factory.mktemp("secrets") / "facetrace-audit.key"
    elsewhere.write_text("k" * 40)
    elsewhere.chmod(0o600)
    monkeypatch.setenv("FACETRACE_AUDIT_KEY_FILE", str(elsewhere))
    store = _store(home)
    _fill(store.audit, 2)
    assert not (home / AUDIT_KEY_FILENAME).exists()
    assert store.audit.key == AuditKey(b"k" * 40)
    assert store.audit.verify().authenticated
    store.close()
    monkeypatch.delenv("FACETRACE_AUDIT_KEY_FILE")
    wrong = _store(home)  # now a new key is made in the home: the old records name another key
    result = wrong.audit.verify()
    assert not result.ok
    assert "another audit key" in (result.reason or "")
    wrong.close()
