"""``facetrace cluster PATH…``: group every face in a set of photos by person, without a collection.

For a photo library or a review of seized media: which faces are the same person? The faces of every image
are embedded, then grouped by ``facetrace.clustering`` (average linkage on calibrated similarity). The act
is audited (``ClusterFaces``: how many images, faces and groups, and the threshold) before anything is shown:
comparing everyone with everyone is a biometric search even without a collection.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from facetrace import shapes
from facetrace.cli import add_command
from facetrace.cli.collections import _collect
from facetrace.cli.common import open_engine, record_local, with_recognizer
from facetrace.cli.output import emit, progress, stderr
from facetrace.clustering import DEFAULT_CLUSTER_THRESHOLD, ClusterSettings, cluster_faces
from facetrace.engine import AnalyzedFace
from facetrace.errors import InvalidInputError
from facetrace.validation import check_percent


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = add_command(subparsers, "cluster", parents=[with_recognizer(common)])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    parser.add_argument("--recursive", "-r", action="store_true", help="descend into sub-folders")
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_CLUSTER_THRESHOLD,
        help="least mean similarity between two groups to merge them (default %(default)g ↔ FMR 1e-5 per pair; "
        "lower finds more of a person's photos and risks merging look-alikes)",
    )
    parser.add_argument("--small-faces", action="store_true", help="also scan in tiles for small faces (slower)")
    parser.set_defaults(func=_cluster)


def _cluster(args: argparse.Namespace) -> int:
    threshold = check_percent(args.threshold, "threshold")
    settings = ClusterSettings(threshold=threshold, floor=min(70.0, threshold))
    engine = open_engine(args, small_faces=args.small_faces)
    files, missing = _collect(args.paths, args.recursive)
    errors: list[dict[str, Any]] = [
        {"Image": m, "Error": {"Type": "InvalidImageFormatError", "Message": "no such file or folder"}}
        for m in missing
    ]
    faces: list[tuple[Path, int, int, AnalyzedFace]] = []
    with progress(len(files), "finding faces", enabled=not args.json) as advance:
        for path in files:
            try:
                image, found = engine.analyze(path)
            except InvalidInputError as exc:
                errors.append({"Image": str(path), "Error": {"Type": type(exc).__name__, "Message": exc.message}})
                if not args.json:
                    stderr.print(f"[yellow]skipped[/] {path}: {exc.message}")
            else:
                faces.extend((path, image.width, image.height, face) for face in found)
            advance(1)
    analysed = len(files) - (len(errors) - len(missing))
    vectors = np.stack([f.vector for _, _, _, f in faces if f.vector is not None]) if faces else np.zeros((0, 1))
    result = cluster_faces(
        vectors.astype(np.float32), [f.quality_score for _, _, _, f in faces], engine.calibration, settings
    )
    record_local(
        args,
        "ClusterFaces",
        detail={
            "images": analysed,
            "faces": len(faces),
            "clusters": len(result.clusters),
            "threshold": threshold,
        },
    )  # fail closed: nothing is shown unless the act is on the audit trail

    def face_json(index: int) -> dict[str, Any]:
        path, width, height, face = faces[index]
        return {
            "Image": str(path),
            "ImageWidth": width,
            "ImageHeight": height,
            "BoundingBox": shapes.bounding_box(face.detail.bounding_box),
            "Confidence": face.detail.confidence,
            "Quality": face.quality_score,
        }

    groups: list[dict[str, Any]] = [
        {"ClusterId": number, "Cohesion": cluster.cohesion, "Faces": [face_json(i) for i in cluster.members]}
        for number, cluster in enumerate(result.clusters, 1)
    ]
    data = {
        "Threshold": threshold,
        "Images": len(files),
        "Faces": len(faces),
        "Clusters": groups,
        "Singletons": [face_json(i) for i in result.singletons],
        "Errors": errors,
    }

    def render(console: Console) -> None:
        console.print(
            f"{len(faces)} face(s) in {analysed} image(s): "
            f"[bold]{len(result.clusters)}[/] group(s), {len(result.singletons)} face(s) alone "
            f"(threshold {threshold:g})"
        )
        for group in groups:
            table = Table("image", "box (x, y, w, h px)")
            for face in group["Faces"]:
                box = face["BoundingBox"]
                w, h = face["ImageWidth"], face["ImageHeight"]
                table.add_row(
                    face["Image"],
                    f"{box['Left'] * w:.0f}, {box['Top'] * h:.0f}, {box['Width'] * w:.0f}, {box['Height'] * h:.0f}",
                )
            console.print(f"[bold]group {group['ClusterId']}[/]: {len(group['Faces'])} faces, "
                          f"cohesion {group['Cohesion']:.1f}")  # fmt: skip
            console.print(table)

    emit(args, data, render)
    return 1 if errors else 0
