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

A large collection's index is also kept on disk as a snapshot in ``<database>.ann/`` (``index_files``): its row
file, ids and compact index as of a generation. A load opens the snapshot and replays the faces the
``vector_changes`` log (filled by triggers, ``sqlite_db``) names since that generation, so a 20M-face collection
starts in seconds instead of reading every vector and building the compact index; an index that another
process moved past (the CLI beside a server) catches up the same way instead of reloading. A snapshot that is
missing, fails its checksums or is older than the log's floor is not used: the rows are read as before. The
first store to open the directory owns it (writes snapshots, prunes the log); others only read.

``_lock`` guards the dictionary only and is never held during I/O, so a search that must (re)load an index
never waits for a long write transaction, and readers of other collections never wait for a load.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from facetrace.errors import StoreError
from facetrace.store.ann_index import ann_min_faces
from facetrace.store.index_files import IndexDirectory, IndexFiles
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
        # Snapshots of large collections' indexes beside the database, opened at the first need (its owner
        # lock is taken then: a store that never loads a large collection creates nothing).
        self._ann_dir = db.path.with_name(db.path.name + ".ann")
        self._directory: IndexDirectory | None = None
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
                loaded = self._load(collection_id, self._loaded.get(collection_id))
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

    def _files(self, cid: int, faces: int) -> IndexFiles | None:
        """The snapshot files of collection ``cid`` when it is large enough to have them (or has them)."""
        if self._directory is None:
            if faces < ann_min_faces() and not self._ann_dir.is_dir():
                return None
            with self._lock:
                if self._directory is None:
                    self._directory = IndexDirectory(self._ann_dir)
        return self._directory.files(str(cid))

    def _place(self, loaded: _Loaded) -> None:
        """Record the generation the index reflects (written into its snapshots) and give it its files."""
        if loaded.index is not None:
            loaded.index.watermark = loaded.index.generation = loaded.generation
            if loaded.index.files is None:
                loaded.index.files = self._files(loaded.cid, len(loaded.index))

    def _load(self, collection_id: str, base: _Loaded | None) -> _Loaded:
        """The index as of one consistent snapshot of the database: ``base`` or the snapshot on disk caught up
        with the change log, or else built from the rows (two ordered scans, no write lock)."""
        started = time.perf_counter()
        path = self._db.path
        with translate("loading the face index", path), self._db.reader(snapshot=True) as conn:
            cid, _, dim, generation = collection_row(conn, collection_id)
            if dim is None:
                return _Loaded(cid, generation, None)
            faces = int(conn.execute("SELECT face_count FROM collections WHERE cid=?", (cid,)).fetchone()[0])
            files = self._files(cid, faces)
            # the index held (another process wrote since), else the snapshot on disk, else the rows
            held = base.index if base is not None and base.cid == cid else None
            for source in ("held", "snapshot"):
                index = held if source == "held" else VectorIndex.open_snapshot(files, dim) if files else None
                if index is None:
                    continue
                if _catch_up(conn, cid, index, generation):
                    log.info(
                        "%s: %d faces at generation %d from the %s index, caught up from the change log in %.2f s",
                        collection_id, len(index), generation, source, time.perf_counter() - started,
                    )  # fmt: skip
                    return _Loaded(cid, generation, index)
                log.info("%s: the change log no longer reaches the %s index", collection_id, source)
            index = VectorIndex(dim, generation=generation, files=files)
            _read_rows(conn, cid, dim, index, f"collection {collection_id!r} in {path}")
        log.info("loaded %d faces of %s in %.2f s", len(index), collection_id, time.perf_counter() - started)
        if files is not None and files.owner:
            self._prune(cid, generation)  # no snapshot needs the older changes (a stale one is replaced)
        return _Loaded(cid, generation, index)

    def _prune(self, cid: int, generation: int) -> None:
        """(The owner.) Drop change-log rows no index of this collection needs any more: those before the
        generation of its latest snapshot (or load). A reader whose index is older notices the floor and
        reads the rows again."""
        floor = generation - 1
        try:
            with self._db.write_lock, self._db.transaction() as conn:
                conn.execute("DELETE FROM vector_changes WHERE cid=? AND generation < ?", (cid, floor))
                conn.execute(
                    "INSERT INTO vector_changes_floor(cid, generation) VALUES (?, ?) ON CONFLICT(cid)"
                    " DO UPDATE SET generation=MAX(generation, excluded.generation)",
                    (cid, floor),
                )
        except (sqlite3.Error, StoreError):  # a read-only or busy database: pruned at the next chance
            log.warning("could not prune the change log of collection %d", cid, exc_info=True)

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
            if loaded.cid != cid:
                del self._loaded[collection_id]
                return
            if loaded.generation != generation - 1:
                return  # another process wrote in between: the next search catches up from the change log
            try:
                self._loaded[collection_id] = _Loaded(cid, generation, change(loaded.index))
                self._place(self._loaded[collection_id])
            except Exception:  # a bug here must not fail a committed write; the next search rebuilds
                log.exception("updating the index of %s failed; it will be rebuilt", collection_id)
                del self._loaded[collection_id]

    def forget(self, collection_id: str) -> None:
        with self._lock:
            loaded = self._loaded.pop(collection_id, None)
            directory = self._directory
        if loaded is not None and directory is not None and directory.owner:
            directory.files(str(loaded.cid)).remove()  # the collection was deleted: so are its snapshot files

    def clear(self) -> None:
        """Forget every index, writing a snapshot of the large ones first (the owner) so that the next start
        opens them instead of reading every row, and pruning the change log up to them."""
        with self._lock:
            loaded = list(self._loaded.values())
            self._loaded.clear()
        for entry in loaded:
            if entry.index is not None and entry.index.persist():
                self._prune(entry.cid, entry.index.watermark)
        if self._directory is not None:
            self._directory.close()
            self._directory = None


def _catch_up(conn: sqlite3.Connection, cid: int, index: VectorIndex, generation: int) -> bool:
    """Replay on ``index`` the faces changed since its generation (False: the log was pruned past it)."""
    since = index.watermark - 1  # the stamp is the generation before a write's bump (``sqlite_db``)
    floor = conn.execute("SELECT generation FROM vector_changes_floor WHERE cid=?", (cid,)).fetchone()
    if floor is not None and int(floor[0]) > since:
        return False
    if index.watermark >= generation:
        return True
    touched = [
        str(r[0])
        for r in conn.execute(
            "SELECT DISTINCT face_id FROM vector_changes WHERE cid=? AND generation >= ?", (cid, since)
        )
    ]
    ids: list[str] = []
    users: list[str | None] = []
    blobs: list[bytes] = []
    for start in range(0, len(touched), _LOAD_CHUNK):
        for face_id, user_id, blob in conn.execute(
            "SELECT f.face_id, f.user_id, v.vector FROM faces f JOIN vectors v ON v.fid = f.fid"
            " WHERE f.cid=? AND f.face_id IN (SELECT value FROM json_each(?))",
            (cid, json.dumps(touched[start : start + _LOAD_CHUNK])),
        ):
            ids.append(str(face_id))
            users.append(user_id)
            blobs.append(bytes(blob))
    matrix = np.frombuffer(b"".join(blobs), dtype="<f4").astype(np.float32).reshape(len(ids), index.dim)
    index.apply_changes(touched, ids, matrix, users, generation)
    index.generation = generation
    return True


def _read_rows(conn: sqlite3.Connection, cid: int, dim: int, index: VectorIndex, what: str) -> None:
    """Stream the collection's rows into ``index`` (two ordered scans; a large collection's vectors go to
    its row file as they come, not through a 10 GB matrix in memory)."""
    meta = conn.execute("SELECT face_id, user_id FROM faces WHERE cid=? ORDER BY fid", (cid,))
    cursor = conn.execute("SELECT vector FROM vectors WHERE cid=? ORDER BY fid", (cid,))
    while chunk := cursor.fetchmany(_LOAD_CHUNK):
        block = np.frombuffer(b"".join(r[0] for r in chunk), dtype="<f4")
        rows = meta.fetchmany(len(chunk))
        if len(rows) != len(chunk) or block.shape[0] != len(chunk) * dim:
            raise StoreError(f"the vectors of {what} are inconsistent")
        index.load_rows(
            [str(r[0]) for r in rows], block.astype(np.float32).reshape(len(chunk), dim), [r[1] for r in rows]
        )
    if meta.fetchone() is not None:
        raise StoreError(f"the vectors of {what} are inconsistent")
