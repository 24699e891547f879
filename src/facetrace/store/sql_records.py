# ruff: noqa: S608  (statements are built from fixed column lists; values always go as parameters)
"""The records of ``store/records.py`` as SQL, once for SQLite and PostgreSQL.

Each repository writes its statements once with ``?`` markers and borrows connections from a backend
(``sql_dialect.SqlBackend``); what the two databases say differently is named in its ``Dialect``. What only
a database shared by several servers needs stays with PostgreSQL (``postgres_records``: advisory locks on
request tokens, instance leases) and enters here through small, named seams.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from facetrace.store.records import KeyRecord
from facetrace.store.sql_dialect import SqlBackend

__all__ = ["SqlKeys"]


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
