"""Composition: build a ready-to-use ``Gallery`` over the store of a facetrace home or a PostgreSQL database.

This is the one place that decides which concrete store and engine the CLI and the server use by default;
everything else takes them as arguments. The audit trail is the store's own (``store.audit``).
"""

from __future__ import annotations

from pathlib import Path

from facetrace.engine import FaceEngine
from facetrace.gallery import Gallery
from facetrace.home import ensure_home, private_dir
from facetrace.store import FaceStore, open_store

__all__ = ["open_gallery"]

IMAGES_DIR = "images"


def open_gallery(
    home: Path | str | None = None,
    *,
    engine: FaceEngine | None = None,
    database_url: str | None = None,
    listen: bool = True,
    store: FaceStore | None = None,
) -> Gallery:
    """A gallery on ``home`` (default ``$FACETRACE_HOME`` or the user data dir), or on the PostgreSQL database
    at ``database_url`` (default ``$FACETRACE_DATABASE_URL``, see ``open_store``), audited in that database
    (``store.audit``). ``listen``: see ``open_store``. ``store``: an already opened store to use instead."""
    root = ensure_home(Path(home) if home is not None else None)
    if store is None:
        store = open_store(root, url=database_url, listen=listen)
    try:
        return Gallery(engine or FaceEngine.create(), store, image_dir=private_dir(root / IMAGES_DIR))
    except BaseException:
        store.close()
        raise
