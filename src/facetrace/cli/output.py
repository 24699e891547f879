"""How commands print: rich tables for people, JSON for programs, errors on stderr, progress on stderr."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from facetrace.errors import FacetraceError

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_USAGE",
    "about",
    "clock",
    "emit",
    "fail",
    "progress",
    "rate_progress",
    "show_table",
    "stderr",
    "stdout",
]

EXIT_OK, EXIT_BAD_INPUT, EXIT_USAGE, EXIT_FAILURE = 0, 1, 2, 3

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def emit(args: argparse.Namespace, data: Any, render: Callable[[Console], None] | None = None) -> None:
    """Print ``data`` as JSON with ``--json``, else call ``render`` (or pretty-print the data)."""
    if getattr(args, "json", False) or render is None:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
        sys.stdout.flush()
    else:
        render(stdout)


def fail(args: argparse.Namespace, error: FacetraceError, code: int) -> int:
    """Report ``error`` on stderr (as JSON with ``--json``) and return the exit code."""
    if getattr(args, "json", False):
        payload = {"error": {"type": type(error).__name__, "message": error.message}}
        sys.stderr.write(json.dumps(payload) + "\n")
    else:
        stderr.print(f"[bold red]error:[/] {error.message}", markup=True)
    return code


def show_table(console: Console, table: Table) -> None:
    """Print ``table`` at its natural width, never cutting a cell to the console's: ids and names in it must
    stay whole to be copied into the next command (piped output is 80 columns wide otherwise)."""
    natural = Measurement.get(console, console.options.update(width=1_000_000), table).maximum
    width = console.width
    console.width = max(width, natural)
    try:
        console.print(table)
    finally:
        console.width = width


def clock(epoch: float) -> str:
    """A moment for people: local time with its UTC offset, to the second (JSON keeps the epoch)."""
    return datetime.datetime.fromtimestamp(epoch).astimezone().isoformat(sep=" ", timespec="seconds")


def about(path: str, error: FacetraceError, role: str | None = None) -> FacetraceError:
    """``error`` again, of the same type, its message naming the input once (``"target b.jpg: no face"``):
    a message that already names ``path`` is not prefixed twice."""
    text = error.message if path in error.message else f"{path}: {error.message}"
    clone = type(error).__new__(type(error))
    FacetraceError.__init__(clone, f"{role} {text}" if role else text)
    return clone


@contextmanager
def progress(total: int, description: str, *, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (hidden when ``enabled`` is false or stderr is not a terminal)."""
    show = enabled and stderr.is_terminal
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=stderr, disable=not show, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)

        yield advance


@contextmanager
def rate_progress(
    total: int, description: str, *, unit: str, enabled: bool = True
) -> Iterator[Callable[[int, int], None]]:
    """A progress bar over ``total`` items that also counts ``unit`` (faces) and shows their rate per second
    since the start; ``advance(items, units)``. Hidden like ``progress``."""
    show = enabled and stderr.is_terminal
    started = time.monotonic()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[units]} " + unit + " · {task.fields[rate]:.1f} " + unit + "/s"),
        TimeRemainingColumn(), console=stderr, disable=not show, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(description, total=total, units=0, rate=0.0)
        count = 0

        def advance(items: int = 1, units: int = 0) -> None:
            nonlocal count
            count += units
            bar.update(task, advance=items, units=count, rate=count / max(1e-6, time.monotonic() - started))

        yield advance
