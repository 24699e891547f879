"""What several commands need: an engine, a gallery on the chosen home, the caller's identity."""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path

from facetrace.audit import AuditEvent, Caller, check_purpose
from facetrace.engine import DetectionSettings, FaceEngine
from facetrace.gallery import Gallery

__all__ = ["local_caller", "open_engine", "open_library", "record_local"]


def open_engine(*, small_faces: bool = False) -> FaceEngine:
    return FaceEngine.create(settings=DetectionSettings(small_faces=small_faces))


def open_library(args: argparse.Namespace, engine: FaceEngine | None = None) -> Gallery:
    """The gallery on ``--database-url`` (or ``$FACETRACE_DATABASE_URL``), else on ``--home`` (or
    ``$FACETRACE_HOME``). A one-shot command does not follow other servers' changes in the background."""
    from facetrace.app import open_gallery

    home = Path(args.home) if getattr(args, "home", None) else None
    return open_gallery(home, engine=engine, database_url=getattr(args, "database_url", None), listen=False)


def local_caller(args: argparse.Namespace) -> Caller:
    """Audit identity for CLI use: ``local:<os user>`` and the ``--purpose`` given, if any."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Caller(principal=f"local:{user}", purpose=check_purpose(getattr(args, "purpose", None)))


def record_local(
    args: argparse.Namespace,
    operation: str,
    collection_id: str | None = None,
    *,
    matched: tuple[str, ...] = (),
    detail: dict[str, str | int | float | None] | None = None,
) -> None:
    """Append one audit record for a local act on the chosen home or database (``StoreError`` if it cannot
    be kept: callers show nothing, or undo, then — fail closed)."""
    from facetrace.store import database_url, open_store

    caller = local_caller(args)
    home = Path(args.home) if getattr(args, "home", None) else None
    store = open_store(home, url=database_url(getattr(args, "database_url", None)), listen=False)
    try:
        store.audit.record(
            AuditEvent(operation, caller.principal, collection_id, caller.purpose, matched_face_ids=matched,
                       detail=detail or {})
        )  # fmt: skip
    finally:
        store.close()
