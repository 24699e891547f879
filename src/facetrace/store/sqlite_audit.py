"""The audit trail of an ``SQLiteStore``: the hash chain of ``facetrace.audit`` in a table of facetrace.db.

Living in the store's own database is what makes the store fail closed: a mutating call appends its record
with ``append`` inside the very transaction that changes the data, so the change and its record commit
together or not at all. ``record`` (searches and other acts that change nothing) runs its own
``BEGIN IMMEDIATE`` transaction and returns only after ``COMMIT`` (WAL, ``synchronous=FULL``). Either way the
previous hash is read under the database's write lock, so the CLI and a server sharing the file — or two
servers — keep one valid chain.

``import_file`` brings in the separate ``audit.db`` of facetrace versions before schema 2: its chain is
verified first, copied row for row (payloads and hashes unchanged, so heads saved earlier still verify), and
the old file is renamed ``audit.db.imported``.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from facetrace.audit import (
    AUDIT_UNAVAILABLE,
    GENESIS_HASH,
    AuditEvent,
    AuditKey,
    AuditRecord,
    Checkpoint,
    Verification,
    filter_records,
    new_row,
    verify_rows,
)
from facetrace.errors import StoreError
from facetrace.store.sqlite_db import Database, translate

__all__ = ["SQLiteAuditTrail"]

_CHUNK = 1000


def _rows(conn: sqlite3.Connection, after: int = 0) -> Iterator[tuple[int, str, str]]:
    """(seq, payload, hash) in order, read in chunks so a long trail never sits in memory at once."""
    while True:
        rows = conn.execute(
            "SELECT seq, payload, hash FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (after, _CHUNK)
        ).fetchall()
        yield from ((int(seq), str(payload), str(digest)) for seq, payload, digest in rows)
        if len(rows) < _CHUNK:
            return
        after = int(rows[-1][0])


class SQLiteAuditTrail:
    """``AuditTrail`` over the ``audit`` table of one store's database; records are keyed with ``key``."""

    def __init__(self, db: Database, key: AuditKey | None = None) -> None:
        self._db = db
        self.key = key

    def append(self, conn: sqlite3.Connection, event: AuditEvent) -> None:
        """Append ``event`` inside the caller's open write transaction (``Database.transaction``)."""
        try:
            row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (int(row[0]) + 1, str(row[1])) if row else (1, GENESIS_HASH)
            row = new_row(seq, prev, event, key=self.key)
            conn.execute("INSERT INTO audit(seq, payload, hash) VALUES (?, ?, ?)", row)
        except sqlite3.Error as exc:
            raise StoreError(f"{AUDIT_UNAVAILABLE}: {exc}") from exc

    def record(self, event: AuditEvent) -> None:
        label = f"{AUDIT_UNAVAILABLE}: recording {event.operation}"
        with translate(label, self._db.path), self._db.transaction() as conn:
            self.append(conn, event)

    def records(
        self,
        *,
        after: int = 0,
        limit: int | None = None,
        operation: str | None = None,
        principal: str | None = None,
        collection_id: str | None = None,
    ) -> list[AuditRecord]:
        with translate("reading the audit trail", self._db.path), self._db.reader(snapshot=True) as conn:
            return filter_records(
                _rows(conn, after), limit=limit, operation=operation, principal=principal,
                collection_id=collection_id,
            )  # fmt: skip

    def verify(self, *, expect_head: str | None = None, checkpoint: Checkpoint | None = None) -> Verification:
        with translate("verifying the audit trail", self._db.path), self._db.reader(snapshot=True) as conn:
            return verify_rows(_rows(conn), expect_head=expect_head, key=self.key, checkpoint=checkpoint)

    def import_file(self, legacy: Path) -> int:
        """Import the records of a separate audit.db (older facetrace) and rename it; returns how many.

        Refuses (``StoreError``, nothing changed) when the old chain does not verify, or when the database
        already holds a different chain: two chains cannot be merged without rewriting one of them.
        """
        if not legacy.is_file():
            return 0
        with translate(f"importing the audit log {legacy}", legacy):
            old = sqlite3.connect(legacy, isolation_level=None)
            try:
                tables = {r[0] for r in old.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if "audit" not in tables:
                    raise StoreError(f"{legacy} is not a facetrace audit log; move it away to open this home")
                checked = verify_rows(_rows(old))
                if not checked.ok:
                    raise StoreError(
                        f"the old audit log {legacy} does not verify (record {checked.broken_seq}: {checked.reason});"
                        " it is not imported and this home is not opened. Keep the file as evidence, move it"
                        " away, and open the home again to start a new chain"
                    )
                with self._db.transaction() as conn:
                    head = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                    if head is None:
                        for chunk in _chunks(_rows(old)):
                            conn.executemany("INSERT INTO audit(seq, payload, hash) VALUES (?, ?, ?)", chunk)
                    else:
                        at = conn.execute("SELECT hash FROM audit WHERE seq=?", (checked.count,)).fetchone()
                        if at is None or str(at[0]) != checked.head:  # not our own earlier import
                            raise StoreError(
                                f"both {legacy} and {self._db.path} hold audit records; facetrace will not merge"
                                " two chains. Move the old file away (keep it as evidence) to open this home"
                            )
            finally:
                old.close()
            with contextlib.suppress(FileNotFoundError):  # another process may have renamed it already
                legacy.rename(legacy.with_name(legacy.name + ".imported"))
        return checked.count


def _chunks(rows: Iterator[tuple[int, str, str]]) -> Iterator[list[tuple[int, str, str]]]:
    chunk: list[tuple[int, str, str]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
