"""Composition: build a ready-to-use ``Gallery`` over the store of a facetrace home or a PostgreSQL database.

This is the one place that decides which concrete store, audit log and engine the CLI and the server use
by default; everything else takes them as arguments.
"""

from __future__ import annotations

from pathlib import Path

from facetrace.audit import AuditSink
from facetrace.engine import FaceEngine
from facetrace.gallery import Gallery
from facetrace.home import ensure_home
from facetrace.store import FaceStore, open_store

__all__ = ["open_gallery"]


def open_gallery(
    home: Path | str | None = None,
    *,
    engine: FaceEngine | None = None,
    audit: AuditSink | None = None,
    database_url: str | None = None,
    listen: bool = True,
    store: FaceStore | None = None,
) -> Gallery:
    """A gallery on ``home`` (default ``$FACETRACE_HOME`` or the user data dir), or on the PostgreSQL database
    at ``database_url`` (default ``$FACETRACE_DATABASE_URL``, see ``open_store``).

    Audited to the store's own audit trail when it has one (PostgreSQL: the chain lives in the same database,
    shared by every server), else to ``home/audit.db``. ``listen``: see ``open_store``. ``store``: an already
    opened store to use instead.
    """
    root = ensure_home(Path(home) if home is not None else None)
    if store is None:
        store = open_store(root, url=database_url, listen=listen)
    if audit is None:
        audit = getattr(store, "audit", None)
    if audit is None:
        from facetrace.audit import AuditLog  # the hash-chained log beside the interface

        audit = AuditLog(root / "audit.db")
    return Gallery(engine or FaceEngine.create(), store, audit=audit, image_dir=root / "images")
