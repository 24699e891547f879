"""``facetrace redact INPUT OUTPUT``: hide every face in a photo or a video, for release.

``--keep-collection NAME`` leaves the people identified in that collection visible (at ``--threshold``,
the identification threshold, 99 by default); ``--only-collection NAME`` hides only them. When a collection
is used the act is audited like a search (``RedactMedia``: the collection, the threshold, the faces it
matched, how many faces were hidden and kept) *before* the output is put in place: the output is written
beside it under a temporary name and renamed only once the record is durable.

``--anamorphic``: also search the picture stretched 2× and 3× wide and tall, for pictures stored squashed
(anamorphic video, 4:3 stored as 16:9, photos resized to squares). ``auto`` (the default) does it for photos,
where it costs a few tens of milliseconds, and not for video, whose real-time margin it would eat into;
``on`` adds it to video's periodic CenterFace frames too; ``off`` never.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facetrace.cli import add_command
from facetrace.cli.common import local_caller, open_engine, open_library, with_recognizer
from facetrace.cli.output import emit, progress
from facetrace.errors import InvalidParameterError, SourceOpenError
from facetrace.gallery import DEFAULT_MATCH_THRESHOLD
from facetrace.redaction import (
    ANAMORPHIC_ASPECTS,
    Method,
    Recognizer,
    RedactionSettings,
    Spare,
    redact_photo,
    redaction_engine,
)
from facetrace.validation import check_percent
from facetrace.video.source import FILE_EXTENSIONS

PHOTO_SUFFIXES = {".jpg": ".jpg", ".jpeg": ".jpg", ".png": ".png", ".webp": ".webp", ".bmp": ".bmp"}


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = add_command(subparsers, "redact", parents=[with_recognizer(common)])
    parser.add_argument("input", metavar="INPUT", help="a photo (jpg, png, webp, bmp) or a video file")
    parser.add_argument("output", metavar="OUTPUT", help="where to write the redacted copy (same kind)")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--keep-collection", metavar="NAME", help="leave the people identified in NAME visible")
    who.add_argument("--only-collection", metavar="NAME", help="hide only the people identified in NAME")
    parser.add_argument(
        "--threshold", type=float, default=DEFAULT_MATCH_THRESHOLD,
        help="similarity at which a face counts as identified (default %(default)g)",
    )  # fmt: skip
    parser.add_argument("--method", choices=[m.value for m in Method], default=Method.BLUR.value)
    parser.add_argument("--padding", type=float, default=0.25, help="box growth on each side (share of the box)")
    parser.add_argument("--detect-every", type=int, default=2, help="video: detect every n-th frame (default 2)")
    parser.add_argument(
        "--anamorphic", choices=("auto", "on", "off"), default="auto",
        help="also search the picture stretched 2x and 3x wide and tall, for squashed pictures "
        "(auto: photos only; on: video's CenterFace frames too)",
    )  # fmt: skip
    parser.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")
    parser.set_defaults(func=_redact)


@contextmanager
def _bad_input() -> Iterator[None]:
    """A video that cannot be opened is the caller's to fix (exit 1), not an environment failure."""
    try:
        yield
    except SourceOpenError as exc:
        raise InvalidParameterError(exc.message) from exc


def _redact(args: argparse.Namespace) -> int:
    source, target = Path(args.input), Path(args.output)
    threshold = check_percent(args.threshold, "threshold")
    if target.exists() and not args.force:
        raise InvalidParameterError(f"{target} exists (use --force to overwrite it)")
    if source.resolve() == target.resolve():
        raise InvalidParameterError("OUTPUT must not be INPUT")
    is_video = source.suffix.lower() in FILE_EXTENSIONS
    if is_video != (target.suffix.lower() in FILE_EXTENSIONS) or (
        not is_video and target.suffix.lower() not in PHOTO_SUFFIXES
    ):
        raise InvalidParameterError("OUTPUT must be a photo for a photo INPUT and a video for a video INPUT")
    collection = args.keep_collection or args.only_collection
    spare = Spare.ONLY if args.only_collection else Spare.KEEP
    recognizer: Recognizer | None = None
    gallery = None
    if collection:
        from facetrace.video.identity import CollectionMatcher

        gallery = open_library(args)
        engine = gallery.engine
        recognizer = CollectionMatcher(gallery, collection, threshold)
    else:
        engine = open_engine(args)
    stretch = args.anamorphic == "on" or (args.anamorphic == "auto" and not is_video)
    settings = RedactionSettings(
        method=Method(args.method), padding=args.padding, aspects=ANAMORPHIC_ASPECTS if stretch else ()
    )
    partial = target.with_name(f".{target.stem}.partial{target.suffix}")
    try:
        if is_video:
            from facetrace.video.redact import VideoRedactionSettings, redact_video

            with progress(0, "redacting", enabled=not args.json) as advance, _bad_input():
                report = redact_video(
                    engine, source, partial,
                    VideoRedactionSettings(redaction=RedactionSettings(
                        method=settings.method, padding=settings.padding, small_faces=False,
                        aspects=settings.aspects),
                        detect_every=args.detect_every),
                    recognizer=recognizer, spare=spare, progress=advance,
                )  # fmt: skip
            hidden, kept, matched = report.faces_hidden, report.faces_kept, report.matched_face_ids
            data: dict[str, Any] = {"Frames": report.frames, "Regions": report.regions, "Audio": report.audio}
        else:
            finder = redaction_engine(engine, settings)
            image = finder.load(source)
            pixels, result = redact_photo(finder, image, settings, recognizer=recognizer, spare=spare)
            ok, encoded = cv2.imencode(PHOTO_SUFFIXES[target.suffix.lower()], pixels)
            if not ok:
                raise InvalidParameterError(f"cannot encode {target.suffix} output")
            partial.write_bytes(np.asarray(encoded).tobytes())
            hidden, kept, matched = len(result.hidden), len(result.kept), result.matched_face_ids
            data = {"Width": image.width, "Height": image.height}
        if gallery is not None and collection:
            gallery.record_event(
                local_caller(args), "RedactMedia", collection, threshold=threshold, match_count=kept
                if spare is Spare.KEEP else hidden, matched=matched,
                detail={"input": source.name, "mode": spare.value, "hidden": hidden, "kept": kept},
            )  # fmt: skip
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    data = {"Input": str(source), "Output": str(target), "FacesHidden": hidden, "FacesKept": kept, **data}
    emit(args, data, lambda c: c.print(f"{hidden} face(s) hidden, {kept} kept → {target}"))
    return 0
