"""The ``facetrace`` command line: a thin shell over the library.

Each module in ``COMMAND_MODULES`` adds its subcommands with ``register(subparsers)`` and sets a handler
``func(args) -> int``. Exit codes: 0 ok, 1 bad input (a ``FacetraceError`` the user can fix), 2 usage,
3 an internal or environment failure (storage, models). ``--json`` is accepted by every command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

from facetrace.cli.output import EXIT_BAD_INPUT, EXIT_FAILURE, fail
from facetrace.errors import FacetraceError, InvalidInputError, NotFoundError

__all__ = ["build_parser", "main"]

# Every command: the module that registers it, and its one-line summary for ``facetrace --help``. A start
# imports only the module of the command asked for (NumPy, OpenCV, onnxruntime and the server cost seconds
# together): ``--help`` and light commands answer at once. A module registers its commands with
# ``add_command``, which takes the summary from here, so each summary is written once.
COMMANDS: dict[str, tuple[str, str]] = {
    "detect": ("images", "find faces in images (DetectFaces)"),
    "compare": ("images", "compare two faces (CompareFaces)"),
    "collections": ("collections", "create, list, describe and delete collections"),
    "index": ("collections", "add the faces in images to a collection"),
    "faces": ("collections", "list and delete the faces in a collection"),
    "search": ("collections", "who is this? search a collection with the largest face in an image"),
    "users": ("collections", "users: named identities that group faces"),
    "calibrate": ("calibrate", "fit a recognizer's similarity calibration on your own labelled photos"),
    "models": ("models", "install and list face models"),
    "serve": ("serve", "serve Rekognition's face API (boto3 compatible) on HTTP"),
    "keys": ("keys", "create, list and delete access keys for `facetrace serve`"),
    "audit": ("audit", "list and verify the audit log of searches and changes"),
    "video": ("video", "search stored video files for faces"),
    "watch": ("video", "follow a live stream and report the collection's people as they appear"),
    "sightings": ("video", "where and when people were seen"),
    "migrate": (
        "migrate",
        "copy the home's whole database (collections, faces, users, audit chain, keys, video state) into "
        "an empty PostgreSQL database",
    ),
    "review": ("review", "tracks whose best match needs a person's answer"),
    "unknowns": ("review", "unidentified faces grouped into unknown people"),
    "cluster": ("cluster", "group the faces in a set of photos by person (no collection needed)"),
    "redact": ("redact", "hide the faces in a photo or a video (for release)"),
}


class _Parser(argparse.ArgumentParser):
    """argparse: usage errors exit with code 2 (its default)."""


def add_command(subparsers: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """Add command ``name`` (a key of ``COMMANDS``) with its summary from the table."""
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=COMMANDS[name][1], **kwargs)
    return parser


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: the full parser of the command it names, a summary line for the others."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")
    common.add_argument("--home", help="data directory (default: $FACETRACE_HOME or the user data dir)")
    common.add_argument(
        "--database-url",
        metavar="URL",
        help="PostgreSQL database shared by several servers, postgresql://user:password@host/db "
        "(default: $FACETRACE_DATABASE_URL; without one, SQLite in the home). Prefer the environment variable "
        "or a ~/.pgpass file for the password: command lines are visible to other users",
    )
    common.add_argument("--purpose", help="case or purpose reference recorded in the audit log")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser = _Parser(prog="facetrace", description="Self-hosted face detection, recognition and search.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    words = list(sys.argv[1:] if argv is None else argv)
    chosen = words[0] if words and words[0] in COMMANDS else None
    loaded = set()
    for name, (module, summary) in COMMANDS.items():
        if chosen is not None and module == COMMANDS[chosen][0]:
            if module not in loaded:
                importlib.import_module(f"facetrace.cli.{module}").register(subparsers, common)
                loaded.add(module)
        else:
            # never run: a command line naming it is parsed by its real parser (above)
            subparsers.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(2, args.verbose)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args))
    except (InvalidInputError, NotFoundError) as exc:
        return fail(args, exc, EXIT_BAD_INPUT)
    except FacetraceError as exc:
        # A collection of another model (or a calibration of another file) is the caller's choice to fix.
        user_fixable = ("AlreadyExistsError", "ConflictError", "ModelMismatchError")
        code = EXIT_BAD_INPUT if type(exc).__name__ in user_fixable else EXIT_FAILURE
        return fail(args, exc, code)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug or an environment failure: say so briefly, details with -vv
        logging.getLogger("facetrace").debug("unexpected error", exc_info=True)
        return fail(
            args,
            FacetraceError(f"internal error: {type(exc).__name__}: {exc} (run with -vv for details)"),
            EXIT_FAILURE,
        )
