"""Bulk indexing: many image files into one collection, resumable, with the analysis on an executor.

``index_files`` reads each file once (its bytes and their sha256), skips files whose content was indexed
into the collection before (``Gallery.indexed_hashes``: the store keeps one content hash per indexed image,
written in the transaction that adds its faces), hands the rest in batches to an ``Analyser`` — threads in
this process (``ThreadAnalyser``) or Ray workers (``facetrace.cluster.indexing.RayAnalyser``) — and commits
each analysed file here, through ``Gallery.index_analyzed``: one transaction with its audit record, as an
in-process IndexFaces. The workers only detect and embed; nothing is stored by them. A killed import is
therefore resumed by running it again: every committed file is skipped, and a file whose commit did not
happen is analysed again. Two imports of one file racing each other cannot both commit it (the store
refuses the second content hash: ``AlreadyExistsError``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from facetrace.audit import LOCAL_CALLER, Caller
from facetrace.engine import AnalyzedFace, FaceEngine
from facetrace.errors import (
    AlreadyExistsError,
    ImageTooLargeError,
    InvalidImageFormatError,
    InvalidInputError,
    InvalidParameterError,
    ModelMismatchError,
)
from facetrace.gallery.core import Gallery
from facetrace.gallery.results import IndexResult
from facetrace.types import QualityFilter
from facetrace.validation import check_int

__all__ = [
    "Analyser",
    "Analysis",
    "FileOutcome",
    "ImageFile",
    "IndexOptions",
    "ThreadAnalyser",
    "analyse_files",
    "external_id",
    "index_files",
]

_UNSAFE_ID_CHARS = re.compile(r"[^a-zA-Z0-9_.\-:]+")
HASH_CHUNK = 256
"""Files hashed and looked up in the store per query."""


@dataclass(frozen=True, slots=True)
class ImageFile:
    """One file to analyse: its position in the run, its bytes and their sha256 (sent to a worker as is)."""

    index: int
    path: str
    data: bytes
    content_hash: str


@dataclass(frozen=True, slots=True)
class Analysis:
    """What a worker found in one file: its faces with their vectors, or why it is not an image we take."""

    index: int
    faces: tuple[AnalyzedFace, ...] = ()
    error_type: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class IndexOptions:
    """As ``facetrace index``: ExternalImageId from the file name / parent folder / none, faces per image,
    QualityFilter, keep a copy of each image, files per batch sent to a worker."""

    external_id_from: str = "filename"
    max_faces: int | None = None
    quality_filter: QualityFilter | str = QualityFilter.AUTO
    keep_images: bool = False
    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.external_id_from not in ("filename", "parent", "none"):
            raise InvalidParameterError("external_id_from must be filename, parent or none")
        check_int(self.batch_size, "batch_size", 1, 1024)


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """One file's fate: indexed (``result``; possibly with no face), failed (``error``), or ``skipped``
    because its content was indexed before (or appears earlier in this run)."""

    index: int
    path: str
    result: IndexResult | None = None
    error_type: str | None = None
    error: str | None = None
    skipped: str | None = None


def external_id(path: Path, mode: str) -> str | None:
    """ExternalImageId for ``path``: its stem or its folder's name, with unsafe characters replaced by ``_``."""
    if mode == "none":
        return None
    raw = path.stem if mode == "filename" else path.resolve().parent.name
    cleaned = _UNSAFE_ID_CHARS.sub("_", raw)[:255]
    return cleaned or None


def analyse_files(engine: FaceEngine, files: Sequence[ImageFile]) -> list[Analysis]:
    """Detect and embed every face of each file (the worker's half); a file that is not an image we take is
    an ``Analysis`` with its error, never an exception, so one bad file does not fail its batch."""
    found: list[Analysis] = []
    for item in files:
        try:
            _, faces = engine.analyze(item.data)
        except InvalidInputError as exc:
            found.append(Analysis(item.index, error_type=type(exc).__name__, error=exc.message))
            continue
        found.append(Analysis(item.index, tuple(faces)))
    return found


class Analyser(Protocol):
    """The executor seam: analyses batches of files somewhere and yields each batch's analyses as it
    completes (any order), keeping a bounded number of batches in flight. ``model``: the FaceModelVersion
    of the vectors it makes."""

    @property
    def model(self) -> str: ...

    def run(self, batches: Iterator[list[ImageFile]]) -> Iterator[list[Analysis]]: ...


class ThreadAnalyser:
    """Batches analysed by ``workers`` threads of this process (the engine builds its models per thread)."""

    def __init__(self, engine: FaceEngine, workers: int = 2) -> None:
        self.engine = engine
        self.workers = check_int(workers, "workers", 1, 64)

    @property
    def model(self) -> str:
        return self.engine.model.key

    def run(self, batches: Iterator[list[ImageFile]]) -> Iterator[list[Analysis]]:
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="index") as pool:
            pending: set[Future[list[Analysis]]] = set()
            for batch in batches:
                pending.add(pool.submit(analyse_files, self.engine, batch))
                while len(pending) >= 2 * self.workers:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()


def index_files(
    gallery: Gallery,
    collection_id: str,
    paths: Sequence[Path],
    analyser: Analyser,
    *,
    options: IndexOptions | None = None,
    caller: Caller = LOCAL_CALLER,
    on_outcome: Callable[[FileOutcome], None] | None = None,
) -> list[FileOutcome]:
    """Index ``paths`` into ``collection_id``; returns one outcome per path, in the order given.
    ``on_outcome`` is called for each as it is known (progress bars, reports), from this thread."""
    options = options or IndexOptions()
    gallery.describe_collection(collection_id)  # fail fast on a missing collection
    if analyser.model != gallery.model:
        raise ModelMismatchError(f"the workers make {analyser.model} vectors; the gallery holds {gallery.model}")
    outcomes: dict[int, FileOutcome] = {}
    in_flight: dict[int, ImageFile] = {}
    decode = options.keep_images or gallery.keeps_thumbnails(collection_id)  # the driver needs the pixels

    def settle(outcome: FileOutcome) -> None:
        outcomes[outcome.index] = outcome
        if on_outcome is not None:
            on_outcome(outcome)

    def batches() -> Iterator[list[ImageFile]]:
        first_of: dict[str, str] = {}
        for start in range(0, len(paths), HASH_CHUNK):
            fresh: list[ImageFile] = []
            for index in range(start, min(len(paths), start + HASH_CHUNK)):
                item = _read(index, paths[index], gallery.engine.limits.max_bytes)
                if isinstance(item, FileOutcome):
                    settle(item)
                elif item.content_hash in first_of:
                    settle(FileOutcome(index, item.path, skipped=f"same content as {first_of[item.content_hash]}"))
                else:
                    first_of[item.content_hash] = item.path
                    fresh.append(item)
            known = gallery.indexed_hashes(collection_id, [item.content_hash for item in fresh])
            todo = []
            for item in fresh:
                if item.content_hash in known:
                    settle(FileOutcome(item.index, item.path, skipped="indexed into this collection before"))
                else:
                    todo.append(item)
            for at in range(0, len(todo), options.batch_size):
                batch = todo[at : at + options.batch_size]
                for item in batch:  # the driver keeps the bytes only when it needs the image
                    in_flight[item.index] = item if decode else _without_data(item)
                yield batch

    for analyses in analyser.run(batches()):
        for analysis in analyses:
            settle(_commit(gallery, collection_id, in_flight.pop(analysis.index), analysis, options, caller))
    return [outcomes[index] for index in sorted(outcomes)]


def _read(index: int, path: Path, max_bytes: int) -> ImageFile | FileOutcome:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            error = ImageTooLargeError(f"the file has {size} bytes; at most {max_bytes} are accepted")
            return FileOutcome(index, str(path), error_type=type(error).__name__, error=error.message)
        data = path.read_bytes()
    except OSError as exc:
        unreadable = InvalidImageFormatError(f"cannot read the file ({exc.strerror or exc})")
        return FileOutcome(index, str(path), error_type=type(unreadable).__name__, error=unreadable.message)
    return ImageFile(index, str(path), data, hashlib.sha256(data).hexdigest())


def _without_data(item: ImageFile) -> ImageFile:
    return ImageFile(item.index, item.path, b"", item.content_hash)


def _commit(
    gallery: Gallery,
    collection_id: str,
    item: ImageFile,
    analysis: Analysis,
    options: IndexOptions,
    caller: Caller,
) -> FileOutcome:
    """Store one analysed file with its audit record and content hash (one transaction)."""
    if analysis.error is not None:
        return FileOutcome(item.index, item.path, error_type=analysis.error_type, error=analysis.error)
    try:
        result = gallery.index_analyzed(
            collection_id,
            analysis.faces,
            image=gallery.engine.load(item.data) if item.data else None,
            external_image_id=external_id(Path(item.path), options.external_id_from),
            max_faces=options.max_faces,
            quality_filter=options.quality_filter,
            keep_image=options.keep_images,
            caller=caller,
            content_hash=item.content_hash,
        )
    except AlreadyExistsError:  # another import committed the same content meanwhile
        return FileOutcome(item.index, item.path, skipped="indexed into this collection meanwhile")
    except InvalidInputError as exc:
        return FileOutcome(item.index, item.path, error_type=type(exc).__name__, error=exc.message)
    return FileOutcome(item.index, item.path, result=result)
