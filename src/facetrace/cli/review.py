"""``facetrace review list|show|confirm|reject`` and ``facetrace unknowns list|show|name``: the human in the
loop from the command line (``facetrace.review``; docs/review.md)."""

from __future__ import annotations

import argparse
import datetime
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from facetrace.cli import add_command
from facetrace.cli.common import local_caller, open_library
from facetrace.cli.output import EXIT_OK, emit
from facetrace.errors import InvalidParameterError, StoreError
from facetrace.gallery import Gallery
from facetrace.review import REVIEW_STATUSES, ReviewQueue, UnknownPeople
from facetrace.review.shapes import decision_dict, review_item_dict, unknown_face_dict, unknown_person_dict
from facetrace.store import records_of
from facetrace.store.records import Records

__all__ = ["register"]


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    review = add_command(subparsers, "review")
    verbs = review.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = verbs.add_parser("list", parents=[common], help="review items, newest first")
    listing.add_argument("--status", choices=(*REVIEW_STATUSES, "ALL"), default="PENDING")
    listing.add_argument("--collection", action="append", help="only this collection (repeatable)")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(func=_list)
    show = verbs.add_parser("show", parents=[common], help="one item: candidates, camera, time, thumbnails")
    show.add_argument("item", metavar="ITEM_ID")
    show.add_argument("--thumbnails", metavar="DIR", help="write the item's thumbnails as JPEG files into DIR")
    show.set_defaults(func=_show)
    confirm = verbs.add_parser(
        "confirm", parents=[common], help="the track is this candidate: a confirmed sighting"
    )
    confirm.add_argument("item", metavar="ITEM_ID")
    confirm.add_argument(
        "--person", help="candidate (person key, FaceId, UserId or ExternalImageId; default best)"
    )
    confirm.add_argument("--enrol", action="store_true", help="also add the track's best face to that person")
    confirm.set_defaults(func=_confirm)
    reject = verbs.add_parser("reject", parents=[common], help="the track is not this candidate (default: none)")
    reject.add_argument("item", metavar="ITEM_ID")
    reject.add_argument("--person", help="the candidate rejected (default: every candidate still offered)")
    reject.add_argument("--reason", help="why, kept with the decision")
    reject.set_defaults(func=_reject)

    unknowns = add_command(subparsers, "unknowns")
    actions = unknowns.add_subparsers(dest="action", metavar="ACTION", required=True)
    people = actions.add_parser("list", parents=[common], help="unknown people, last seen first")
    people.add_argument("--collection", action="append", help="only this collection (repeatable)")
    people.add_argument("--limit", type=int, default=100)
    people.set_defaults(func=_unknowns)
    one = actions.add_parser("show", parents=[common], help="one unknown person and where each face was seen")
    one.add_argument("unknown", metavar="UNKNOWN_ID")
    one.add_argument("--thumbnails", metavar="DIR", help="write the faces' thumbnails as JPEG files into DIR")
    one.set_defaults(func=_unknown)
    name = actions.add_parser(
        "name", parents=[common], help="make a user of an unknown person with its best faces"
    )
    name.add_argument("unknown", metavar="UNKNOWN_ID")
    name.add_argument("user_id", metavar="USER_ID")
    name.add_argument("--max-faces", type=int, default=5)
    name.set_defaults(func=_name)


def _records(gallery: Gallery) -> Records:
    records = records_of(gallery.store)
    if records is None:
        raise StoreError("this store keeps no review queue or unknown people")
    return records


def _queue(args: argparse.Namespace) -> ReviewQueue:
    """The review queue of the home or database ``args`` name."""
    gallery = open_library(args)
    return ReviewQueue(gallery, _records(gallery).reviews)


def _people(args: argparse.Namespace) -> UnknownPeople:
    """The unknown people of the home or database ``args`` name."""
    gallery = open_library(args)
    return UnknownPeople(gallery, _records(gallery).unknowns)


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _write(folder: str, stem: str, jpegs: list[bytes]) -> list[str]:
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = []
    for index, jpeg in enumerate(jpegs):
        path = target / f"{stem}-{index + 1}.jpg"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # faces of people: private
        with os.fdopen(fd, "wb") as handle:
            handle.write(jpeg)
        written.append(str(path))
    return written


# -- review ----------------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    queue = _queue(args)
    items = queue.items(
        status=None if args.status == "ALL" else args.status,
        collection_ids=tuple(args.collection) if args.collection else None,
        limit=args.limit,
    )
    data = {"ReviewItems": [review_item_dict(item) for item in items]}

    def render(console: Console) -> None:
        table = Table("item", "status", "collection", "camera", "when", "best candidate", "similarity", "FMR")
        for row in data["ReviewItems"]:
            best = next((c for c in row["Candidates"] if "RejectedBy" not in c), row["Candidates"][0])
            table.add_row(
                row["ReviewItemId"], row["Status"], row["CollectionId"], row["Camera"], _when(row["StartedAt"]),
                best.get("UserId") or best.get("ExternalImageId") or best["FaceId"], f"{best['Similarity']:.1f}",
                f"{best['FalseMatchRate']:.0e}",
            )  # fmt: skip
        console.print(table if items else "no review items")

    emit(args, data, render)
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    queue = _queue(args)
    item = queue.get(args.item, thumbnails=True)
    data = review_item_dict(item)
    data["Decisions"] = [decision_dict(d) for d in queue.decisions(item.item_id)]
    if args.thumbnails:
        data["ThumbnailFiles"] = _write(args.thumbnails, item.item_id, list(item.thumbnails))

    def render(console: Console) -> None:
        console.print(
            f"[bold]{item.item_id}[/] {item.status}: camera {item.camera} ({item.source}, track {item.track_id}), "
            f"{_when(item.started_at)} – {_when(item.ended_at)}; collection {item.collection_id}, "
            f"review at {item.review_threshold:g}, identification at {item.match_threshold:g}"
        )
        table = Table("person", "face", "similarity", "false match rate", "rejected by")
        for c in data["Candidates"]:
            table.add_row(
                c["Person"], c["FaceId"], f"{c['Similarity']:.1f}", f"{c['FalseMatchRate']:.1e}",
                c.get("RejectedBy", ""),
            )  # fmt: skip
        console.print(table)
        for path in data.get("ThumbnailFiles", []):
            console.print(f"thumbnail: {path}")

    emit(args, data, render)
    return EXIT_OK


def _confirm(args: argparse.Namespace) -> int:
    queue = _queue(args)
    item = queue.confirm(args.item, person=args.person, enrol=args.enrol, caller=local_caller(args))
    data = review_item_dict(item)
    emit(args, data, lambda c: c.print(f"confirmed {item.confirmed_person}: sighting {item.sighting_id}"))
    return EXIT_OK


def _reject(args: argparse.Namespace) -> int:
    queue = _queue(args)
    item = queue.reject(args.item, person=args.person, reason=args.reason, caller=local_caller(args))
    data = review_item_dict(item)
    emit(args, data, lambda c: c.print(f"rejected; item {item.item_id} is {item.status}"))
    return EXIT_OK


# -- unknowns --------------------------------------------------------------------------------------------


def _unknowns(args: argparse.Namespace) -> int:
    people = _people(args)
    found = people.people(collection_ids=tuple(args.collection) if args.collection else None, limit=args.limit)
    data = {"UnknownPeople": [unknown_person_dict(p) for p in found]}

    def render(console: Console) -> None:
        for p in found:
            named = f" — named {p.named_user}" if p.named_user else ""
            console.print(
                f"unknown #{p.number} — seen {p.seen} time(s) on {len(p.cameras)} camera(s) "
                f"({', '.join(p.cameras)}), first {_when(p.first_seen)}, last {_when(p.last_seen)}{named}  "
                f"[dim]{p.unknown_id}[/]"
            )
        if not found:
            console.print("no unknown people")

    emit(args, data, render)
    return EXIT_OK


def _unknown(args: argparse.Namespace) -> int:
    people = _people(args)
    person = people.get(args.unknown)
    faces = people.faces(person.unknown_id, thumbnails=bool(args.thumbnails))
    data = {**unknown_person_dict(person), "Faces": [unknown_face_dict(f) for f in faces]}
    if args.thumbnails:
        data["ThumbnailFiles"] = _write(
            args.thumbnails, person.unknown_id, [f.thumbnail for f in faces if f.thumbnail]
        )

    def render(console: Console) -> None:
        console.print(f"unknown #{person.number}: seen {person.seen} time(s) on {', '.join(person.cameras)}")
        for face in faces:
            console.print(f"  {_when(face.seen_at)}  {face.camera}  ({face.source}, track {face.track_id})")
        for path in data.get("ThumbnailFiles", []):
            console.print(f"thumbnail: {path}")

    emit(args, data, render)
    return EXIT_OK


def _name(args: argparse.Namespace) -> int:
    people = _people(args)
    if args.max_faces < 1:
        raise InvalidParameterError("--max-faces must be at least 1")
    face_ids = people.name(args.unknown, args.user_id, max_faces=args.max_faces, caller=local_caller(args))
    data = {"UserId": args.user_id, "FaceIds": face_ids}
    emit(args, data, lambda c: c.print(f"user {args.user_id} created with {len(face_ids)} face(s)"))
    return EXIT_OK
