"""The hash-chained audit trail in PostgreSQL, in the same database as the collections it audits.

The chain rules are ``facetrace.audit``'s (canonical JSON payload, SHA-256 — or HMAC under the audit key from
``$FACETRACE_AUDIT_KEY`` / ``$FACETRACE_AUDIT_KEY_FILE``, the same on every server — over the previous hash and
the payload, seq 1..n from ``GENESIS_HASH``); only storage differs. An append takes the log lock
(``postgres_db.lock_log``) and reads the head inside its transaction, so appends from any number of servers
form one chain; a change and its audit record are appended in the same transaction (``append``), so both
commit or neither. Triggers refuse UPDATE, DELETE and TRUNCATE on the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg

from facetrace.audit import (
    GENESIS_HASH,
    AuditEvent,
    AuditRecord,
    Checkpoint,
    Verification,
    env_audit_key,
    filter_records,
    new_row,
    verify_rows,
)
from facetrace.errors import StoreError
from facetrace.store.postgres_db import PgDatabase, lock_log

__all__ = ["PostgresAuditTrail", "append", "copy_records"]


def append(conn: psycopg.Connection[Any], event: AuditEvent) -> int:
    """Append ``event`` to the chain inside the caller's transaction; returns its seq.

    Any failure is ``StoreError("audit store unavailable: ...")``: the caller's transaction then rolls back,
    so nothing happens without its record.
    """
    try:
        with conn.pipeline():  # the lock and the head in one round trip
            lock_log(conn)
            cur = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        row = cur.fetchone()
        seq, prev = (int(row[0]) + 1, str(row[1])) if row else (1, GENESIS_HASH)
        row = new_row(seq, prev, event, key=env_audit_key())  # keyed when $FACETRACE_AUDIT_KEY(_FILE) is set
        conn.execute("INSERT INTO audit(seq, payload, hash) VALUES (%s, %s, %s)", row)
    except (psycopg.Error, ValueError, TypeError) as exc:
        raise StoreError(f"audit store unavailable: {exc}") from exc
    return seq


def copy_records(conn: psycopg.Connection[Any], rows: list[tuple[int, str, str]]) -> None:
    """Insert already-chained records verbatim (``facetrace migrate``: the chain keeps its hashes)."""
    lock_log(conn)
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO audit(seq, payload, hash) VALUES (%s, %s, %s)", rows)


class PostgresAuditTrail:
    """``AuditTrail`` over the ``audit`` table: record, read and verify the chain."""

    def __init__(self, db: PgDatabase) -> None:
        self._db = db

    def record(self, event: AuditEvent) -> None:
        """Append ``event`` in its own transaction; durable when this returns."""
        try:
            # Pipelined: [BEGIN, lock, read the head] in one round trip, [INSERT, COMMIT] in the next, so the
            # lock that serialises every server's appends is held for one round trip and the commit.
            with self._db.transaction("recording an audit event", pipeline=True) as conn:
                append(conn, event)
        except StoreError as exc:
            if exc.message.startswith("audit store unavailable"):
                raise
            raise StoreError(f"audit store unavailable: {exc.message}") from exc

    def _rows(self, after: int = 0, chunk: int = 1000) -> Iterator[tuple[int, str, str]]:
        """(seq, payload, hash) in order, read in chunks so a long chain never sits in memory at once."""
        while True:
            with self._db.read("reading the audit log") as conn:
                rows = [
                    (int(r[0]), str(r[1]), str(r[2]))
                    for r in conn.execute(
                        "SELECT seq, payload, hash FROM audit WHERE seq > %s ORDER BY seq LIMIT %s", (after, chunk)
                    )
                ]
            yield from rows
            if len(rows) < chunk:
                return
            after = rows[-1][0]

    def rows(self, after: int = 0) -> Iterator[tuple[int, str, str]]:
        """The stored rows verbatim (for copying the chain elsewhere)."""
        return self._rows(after)

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
        return filter_records(
            self._rows(after), limit=limit, operation=operation, principal=principal, collection_id=collection_id
        )

    def verify(self, *, expect_head: str | None = None, checkpoint: Checkpoint | None = None) -> Verification:
        """Recompute the chain from the first record; report the first record that does not fit (see AuditLog)."""
        return verify_rows(self._rows(), expect_head=expect_head, key=env_audit_key(), checkpoint=checkpoint)
