"""The records of ``store/records.py`` in the SQLite store's own database file.

The repositories are ``sql_records``' (and ``review_sql``'s), written once for both databases; this module
lends them this database's connections (``SQLiteBackend``): every write is one short ``BEGIN IMMEDIATE``
transaction on the store's writer connection (WAL, ``synchronous=FULL``), reads use the pooled readers, and
errors become ``StoreError`` (``translate``). The cascades that remove derived data with faces, users and
collections (``cascade_*``) are run by ``SQLiteStore`` inside the transaction of the delete itself.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from facetrace.store import sql_sightings
from facetrace.store.review_sql import SqlReviews, SqlUnknowns
from facetrace.store.sql_dialect import SQLITE
from facetrace.store.sql_records import SqlJobs, SqlKeys, SqlProcessors, SqlTokens
from facetrace.store.sql_sightings import SqlSightings
from facetrace.store.sqlite_db import Database, translate

__all__ = [
    "SQLiteBackend",
    "SQLiteRecords",
    "cascade_collection",
    "cascade_faces",
    "cascade_user",
]


class SQLiteBackend:
    """Lends this database's connections to the shared SQL (``sql_records``, ``review_sql``)."""

    dialect = SQLITE

    def __init__(self, db: Database) -> None:
        self._db = db

    @contextlib.contextmanager
    def write(self, action: str) -> Iterator[sqlite3.Connection]:
        with translate(action, self._db.path), self._db.transaction() as conn:
            yield conn

    @contextlib.contextmanager
    def read(self, action: str, *, snapshot: bool = False) -> Iterator[sqlite3.Connection]:
        with translate(action, self._db.path), self._db.reader(snapshot=snapshot) as conn:
            yield conn


@dataclass(frozen=True, slots=True)
class SQLiteRecords:
    """Every repository of one database (``records.Records``); no leases: one server per home."""

    keys: SqlKeys
    tokens: SqlTokens
    jobs: SqlJobs
    processors: SqlProcessors
    sightings: SqlSightings
    reviews: SqlReviews
    unknowns: SqlUnknowns
    leases: None = None

    @classmethod
    def of(cls, db: Database) -> SQLiteRecords:
        backend = SQLiteBackend(db)
        return cls(
            SqlKeys(backend), SqlTokens(backend), SqlJobs(backend), SqlProcessors(backend), SqlSightings(backend),
            SqlReviews(backend), SqlUnknowns(backend),
        )  # fmt: skip


# Run inside the store's delete transactions (``sql_sightings`` says what each removes).
cascade_faces = functools.partial(sql_sightings.cascade_faces, SQLITE)
cascade_user = functools.partial(sql_sightings.cascade_user, SQLITE)
cascade_collection = functools.partial(sql_sightings.cascade_collection, SQLITE)
