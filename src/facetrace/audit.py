"""The audit trail: who searched for whom, when, why, and what came back.

Face search can hurt people when it is wrong or abused, so every search, comparison and change to a
collection is recorded — by the library itself, so the CLI, the server and the video pipeline are all
covered. This module holds the event record, the ``AuditTrail`` interface every store provides
(``FaceStore.audit``), the hash-chain rules every backend shares, and ``MemoryAuditTrail``.

The trail lives in the same database as the collections (``store/sqlite_audit.py`` for SQLite), so a change
and its audit record commit in one transaction: both or neither. Searches append their record in its own
transaction and return their results only after it committed (fail closed).

Each stored record holds the hash of the record before it, and its own hash is SHA-256 over that previous
hash and the record's canonical JSON. Editing, deleting or reordering any record breaks the chain and
``AuditTrail.verify`` says where. Two limits, documented in ``docs/server.md``: someone who can write the file
can rewrite the *whole* chain from the edit onwards (keep the head hash ``verify`` prints somewhere else to
detect that), and dropping records at the very end is only visible against such a saved head or count.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from facetrace.errors import InvalidParameterError, StoreError

__all__ = [
    "AUDIT_UNAVAILABLE",
    "GENESIS_HASH",
    "LOCAL_CALLER",
    "MAX_PURPOSE",
    "AuditEvent",
    "AuditRecord",
    "AuditSink",
    "AuditTrail",
    "Caller",
    "MemoryAuditTrail",
    "Verification",
    "chain_hash",
    "chain_payload",
    "check_purpose",
    "check_record",
    "event_from_body",
    "filter_records",
    "new_row",
    "record_from_row",
    "verify_rows",
]


MAX_PURPOSE = 256
"""The longest purpose (case reference) a caller may give, in characters."""


def check_purpose(value: str | None) -> str | None:
    """``value`` as a purpose: None when empty; ``InvalidParameterError`` unless printable and at most
    ``MAX_PURPOSE`` characters. The purpose is shown later (``audit list``), so control characters, newlines
    and escape sequences never get in; markup is escaped where it is rendered."""
    if value is None or value == "":
        return None
    if len(value) > MAX_PURPOSE or not value.isprintable():
        raise InvalidParameterError(f"the purpose must be at most {MAX_PURPOSE} printable characters")
    return value


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking, and why: ``principal`` is an access key id or ``local:<user>``; ``purpose`` a case ref
    (checked by ``check_purpose`` on the way in, whichever door it came through)."""

    principal: str = "local"
    purpose: str | None = None

    def __post_init__(self) -> None:
        check_purpose(self.purpose)


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


class AuditTrail(Protocol):
    """The hash-chained, append-only audit trail of one store (``FaceStore.audit``).

    Changes to collections append their record inside the store's own transaction (the ``audit=`` argument
    of every mutating ``FaceStore`` method); ``record`` is for acts that change nothing (searches, compares,
    identifications) and commits its own transaction. Appends are serialised per database, so several
    processes sharing it keep one valid chain.
    """

    def record(self, event: AuditEvent) -> None:
        """Append ``event`` in its own durable transaction; ``StoreError`` if it cannot be recorded."""
        ...

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
        ...

    def verify(self, *, expect_head: str | None = None) -> Verification:
        """Recompute the chain from the first record; report the first record that does not fit."""
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


def chain_payload(seq: int, when: float, event: AuditEvent, prev_hash: str) -> str:
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


def chain_hash(payload: str) -> str:
    """SHA-256 of a record's canonical JSON (which already holds the previous record's hash)."""
    return hashlib.sha256(payload.encode("ascii")).hexdigest()


def event_from_body(body: dict[str, Any]) -> AuditEvent:
    """The event stored in a record's parsed payload."""
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


AUDIT_UNAVAILABLE = "audit store unavailable"
"""How every failure to append an audit record begins (``StoreError``), on every backend."""


def record_from_row(seq: int, payload: str, digest: str) -> AuditRecord:
    """A stored row as a record; a row whose payload cannot be read is shown as ``<unreadable>``."""
    try:
        body = json.loads(payload)
        return AuditRecord(seq, float(body["time"]), event_from_body(body), str(body["prev_hash"]), digest)
    except (ValueError, KeyError, TypeError):
        return AuditRecord(seq, 0.0, AuditEvent("<unreadable>", "<unreadable>"), "", digest)


def filter_records(
    rows: Iterable[tuple[int, str, str]],
    *,
    limit: int | None = None,
    operation: str | None = None,
    principal: str | None = None,
    collection_id: str | None = None,
) -> list[AuditRecord]:
    """The records among ``rows`` (seq, payload, hash; in order) that match every given filter."""
    out: list[AuditRecord] = []
    for seq, payload, digest in rows:
        record = record_from_row(seq, payload, digest)
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


def verify_rows(rows: Iterable[tuple[int, str, str]], *, expect_head: str | None = None) -> Verification:
    """Check a whole chain given as rows (seq, payload, hash) in order, from the first record.

    ``expect_head`` is a head hash saved from an earlier verify: the chain must still contain that record
    (records are only ever appended), which catches records dropped from the end.
    """
    prev, expected_seq, count, head_seen = GENESIS_HASH, 1, 0, expect_head in (None, GENESIS_HASH)
    for seq, payload, digest in rows:
        problem = check_record(seq, payload, digest, prev, expected_seq)
        if problem is not None:
            return Verification(False, count, prev, broken_seq=seq, reason=problem)
        head_seen = head_seen or digest == expect_head
        prev, expected_seq, count = digest, seq + 1, count + 1
    if not head_seen:
        assert expect_head is not None
        reason = f"the expected head {expect_head[:16]}... is not in the log (truncated?)"
        return Verification(False, count, prev, reason=reason)
    return Verification(True, count, prev)


def new_row(seq: int, prev: str, event: AuditEvent, when: float | None = None) -> tuple[int, str, str]:
    """The row (seq, payload, hash) that appends ``event`` after ``prev``; time is now unless given."""
    payload = chain_payload(seq, round(time.time() if when is None else when, 6), event, prev)
    return seq, payload, chain_hash(payload)


class MemoryAuditTrail:
    """The audit trail of a ``MemoryStore``: the same chain in process memory (gone with the process).

    ``fail_with`` makes every append raise ``StoreError`` (failure injection for tests of fail-closed paths).
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._rows: list[tuple[int, str, str]] = []
        self.fail_with: str | None = None

    @property
    def lock(self) -> threading.RLock:
        """Held by the store while it changes data and appends, so the two happen as one step."""
        return self._lock

    def prepare(self, event: AuditEvent) -> tuple[int, str, str]:
        """The next row for ``event``, not yet appended; raises if appends fail. Call under ``lock``."""
        if self.fail_with is not None:
            raise StoreError(f"{AUDIT_UNAVAILABLE}: {self.fail_with}")
        seq, prev = (self._rows[-1][0] + 1, self._rows[-1][2]) if self._rows else (1, GENESIS_HASH)
        return new_row(seq, prev, event)

    def commit(self, row: tuple[int, str, str]) -> None:
        """Append a row from ``prepare`` (cannot fail). Call under ``lock``."""
        self._rows.append(row)

    def record(self, event: AuditEvent) -> None:
        with self._lock:
            self.commit(self.prepare(event))

    def records(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        operation: str | None = None,
        principal: str | None = None,
        collection_id: str | None = None,
    ) -> list[AuditRecord]:
        with self._lock:
            rows = [row for row in self._rows if row[0] > after]
        return filter_records(
            rows, limit=limit, operation=operation, principal=principal, collection_id=collection_id
        )

    def verify(self, *, expect_head: str | None = None) -> Verification:
        with self._lock:
            rows = list(self._rows)
        return verify_rows(rows, expect_head=expect_head)


def check_record(seq: int, payload: str, digest: str, prev: str, expected_seq: int) -> str | None:
    """Why the stored row (seq, payload, hash) does not continue the chain after ``prev``, or None."""
    if seq != expected_seq:
        return f"record {expected_seq} is missing (the next one is {seq})"
    if chain_hash(payload) != digest:
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


# The helpers' names before they became public, for code written against them in parallel (the PostgreSQL
# store); remove once nothing imports them.
_payload = chain_payload
_hash = chain_hash
_event = event_from_body
_check = check_record
