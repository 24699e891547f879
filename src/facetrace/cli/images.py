"""``facetrace detect`` and ``facetrace compare``: one-off image analysis, no collection needed."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from facetrace import shapes
from facetrace.cli import add_command
from facetrace.cli.common import local_caller, open_engine, open_library, with_recognizer
from facetrace.cli.output import about, emit, show_table, stderr
from facetrace.errors import InvalidInputError, NoFaceError


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    common = with_recognizer(common)
    detect = add_command(subparsers, "detect", parents=[common])
    detect.add_argument("images", nargs="+", metavar="IMAGE")
    detect.add_argument("--max-faces", type=int, default=100, help="at most this many faces, largest first")
    detect.add_argument("--small-faces", action="store_true", help="also scan in tiles for small faces (slower)")
    detect.set_defaults(func=_detect)

    compare = add_command(subparsers, "compare", parents=[common])
    compare.add_argument("source", metavar="SOURCE", help="image whose largest face is compared")
    compare.add_argument("target", metavar="TARGET", help="image whose faces are compared against it")
    compare.add_argument("--threshold", type=float, default=80.0, help="similarity to count as a match (0-100)")
    compare.set_defaults(func=_compare)


def _detect(args: argparse.Namespace) -> int:
    engine = open_engine(args, small_faces=args.small_faces)
    results, failed = [], 0
    for path in args.images:
        try:
            image, faces = engine.analyze(path, max_faces=args.max_faces, embed=False)
        except InvalidInputError as exc:
            failed += 1
            message = about(path, exc).message
            results.append({"Image": path, "Error": {"Type": type(exc).__name__, "Message": message}})
            if not args.json:
                stderr.print(f"[red]skipped[/] {escape(message)}")
            continue
        results.append(
            {
                "Image": path,
                "Width": image.original_width,
                "Height": image.original_height,
                "FaceDetails": [shapes.face_detail(face.detail) for face in faces],
            }
        )

    def render(console: Console) -> None:
        for result in results:
            if "Error" in result:
                continue
            if not result["FaceDetails"]:
                console.print(f"[bold]{escape(result['Image'])}[/]: no faces found")
                continue
            table = Table("#", "box (x, y, w, h px)", "confidence", "yaw", "pitch", "roll", "sharpness")
            for i, face in enumerate(result["FaceDetails"], 1):
                box, pose = face["BoundingBox"], face["Pose"]
                w, h = result["Width"], result["Height"]
                table.add_row(
                    str(i),
                    f"{box['Left'] * w:.0f}, {box['Top'] * h:.0f}, {box['Width'] * w:.0f}, {box['Height'] * h:.0f}",
                    f"{face['Confidence']:.1f}",
                    f"{pose['Yaw']:.0f}",
                    f"{pose['Pitch']:.0f}",
                    f"{pose['Roll']:.0f}",
                    f"{face['Quality']['Sharpness']:.0f}",
                )
            console.print(f"[bold]{escape(result['Image'])}[/]: {len(result['FaceDetails'])} face(s)")
            show_table(console, table)

    emit(args, {"Results": results}, render)
    return 1 if failed else 0


def _compare(args: argparse.Namespace) -> int:
    gallery = open_library(args)
    # Decode each first so an error says which of the two it is about.
    images = {}
    for role, path in (("source", args.source), ("target", args.target)):
        try:
            images[role] = gallery.engine.load(path)
        except InvalidInputError as exc:
            raise about(path, exc, role) from None
    try:
        result = gallery.compare_faces(
            images["source"], images["target"], threshold=args.threshold, caller=local_caller(args)
        )
    except NoFaceError as exc:  # only the source's largest face is required
        raise about(args.source, exc, "source") from None
    data = shapes.compare_faces(result)  # exactly CompareFaces' response

    def render(console: Console) -> None:
        if not result.matches:
            best = max((score for _, score in result.unmatched), default=None)
            extra = f" (best {best:.1f})" if best is not None else f" (no face in target {escape(args.target)})"
            console.print(f"[yellow]no match[/] at threshold {args.threshold:g}{extra}")
        for face, score in result.matches:
            box = face.detail.bounding_box
            console.print(
                f"[green]match[/] similarity {score:.2f} at left={box.left:.3f} top={box.top:.3f} "
                f"width={box.width:.3f} height={box.height:.3f}"
            )

    emit(args, data, render)
    return 0
