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

from facetrace.cli.output import EXIT_BAD_INPUT, EXIT_FAILURE, fail
from facetrace.errors import FacetraceError, InvalidInputError, NotFoundError

__all__ = ["build_parser", "main"]

COMMAND_MODULES = (
    "images",
    "collections",
    "calibrate",
    "models",
    "serve",
    "keys",
    "audit",
    "video",
    "migrate",
    "cluster",
)


class _Parser(argparse.ArgumentParser):
    """argparse: usage errors exit with code 2 (its default)."""


def build_parser() -> argparse.ArgumentParser:
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
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"facetrace.cli.{name}")
        module.register(subparsers, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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
