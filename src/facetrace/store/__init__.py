"""Storage: the ``FaceStore`` interface and its implementations.

``open_store()`` is how the CLI, the server and library users get the durable store: a PostgreSQL database
when a ``postgresql://`` URL is given (or ``$FACETRACE_DATABASE_URL`` names one: several servers share it,
``docs/deploy.md``), else an SQLite database in the facetrace home (``$FACETRACE_HOME`` or the user data
directory). ``MemoryStore`` is the in-process twin for tests and throwaway work.
"""

from __future__ import annotations

import os
from pathlib import Path

from facetrace.errors import InvalidParameterError, StoreError
from facetrace.home import ensure_home
from facetrace.store.base import CollectionInfo, FaceStore, Neighbor, Page, UserNeighbor
from facetrace.store.memory import MemoryStore
from facetrace.store.records import Records
from facetrace.store.sqlite import SQLiteStore

__all__ = [
    "DATABASE_URL_ENV",
    "DB_FILENAME",
    "LEGACY_AUDIT_FILENAME",
    "CollectionInfo",
    "FaceStore",
    "MemoryStore",
    "Neighbor",
    "Page",
    "Records",
    "SQLiteStore",
    "UserNeighbor",
    "database_url",
    "open_home_store",
    "open_store",
    "records_of",
]

DB_FILENAME = "facetrace.db"
LEGACY_AUDIT_FILENAME = "audit.db"
"""The separate audit log of facetrace before schema 2; imported into the database at open."""

DATABASE_URL_ENV = "FACETRACE_DATABASE_URL"


def database_url(url: str | None = None) -> str | None:
    """The PostgreSQL URL to use: ``url`` if given, else ``$FACETRACE_DATABASE_URL``; None for the embedded
    store. ``InvalidParameterError`` for a URL of another kind (a typo must not silently mean SQLite)."""
    chosen = url if url is not None else (os.environ.get(DATABASE_URL_ENV) or None)
    if chosen is None:
        return None
    if not chosen.lower().startswith(("postgresql://", "postgres://")):
        raise InvalidParameterError("the database URL must start with postgresql:// or postgres://")
    return chosen


def open_store(home: Path | None = None, *, url: str | None = None, listen: bool = True) -> FaceStore:
    """The durable store: PostgreSQL at ``url`` (or ``$FACETRACE_DATABASE_URL``), else SQLite in ``home``
    (default: ``$FACETRACE_HOME``, else the user data directory), created private to the user if missing.

    ``listen`` (PostgreSQL): follow other servers' changes in the background; one-shot commands pass False.
    Raises ``StoreError`` if the database cannot be opened, is corrupt or was written by a newer facetrace.

    A home from an older facetrace is brought up to date here: the schema is migrated, and the separate
    files of older versions are imported into the database (``store/legacy.py``): ``audit.db`` is verified,
    imported and renamed ``audit.db.imported`` (a broken old chain is refused, and the home is not opened,
    rather than silently dropped); ``keys.json`` and ``video/*.db`` are imported too."""
    chosen = database_url(url)
    if chosen is not None:
        try:
            from facetrace.store.postgres import PostgresStore
        except ImportError as exc:  # psycopg is an optional extra
            raise StoreError(
                "a PostgreSQL database needs the postgres extra: pip install 'facetrace[postgres]'"
            ) from exc
        # each server keeps its own compact indexes of large collections in its home (``ann_index``)
        return PostgresStore(chosen, listen=listen, ann_dir=ensure_home(home) / "ann")
    return open_home_store(home)


def open_home_store(home: Path | None = None) -> SQLiteStore:
    """The embedded SQLite store of ``home`` whatever ``$FACETRACE_DATABASE_URL`` says, with an older home's
    separate files imported (see ``open_store``)."""
    from facetrace.store.legacy import import_legacy_files

    root = ensure_home(home)
    store = SQLiteStore(root / DB_FILENAME)
    try:
        import_legacy_files(store, root)
    except BaseException:
        store.close()
        raise
    return store


def records_of(store: FaceStore) -> Records | None:
    """The repositories of keys, request tokens, video jobs, processors and sightings kept in ``store``'s
    database (SQLite or PostgreSQL), or None for a store without them (``MemoryStore``: callers then keep
    those in memory)."""
    records = getattr(store, "records", None)
    return records if isinstance(records, Records) else None
