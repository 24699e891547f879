"""Where a collection's index snapshot lives on disk, who may write it, and how it is checked before it is used.

A snapshot lets a server start without reading every vector from the database (20M faces: ~35 s of rows plus
minutes of building the compact index): it is the ``VectorIndex`` as of a position of the database's change
log (the *watermark*), and the store replays the changes after it (``VectorIndex.apply_changes``).

Files, all under one directory beside the database (SQLite: ``<db>.ann/``; PostgreSQL: each server's
``<home>/ann/``), named by the collection's row id (names can be reused, row ids cannot):

- ``<cid>.meta.json`` — the current snapshot: sizes, checksums, watermark; replaced atomically last, so a
  crash while writing leaves the previous snapshot current;
- ``<cid>.<serial>.{ids,users,usersum,faiss}`` — one snapshot's arrays (new names each time, so a reader never
  sees a file change under it);
- ``<cid>.<k>.rows`` — the float32 vectors (``face_rows.RowFile``), shared by successive snapshots: rows are
  append-only, so the rows a snapshot counts never change; a compaction writes a new ``k``.

**One writer.** The first store to take an exclusive ``flock`` on ``owner.lock`` owns the directory for its
lifetime: it appends to row files and writes snapshots. Any other process (a CLI beside a running server, a
second server on the same home) opens the latest snapshot read-only, maps the row file copy-on-write and
keeps its own changes in memory. The lock dies with its process, so a crashed owner never blocks the next.

**Never trusted blindly.** Every array file carries its size and CRC-32 in the meta file, the row file its
size and a CRC-32 of a fixed sample of rows; anything missing, short or different makes ``open`` return
None and the store rebuilds from the database (the source of truth).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["IndexDirectory", "IndexFiles", "SnapshotMeta", "file_crc", "row_sample_crc"]

log = logging.getLogger(__name__)

FORMAT = 1
_SAMPLE_ROWS = 4096
_READ_CHUNK = 1 << 22


def file_crc(path: Path) -> int:
    """CRC-32 of a whole file (zlib: ~1 GB/s, 3 s for a 20M-face compact index)."""
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(_READ_CHUNK):
            crc = zlib.crc32(block, crc)
    return crc


def row_sample_crc(matrix: npt.NDArray[np.float32], rows: int) -> int:
    """CRC-32 of a fixed, evenly spread sample of the first ``rows`` rows (always the last one): the row file
    is too large to checksum at every start (10 GB at 20M), and a sample catches a truncated, swapped or
    zeroed file."""
    if rows == 0:
        return 0
    picked = np.unique(
        np.concatenate([np.linspace(0, rows - 1, min(rows, _SAMPLE_ROWS)).astype(np.int64), [rows - 1]])
    )
    return zlib.crc32(np.ascontiguousarray(matrix[picked]).tobytes())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class SnapshotMeta:
    """What ``<cid>.meta.json`` says about one snapshot."""

    serial: int
    dim: int
    rows: int  # rows used in the row file, holes included
    width: int  # bytes per encoded face id
    watermark: int  # the change-log position the snapshot reflects
    rows_file: str
    rows_crc: int
    files: dict[str, tuple[int, int]]  # kind → (size, crc32); "faiss" only when there is a compact index
    user_names: tuple[str, ...]
    trained_on: int

    def to_json(self) -> str:
        body: dict[str, Any] = {
            "format": FORMAT, "serial": self.serial, "dim": self.dim, "rows": self.rows, "width": self.width,
            "watermark": self.watermark, "rows_file": self.rows_file, "rows_crc": self.rows_crc,
            "files": {k: list(v) for k, v in self.files.items()}, "user_names": list(self.user_names),
            "trained_on": self.trained_on,
        }  # fmt: skip
        return json.dumps(body)

    @classmethod
    def from_json(cls, text: str) -> SnapshotMeta:
        """Raises ``ValueError`` (or ``KeyError``/``TypeError``) on anything unexpected."""
        body = json.loads(text)
        if body.get("format") != FORMAT:
            raise ValueError("unknown snapshot format")
        files = {str(k): (int(v[0]), int(v[1])) for k, v in body["files"].items()}
        return cls(
            int(body["serial"]), int(body["dim"]), int(body["rows"]), int(body["width"]), int(body["watermark"]),
            str(body["rows_file"]), int(body["rows_crc"]), files, tuple(str(u) for u in body["user_names"]),
            int(body["trained_on"]),
        )  # fmt: skip


class IndexDirectory:
    """The snapshot directory of one database, and whether this process owns it (``owner``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_fd: int | None = None
        try:
            path.mkdir(parents=True, exist_ok=True)
            fd = os.open(path / "owner.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:  # a read-only home: every index stays in memory
            log.warning("cannot use %s for index snapshots; indexes are rebuilt at each start", path)
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)  # another process owns it: read its snapshots, write none
            return
        self._lock_fd = fd

    @property
    def owner(self) -> bool:
        return self._lock_fd is not None

    def files(self, name: str) -> IndexFiles:
        return IndexFiles(self, name)

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None


@dataclass(frozen=True, slots=True)
class IndexFiles:
    """One collection's snapshot files in an ``IndexDirectory``."""

    directory: IndexDirectory
    name: str

    @property
    def owner(self) -> bool:
        return self.directory.owner

    @property
    def meta_path(self) -> Path:
        return self.directory.path / f"{self.name}.meta.json"

    def path(self, serial: int, kind: str) -> Path:
        return self.directory.path / f"{self.name}.{serial}.{kind}"

    def next_serial(self) -> int:
        """A number no file of this collection uses yet (files are never rewritten in place)."""
        used = [int(p.name.split(".")[1]) for p in self._own_files()]
        return max(used, default=-1) + 1

    def read_meta(self) -> SnapshotMeta | None:
        try:
            return SnapshotMeta.from_json(self.meta_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable index snapshot %s", self.meta_path)
            return None

    def check(self, meta: SnapshotMeta) -> bool:
        """Whether every array file of ``meta`` is there with its recorded size and checksum."""
        for kind, (size, crc) in meta.files.items():
            path = self.path(meta.serial, kind)
            try:
                if path.stat().st_size != size or file_crc(path) != crc:
                    log.warning("index snapshot file %s does not match its checksum; rebuilding", path)
                    return False
            except OSError:
                log.warning("index snapshot file %s is missing; rebuilding", path)
                return False
        return True

    def write_array(self, serial: int, kind: str, array: npt.NDArray[Any]) -> tuple[int, int]:
        """Write an array's bytes durably; returns (size, crc32) for the meta file."""
        data = np.ascontiguousarray(array)
        path = self.path(serial, kind)
        with open(path, "wb") as f:
            crc = 0
            flat = data.reshape(-1).view(np.uint8) if data.size else np.empty(0, dtype=np.uint8)
            for start in range(0, flat.shape[0], _READ_CHUNK):
                block = flat[start : start + _READ_CHUNK].tobytes()
                crc = zlib.crc32(block, crc)
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
        return int(flat.shape[0]), crc

    def sealed(self, path: Path) -> tuple[int, int]:
        """(size, crc32) of a file written by someone else (faiss), after making it durable."""
        with open(path, "rb") as f:
            os.fsync(f.fileno())
        return path.stat().st_size, file_crc(path)

    def commit(self, meta: SnapshotMeta) -> None:
        """Make ``meta`` the current snapshot (atomic rename), then delete what no snapshot refers to."""
        tmp = self.meta_path.with_name(self.meta_path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(meta.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.meta_path)
        _fsync_dir(self.directory.path)
        keep = {self.path(meta.serial, kind).name for kind in meta.files} | {meta.rows_file, self.meta_path.name}
        for stale in self._own_files():
            if stale.name not in keep and not stale.name.endswith(".rows"):
                stale.unlink(missing_ok=True)

    def drop_rows_except(self, keep: str) -> None:
        """Delete row files other than ``keep`` (after a compaction's snapshot is committed; a reader that
        still maps an old one keeps it alive until it lets go)."""
        for path in self._own_files():
            if path.name.endswith(".rows") and path.name != keep:
                path.unlink(missing_ok=True)

    def _own_files(self) -> Iterator[Path]:
        prefix = f"{self.name}."
        with contextlib.suppress(OSError):
            for path in self.directory.path.iterdir():
                if path.name.startswith(prefix) and path.name[len(prefix) :].split(".", 1)[0].isdigit():
                    yield path

    def remove(self) -> None:
        """Delete every file of this collection (it was deleted)."""
        self.meta_path.unlink(missing_ok=True)
        for path in self._own_files():
            path.unlink(missing_ok=True)
