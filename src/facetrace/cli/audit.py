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

from facetrace.audit import AuditKey, AuditRecord, AuditTrail, Checkpoint, env_audit_key, sign_checkpoint
from facetrace.cli import add_command
from facetrace.cli.common import local_caller
from facetrace.cli.output import EXIT_FAILURE, emit, show_table
from facetrace.errors import InvalidParameterError, NotFoundError, StoreError
from facetrace.home import resolve_home
from facetrace.store import DB_FILENAME, LEGACY_AUDIT_FILENAME, FaceStore, database_url, open_store


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = add_command(subparsers, "audit")
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
    verify.add_argument(
        "--checkpoint",
        metavar="FILE",
        help="a checkpoint from `audit checkpoint` (a file; its last line is used): fail if the log was truncated,"
        " re-chained or replaced since, or continued without the key",
    )
    verify.set_defaults(func=_verify)
    checkpoint = actions.add_parser(
        "checkpoint",
        parents=[common],
        help="sign the log's current head with the audit key; keep the line it prints off this machine",
    )
    checkpoint.add_argument("--out", metavar="FILE", help="also append the checkpoint line to FILE")
    checkpoint.set_defaults(func=_checkpoint)


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
        # one more than asked for: tells whether more records follow without counting them all
        records = [
            _record(r)
            for r in log.records(
                after=args.after,
                limit=args.limit + 1,
                operation=args.operation,
                principal=args.principal,
                collection_id=args.collection,
            )
        ]
    finally:
        store.close()
    more = len(records) > args.limit
    records = records[: args.limit]
    next_after = records[-1]["Seq"] if more and records else None

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
        show_table(console, table)
        if next_after is not None:
            console.print(
                f"[yellow]more records follow[/]: this shows {len(records)}, oldest first; "
                f"the next ones: facetrace audit list --after {next_after}"
            )
        elif not records:
            console.print("no audit records match")

    emit(args, {"Records": records, **({"NextAfter": next_after} if next_after is not None else {})}, render)
    return 0


def _key_of(log: AuditTrail) -> AuditKey | None:
    key = getattr(log, "key", None)
    return key if isinstance(key, AuditKey) else env_audit_key()


def _read_checkpoint(path: str) -> Checkpoint:
    try:
        lines = [line for line in Path(path).read_text("utf-8").splitlines() if line.strip()]
    except (OSError, UnicodeError) as exc:
        raise InvalidParameterError(f"cannot read the checkpoint {path}: {exc}") from None
    if not lines:
        raise InvalidParameterError(f"{path} holds no checkpoint")
    return Checkpoint.from_json(lines[-1])


def _verify(args: argparse.Namespace) -> int:
    checkpoint = _read_checkpoint(args.checkpoint) if args.checkpoint else None
    store, log = _open(args)
    try:
        result = log.verify(expect_head=args.expect_head, checkpoint=checkpoint)
    finally:
        store.close()
    data = {
        "Ok": result.ok,
        "Records": result.count,
        "Head": result.head,
        "BrokenSeq": result.broken_seq,
        "Reason": result.reason,
        "KeyedFrom": result.keyed_from,
        "Authenticated": result.authenticated,
        "CheckpointSeq": result.checkpoint_seq,
        "Covers": result.coverage,
        "Warning": result.warning,
    }

    def render(console: Console) -> None:
        if result.ok:
            console.print(f"[green]ok[/]: {result.count} records, head {result.head}")
        else:
            console.print(f"[bold red]broken[/] at record {result.broken_seq}: {escape(result.reason or '')}")
        console.print(f"covers: {escape(result.coverage)}")
        if result.warning:
            console.print(f"[yellow]warning:[/] {escape(result.warning)}")

    emit(args, data, render)
    return 0 if result.ok else EXIT_FAILURE


def _checkpoint(args: argparse.Namespace) -> int:
    store, log = _open(args)
    try:
        key = _key_of(log)
        if key is None:
            raise StoreError(
                "no audit key: set FACETRACE_AUDIT_KEY or FACETRACE_AUDIT_KEY_FILE (PostgreSQL), or make the home"
                " writable so facetrace can create audit.key"
            )
        checkpoint = sign_checkpoint(log, key, local_caller(args))
    finally:
        store.close()
    line = checkpoint.to_json()
    if args.out:
        try:
            with open(args.out, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        except OSError as exc:
            raise InvalidParameterError(f"cannot write {args.out}: {exc}") from None
    data = {"Checkpoint": line, "Seq": checkpoint.seq, "Head": checkpoint.head, "KeyId": checkpoint.key_id}

    def render(console: Console) -> None:
        console.print(line, markup=False, highlight=False)
        console.print(f"[dim]records 1-{checkpoint.seq} signed; keep this line off this machine[/]")

    emit(args, data, render)
    return 0
