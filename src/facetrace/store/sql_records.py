# ruff: noqa: S608  (statements are built from fixed column lists; values always go as parameters)
"""The records of ``store/records.py`` as SQL, once for SQLite and PostgreSQL.

Each repository writes its statements once with ``?`` markers and borrows connections from a backend
(``sql_dialect.SqlBackend``); what the two databases say differently is named in its ``Dialect``. What only
a database shared by several servers needs stays with PostgreSQL (``postgres_records``: advisory locks on
request tokens, instance leases) and enters here through small, named seams.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from facetrace.store.records import KeyRecord, ProcessorRecord, TokenRecord
from facetrace.store.sql_dialect import SqlBackend

__all__ = ["TOKEN_REUSE_AFTER", "SqlKeys", "SqlProcessors", "SqlTokens"]


class SqlKeys:
    """``KeyRepository`` over the ``access_keys`` table."""

    def __init__(self, backend: SqlBackend) -> None:
        self._b = backend

    def list(self) -> list[KeyRecord]:
        with self._b.read("reading the access keys") as conn:
            rows = conn.execute(f"SELECT {_KEY_COLUMNS} FROM access_keys ORDER BY created_at, access_key_id")
            return [_key(row) for row in rows]

    def get(self, access_key_id: str) -> KeyRecord | None:
        sql = self._b.dialect.sql
        with self._b.read("reading an access key") as conn:
            row = conn.execute(
                sql(f"SELECT {_KEY_COLUMNS} FROM access_keys WHERE access_key_id=?"), (access_key_id,)
            ).fetchone()
        return None if row is None else _key(row)

    def add(self, key: KeyRecord) -> None:
        collections = None if key.collections is None else json.dumps(list(key.collections))
        with self._b.write("saving an access key") as conn:
            conn.execute(
                self._b.dialect.sql(f"INSERT INTO access_keys({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"),
                (key.access_key_id, key.secret, key.permission, collections, key.description, key.created_at),
            )

    def delete(self, access_key_id: str) -> bool:
        with self._b.write("deleting an access key") as conn:
            cursor = conn.execute(
                self._b.dialect.sql("DELETE FROM access_keys WHERE access_key_id=?"), (access_key_id,)
            )
            return int(cursor.rowcount) > 0


_KEY_COLUMNS = "access_key_id, secret, permission, collections, description, created_at"


def _key(row: Sequence[Any]) -> KeyRecord:
    collections = None if row[3] is None else tuple(str(c) for c in json.loads(row[3]))
    return KeyRecord(str(row[0]), str(row[1]), str(row[2]), collections, str(row[4]), float(row[5]))


TOKEN_REUSE_AFTER = 24 * 3600.0
"""``service.idempotency.TOKEN_TTL``: an answer older than this no longer binds its token (``SqlTokens.put``)."""


class SqlTokens:
    """``TokenRepository`` over the ``request_tokens`` table; ``exclusive`` is a no-op here (one server per
    database: the caller's in-process lock is enough). ``postgres_records.PostgresTokens`` adds the lock that
    servers sharing a database need."""

    def __init__(self, backend: SqlBackend) -> None:
        self._b = backend

    def get(self, principal: str, operation: str, token: str, *, newer_than: float) -> TokenRecord | None:
        with self._b.read("reading a request token") as conn:
            row = conn.execute(
                self._b.dialect.sql(
                    "SELECT fingerprint, response, created_at FROM request_tokens"
                    " WHERE principal=? AND operation=? AND token=? AND created_at > ?"
                ),
                (principal, operation, token, newer_than),
            ).fetchone()
        if row is None:
            return None
        return TokenRecord(principal, operation, token, str(row[0]), str(row[1]), float(row[2]))

    def put(self, record: TokenRecord) -> TokenRecord:
        """Store ``record`` unless a live answer for its token is stored already; return the one that stands.
        An expired answer (older than ``TOKEN_REUSE_AFTER``, not swept yet) is replaced: the token may be used
        again."""
        sql = self._b.dialect.sql
        with self._b.write("saving a request token") as conn:
            row = conn.execute(
                sql(
                    "INSERT INTO request_tokens VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (principal, operation, token) DO UPDATE SET"
                    " fingerprint=excluded.fingerprint, response=excluded.response, created_at=excluded.created_at"
                    " WHERE request_tokens.created_at <= excluded.created_at - ?"
                    " RETURNING fingerprint, response, created_at"
                ),
                (record.principal, record.operation, record.token, record.fingerprint, record.response,
                 record.created_at, TOKEN_REUSE_AFTER),
            ).fetchone()  # fmt: skip
            if row is None:  # another request's answer was stored first: that one stands
                row = conn.execute(
                    sql(
                        "SELECT fingerprint, response, created_at FROM request_tokens"
                        " WHERE principal=? AND operation=? AND token=?"
                    ),
                    (record.principal, record.operation, record.token),
                ).fetchone()
        return TokenRecord(
            record.principal, record.operation, record.token, str(row[0]), str(row[1]), float(row[2])
        )

    def sweep(self, older_than: float) -> int:
        with self._b.write("sweeping request tokens") as conn:
            sql = self._b.dialect.sql("DELETE FROM request_tokens WHERE created_at <= ?")
            return int(conn.execute(sql, (older_than,)).rowcount)

    def exclusive(self, principal: str, operation: str, token: str) -> AbstractContextManager[None]:
        return contextlib.nullcontext()


class SqlProcessors:
    """``ProcessorRepository`` over the ``stream_processors`` table."""

    def __init__(self, backend: SqlBackend) -> None:
        self._b = backend

    def list(self) -> list[ProcessorRecord]:
        with self._b.read("reading stream processors") as conn:
            rows = conn.execute(f"SELECT {_PROCESSOR_COLUMNS} FROM stream_processors ORDER BY name").fetchall()
        return [_processor(r) for r in rows]

    def get(self, name: str) -> ProcessorRecord | None:
        with self._b.read("reading a stream processor") as conn:
            row = conn.execute(
                self._b.dialect.sql(f"SELECT {_PROCESSOR_COLUMNS} FROM stream_processors WHERE name=?"), (name,)
            ).fetchone()
        return None if row is None else _processor(row)

    def put(self, record: ProcessorRecord) -> None:
        with self._b.write("saving a stream processor") as conn:
            conn.execute(
                self._b.dialect.sql(
                    f"INSERT INTO stream_processors({_PROCESSOR_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET collection_id=excluded.collection_id,"
                    " definition=excluded.definition, desired=excluded.desired, updated_at=excluded.updated_at"
                ),
                (record.name, record.collection_id, record.definition, record.desired, record.updated_at),
            )

    def delete(self, name: str) -> None:
        with self._b.write("deleting a stream processor") as conn:
            conn.execute(self._b.dialect.sql("DELETE FROM stream_processors WHERE name=?"), (name,))


_PROCESSOR_COLUMNS = "name, collection_id, definition, desired, updated_at"


def _processor(r: Sequence[Any]) -> ProcessorRecord:
    return ProcessorRecord(str(r[0]), str(r[1]), str(r[2]), str(r[3]), float(r[4]))
