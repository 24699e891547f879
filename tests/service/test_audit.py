"""The hash-chained audit trail in the store's database: appends, survives threads and processes sharing the
file, notices edits, deletions and truncation, and imports the separate audit.db of older versions."""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
from pathlib import Path

import pytest

from facetrace.audit import GENESIS_HASH, AuditEvent, AuditTrail, new_row
from facetrace.cli import main
from facetrace.errors import StoreError
from facetrace.store import SQLiteStore, open_store


def _event(index: int) -> AuditEvent:
    return AuditEvent(
        operation="SearchFacesByImage",
        principal=f"key-{index % 2}",
        collection_id="people",
        purpose="case 1",
        threshold=90.0,
        match_count=1,
        matched_face_ids=(f"{index:08d}-0000-0000-0000-000000000000",),
    )


def _fill(log: AuditTrail, count: int) -> None:
    for index in range(count):
        log.record(_event(index))


def _tamper(path: Path, sql: str) -> None:
    """What someone with write access to the file could do (the triggers only stop accidents)."""
    db = sqlite3.connect(path)
    db.executescript("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; " + sql)
    db.close()


def _legacy_audit_db(path: Path, count: int) -> str:
    """An audit.db as facetrace before schema 2 wrote it (same table, same chain); returns its head."""
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE audit (seq INTEGER PRIMARY KEY, payload TEXT NOT NULL, hash TEXT NOT NULL);"
        "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit"
        " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
        "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit"
        " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
    )
    prev = GENESIS_HASH
    for index in range(count):
        row = new_row(index + 1, prev, _event(index), when=1_700_000_000.0 + index)
        db.execute("INSERT INTO audit VALUES (?, ?, ?)", row)
        prev = row[2]
    db.commit()
    db.close()
    return prev


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "facetrace.db")


def test_records_chain_and_verify(store: SQLiteStore, tmp_path: Path) -> None:
    log = store.audit
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
    assert [r.seq for r in log.records(after=2, limit=2)] == [3, 4]
    assert (tmp_path / "facetrace.db").stat().st_mode & 0o777 == 0o600


def test_the_trail_refuses_updates_and_deletes(store: SQLiteStore, tmp_path: Path) -> None:
    _fill(store.audit, 1)
    db = sqlite3.connect(tmp_path / "facetrace.db")
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
    first = SQLiteStore(tmp_path / "facetrace.db")
    _fill(first.audit, 5)
    first.close()
    _tamper(tmp_path / "facetrace.db", sql)
    result = SQLiteStore(tmp_path / "facetrace.db").audit.verify()
    assert not result.ok
    assert result.broken_seq == broken
    assert reason in (result.reason or "")


@pytest.mark.parametrize(("keyed", "broken"), [(False, 3), (True, 2)])
def test_verify_detects_a_rehashed_record(tmp_path: Path, keyed: bool, broken: int) -> None:
    """Unkeyed, a record re-hashed with SHA-256 is caught by its successor; keyed, by its own hash."""
    import hashlib

    first = SQLiteStore(tmp_path / "facetrace.db", keyed=keyed)
    _fill(first.audit, 3)
    assert first.audit.records()[1].event.match_count == 1
    first.close()
    db = sqlite3.connect(tmp_path / "facetrace.db")
    (text,) = db.execute("SELECT payload FROM audit WHERE seq = 2").fetchone()
    db.close()
    forged = text.replace('"match_count":1', '"match_count":0')
    digest = hashlib.sha256(forged.encode()).hexdigest()
    _tamper(tmp_path / "facetrace.db", f"UPDATE audit SET payload = '{forged}', hash = '{digest}' WHERE seq = 2")
    result = SQLiteStore(tmp_path / "facetrace.db", keyed=keyed).audit.verify()
    assert (result.ok, result.broken_seq) == (False, broken)


def test_truncation_is_caught_against_a_saved_head(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "facetrace.db")
    _fill(first.audit, 4)
    head = first.audit.verify().head
    first.close()
    _tamper(tmp_path / "facetrace.db", "DELETE FROM audit WHERE seq = 4")
    again = SQLiteStore(tmp_path / "facetrace.db")
    assert again.audit.verify().ok  # the chain alone cannot tell
    assert not again.audit.verify(expect_head=head).ok


def test_concurrent_appends_keep_one_chain(tmp_path: Path) -> None:
    stores = [SQLiteStore(tmp_path / "facetrace.db") for _ in range(2)]  # two connections, as server + CLI
    threads = [threading.Thread(target=_fill, args=(stores[i % 2].audit, 25)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = stores[0].audit.verify()
    assert (result.ok, result.count) == (True, 100)


def test_cli_audit_list_and_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = open_store(tmp_path)
    _fill(first.audit, 3)
    first.close()
    assert main(["audit", "list", "--json", "--home", str(tmp_path), "--principal", "key-0"]) == 0
    listed = json.loads(capsys.readouterr().out)["Records"]
    assert [r["Seq"] for r in listed] == [1, 3]
    assert main(["audit", "verify", "--json", "--home", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["Ok"] is True
    _tamper(tmp_path / "facetrace.db", "UPDATE audit SET payload = replace(payload, 'key-1', 'key-9')")
    assert main(["audit", "verify", "--json", "--home", str(tmp_path)]) != 0
    report = json.loads(capsys.readouterr().out)
    assert (report["Ok"], report["BrokenSeq"]) == (False, 2)


def test_an_old_audit_db_is_imported_with_its_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    head = _legacy_audit_db(tmp_path / "audit.db", 4)
    store = open_store(tmp_path)
    records = store.audit.records()
    assert [r.seq for r in records] == [1, 2, 3, 4]
    assert records[0].time == 1_700_000_000.0
    assert store.audit.verify(expect_head=head).ok  # a head saved before the upgrade still verifies
    store.audit.record(_event(9))  # and the chain continues from it
    assert store.audit.verify().count == 5
    store.close()
    assert not (tmp_path / "audit.db").exists()
    assert (tmp_path / "audit.db.imported").exists()
    assert main(["audit", "verify", "--json", "--home", str(tmp_path), "--expect-head", head]) == 0
    assert json.loads(capsys.readouterr().out)["Records"] == 5


def test_a_broken_old_audit_db_is_refused_and_kept(tmp_path: Path) -> None:
    _legacy_audit_db(tmp_path / "audit.db", 3)
    _tamper(tmp_path / "audit.db", "UPDATE audit SET payload = replace(payload, 'case 1', 'case 9') WHERE seq = 2")
    with pytest.raises(StoreError, match="does not verify"):
        open_store(tmp_path)
    assert (tmp_path / "audit.db").exists()
    check = SQLiteStore(tmp_path / "facetrace.db")
    assert check.audit.records() == []  # nothing half-imported
    check.close()


def test_an_old_audit_db_beside_another_chain_is_refused(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    _fill(store.audit, 2)
    store.close()
    _legacy_audit_db(tmp_path / "audit.db", 3)
    with pytest.raises(StoreError, match="will not merge"):
        open_store(tmp_path)
    assert (tmp_path / "audit.db").exists()
