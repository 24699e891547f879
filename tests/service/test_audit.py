"""The hash-chained audit log: appends, survives threads, and notices edits, deletions and truncation."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from pathlib import Path

import pytest

from facetrace.audit import GENESIS_HASH, AuditEvent, AuditLog
from facetrace.cli import main


def _fill(log: AuditLog, count: int) -> None:
    for index in range(count):
        log.record(
            AuditEvent(
                operation="SearchFacesByImage",
                principal=f"key-{index % 2}",
                collection_id="people",
                purpose="case 1",
                threshold=90.0,
                match_count=1,
                matched_face_ids=(f"{index:08d}-0000-0000-0000-000000000000",),
            )
        )


def _tamper(path: Path, sql: str) -> None:
    """What someone with write access to the file could do (the triggers only stop accidents)."""
    db = sqlite3.connect(path)
    db.executescript("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; " + sql)
    db.close()


def test_records_chain_and_verify(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    assert log.verify().head == GENESIS_HASH
    _fill(log, 5)
    records = log.records()
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert records[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
    assert records[2].event.matched_face_ids == ("00000002-0000-0000-0000-000000000000",)
    result = log.verify()
    assert (result.ok, result.count, result.head) == (True, 5, records[-1].hash)
    assert [r.seq for r in log.records(principal="key-1")] == [2, 4]
    assert (tmp_path / "audit.db").stat().st_mode & 0o777 == 0o600


def test_the_log_refuses_updates_and_deletes(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    _fill(log, 1)
    db = sqlite3.connect(tmp_path / "audit.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("UPDATE audit SET payload = 'x'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM audit")
    db.close()


@pytest.mark.parametrize(
    ("sql", "broken", "reason"),
    [
        ("UPDATE audit SET payload = replace(payload, 'case 1', 'case 2') WHERE seq = 3", 3, "edited"),
        ("DELETE FROM audit WHERE seq = 2", 3, "missing"),
    ],
)
def test_verify_detects_tampering(tmp_path: Path, sql: str, broken: int, reason: str) -> None:
    _fill(AuditLog(tmp_path / "audit.db"), 5)
    _tamper(tmp_path / "audit.db", sql)
    result = AuditLog(tmp_path / "audit.db").verify()
    assert not result.ok
    assert result.broken_seq == broken
    assert reason in (result.reason or "")


def test_verify_detects_a_rehashed_record_by_its_successor(tmp_path: Path) -> None:
    import hashlib

    log = AuditLog(tmp_path / "audit.db")
    _fill(log, 3)
    payload = log.records()[1].event  # record 2
    assert payload.match_count == 1
    db = sqlite3.connect(tmp_path / "audit.db")
    (text,) = db.execute("SELECT payload FROM audit WHERE seq = 2").fetchone()
    db.close()
    forged = text.replace('"match_count":1', '"match_count":0')
    digest = hashlib.sha256(forged.encode()).hexdigest()
    _tamper(tmp_path / "audit.db", f"UPDATE audit SET payload = '{forged}', hash = '{digest}' WHERE seq = 2")
    result = AuditLog(tmp_path / "audit.db").verify()
    assert (result.ok, result.broken_seq) == (False, 3)


def test_truncation_is_caught_against_a_saved_head(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    _fill(log, 4)
    head = log.verify().head
    _tamper(tmp_path / "audit.db", "DELETE FROM audit WHERE seq = 4")
    assert AuditLog(tmp_path / "audit.db").verify().ok  # the chain alone cannot tell
    assert not AuditLog(tmp_path / "audit.db").verify(expect_head=head).ok


def test_concurrent_appends_keep_one_chain(tmp_path: Path) -> None:
    logs = [AuditLog(tmp_path / "audit.db") for _ in range(2)]  # two connections, as server + CLI
    threads = [threading.Thread(target=_fill, args=(logs[i % 2], 25)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = logs[0].verify()
    assert (result.ok, result.count) == (True, 100)


def test_cli_audit_list_and_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    _fill(AuditLog(tmp_path / "audit.db"), 3)
    assert main(["audit", "list", "--json", "--home", str(tmp_path), "--principal", "key-0"]) == 0
    listed = json.loads(capsys.readouterr().out)["Records"]
    assert [r["Seq"] for r in listed] == [1, 3]
    assert main(["audit", "verify", "--json", "--home", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["Ok"] is True
    _tamper(tmp_path / "audit.db", "UPDATE audit SET payload = replace(payload, 'key-1', 'key-9')")
    assert main(["audit", "verify", "--json", "--home", str(tmp_path)]) != 0
    report = json.loads(capsys.readouterr().out)
    assert (report["Ok"], report["BrokenSeq"]) == (False, 2)
