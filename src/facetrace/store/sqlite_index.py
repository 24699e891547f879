"""The in-memory vector indexes of an ``SQLiteStore``, kept equal to the database by generation numbers.

The database is the source of truth; a collection's ``VectorIndex`` is a cache built from it at the first
search (two ordered scans, ~0.5 s for 300,000 faces) and kept in step by this process's writes. Each
collection row carries a ``generation`` bumped in every transaction that changes its vectors or users, and
the cache remembers the generation each index reflects:

- a search compares the two (one indexed lookup) and rebuilds the index when the database moved on, so
  writes by another process sharing the home (the server and the CLI) are seen, and a crash leaves nothing
  stale behind: there is nothing on disk to be stale;
- a write, once committed, applies its change to the index only if the index was exactly one generation
  behind; otherwise (another process wrote, or a load raced the write) the index is dropped and rebuilt later.

A large collection's compact index (``ann_index``) is the one thing kept on disk, in ``<database>.ann/``: it is
a cache reconciled with the rows at every load, so it can be stale or missing but never wrong.

``_lock`` guards the dictionary only and is never held during I/O, so a search that must (re)load an index
never waits for a long write transaction, and readers of other collections never wait for a load.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from facetrace.errors import StoreError
from facetrace.store.sqlite_db import Database, collection_row, translate
from facetrace.store.vector_index import VectorIndex

__all__ = ["IndexCache"]

log = logging.getLogger(__name__)

_LOAD_CHUNK = 8192


_Change = Callable[[VectorIndex | None], VectorIndex | None]


@dataclass(frozen=True, slots=True)
class _Loaded:
    """A collection's index as of ``generation``; ``index`` is None while the collection has no vectors yet."""

    cid: int
    generation: int
    index: VectorIndex | None


class IndexCache:
    """Collection name → its fresh ``VectorIndex``, loaded lazily from the database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        # Each large collection's compact index is persisted beside the database (``ann_index``).
        self._ann_dir = db.path.with_name(db.path.name + ".ann")
        self._loaded: dict[str, _Loaded] = {}
        self._lock = threading.Lock()
        self._load_locks: dict[str, threading.Lock] = {}
        # Generations this process is committing right now (see ``expect``), and a signal when they settle.
        self._expected: dict[str, int] = {}
        # While a collection loads, this process's commits to it are queued here and replayed on the new
        # index, so a load finishes current even under a steady stream of writes (instead of finishing stale
        # and being redone forever).
        self._during_load: dict[str, list[tuple[int, int, _Change]]] = {}
        self._settled = threading.Condition(self._lock)

    def expect(self, commits: list[tuple[str, int]]) -> None:
        """Called just before a commit that moves these collections to these generations."""
        with self._lock:
            self._expected.update(commits)

    def settle(self, collection_ids: list[str]) -> None:
        """Called once those commits were applied (or rolled back)."""
        with self._lock:
            for collection_id in collection_ids:
                self._expected.pop(collection_id, None)
            self._settled.notify_all()

    def _fresh(self, collection_id: str, cid: int, generation: int) -> _Loaded | None:
        loaded = self._loaded.get(collection_id)
        if loaded is not None and loaded.cid == cid and loaded.generation >= generation:
            return loaded
        return None

    def get(self, collection_id: str) -> VectorIndex | None:
        """The collection's index as of now (None if it has no vectors yet); ``NotFoundError`` if missing."""
        with translate("searching", self._db.path), self._db.reader() as conn:
            cid, _, _, generation = collection_row(conn, collection_id)
        if (loaded := self._fresh(collection_id, cid, generation)) is not None:
            return loaded.index
        with self._lock:
            if self._expected.get(collection_id) == generation:
                # Our own write committed and is being applied to the index (it may be waiting for a scan
                # to finish): waiting for it costs a scan, reloading the whole collection costs far more.
                self._settled.wait_for(lambda: self._expected.get(collection_id) != generation, timeout=30)
            load_lock = self._load_locks.setdefault(collection_id, threading.Lock())
        if (loaded := self._fresh(collection_id, cid, generation)) is not None:
            return loaded.index
        with load_lock:  # one load per collection at a time; concurrent searches wait for it and reuse it
            if (loaded := self._fresh(collection_id, cid, generation)) is not None:
                return loaded.index
            with self._lock:
                self._during_load[collection_id] = []  # before the snapshot: no later commit is missed
            try:
                loaded = self._load(collection_id)
            finally:
                with self._lock:
                    queued = self._during_load.pop(collection_id)
            with self._lock:
                for q_cid, q_generation, change in queued:
                    if q_cid != loaded.cid or q_generation <= loaded.generation:
                        continue  # already in the snapshot
                    if q_generation != loaded.generation + 1:
                        break  # another process committed in between: stay at the snapshot, reload later
                    loaded = _Loaded(q_cid, q_generation, change(loaded.index))
                current = self._loaded.get(collection_id)
                if current is None or current.cid != loaded.cid or current.generation < loaded.generation:
                    self._loaded[collection_id] = loaded
            self._place(loaded)
        if loaded.index is not None:
            loaded.index.prepare()  # a large collection: load (or build) its compact index outside our lock
        return loaded.index

    def _place(self, loaded: _Loaded) -> None:
        """Give the index its compact-index file (by collection row id: names can be reused)."""
        if loaded.index is not None and loaded.index.ann_path is None:
            loaded.index.ann_path = self._ann_dir / f"{loaded.cid}.faiss"

    def _load(self, collection_id: str) -> _Loaded:
        """Build an index from one consistent snapshot (two ordered scans, no write lock)."""
        started = time.perf_counter()
        path = self._db.path
        with translate("loading the face index", path), self._db.reader(snapshot=True) as conn:
            cid, _, dim, generation = collection_row(conn, collection_id)
            if dim is None:
                return _Loaded(cid, generation, None)
            meta = conn.execute("SELECT face_id, user_id FROM faces WHERE cid=? ORDER BY fid", (cid,)).fetchall()
            matrix = np.empty((len(meta), dim), dtype=np.float32)
            cursor = conn.execute("SELECT vector FROM vectors WHERE cid=? ORDER BY fid", (cid,))
            row = 0
            while chunk := cursor.fetchmany(_LOAD_CHUNK):
                block = np.frombuffer(b"".join(r[0] for r in chunk), dtype="<f4")
                if row + len(chunk) > len(meta) or block.shape[0] != len(chunk) * dim:
                    raise StoreError(f"the vectors of collection {collection_id!r} are inconsistent in {path}")
                matrix[row : row + len(chunk)] = block.reshape(len(chunk), dim)
                row += len(chunk)
            if row != len(meta):
                raise StoreError(f"the vectors of collection {collection_id!r} are inconsistent in {path}")
        index = VectorIndex.from_arrays([r[0] for r in meta], matrix, [r[1] for r in meta], generation=generation)
        log.info("loaded %d faces of %s in %.2f s", len(meta), collection_id, time.perf_counter() - started)
        return _Loaded(cid, generation, index)

    def apply(
        self,
        collection_id: str,
        cid: int,
        generation: int,
        change: _Change,
    ) -> None:
        """After a commit moved the collection to ``generation``: update its index, or drop it if stale.
        Writers call this after commit and before releasing the write lock, so changes arrive in order."""
        with self._lock:
            queue = self._during_load.get(collection_id)
            if queue is not None:
                queue.append((cid, generation, change))
            loaded = self._loaded.get(collection_id)
            if loaded is None or (loaded.cid == cid and loaded.generation >= generation):
                return  # nothing cached, or it was loaded from a snapshot that already has this commit
            if loaded.cid != cid or loaded.generation != generation - 1:
                del self._loaded[collection_id]
                return
            try:
                self._loaded[collection_id] = _Loaded(cid, generation, change(loaded.index))
                self._place(self._loaded[collection_id])
            except Exception:  # a bug here must not fail a committed write; the next search rebuilds
                log.exception("updating the index of %s failed; it will be rebuilt", collection_id)
                del self._loaded[collection_id]

    def forget(self, collection_id: str) -> None:
        with self._lock:
            loaded = self._loaded.pop(collection_id, None)
        if loaded is not None:  # the collection was deleted: so is its compact index
            for suffix in (".faiss", ".trained"):
                (self._ann_dir / f"{loaded.cid}{suffix}").unlink(missing_ok=True)

    def clear(self) -> None:
        """Forget every index, saving the compact ones first so the next start need not rebuild them."""
        with self._lock:
            loaded = list(self._loaded.values())
            self._loaded.clear()
        for entry in loaded:
            if entry.index is not None and entry.index.compact is not None:
                entry.index.persist()
