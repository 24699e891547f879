"""Composition: build a ready-to-use ``Gallery`` over the embedded store in a facetrace home directory.

This is the one place that decides which concrete store, audit log and engine the CLI and the server use
by default; everything else takes them as arguments.
"""

from __future__ import annotations

from pathlib import Path

from facetrace.audit import AuditSink
from facetrace.engine import FaceEngine
from facetrace.gallery import Gallery
from facetrace.home import ensure_home
from facetrace.store import open_store

__all__ = ["open_gallery"]


def open_gallery(
    home: Path | str | None = None,
    *,
    engine: FaceEngine | None = None,
    audit: AuditSink | None = None,
) -> Gallery:
    """A gallery on ``home`` (default ``$FACETRACE_HOME`` or the user data dir), audited to ``home/audit``."""
    root = ensure_home(Path(home) if home is not None else None)
    store = open_store(root)
    if audit is None:
        from facetrace.audit import AuditLog  # the hash-chained log beside the interface

        audit = AuditLog(root / "audit.db")
    return Gallery(engine or FaceEngine.create(), store, audit=audit, image_dir=root / "images")
