"""What several commands need: an engine, a gallery on the chosen home, the caller's identity."""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path

from facetrace.audit import Caller, check_purpose
from facetrace.engine import DetectionSettings, FaceEngine
from facetrace.gallery import Gallery

__all__ = ["local_caller", "open_engine", "open_library"]


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
