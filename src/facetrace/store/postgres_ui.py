"""The dashboard's records in PostgreSQL (``store/ui_records.py`` says what they are, and holds their SQL):
sessions and face thumbnails, with the deletions SQLite does by trigger done by foreign keys
(``ON DELETE CASCADE``)."""

from __future__ import annotations

from facetrace.store.postgres_db import PgDatabase
from facetrace.store.postgres_records import PostgresBackend
from facetrace.store.ui_records import SqlSessions, SqlThumbnails, UiRecords

__all__ = ["postgres_ui_records"]


def postgres_ui_records(db: PgDatabase) -> UiRecords:
    backend = PostgresBackend(db)
    return UiRecords(SqlSessions(backend), SqlThumbnails(backend))
