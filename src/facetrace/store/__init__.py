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

__all__ = [
    "DB_FILENAME",
    "CollectionInfo",
    "FaceStore",
    "MemoryStore",
    "Neighbor",
    "Page",
    "SQLiteStore",
    "UserNeighbor",
    "open_store",
]

DB_FILENAME = "facetrace.db"


def open_store(home: Path | None = None) -> FaceStore:
    """The durable store in ``home`` (default: ``$FACETRACE_HOME``, else the user data directory), created
    private to the user if missing. Raises ``StoreError`` if the database cannot be opened or is corrupt."""
    return SQLiteStore(ensure_home(home) / DB_FILENAME)
