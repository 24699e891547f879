"""A collection's rows without Python objects per face: fixed-width ids, a hash lookup and a file of vectors.

At 20 million faces a ``list[str]`` of ids and a ``dict`` from id to row cost ~3–4 GB of Python objects and
minutes to build; the float32 vectors are 10.2 GB. Here:

- ``FaceIds`` keeps each id as fixed-width bytes in one numpy array: a canonical UUID string (what facetrace
  gives out) is 16 bytes after a kind byte, any other id is its UTF-8 bytes; 24 bytes a face, 0.48 GB at 20M.
- ``IdLookup`` finds an id's row by a 63-bit hash of those bytes: a sorted array searched with
  ``searchsorted`` plus a small dict of the rows changed since it was sorted (merged when it grows), so
  neither a load nor a write builds 20M Python objects. Every hit is checked against the stored bytes, so a
  hash collision costs a slower lookup, never a wrong row.
- ``RowFile`` holds the float32 vectors in a file, memory-mapped: the exact re-scoring of a large collection
  reads only its candidates' rows (64 a query), so RAM holds the compact index's codes, not the vectors.
  Rows are append-only (a deleted face leaves a hole until the owner compacts), so rows below a snapshot's
  row count never change and a snapshot stays valid while the owner keeps appending. Without a path it is a
  plain array in memory (small collections, tests). A process that maps another process's file maps it
  copy-on-write: its own appends stay private.
"""

from __future__ import annotations

import mmap
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["FaceIds", "IdLookup", "RowFile", "id_hashes"]

_UUID = 1  # kind byte: 16 raw UUID bytes follow
_TEXT = 2  # kind byte: UTF-8 bytes follow, NUL-padded
_MIN_WIDTH = 24  # kind + 16 UUID bytes, rounded up to whole 8-byte words (the hash reads words)
_GROW = 1.5


def _encode_one(face_id: str) -> bytes:
    if len(face_id) == 36:
        try:
            parsed = uuid.UUID(face_id)
        except ValueError:
            pass
        else:
            if str(parsed) == face_id:  # only the canonical spelling round-trips through 16 bytes
                return bytes([_UUID]) + parsed.bytes
    raw = face_id.encode()
    if b"\0" in raw:
        raise ValueError("a face id must not contain NUL characters")
    return bytes([_TEXT]) + raw


_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789abcdef", dtype=np.uint8)] = np.arange(16, dtype=np.uint8)
_DASHES = np.array([8, 13, 18, 23])
_DIGITS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


def _encode_uuids(face_ids: Sequence[str]) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.uint8]]:
    """Which ids are canonical UUID strings (lowercase, dashed: what ``str(uuid)`` gives) and their 16 bytes."""
    n = len(face_ids)
    lengths = np.fromiter(map(len, face_ids), dtype=np.int64, count=n)
    ascii_ = np.fromiter((f.isascii() for f in face_ids), dtype=np.bool_, count=n)
    candidates = np.flatnonzero((lengths == 36) & ascii_)
    done = np.zeros(n, dtype=np.bool_)
    values = np.zeros((n, 16), dtype=np.uint8)
    if candidates.shape[0] == 0:
        return done, values
    text = np.array([face_ids[i] for i in candidates.tolist()], dtype="S36")
    chars = text.view(np.uint8).reshape(-1, 36)
    digits = _HEX[chars[:, _DIGITS]]
    ok = (chars[:, _DASHES] == ord("-")).all(axis=1) & (digits != 255).all(axis=1)
    done[candidates[ok]] = True
    values[candidates[ok]] = (digits[ok, 0::2] << 4) | digits[ok, 1::2]
    return done, values


def _decode_one(row: npt.NDArray[np.uint8]) -> str:
    data = row.tobytes()
    if data[0] == _UUID:
        return str(uuid.UUID(bytes=data[1:17]))
    return data[1:].rstrip(b"\0").decode()


_PRIME = np.uint64(0x100000001B3)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def id_hashes(encoded: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """63-bit hashes of encoded ids (rows of a ``FaceIds`` array), vectorised: 20M ids in ~1 s.

    FNV-style folding of the little-endian 64-bit words, then splitmix64's finaliser. Trailing NUL words
    change nothing (a zero word is skipped), so an id hashes the same in arrays of different widths."""
    n, width = encoded.shape
    words = np.ascontiguousarray(encoded).view("<u8").reshape(n, width // 8)
    with np.errstate(over="ignore"):
        h = np.full(n, np.uint64(0xCBF29CE484222325))
        for j in range(words.shape[1]):
            word = words[:, j]
            h = np.where(word != 0, (h ^ word) * _PRIME, h)
        h = (h ^ (h >> np.uint64(30))) * _MIX1
        h = (h ^ (h >> np.uint64(27))) * _MIX2
        h ^= h >> np.uint64(31)
    hashes: npt.NDArray[np.int64] = (h >> np.uint64(1)).astype(np.int64)
    return hashes


class FaceIds:
    """Face ids by row as one (capacity, width) uint8 array; a cleared row (all zeros) is a hole."""

    def __init__(self, data: npt.NDArray[np.uint8] | None = None) -> None:
        self.data: npt.NDArray[np.uint8] = (
            np.zeros((0, _MIN_WIDTH), dtype=np.uint8) if data is None else np.ascontiguousarray(data)
        )

    @property
    def width(self) -> int:
        return int(self.data.shape[1])

    def encode(self, face_ids: Sequence[str]) -> npt.NDArray[np.uint8]:
        """The ids as rows of this array's width (widened first when one is longer). Canonical UUIDs are
        parsed vectorised (``uuid.UUID`` one by one took 343 s of a 20M-face load); others one by one."""
        done, uuids = _encode_uuids(face_ids)
        others = np.flatnonzero(~done)
        raw = [_encode_one(face_ids[i]) for i in others.tolist()]
        longest = max((len(r) for r in raw), default=0)
        if longest > self.width:
            self._widen(-(-longest // 8) * 8)
        out = np.zeros((len(face_ids), self.width), dtype=np.uint8)
        out[done, 0] = _UUID
        out[done, 1:17] = uuids[done]
        if raw:
            packed = np.array(raw, dtype=f"S{self.width}")  # NUL-padded on the right
            out[others] = packed.view(np.uint8).reshape(len(raw), self.width)
        return out

    def _widen(self, width: int) -> None:
        wider = np.zeros((self.data.shape[0], width), dtype=np.uint8)
        wider[:, : self.width] = self.data
        self.data = wider

    def reserve(self, rows: int) -> None:
        if rows > self.data.shape[0]:
            grown = np.zeros((max(rows, int(self.data.shape[0] * _GROW)), self.width), dtype=np.uint8)
            grown[: self.data.shape[0]] = self.data
            self.data = grown

    def put(self, start: int, encoded: npt.NDArray[np.uint8]) -> None:
        self.reserve(start + encoded.shape[0])
        self.data[start : start + encoded.shape[0], : encoded.shape[1]] = encoded

    def get(self, row: int) -> str:
        return _decode_one(self.data[row])

    def clear(self, rows: npt.NDArray[np.intp]) -> None:
        self.data[rows] = 0


class IdLookup:
    """Id hash → row: a sorted base (rebuilt in bulk) and a dict of the rows added since; rows are checked
    against the ids, so a stale or colliding entry is skipped, never returned."""

    _MERGE_AT = 65_536

    def __init__(self) -> None:
        self._keys = np.empty(0, dtype=np.int64)
        self._rows = np.empty(0, dtype=np.int64)
        self._recent: dict[int, list[int]] = {}
        self._recent_count = 0

    def rebuild(self, hashes: npt.NDArray[np.int64], live: npt.NDArray[np.bool_]) -> None:
        """Index every live row by its hash (20M rows: one argsort, ~2 s)."""
        rows = np.flatnonzero(live).astype(np.int64)
        keys = hashes[rows]
        order = np.argsort(keys, kind="stable")
        self._keys, self._rows = keys[order], rows[order]
        self._recent, self._recent_count = {}, 0

    def added(self, hashes: npt.NDArray[np.int64], start: int) -> bool:
        """Record rows ``start…`` with these hashes; True when the caller should ``rebuild`` (many recent)."""
        for i, key in enumerate(hashes.tolist()):
            self._recent.setdefault(key, []).append(start + i)
        self._recent_count += hashes.shape[0]
        return self._recent_count > max(self._MERGE_AT, self._keys.shape[0] // 8)

    def candidates(self, key: int) -> list[int]:
        """Rows that may hold an id of hash ``key`` (to be checked against the id)."""
        found = list(self._recent.get(key, ()))
        lo = int(np.searchsorted(self._keys, key, side="left"))
        hi = lo
        while hi < self._keys.shape[0] and self._keys[hi] == key:
            hi += 1
        found.extend(int(r) for r in self._rows[lo:hi])
        return found


def _mapping(matrix: npt.NDArray[np.float32]) -> mmap.mmap | None:
    """The mmap under a ``np.memmap`` (numpy keeps it in a private attribute), for ``madvise``."""
    mapped = getattr(matrix, "_mmap", None)
    return mapped if isinstance(mapped, mmap.mmap) else None


class RowFile:
    """Float32 rows (capacity × dim): a memory-mapped file when ``path`` is given, else an array in memory.

    ``mode`` "r+" writes the file (its owner), "c" maps it copy-on-write (another process: what it appends
    stays in its own memory). The file grows by 1.5× so appends are amortised O(1)."""

    def __init__(self, dim: int, path: Path | None = None, *, mode: Literal["r+", "c"] = "r+") -> None:
        self.dim = dim
        self.path = path
        self.mode = mode
        self.matrix: npt.NDArray[np.float32] = np.empty((0, dim), dtype=np.float32)
        if path is not None:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            self._map(path.stat().st_size // (4 * dim))

    @property
    def capacity(self) -> int:
        return int(self.matrix.shape[0])

    def _map(self, rows: int) -> None:
        if self.path is None or rows == 0:
            if self.path is None:
                return
            self.matrix = np.empty((0, self.dim), dtype=np.float32)
            return
        self.matrix = np.memmap(self.path, dtype=np.float32, mode=self.mode, shape=(rows, self.dim))
        if (mapped := _mapping(self.matrix)) is not None:
            # re-scoring reads a few scattered rows: read-ahead would pull in pages nobody asked for
            mapped.madvise(mmap.MADV_RANDOM)

    def prefetch(self, rows: npt.NDArray[np.int64]) -> None:
        """Ask the kernel for these rows' pages all at once (``MADV_WILLNEED``) before they are read.

        Re-scoring touches a few hundred scattered rows; when they are not in the page cache each touch is a
        fault that waits for its own disk read, one after the other (the mapping is ``MADV_RANDOM``: no
        read-ahead). Measured at 20M faces for 64 rows: a median 37 ms, p99 207 ms, against 1.2 ms when the
        reads are asked for together first and the disk serves them side by side. A run of consecutive pages
        (a chunk of rows read in order, as a build does) is one request; a page already cached costs ~3 µs."""
        mapped = _mapping(self.matrix)
        if mapped is None or rows.shape[0] == 0:
            return
        row_bytes = self.dim * 4
        wanted = rows.astype(np.int64)
        pages = np.unique(np.concatenate([wanted * row_bytes, (wanted + 1) * row_bytes - 1]) // mmap.PAGESIZE)
        breaks = np.flatnonzero(np.diff(pages) > 1) + 1
        for run in np.split(pages, breaks):
            first, last = int(run[0]), int(run[-1])
            mapped.madvise(mmap.MADV_WILLNEED, first * mmap.PAGESIZE, (last - first + 1) * mmap.PAGESIZE)

    def reserve(self, rows: int, used: int) -> None:
        """Room for ``rows`` rows, keeping the first ``used``."""
        if rows <= self.capacity:
            return
        capacity = max(rows, 1024, int(self.capacity * _GROW))
        if self.path is not None and self.mode == "r+":
            self.flush()
            with open(self.path, "r+b") as f:
                f.truncate(capacity * self.dim * 4)
            self._map(capacity)
            return
        grown = np.empty((capacity, self.dim), dtype=np.float32)
        grown[:used] = self.matrix[:used]
        self.matrix = grown  # in memory (or a copy-on-write reader outgrowing the file it mapped)

    def release(self) -> None:
        """Let the kernel drop this process's mapped pages of the file (after a pass over every row, such as
        building the compact index): they stay in the page cache but stop counting as this process's memory.
        Only for the owner's shared mapping, after ``flush``: a copy-on-write mapping would lose its rows."""
        if self.mode == "r+" and (mapped := _mapping(self.matrix)) is not None:
            self.flush()
            mapped.madvise(mmap.MADV_DONTNEED)

    def flush(self) -> None:
        """Make the rows durable (the owner, before it writes a snapshot that counts them)."""
        if isinstance(self.matrix, np.memmap) and self.mode == "r+":
            self.matrix.flush()
            if self.path is not None:
                fd = os.open(self.path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def write_copy(self, path: Path, rows: npt.NDArray[np.intp], chunk: int = 262_144) -> None:
        """Write ``rows`` (in this order) to a new file at ``path`` (a compaction), durably."""
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            for start in range(0, rows.shape[0], chunk):
                f.write(np.ascontiguousarray(self.matrix[rows[start : start + chunk]]).tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
