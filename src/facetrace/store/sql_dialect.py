"""What SQLite and PostgreSQL say differently in the records' SQL, each difference in one named field.

The repositories of ``sql_records``, ``review_sql`` and ``ui_records`` write every statement once, in the SQL
both databases accept (``?`` markers, ``INSERT ... ON CONFLICT ... DO UPDATE``), and ask a ``Dialect`` only
for what cannot be said the same way: the parameter marker, the two-argument maximum, a typed NULL, row and
table locks, and how a list of values is bound. A backend (``sqlite_records.SQLiteBackend``,
``postgres_records.PostgresBackend``) lends connections — SQLite's writer and pooled readers, PostgreSQL's
pool — and names its dialect; the statements cannot drift apart because there is one copy of each.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["POSTGRES", "SQLITE", "Dialect", "SqlBackend", "executemany"]


@dataclass(frozen=True, slots=True)
class Dialect:
    """The differences, by name; every other part of a statement is the same on both databases."""

    name: str
    marker: str
    """The DB-API parameter marker the statements' ``?`` become (sqlite3: ``?``; psycopg: ``%s``)."""
    greatest: str
    """The maximum of two values (SQLite's scalar ``MAX(a, b)``; PostgreSQL's ``GREATEST(a, b)``)."""
    null_blob: str
    """A NULL in place of a bytes column of a SELECT list (PostgreSQL wants its type to decode it)."""
    for_update: str
    """Appended to a SELECT whose rows the transaction then updates (SQLite's write transaction holds the
    whole database already: nothing)."""
    table_lock: str | None
    """A statement that serialises the writers of ``{table}`` until the transaction ends, or None where the
    write transaction does so already (SQLite's ``BEGIN IMMEDIATE``)."""
    list_match: str
    """``{column}`` equal to any element of one bound list (SQLite: a JSON array; PostgreSQL: an array)."""
    list_as_json: bool
    """Whether ``list_match``'s parameter is bound as JSON text (else as a list)."""
    clock: str
    """The database's clock in seconds since the epoch, one for every server sharing the database."""
    insert_replacing: str
    """An INSERT of one row of a batch whose stored conflicts were deleted first (``{table}``, ``{columns}``,
    ``{marks}``, ``{key}``): a row repeating an earlier row's key in the same batch replaces it on SQLite
    (``INSERT OR REPLACE``) and is dropped on PostgreSQL (``ON CONFLICT`` names one key; a repeat of another
    unique key fails there)."""

    def sql(self, statement: str) -> str:
        """``statement``, written with ``?`` markers, in this driver's markers."""
        return statement if self.marker == "?" else statement.replace("?", self.marker)

    def lock(self, conn: Any, table: str) -> None:
        """Serialise the writers of ``table`` until ``conn``'s transaction ends."""
        if self.table_lock is not None:
            conn.execute(self.table_lock.format(table=table))

    def in_list(self, column: str) -> str:
        """A condition: ``column`` equals an element of the list bound by ``list_value`` (one ``?``)."""
        return self.list_match.format(column=column)

    def list_value(self, values: Sequence[str]) -> object:
        return json.dumps(list(values)) if self.list_as_json else list(values)


SQLITE = Dialect(
    name="sqlite", marker="?", greatest="MAX", null_blob="NULL", for_update="", table_lock=None,
    list_match="{column} IN (SELECT value FROM json_each(?))", list_as_json=True,
    clock="((julianday('now') - 2440587.5) * 86400.0)",
    insert_replacing="INSERT OR REPLACE INTO {table} ({columns}) VALUES ({marks})",
)  # fmt: skip
POSTGRES = Dialect(
    name="postgres", marker="%s", greatest="GREATEST", null_blob="NULL::bytea", for_update=" FOR UPDATE",
    table_lock="LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE", list_match="{column} = ANY(?)",
    list_as_json=False, clock="extract(epoch FROM clock_timestamp())::double precision",
    insert_replacing="INSERT INTO {table} ({columns}) VALUES ({marks}) ON CONFLICT ({key}) DO NOTHING",
)  # fmt: skip


class SqlBackend(Protocol):
    """Lends DB-API connections (errors inside translated to ``StoreError`` naming ``action``) and names the
    dialect their statements are written in."""

    @property
    def dialect(self) -> Dialect: ...

    def write(self, action: str) -> AbstractContextManager[Any]:
        """A connection in one write transaction, committed if the block finishes without error."""
        ...

    def read(self, action: str, *, snapshot: bool = False) -> AbstractContextManager[Any]:
        """A connection for reads; with ``snapshot`` every statement in the block sees one committed state."""
        ...


def executemany(conn: Any, statement: str, rows: Iterable[Sequence[object]]) -> None:
    """``statement`` once per row, on a cursor of its own (psycopg's connections have no ``executemany``)."""
    with closing(conn.cursor()) as cur:
        cur.executemany(statement, rows)
