"""`facetrace migrate --to postgresql://…`: move an embedded home into PostgreSQL for several servers."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from facetrace.cli import add_command
from facetrace.cli.output import emit
from facetrace.errors import InvalidParameterError
from facetrace.home import resolve_home


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = add_command(
        subparsers,
        "migrate",
        parents=[common],
        description="Copy the embedded store of --home (collections, faces with their vectors bit for bit, "
        "users, the audit chain, access keys, request tokens, video jobs, stream processors, sightings, review "
        "items, unknown people, face thumbnails; not dashboard sessions: sign in again) into "
        "an EMPTY PostgreSQL database, then read the copy back and check it. The home is only read; stop "
        "servers writing to it first. See docs/deploy.md.",
    )
    parser.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="target database, postgresql://user:password@host/db (must be empty)",
    )
    parser.set_defaults(func=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    from facetrace.store import database_url
    from facetrace.store.postgres_migrate import migrate_home

    url = database_url(args.to)
    if url is None:
        raise InvalidParameterError("--to needs a postgresql:// URL")
    home = resolve_home(Path(args.home) if getattr(args, "home", None) else None)
    report = migrate_home(home, url)
    data = {
        "Target": report.target,
        "Collections": [
            {
                "CollectionId": c.collection_id,
                "Faces": c.faces,
                "Users": c.users,
                "Thumbnails": c.thumbnails,
                "VectorsSha256": c.vectors_sha256,
            }
            for c in report.collections
        ],
        "AuditRecords": report.audit_records,
        "AuditHead": report.audit_head,
        "Records": dict(report.records),
    }

    def render(console: Console) -> None:
        for c in report.collections:
            console.print(f"{c.collection_id}: {c.faces} faces, {c.users} users, {c.thumbnails} thumbnails")
        console.print(", ".join(f"{table}: {rows}" for table, rows in report.records))
        console.print(
            f"[green]ok[/]: {len(report.collections)} collections and {report.audit_records} audit records "
            f"copied to {report.target} and checked (audit head {report.audit_head})"
        )

    emit(args, data, render)
    return 0
