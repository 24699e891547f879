"""The audit trail: who searched for whom, when, why, and what came back.

Face search can hurt people when it is wrong or abused, so every search, comparison and change to a
collection is recorded — by the library itself, so the CLI, the server and the video pipeline are all
covered. This module holds the event record, the sink interface, and ``AuditLog``: the hash-chained,
append-only implementation on SQLite.

Each stored record holds the hash of the record before it, and its own hash is SHA-256 over that previous
hash and the record's canonical JSON. Editing, deleting or reordering any record breaks the chain and
``AuditLog.verify`` says where. Two limits, documented in ``docs/server.md``: someone who can write the file
can rewrite the *whole* chain from the edit onwards (keep the head hash ``verify`` prints somewhere else to
detect that), and dropping records at the very end is only visible against such a saved head or count.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from facetrace.errors import StoreError

__all__ = [
    "GENESIS_HASH",
    "LOCAL_CALLER",
    "AuditEvent",
    "AuditLog",
    "AuditRecord",
    "AuditSink",
    "Caller",
    "Verification",
]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking, and why: ``principal`` is an access key id or ``local:<user>``; ``purpose`` a case ref."""

    principal: str = "local"
    purpose: str | None = None


LOCAL_CALLER = Caller()


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audited operation. Never contains an image or a vector."""

    operation: str  # Rekognition's operation name, e.g. SearchFacesByImage
    principal: str
    collection_id: str | None = None
    purpose: str | None = None
    threshold: float | None = None
    match_count: int | None = None
    matched_face_ids: tuple[str, ...] = ()
    detail: dict[str, str | int | float | None] = field(default_factory=dict)


class AuditSink(Protocol):
    def record(self, event: AuditEvent) -> None:
        """Append ``event`` durably; raise ``StoreError`` if it cannot be recorded."""
        ...


GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first record."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One stored record: the event, when it was recorded, and its place in the chain."""

    seq: int
    time: float  # unix seconds
    event: AuditEvent
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class Verification:
    """The result of checking the chain: ``ok`` with the head, or the first broken record and why."""

    ok: bool
    count: int  # records checked
    head: str  # hash of the last good record (GENESIS_HASH when empty)
    broken_seq: int | None = None
    reason: str | None = None


def _payload(seq: int, when: float, event: AuditEvent, prev_hash: str) -> str:
    """The canonical JSON a record's hash covers (sorted keys, no spaces)."""
    body: dict[str, Any] = {
        "seq": seq,
        "time": when,
        "operation": event.operation,
        "principal": event.principal,
        "collection_id": event.collection_id,
        "purpose": event.purpose,
        "threshold": event.threshold,
        "match_count": event.match_count,
        "matched_face_ids": list(event.matched_face_ids),
        "detail": event.detail,
        "prev_hash": prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _hash(payload: str) -> str:
    return hashlib.sha256(payload.encode("ascii")).hexdigest()


def _event(body: dict[str, Any]) -> AuditEvent:
    return AuditEvent(
        operation=body["operation"],
        principal=body["principal"],
        collection_id=body["collection_id"],
        purpose=body["purpose"],
        threshold=body["threshold"],
        match_count=body["match_count"],
        matched_face_ids=tuple(body["matched_face_ids"]),
        detail=dict(body["detail"]),
    )


_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    payload TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


class AuditLog:
    """A hash-chained, append-only audit log in one SQLite file (created 0600).

    Safe to share between threads, and between processes (the CLI and the server may append to the same
    file): the previous hash is read inside the same write transaction that appends.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # a new folder is private
            if not self.path.exists():
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the audit log {self.path}: {exc}") from None

    def record(self, event: AuditEvent) -> None:
        """Append ``event`` chained to the current head; durable when this returns."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    row = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                    seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS_HASH)
                    payload = _payload(seq, round(time.time(), 6), event, prev)
                    self._db.execute(
                        "INSERT INTO audit (seq, payload, hash) VALUES (?, ?, ?)", (seq, payload, _hash(payload))
                    )
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreError(f"cannot append to the audit log: {exc}") from None

    def records(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        operation: str | None = None,
        principal: str | None = None,
        collection_id: str | None = None,
    ) -> list[AuditRecord]:
        """Stored records in order (``seq`` > ``after``), optionally filtered; at most ``limit``."""
        out: list[AuditRecord] = []
        for record in self._iter(after):
            event = record.event
            if operation is not None and event.operation != operation:
                continue
            if principal is not None and event.principal != principal:
                continue
            if collection_id is not None and event.collection_id != collection_id:
                continue
            out.append(record)
            if limit is not None and len(out) >= limit:
                break
        return out

    def _rows(self, after: int = 0, chunk: int = 1000) -> Iterator[tuple[int, str, str]]:
        """(seq, payload, hash) in order, read in chunks so a long log never sits in memory at once."""
        while True:
            with self._lock:
                try:
                    rows = self._db.execute(
                        "SELECT seq, payload, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (after, chunk)
                    ).fetchall()
                except sqlite3.Error as exc:
                    raise StoreError(f"cannot read the audit log: {exc}") from None
            yield from rows
            if len(rows) < chunk:
                return
            after = rows[-1][0]

    def _iter(self, after: int = 0) -> Iterator[AuditRecord]:
        for seq, payload, digest in self._rows(after):
            try:
                body = json.loads(payload)
                event = _event(body)
                yield AuditRecord(seq, float(body["time"]), event, str(body["prev_hash"]), digest)
            except (ValueError, KeyError, TypeError):
                yield AuditRecord(seq, 0.0, AuditEvent("<unreadable>", "<unreadable>"), "", digest)

    def verify(self, *, expect_head: str | None = None) -> Verification:
        """Recompute the chain from the first record; report the first record that does not fit.

        ``expect_head`` is a head hash saved from an earlier verify: the log must still contain that record
        (records are only ever appended), which catches records dropped from the end.
        """
        prev, expected_seq, count, head_seen = GENESIS_HASH, 1, 0, expect_head in (None, GENESIS_HASH)
        for seq, payload, digest in self._rows():
            problem = _check(seq, payload, digest, prev, expected_seq)
            if problem is not None:
                return Verification(False, count, prev, broken_seq=seq, reason=problem)
            head_seen = head_seen or digest == expect_head
            prev, expected_seq, count = digest, seq + 1, count + 1
        if not head_seen:
            assert expect_head is not None
            reason = f"the expected head {expect_head[:16]}... is not in the log (truncated?)"
            return Verification(False, count, prev, reason=reason)
        return Verification(True, count, prev)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _check(seq: int, payload: str, digest: str, prev: str, expected_seq: int) -> str | None:
    if seq != expected_seq:
        return f"record {expected_seq} is missing (the next one is {seq})"
    if _hash(payload) != digest:
        return "the record's contents do not match its hash (edited)"
    try:
        body = json.loads(payload)
    except ValueError:
        return "the record is not valid JSON"
    if body.get("seq") != seq:
        return "the record's sequence number was changed"
    if body.get("prev_hash") != prev:
        return "the record does not follow the previous one (a record before it was edited or removed)"
    return None
