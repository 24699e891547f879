"""`facetrace keys create|list|delete`: the access keys the server accepts (SigV4 credentials)."""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from facetrace.cli import add_command
from facetrace.cli.common import record_local
from facetrace.cli.output import emit, show_table
from facetrace.home import ensure_home, resolve_home
from facetrace.service.keys import KeyStore
from facetrace.store import database_url


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = add_command(subparsers, "keys")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", parents=[common], help="create a key (its secret is shown once)")
    create.add_argument(
        "--permission",
        choices=("read", "write", "admin"),
        default="read",
        help="read: list, describe, detect, compare, search; write: also index, delete faces, users; "
        "admin: also create and delete collections (default: read)",
    )
    create.add_argument(
        "--collection",
        action="append",
        dest="collections",
        metavar="NAME",
        help="limit the key to this collection (repeat for several; default: all collections)",
    )
    create.add_argument("--description", default="", help="a note to recognise the key by")
    create.set_defaults(func=_create)
    listing = actions.add_parser("list", parents=[common], help="list keys (never their secrets)")
    listing.set_defaults(func=_list)
    delete = actions.add_parser("delete", parents=[common], help="delete a key; it stops working at once")
    delete.add_argument("access_key_id", metavar="ACCESS_KEY_ID")
    delete.set_defaults(func=_delete)


def _store(args: argparse.Namespace, *, create: bool = False) -> KeyStore:
    """The keys in the PostgreSQL database of ``--database-url`` (or ``$FACETRACE_DATABASE_URL``): every
    server on it accepts them; else in the home's database."""
    url = database_url(getattr(args, "database_url", None))
    if url is not None:
        return KeyStore.in_home(None, url=url)
    home = Path(args.home) if getattr(args, "home", None) else None
    return KeyStore.in_home(ensure_home(home) if create else resolve_home(home))


def _create(args: argparse.Namespace) -> int:
    store = _store(args, create=True)
    try:
        key = store.create(args.permission, collections=args.collections, description=args.description)
        try:
            scope = ",".join(key.collections) if key.collections else "*"
            record_local(
                args,
                "CreateAccessKey",
                detail={
                    "access_key_id": key.access_key_id,
                    "permission": str(key.permission),
                    "collections": scope,
                },
            )
        except BaseException:
            store.delete(key.access_key_id)  # no key without its audit record
            raise
    finally:
        store.close()
    data = {**key.public(), "SecretAccessKey": key.secret}

    def render(console: Console) -> None:
        console.print(f"AccessKeyId:     [bold]{key.access_key_id}[/]")
        console.print(f"SecretAccessKey: [bold]{key.secret}[/]")
        scope = ", ".join(key.collections) if key.collections else "all collections"
        console.print(f"Permission:      {key.permission} on {scope}")
        console.print("[yellow]The secret is shown only now; store it safely.[/]")

    emit(args, data, render)
    return 0


def _list(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        keys = store.list()
    finally:
        store.close()
    data = {"Keys": [key.public() for key in keys]}

    def render(console: Console) -> None:
        if not keys:
            console.print("no access keys (create one with `facetrace keys create`)")
            return
        table = Table("AccessKeyId", "Permission", "Collections", "Created", "Description")
        for key in keys:
            created = datetime.datetime.fromtimestamp(key.created_at).isoformat(timespec="seconds")
            scope = ", ".join(key.collections) if key.collections else "*"
            table.add_row(key.access_key_id, str(key.permission), scope, created, key.description)
        show_table(console, table)

    emit(args, data, render)
    return 0


def _delete(args: argparse.Namespace) -> int:
    store = _store(args)
    try:
        record_local(args, "DeleteAccessKey", detail={"access_key_id": args.access_key_id[:128]})  # before the act
        store.delete(args.access_key_id)
    finally:
        store.close()
    emit(args, {"AccessKeyId": args.access_key_id, "Deleted": True}, lambda c: c.print("deleted"))
    return 0
