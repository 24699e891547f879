"""Storage: the ``FaceStore`` interface and its embedded implementations.

``open_store()`` is how the CLI, the server and library users get the default, durable store: an SQLite
database in the facetrace home (``$FACETRACE_HOME`` or the user data directory). ``MemoryStore`` is the
in-process twin for tests and throwaway work.
"""

from __future__ import annotations

from pathlib import Path

from facetrace.home import ensure_home
from facetrace.store.base import CollectionInfo, FaceStore, Neighbor, Page, UserNeighbor
from facetrace.store.memory import MemoryStore
from facetrace.store.sqlite import SQLiteStore
from facetrace.store.sqlite_records import SQLiteRecords

__all__ = [
    "DB_FILENAME",
    "LEGACY_AUDIT_FILENAME",
    "CollectionInfo",
    "FaceStore",
    "MemoryStore",
    "Neighbor",
    "Page",
    "SQLiteStore",
    "UserNeighbor",
    "open_store",
    "records_of",
]

DB_FILENAME = "facetrace.db"
LEGACY_AUDIT_FILENAME = "audit.db"
"""The separate audit log of facetrace before schema 2; imported into the database at open."""


def open_store(home: Path | None = None) -> FaceStore:
    """The durable store in ``home`` (default: ``$FACETRACE_HOME``, else the user data directory), created
    private to the user if missing. Raises ``StoreError`` if the database cannot be opened or is corrupt.

    A home from an older facetrace is brought up to date here: the schema is migrated, and the separate
    files of older versions are imported into the database (``store/legacy.py``): ``audit.db`` is verified,
    imported and renamed ``audit.db.imported`` (a broken old chain is refused, and the home is not opened,
    rather than silently dropped); ``keys.json`` and ``video/*.db`` are imported too."""
    from facetrace.store.legacy import import_legacy_files

    root = ensure_home(home)
    store = SQLiteStore(root / DB_FILENAME)
    try:
        import_legacy_files(store, root)
    except BaseException:
        store.close()
        raise
    return store


def records_of(store: FaceStore) -> SQLiteRecords | None:
    """The repositories of keys, request tokens, video jobs, processors and sightings kept in ``store``'s
    database, or None for a store without them (``MemoryStore``: callers then keep those in memory)."""
    records = getattr(store, "records", None)
    return records if isinstance(records, SQLiteRecords) else None
