"""`facetrace audit list|verify`: read the hash-chained audit trail in the home's database, and check nobody
edited it."""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from facetrace.audit import AuditRecord, AuditTrail
from facetrace.cli.output import EXIT_FAILURE, emit
from facetrace.errors import NotFoundError
from facetrace.home import resolve_home
from facetrace.store import DB_FILENAME, LEGACY_AUDIT_FILENAME, FaceStore, database_url, open_store


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser("audit", help="list and verify the audit log of searches and changes")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", parents=[common], help="audit records, oldest first")
    listing.add_argument("--after", type=int, default=0, metavar="SEQ", help="only records after this one")
    listing.add_argument("--limit", type=int, default=100, help="at most this many records (default 100)")
    listing.add_argument("--operation", help="only this operation (e.g. SearchFacesByImage)")
    listing.add_argument("--principal", help="only this access key id or local:<user>")
    listing.add_argument("--collection", help="only this collection")
    listing.set_defaults(func=_list)
    verify = actions.add_parser("verify", parents=[common], help="check the hash chain; exit 3 if broken")
    verify.add_argument(
        "--expect-head",
        metavar="HASH",
        help="a head hash printed by an earlier verify: fail if that record is no longer in the log",
    )
    verify.set_defaults(func=_verify)


def _open(args: argparse.Namespace) -> tuple[FaceStore, AuditTrail]:
    """The store (PostgreSQL when a database URL is given, else the home's; an older home's audit.db is
    imported on the way) and its audit trail."""
    url = database_url(getattr(args, "database_url", None))
    if url is not None:
        store = open_store(url=url, listen=False)
        return store, store.audit
    home = resolve_home(Path(args.home) if getattr(args, "home", None) else None)
    if not (home / DB_FILENAME).exists() and not (home / LEGACY_AUDIT_FILENAME).exists():
        raise NotFoundError(f"there is no facetrace database in {home}")
    store = open_store(home)
    return store, store.audit


def _record(record: AuditRecord) -> dict[str, Any]:
    event = record.event
    return {
        "Seq": record.seq,
        "Time": datetime.datetime.fromtimestamp(record.time, datetime.UTC).isoformat(),
        "Operation": event.operation,
        "Principal": event.principal,
        "CollectionId": event.collection_id,
        "Purpose": event.purpose,
        "Threshold": event.threshold,
        "MatchCount": event.match_count,
        "MatchedFaceIds": list(event.matched_face_ids),
        "Detail": event.detail,
        "Hash": record.hash,
    }


def _list(args: argparse.Namespace) -> int:
    store, log = _open(args)
    try:
        records = [
            _record(r)
            for r in log.records(
                after=args.after,
                limit=args.limit,
                operation=args.operation,
                principal=args.principal,
                collection_id=args.collection,
            )
        ]
    finally:
        store.close()

    def render(console: Console) -> None:
        table = Table("Seq", "Time", "Operation", "Principal", "Collection", "Purpose", "Threshold", "Matches")
        for r in records:
            # stored text is data, not markup: "[/]" or "[black on black]" in a purpose must print as itself
            table.add_row(
                str(r["Seq"]), r["Time"][:19], escape(r["Operation"]), escape(r["Principal"]),
                escape(r["CollectionId"] or ""), escape(r["Purpose"] or ""),
                "" if r["Threshold"] is None else f"{r['Threshold']:g}",
                "" if r["MatchCount"] is None else str(r["MatchCount"]),
            )  # fmt: skip
        console.print(table)

    emit(args, {"Records": records}, render)
    return 0


def _verify(args: argparse.Namespace) -> int:
    store, log = _open(args)
    try:
        result = log.verify(expect_head=args.expect_head)
    finally:
        store.close()
    data = {
        "Ok": result.ok,
        "Records": result.count,
        "Head": result.head,
        "BrokenSeq": result.broken_seq,
        "Reason": result.reason,
    }

    def render(console: Console) -> None:
        if result.ok:
            console.print(f"[green]ok[/]: {result.count} records, head {result.head}")
        else:
            console.print(f"[bold red]broken[/] at record {result.broken_seq}: {result.reason}")

    emit(args, data, render)
    return 0 if result.ok else EXIT_FAILURE
