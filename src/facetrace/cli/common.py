"""What several commands need: an engine, a gallery on the chosen home, the caller's identity."""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path
from typing import TYPE_CHECKING

from facetrace.audit import AuditEvent, Caller, check_purpose

if TYPE_CHECKING:  # the engine and the gallery load NumPy, OpenCV and onnxruntime: only when a command runs
    from facetrace.engine import FaceEngine
    from facetrace.gallery import Gallery

__all__ = [
    "add_recognizer_options",
    "local_caller",
    "open_engine",
    "open_library",
    "record_local",
    "with_recognizer",
]


def add_recognizer_options(parser: argparse.ArgumentParser) -> None:
    """``--recognizer`` and ``--calibration``: run a user's own recognizer (or a re-calibrated SFace)."""
    group = parser.add_argument_group("recognizer (default: SFace with its shipped calibration)")
    group.add_argument(
        "--recognizer",
        metavar="ONNX_PATH",
        help="your own ArcFace-style ONNX recognizer; needs --calibration (from `facetrace calibrate --model`). "
        "Collections keep the model their faces were made with: another model's collection is refused",
    )
    group.add_argument(
        "--calibration",
        metavar="FILE",
        help="calibration JSON written by `facetrace calibrate` (for --recognizer, or alone to re-calibrate SFace)",
    )


def with_recognizer(common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """A parent parser: the common options plus the recognizer options."""
    parent = argparse.ArgumentParser(add_help=False, parents=[common])
    add_recognizer_options(parent)
    return parent


def open_engine(
    args: argparse.Namespace | None = None,
    *,
    small_faces: bool = False,
    embed_runners: int | None = None,
    embed_batch: int = 1,
) -> FaceEngine:
    """The engine ``args`` ask for (``app.open_engine``): SFace unless ``--recognizer``/``--calibration``."""
    from facetrace.app import open_engine as build
    from facetrace.engine import DetectionSettings

    return build(
        getattr(args, "recognizer", None),
        getattr(args, "calibration", None),
        settings=DetectionSettings(small_faces=small_faces),
        embed_runners=embed_runners,
        embed_batch=embed_batch,
    )


def open_library(args: argparse.Namespace, engine: FaceEngine | None = None) -> Gallery:
    """The gallery on ``--database-url`` (or ``$FACETRACE_DATABASE_URL``), else on ``--home`` (or
    ``$FACETRACE_HOME``), with the engine ``--recognizer``/``--calibration`` ask for. A one-shot command
    does not follow other servers' changes in the background."""
    from facetrace.app import open_gallery

    if engine is None and (getattr(args, "recognizer", None) or getattr(args, "calibration", None)):
        engine = open_engine(args)
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
