"""The audit trail: who searched for whom, when, why, and what came back.

Face search can hurt people when it is wrong or abused, so every search, comparison and change to a
collection is recorded — by the library itself, so the CLI, the server and the video pipeline are all
covered. This module holds the event record, the ``AuditTrail`` interface every store provides
(``FaceStore.audit``), the hash-chain rules every backend shares, and ``MemoryAuditTrail``.

The trail lives in the same database as the collections (``store/sqlite_audit.py`` for SQLite), so a change
and its audit record commit in one transaction: both or neither. Searches append their record in its own
transaction and return their results only after it committed (fail closed).

Each stored record holds the hash of the record before it, and its own hash is over that previous hash and the
record's canonical JSON. Editing, deleting or reordering any record breaks the chain and ``AuditTrail.verify``
says where.

A plain SHA-256 chain can be rebuilt by anyone who can write the database, so records are *keyed*: with an
``AuditKey`` (``load_audit_key``: ``$FACETRACE_AUDIT_KEY``, the file ``$FACETRACE_AUDIT_KEY_FILE``, else
``<home>/audit.key``, 0600, made on first use) a record's hash is HMAC-SHA256 under that key and its payload
names the key (``key_id``). Without the key nobody can append, edit or re-chain a keyed record so that verify
(with the key) accepts it, and an unkeyed record after a keyed one is refused. Records written before a key
existed stay plain SHA-256 and still verify; ``Verification`` says which range is keyed. Dropping records at
the end or replacing the whole log is only visible against something kept elsewhere: a signed ``Checkpoint``
(``facetrace audit checkpoint``) of the head, checked by ``verify(checkpoint=...)``. See docs/security.md.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from facetrace.errors import InvalidParameterError, StoreError

log = logging.getLogger(__name__)

__all__ = [
    "AUDIT_KEY_ENV",
    "AUDIT_KEY_FILENAME",
    "AUDIT_KEY_FILE_ENV",
    "AUDIT_UNAVAILABLE",
    "GENESIS_HASH",
    "LOCAL_CALLER",
    "MAX_PURPOSE",
    "AuditEvent",
    "AuditKey",
    "AuditRecord",
    "AuditSink",
    "AuditTrail",
    "Caller",
    "Checkpoint",
    "MemoryAuditTrail",
    "Verification",
    "chain_hash",
    "chain_payload",
    "check_purpose",
    "check_record",
    "env_audit_key",
    "event_from_body",
    "filter_records",
    "load_audit_key",
    "new_row",
    "record_from_row",
    "sign_checkpoint",
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

    def verify(self, *, expect_head: str | None = None, checkpoint: Checkpoint | None = None) -> Verification:
        """Recompute the chain from the first record; report the first record that does not fit."""
        ...


GENESIS_HASH = "0" * 64
"""The ``prev_hash`` of the first record."""

AUDIT_KEY_ENV = "FACETRACE_AUDIT_KEY"
AUDIT_KEY_FILE_ENV = "FACETRACE_AUDIT_KEY_FILE"
AUDIT_KEY_FILENAME = "audit.key"
_MIN_KEY = 32


@dataclass(frozen=True, slots=True)
class AuditKey:
    """The secret that authenticates records and checkpoints; ``key_id`` names it in records (not secret)."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) < _MIN_KEY:
            raise StoreError(f"an audit key needs at least {_MIN_KEY} bytes")

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"facetrace-audit-key-id\0" + self.secret).hexdigest()[:16]

    def mac(self, text: str) -> str:
        return hmac.new(self.secret, text.encode("utf-8"), hashlib.sha256).hexdigest()


def _key_from_text(text: str, where: str) -> AuditKey:
    material = text.strip()
    if len(material) < _MIN_KEY:
        raise StoreError(f"the audit key in {where} is shorter than {_MIN_KEY} characters")
    return AuditKey(material.encode("utf-8"))


def _read_key_file(path: Path) -> AuditKey:
    try:
        info = path.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO) and info.st_uid == os.getuid():
            raise StoreError(f"the audit key {path} must be private to its owner (chmod 600 {path})")
        return _key_from_text(path.read_text("ascii"), str(path))
    except (OSError, UnicodeError) as exc:
        raise StoreError(f"cannot read the audit key {path}: {exc}") from exc


def env_audit_key() -> AuditKey | None:
    """The key named by the environment (``$FACETRACE_AUDIT_KEY``, else the file ``$FACETRACE_AUDIT_KEY_FILE``).

    Asked on every PostgreSQL append, so the answer is cached per setting (and per file modification)."""
    text = os.environ.get(AUDIT_KEY_ENV)
    if text:
        return _env_key(text, None, 0)
    path = os.environ.get(AUDIT_KEY_FILE_ENV)
    if not path:
        return None
    file = Path(path).expanduser()
    try:
        stamp = file.stat().st_mtime_ns
    except OSError as exc:
        raise StoreError(f"cannot read the audit key {file}: {exc}") from exc
    return _env_key(None, str(file), stamp)


@functools.lru_cache(maxsize=8)
def _env_key(text: str | None, path: str | None, _stamp: int) -> AuditKey:
    return _key_from_text(text, AUDIT_KEY_ENV) if text is not None else _read_key_file(Path(str(path)))


def load_audit_key(folder: Path | None = None, *, create: bool = True) -> AuditKey | None:
    """The audit key: the environment's, else ``folder/audit.key`` (made, 0600, when missing and ``create``).

    A key in the same folder as the database only helps against someone who can change the database but not
    read that folder's other files (a backup, a database-only credential, a replica); keep it elsewhere with
    ``$FACETRACE_AUDIT_KEY_FILE`` (another owner, a secrets mount) where it matters. None when there is none
    and one cannot be made (a read-only folder): records are then plain SHA-256, as before keys existed.
    """
    key = env_audit_key()
    if key is not None or folder is None:
        return key
    path = folder / AUDIT_KEY_FILENAME
    if not path.exists() and create:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(secrets.token_hex(32) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        except FileExistsError:
            pass  # another process made it first: read theirs
        except OSError as exc:
            log.warning("cannot create the audit key %s (%s): records stay unkeyed", path, exc)
            return None
    return _read_key_file(path) if path.exists() else None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement "the log had ``seq`` records ending in ``head`` at ``time``", kept off the machine.

    Checked with the key that signed it, it catches what the chain alone cannot: records dropped from the end
    (fewer than ``seq``), a log re-chained or replaced (record ``seq`` is not ``head``), and — since every
    record after a keyed one must be keyed — a tail forged without the key."""

    seq: int
    head: str
    time: float
    key_id: str
    mac: str

    @staticmethod
    def _text(seq: int, head: str, when: float, key_id: str) -> str:
        return f"facetrace-audit-checkpoint|{seq}|{head}|{when!r}|{key_id}"

    @classmethod
    def sign(cls, key: AuditKey, seq: int, head: str, when: float | None = None) -> Checkpoint:
        moment = round(time.time() if when is None else when, 6)
        return cls(seq, head, moment, key.key_id, key.mac(cls._text(seq, head, moment, key.key_id)))

    def valid(self, key: AuditKey) -> bool:
        expected = key.mac(self._text(self.seq, self.head, self.time, self.key_id))
        return self.key_id == key.key_id and hmac.compare_digest(expected, self.mac)

    def to_json(self) -> str:
        data = {"seq": self.seq, "head": self.head, "time": self.time, "key_id": self.key_id, "mac": self.mac}
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        """A checkpoint from ``to_json``'s text; ``InvalidParameterError`` if it is not one."""
        try:
            data = json.loads(text)
            seq, head, when = int(data["seq"]), str(data["head"]), float(data["time"])
            key_id, mac = str(data["key_id"]), str(data["mac"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidParameterError(f"not a facetrace audit checkpoint: {exc}") from None
        if seq < 1 or len(head) != 64 or len(mac) != 64:
            raise InvalidParameterError("not a facetrace audit checkpoint")
        return cls(seq, head, when, key_id, mac)


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
    keyed_from: int | None = None  # the first keyed record; those before it are plain SHA-256
    authenticated: bool = False  # the keyed records were checked with their key (not only their links)
    checkpoint_seq: int | None = None  # records 1..checkpoint_seq match a signed checkpoint
    warning: str | None = None

    @property
    def coverage(self) -> str:
        """What this verification does and does not vouch for, in one sentence."""
        if self.count == 0:
            covered = "the log is empty"
        elif self.keyed_from is None:
            covered = f"records 1-{self.count} are unkeyed (SHA-256 only: rewritable by whoever can write the log)"
        else:
            plain = f"records 1-{self.keyed_from - 1} unkeyed, " if self.keyed_from > 1 else ""
            check = "authenticated with the audit key" if self.authenticated else "NOT authenticated (no key)"
            covered = f"{plain}records {self.keyed_from}-{self.count} keyed, {check}"
        if self.checkpoint_seq is not None:
            covered += f"; records 1-{self.checkpoint_seq} match the signed checkpoint"
        else:
            covered += "; no checkpoint given, so records dropped from the end or a replaced log go unnoticed"
        return covered


def chain_payload(seq: int, when: float, event: AuditEvent, prev_hash: str, key_id: str | None = None) -> str:
    """The canonical JSON a record's hash covers (sorted keys, no spaces); ``key_id`` only in keyed records,
    so an unkeyed record's payload is what it always was."""
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
    if key_id is not None:
        body["key_id"] = key_id
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


def verify_rows(
    rows: Iterable[tuple[int, str, str]],
    *,
    expect_head: str | None = None,
    key: AuditKey | None = None,
    checkpoint: Checkpoint | None = None,
) -> Verification:
    """Check a whole chain given as rows (seq, payload, hash) in order, from the first record.

    ``expect_head`` is a head hash saved from an earlier verify: the chain must still contain that record
    (records are only ever appended), which catches records dropped from the end. ``key`` authenticates keyed
    records (without it only their links are checked); ``checkpoint`` must be signed by ``key`` and the log
    must still hold its record ``seq`` with hash ``head``.
    """
    if checkpoint is not None and (key is None or not checkpoint.valid(key)):
        reason = "the checkpoint's signature does not verify with this audit key (or no key is configured)"
        return Verification(False, 0, GENESIS_HASH, reason=reason)
    prev, expected_seq, count, head_seen = GENESIS_HASH, 1, 0, expect_head in (None, GENESIS_HASH)
    keyed_from: int | None = None

    def result(ok: bool, **more: Any) -> Verification:
        return Verification(ok, count, prev, keyed_from=keyed_from, authenticated=key is not None, **more)

    for seq, payload, digest in rows:
        problem, keyed = _check_row(seq, payload, digest, prev, expected_seq, key, keyed_from is not None)
        if problem is not None:
            return result(False, broken_seq=seq, reason=problem)
        if keyed and keyed_from is None:
            keyed_from = seq
        if checkpoint is not None and seq == checkpoint.seq and digest != checkpoint.head:
            reason = f"record {seq} is not the one the checkpoint signed (the log was re-chained or replaced)"
            return result(False, broken_seq=seq, reason=reason)
        head_seen = head_seen or digest == expect_head
        prev, expected_seq, count = digest, seq + 1, count + 1
    if not head_seen:
        assert expect_head is not None
        return result(False, reason=f"the expected head {expect_head[:16]}... is not in the log (truncated?)")
    if checkpoint is not None and count < checkpoint.seq:
        reason = f"the log has {count} records but the checkpoint signed {checkpoint.seq} (truncated or emptied)"
        return result(False, reason=reason)
    warning = None
    if key is not None and count and keyed_from is None:
        warning = "an audit key is configured but no record is keyed: the log may have been replaced"
    return result(True, checkpoint_seq=None if checkpoint is None else checkpoint.seq, warning=warning)


def new_row(
    seq: int, prev: str, event: AuditEvent, when: float | None = None, *, key: AuditKey | None = None
) -> tuple[int, str, str]:
    """The row (seq, payload, hash) that appends ``event`` after ``prev``; time is now unless given. With
    ``key`` the record is keyed: its payload names the key and its hash is the HMAC of the payload."""
    moment = round(time.time() if when is None else when, 6)
    if key is None:
        payload = chain_payload(seq, moment, event, prev)
        return seq, payload, chain_hash(payload)
    payload = chain_payload(seq, moment, event, prev, key.key_id)
    return seq, payload, key.mac(payload)


def sign_checkpoint(trail: AuditTrail, key: AuditKey, caller: Caller) -> Checkpoint:
    """Record that a checkpoint is taken, verify the whole chain, and sign its head (``StoreError`` if broken).

    The checkpoint's own record is keyed, so everything appended after the checkpoint must be keyed too."""
    trail.record(AuditEvent("AuditCheckpoint", caller.principal, purpose=caller.purpose))
    result = trail.verify()
    if not result.ok:
        raise StoreError(f"the audit log does not verify (record {result.broken_seq}: {result.reason})")
    return Checkpoint.sign(key, result.count, result.head)


class MemoryAuditTrail:
    """The audit trail of a ``MemoryStore``: the same chain in process memory (gone with the process).

    ``fail_with`` makes every append raise ``StoreError`` (failure injection for tests of fail-closed paths).
    """

    def __init__(self, key: AuditKey | None = None) -> None:
        self._lock = threading.RLock()
        self._rows: list[tuple[int, str, str]] = []
        self.fail_with: str | None = None
        self.key = key

    @property
    def lock(self) -> threading.RLock:
        """Held by the store while it changes data and appends, so the two happen as one step."""
        return self._lock

    def prepare(self, event: AuditEvent) -> tuple[int, str, str]:
        """The next row for ``event``, not yet appended; raises if appends fail. Call under ``lock``."""
        if self.fail_with is not None:
            raise StoreError(f"{AUDIT_UNAVAILABLE}: {self.fail_with}")
        seq, prev = (self._rows[-1][0] + 1, self._rows[-1][2]) if self._rows else (1, GENESIS_HASH)
        return new_row(seq, prev, event, key=self.key)

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

    def verify(self, *, expect_head: str | None = None, checkpoint: Checkpoint | None = None) -> Verification:
        with self._lock:
            rows = list(self._rows)
        return verify_rows(rows, expect_head=expect_head, key=self.key, checkpoint=checkpoint)


def check_record(
    seq: int,
    payload: str,
    digest: str,
    prev: str,
    expected_seq: int,
    *,
    key: AuditKey | None = None,
    after_keyed: bool = False,
) -> str | None:
    """Why the stored row (seq, payload, hash) does not continue the chain after ``prev``, or None.

    A keyed record is checked against ``key`` (only its links when there is no key); an unkeyed record after a
    keyed one is refused, since anyone could have written it."""
    return _check_row(seq, payload, digest, prev, expected_seq, key, after_keyed)[0]


def _check_row(
    seq: int, payload: str, digest: str, prev: str, expected_seq: int, key: AuditKey | None, after_keyed: bool
) -> tuple[str | None, bool]:
    """``check_record``'s answer and whether the record is keyed (the payload parsed once)."""
    if seq != expected_seq:
        return f"record {expected_seq} is missing (the next one is {seq})", False
    try:
        body = json.loads(payload)
    except ValueError:
        return "the record is not valid JSON", False
    if not isinstance(body, dict):
        return "the record is not valid JSON", False
    keyed = body.get("key_id") is not None
    if not keyed:
        if after_keyed:
            return "an unkeyed record after keyed ones (appended without the audit key: forged?)", False
        if chain_hash(payload) != digest:
            return "the record's contents do not match its hash (edited)", False
    elif key is not None:
        if body["key_id"] != key.key_id:
            return f"the record was keyed with another audit key ({body['key_id']}, not {key.key_id})", True
        if not hmac.compare_digest(key.mac(payload), digest):
            return "the record's contents do not match its keyed hash (edited or forged without the key)", True
    if body.get("seq") != seq:
        return "the record's sequence number was changed", keyed
    if body.get("prev_hash") != prev:
        return "the record does not follow the previous one (a record before it was edited or removed)", keyed
    return None, keyed


# The helpers' names before they became public, for code written against them in parallel (the PostgreSQL
# store); remove once nothing imports them.
_payload = chain_payload
_hash = chain_hash
_event = event_from_body
_check = check_record
