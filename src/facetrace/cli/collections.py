"""Collections and what lives in them: ``collections``, ``index``, ``faces``, ``search``, ``users``."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from facetrace import shapes
from facetrace.cli import add_command
from facetrace.cli.common import local_caller, open_library, with_recognizer
from facetrace.cli.output import about, clock, emit, rate_progress, show_table, stderr
from facetrace.errors import ImageError, InvalidParameterError, NoFaceError
from facetrace.gallery import DEFAULT_MATCH_THRESHOLD, Gallery, ImageSearch, IndexResult
from facetrace.gallery.bulk import Analyser, FileOutcome, IndexOptions, ThreadAnalyser, index_files
from facetrace.store.base import Page
from facetrace.types import FaceRecord, QualityFilter, UnindexedReason

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
T = TypeVar("T")


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    common = with_recognizer(common)  # a collection records its model: creating and using one needs the same
    _register_collections(subparsers, common)
    _register_index(subparsers, common)
    _register_faces(subparsers, common)
    _register_search(subparsers, common)
    _register_users(subparsers, common)


# -- collections ---------------------------------------------------------------------------------------------


def _register_collections(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = add_command(subparsers, "collections")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, func, help_text in (
        ("create", _collection_create, "create a collection"),
        ("describe", _collection_describe, "face count, user count and model of a collection"),
        ("delete", _collection_delete, "delete a collection and every face in it"),
    ):
        action = actions.add_parser(name, parents=[common], help=help_text)
        action.add_argument("collection", metavar="NAME")
        action.set_defaults(func=func)
        if name == "create":
            action.add_argument(
                "--no-thumbnails", action="store_true",
                help="keep no face picture for the dashboard (docs/dashboard.md) for this collection's faces",
            )  # fmt: skip
    listing = actions.add_parser("list", parents=[common], help="list collections")
    listing.set_defaults(func=_collection_list)


def _collection_create(args: argparse.Namespace) -> int:
    info = open_library(args).create_collection(
        args.collection, thumbnails=not args.no_thumbnails, caller=local_caller(args)
    )
    emit(args, shapes.collection(info), lambda c: c.print(f"created collection [bold]{info.collection_id}[/]"))
    return 0


def _collection_describe(args: argparse.Namespace) -> int:
    data = shapes.collection(open_library(args).describe_collection(args.collection))

    def render(console: Console) -> None:
        console.print(f"collection [bold]{escape(str(data['CollectionId']))}[/]")
        console.print(f"  faces: {data['FaceCount']}   people (users): {data['UserCount']}")
        console.print(f"  model: {data['FaceModelVersion']}")
        console.print(f"  created: {clock(float(data['CreationTimestamp']))}")

    emit(args, data, render)
    return 0


def _collection_delete(args: argparse.Namespace) -> int:
    open_library(args).delete_collection(args.collection, caller=local_caller(args))
    emit(args, {"CollectionId": args.collection, "Deleted": True}, lambda c: c.print(f"deleted {args.collection}"))
    return 0


def _collection_list(args: argparse.Namespace) -> int:
    gallery = open_library(args)
    names = every_page(lambda token: gallery.list_collections(limit=1000, next_token=token))
    emit(args, {"CollectionIds": names}, lambda c: c.print("\n".join(names) if names else "(no collections)"))
    return 0


# -- index ---------------------------------------------------------------------------------------------------


def _register_index(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = add_command(subparsers, "index", parents=[common])
    parser.add_argument("collection", metavar="COLLECTION")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    parser.add_argument("--recursive", "-r", action="store_true", help="descend into sub-folders")
    parser.add_argument(
        "--external-id-from",
        choices=("filename", "parent", "none"),
        default="filename",
        help="ExternalImageId from the file name (default), the parent folder's name, or none",
    )
    parser.add_argument("--max-faces", type=int, default=None, help="index at most this many faces per image")
    parser.add_argument(
        "--quality-filter",
        choices=[q.value for q in QualityFilter],
        default=QualityFilter.AUTO.value,
        help="skip faces below this quality (default AUTO)",
    )
    parser.add_argument("--keep-images", action="store_true", help="store a copy of each indexed image")
    parser.add_argument("--workers", type=int, default=2, help="images analysed in parallel (default 2)")
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="analyse on a Ray cluster: ADDRESS, 'auto', or (none given) $FACETRACE_RAY_ADDRESS, else a local one."
        " Put it after the paths. This machine still commits every face, with its audit record",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="images sent to a worker at a time (default 8)")
    parser.set_defaults(func=_index)


def every_page(fetch: Callable[[str | None], Page[T]]) -> list[T]:
    """Follow ``next_token`` from the first page to the last."""
    items: list[T] = []
    token: str | None = None
    while True:
        page = fetch(token)
        items.extend(page.items)
        token = page.next_token
        if token is None:
            return items


def _collect(paths: list[str], recursive: bool) -> tuple[list[Path], list[str]]:
    files, missing = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files.extend(
                sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            )
        elif path.exists():
            files.append(path)
        else:
            missing.append(raw)
    return files, missing


_REASON_WORDS: dict[str, str] = {
    UnindexedReason.EXCEEDS_MAX_FACES: "beyond --max-faces",
    UnindexedReason.EXTREME_POSE: "turned too far from the camera",
    UnindexedReason.LOW_BRIGHTNESS: "too dark",
    UnindexedReason.LOW_SHARPNESS: "too blurred",
    UnindexedReason.LOW_CONFIDENCE: "not confidently a face",
    UnindexedReason.SMALL_BOUNDING_BOX: "too small",
    UnindexedReason.LOW_FACE_QUALITY: "too poor to recognise",
}


def refusal(result: IndexResult) -> str:
    """Why an image gave no face, in words: none found, or each refused face's reasons."""
    if not result.unindexed:
        return "no face found"
    reasons = [" and ".join(_REASON_WORDS.get(r, r) for r in item.reasons) for item in result.unindexed]
    counted = ", ".join(f"{n}× {why}" if n > 1 else why for why, n in Counter(reasons).items())
    return f"{len(result.unindexed)} face(s) found, none taken: {counted} (--quality-filter NONE takes them)"


def _index(args: argparse.Namespace) -> int:
    if not 1 <= args.workers <= 64:
        raise InvalidParameterError("--workers must be between 1 and 64")
    gallery = open_library(args)
    gallery.describe_collection(args.collection)  # fail fast on a missing collection
    options = IndexOptions(
        external_id_from=args.external_id_from, max_faces=args.max_faces, quality_filter=args.quality_filter,
        keep_images=args.keep_images, batch_size=args.batch_size,
    )  # fmt: skip
    files, missing = _collect(args.paths, args.recursive)
    if args.external_id_from == "parent" and not args.json:
        _warn_root_labels(args.paths, files)
    report: list[dict[str, Any]] = [
        {"Path": m, "Error": {"Type": "InvalidImageFormatError", "Message": "no such file or folder"}}
        for m in missing
    ]
    if not args.json:
        for m in missing:
            stderr.print(f"[yellow]skipped[/] {escape(m)}: no such file or folder")
    analyser: Analyser
    if args.ray is not None:
        from facetrace.cluster.indexing import EngineSpec, RayAnalyser

        spec = EngineSpec(recognizer=args.recognizer, calibration=args.calibration)
        analyser = RayAnalyser(spec, gallery.model, address=args.ray or None)
    else:
        analyser = ThreadAnalyser(gallery.engine, workers=args.workers)
    with rate_progress(len(files), f"indexing into {args.collection}", unit="faces", enabled=not args.json) as bar:

        def told(outcome: FileOutcome) -> None:
            faces = len(outcome.result.indexed) if outcome.result is not None else 0
            bar(1, faces)
            if args.json:
                return
            if outcome.error is not None:
                stderr.print(f"[yellow]skipped[/] {escape(outcome.path)}: {escape(outcome.error)}")
            elif outcome.result is not None and not outcome.result.indexed:
                stderr.print(f"[yellow]no face indexed[/] from {escape(outcome.path)}: {refusal(outcome.result)}")

        outcomes = index_files(
            gallery, args.collection, files, analyser, options=options, caller=local_caller(args), on_outcome=told
        )
    for outcome in outcomes:
        item: dict[str, Any] = {"Path": outcome.path}
        if outcome.error is not None:
            item["Error"] = {"Type": outcome.error_type, "Message": outcome.error}
        elif outcome.skipped is not None:
            item["Skipped"] = outcome.skipped
        elif outcome.result is not None:
            item.update(_index_json(outcome.result))
        report.append(item)
    indexed = sum(len(r.get("FaceRecords", [])) for r in report)
    failed = sum(1 for r in report if "Error" in r)
    skipped = sum(1 for r in report if "Skipped" in r)
    empty = sum(1 for r in report if "FaceRecords" in r and not r["FaceRecords"])
    summary = {
        "Images": len(report), "FacesIndexed": indexed, "ImagesFailed": failed, "ImagesSkipped": skipped,
        "ImagesWithoutFaces": empty, "Results": report,
    }  # fmt: skip

    def render(console: Console) -> None:
        taken = len(report) - failed - skipped - empty
        parts = [f"indexed [bold]{indexed}[/] face(s) from {taken} image(s) into {args.collection}"]
        if empty:
            parts.append(f"{empty} image(s) gave no face (named above)")
        if skipped:
            parts.append(f"{skipped} image(s) indexed before, skipped")
        if failed:
            parts.append(f"{failed} path(s) could not be read (named above)")
        console.print("; ".join(parts))

    emit(args, summary, render)
    return 1 if failed else 0


def _warn_root_labels(paths: list[str], files: list[Path]) -> None:
    """``--external-id-from parent`` names a photo after its folder: photos lying directly in a folder given
    on the command line would all be labelled with that folder's name (``people/`` → "people"), which is
    rarely meant. Say so before indexing."""
    roots = {Path(raw).resolve() for raw in paths if Path(raw).is_dir()}
    for root in sorted(roots):
        loose = [f for f in files if f.resolve().parent == root]
        if loose:
            stderr.print(
                f"[yellow]warning:[/] {len(loose)} image(s) lie directly in {escape(str(root))} and will be "
                f"labelled {escape(repr(root.name))}: put each person's photos in a folder named after them"
            )


def _index_json(result: IndexResult) -> dict[str, Any]:
    return {
        "FaceRecords": [
            {"Face": shapes.face_record(item.record), "FaceDetail": shapes.face_detail(item.face.detail)}
            for item in result.indexed
        ],
        "UnindexedFaces": [
            {"Reasons": list(item.reasons), "FaceDetail": shapes.face_detail(item.face.detail)}
            for item in result.unindexed
        ],
        "FaceModelVersion": result.model,
    }


# -- faces ---------------------------------------------------------------------------------------------------


def _register_faces(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = add_command(subparsers, "faces")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", parents=[common], help="list faces (paginated)")
    listing.add_argument("collection", metavar="COLLECTION")
    listing.add_argument("--user-id", help="only this user's faces")
    listing.add_argument("--limit", type=int, default=100, help="faces per page (1-4096)")
    listing.add_argument("--next-token", help="continue from a previous page")
    listing.add_argument("--all", action="store_true", help="follow every page")
    listing.set_defaults(func=_faces_list)
    delete = actions.add_parser("delete", parents=[common], help="delete faces by id")
    delete.add_argument("collection", metavar="COLLECTION")
    delete.add_argument("face_ids", nargs="+", metavar="FACE_ID")
    delete.set_defaults(func=_faces_delete)


def _faces_list(args: argparse.Namespace) -> int:
    gallery = open_library(args)
    faces: list[FaceRecord] = []
    token = args.next_token
    while True:
        page = gallery.list_faces(args.collection, limit=args.limit, next_token=token, user_id=args.user_id)
        faces.extend(page.items)
        token = page.next_token
        if not args.all or token is None:
            break
    gallery.record_event(  # a read of enrolment data: audited before it is shown
        local_caller(args), "ListFaces", args.collection, matched=tuple(f.face_id for f in faces),
        detail={"returned": len(faces)},
    )  # fmt: skip
    data: dict[str, Any] = {"Faces": [shapes.face_record(f) for f in faces], "FaceModelVersion": gallery.model}
    if token:
        data["NextToken"] = token

    def render(console: Console) -> None:
        table = Table("FaceId", "ExternalImageId", "UserId", "Confidence")
        for face in faces:
            table.add_row(face.face_id, face.external_image_id or "", face.user_id or "", f"{face.confidence:.1f}")
        show_table(console, table)
        if token:
            console.print(f"more: --next-token {token}")

    emit(args, data, render)
    return 0


def _faces_delete(args: argparse.Namespace) -> int:
    result = open_library(args).delete_faces(args.collection, args.face_ids, caller=local_caller(args))
    data = {
        "DeletedFaces": list(result.deleted),
        "UnsuccessfulFaceDeletions": [
            {"FaceId": u.face_id, "Reasons": list(u.reasons), **({"UserId": u.user_id} if u.user_id else {})}
            for u in result.unsuccessful
        ],
    }

    def render(console: Console) -> None:
        console.print(f"deleted {len(result.deleted)} face(s)")
        for u in result.unsuccessful:
            console.print(f"[yellow]not deleted[/] {u.face_id}: {', '.join(u.reasons)}")

    emit(args, data, render)
    return 1 if result.unsuccessful else 0


# -- search --------------------------------------------------------------------------------------------------


def _register_search(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = add_command(subparsers, "search", parents=[common])
    parser.add_argument("collection", metavar="COLLECTION")
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_MATCH_THRESHOLD,
        help=f"minimum similarity 0-100 (default {DEFAULT_MATCH_THRESHOLD:g}; see docs/accuracy.md)",
    )
    parser.add_argument("--max-faces", type=int, default=10, help="at most this many matches (default 10)")
    parser.set_defaults(func=_search)


def _search(args: argparse.Namespace) -> int:
    gallery = open_library(args)
    try:
        result = gallery.search_faces_by_image(
            args.collection, args.image, max_faces=args.max_faces, threshold=args.threshold,
            caller=local_caller(args),
        )  # fmt: skip
    except (ImageError, NoFaceError) as exc:
        raise about(args.image, exc) from None
    data = {
        "SearchedFaceBoundingBox": shapes.bounding_box(result.searched_face.detail.bounding_box),
        "SearchedFaceConfidence": result.searched_face.detail.confidence,
        "FaceMatches": [shapes.face_match(m) for m in result.matches],
        "FaceModelVersion": result.model,
    }

    def render(console: Console) -> None:
        if not result.matches:
            console.print(
                f"[yellow]no match[/] at or above similarity {args.threshold:g}{_closest(gallery, args, result)}"
            )
            return
        table = Table("similarity", "FaceId", "ExternalImageId", "UserId")
        for match in result.matches:
            face = match.face
            table.add_row(
                f"{match.similarity:.2f}", face.face_id, face.external_image_id or "", face.user_id or ""
            )
        show_table(console, table)

    emit(args, data, render)
    return 0


def _closest(gallery: Gallery, args: argparse.Namespace, result: ImageSearch) -> str:
    """How close the best candidate came, without naming it: part of the audited search, not a new one."""
    vector = result.searched_face.vector
    if vector is None:
        return ""
    best = gallery.search_vector(
        args.collection, vector, max_faces=1, threshold=0.0, quality=result.searched_face.quality_score
    )
    if not best:
        return " (the collection is empty)"
    return (
        f" (the closest face scores {best[0].similarity:.1f}: below the threshold it is not evidence of identity)"
    )


# -- users ---------------------------------------------------------------------------------------------------


def _register_users(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = add_command(subparsers, "users")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, func in (("create", _user_create), ("delete", _user_delete)):
        action = actions.add_parser(name, parents=[common], help=f"{name} a user")
        action.add_argument("collection", metavar="COLLECTION")
        action.add_argument("user_id", metavar="USER_ID")
        action.set_defaults(func=func)
    listing = actions.add_parser("list", parents=[common], help="list users")
    listing.add_argument("collection", metavar="COLLECTION")
    listing.set_defaults(func=_user_list)
    for name, func in (("associate", _user_associate), ("disassociate", _user_disassociate)):
        action = actions.add_parser(name, parents=[common], help=f"{name} faces with a user")
        action.add_argument("collection", metavar="COLLECTION")
        action.add_argument("user_id", metavar="USER_ID")
        action.add_argument("face_ids", nargs="+", metavar="FACE_ID")
        if name == "associate":
            action.add_argument(
                "--threshold", type=float, default=75.0, help="faces must resemble the user's faces this much"
            )
        action.set_defaults(func=func)
    search = actions.add_parser("search", parents=[common], help="search users by face id, user id or image")
    search.add_argument("collection", metavar="COLLECTION")
    target = search.add_mutually_exclusive_group(required=True)
    target.add_argument("--face-id")
    target.add_argument("--user-id")
    target.add_argument("--image")
    search.add_argument("--threshold", type=float, default=DEFAULT_MATCH_THRESHOLD)
    search.add_argument("--max-users", type=int, default=10)
    search.set_defaults(func=_user_search)


def _user_create(args: argparse.Namespace) -> int:
    user = open_library(args).create_user(args.collection, args.user_id, caller=local_caller(args))
    emit(args, shapes.user(user), lambda c: c.print(f"created user {user.user_id}"))
    return 0


def _user_delete(args: argparse.Namespace) -> int:
    open_library(args).delete_user(args.collection, args.user_id, caller=local_caller(args))
    emit(args, {"UserId": args.user_id, "Deleted": True}, lambda c: c.print(f"deleted user {args.user_id}"))
    return 0


def _user_list(args: argparse.Namespace) -> int:
    gallery = open_library(args)
    users = every_page(lambda token: gallery.list_users(args.collection, limit=500, next_token=token))

    def render(console: Console) -> None:
        table = Table("UserId", "status", "faces")
        for user in users:
            table.add_row(user.user_id, user.status, str(user.face_count))
        show_table(console, table)

    emit(args, {"Users": [shapes.user(u) for u in users]}, render)
    return 0


def _user_associate(args: argparse.Namespace) -> int:
    result = open_library(args).associate_faces(
        args.collection, args.user_id, args.face_ids, threshold=args.threshold, caller=local_caller(args)
    )
    data = {
        "AssociatedFaces": [{"FaceId": f} for f in result.associated],
        "UnsuccessfulFaceAssociations": [_unsuccessful(u) for u in result.unsuccessful],
        "UserStatus": result.user.status,
    }
    emit(args, data, lambda c: _print_unsuccessful(c, len(result.associated), "associated", result.unsuccessful))
    return 1 if result.unsuccessful else 0


def _user_disassociate(args: argparse.Namespace) -> int:
    result = open_library(args).disassociate_faces(
        args.collection, args.user_id, args.face_ids, caller=local_caller(args)
    )
    data = {
        "DisassociatedFaces": [{"FaceId": f} for f in result.disassociated],
        "UnsuccessfulFaceDisassociations": [_unsuccessful(u) for u in result.unsuccessful],
        "UserStatus": result.user.status,
    }
    emit(
        args,
        data,
        lambda c: _print_unsuccessful(c, len(result.disassociated), "disassociated", result.unsuccessful),
    )
    return 1 if result.unsuccessful else 0


def _unsuccessful(item: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"FaceId": item.face_id, "Reasons": list(item.reasons)}
    if item.user_id:
        data["UserId"] = item.user_id
    if item.similarity is not None:
        data["Confidence"] = item.similarity
    return data


def _print_unsuccessful(console: Console, count: int, verb: str, unsuccessful: Any) -> None:
    console.print(f"{verb} {count} face(s)")
    for item in unsuccessful:
        console.print(f"[yellow]not {verb}[/] {item.face_id}: {', '.join(item.reasons)}")


def _user_search(args: argparse.Namespace) -> int:
    gallery: Gallery = open_library(args)
    caller = local_caller(args)
    if args.image:
        found = gallery.search_users_by_image(
            args.collection, args.image, max_users=args.max_users, threshold=args.threshold, caller=caller
        )
        matches = found.matches
    else:
        matches = gallery.search_users(
            args.collection,
            face_id=args.face_id,
            user_id=args.user_id,
            max_users=args.max_users,
            threshold=args.threshold,
            caller=caller,
        ).matches

    def render(console: Console) -> None:
        if not matches:
            console.print(f"[yellow]no match[/] at or above similarity {args.threshold:g}")
        for match in matches:
            console.print(f"{match.similarity:.2f}  {match.user.user_id}")

    emit(args, {"UserMatches": [shapes.user_match(m) for m in matches], "FaceModelVersion": gallery.model}, render)
    return 0
