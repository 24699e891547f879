"""Each server's exact in-memory indexes, kept in step with a shared PostgreSQL database through its change log.

Several facetrace servers share one database and each holds every collection's vectors in a ``VectorIndex``
(exact search, no network hop per scan). A write commits its rows and one ``changes`` row (kind, face ids,
user) in one transaction; ``seq`` is given out in commit order without gaps (``postgres_db``), so a server
that applied everything up to ``cursor`` only ever needs ``seq > cursor``.

When a server learns of changes:
- before every search, one query compares the collection and the log head with what the index reflects, and
  applies anything new first: a face indexed through another server is found by the next search here, and a
  client that writes through one server and then searches through another sees its write;
- a background thread LISTENs for the NOTIFY each write sends and applies changes as they come (and polls
  every second in case a notification was lost), so indexes stay warm between searches;
- its own writes are applied right after they commit, from the vectors it already has.

The log is pruned after a day (``prune``, from the background thread); a server that fell further behind
than that sees a gap in the sequence and reloads its indexes from the rows.

Each server keeps a snapshot of every large collection's index (row file, ids, compact index: ``index_files``)
in its own ``ann_dir``, as of a log position (its watermark). At start it opens the snapshot and replays that
collection's changes after the watermark through the same code that follows the log, instead of reading
every vector and building the compact index (20M faces: seconds instead of many minutes). A snapshot that
fails its checksums, or whose watermark the pruned log no longer reaches, is not used: the rows are read.

A collection's index is loaded in one REPEATABLE READ snapshot together with the log head at that instant
(``_Loaded.seq``); changes at or below it are already in the rows and are skipped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg

from facetrace.errors import FacetraceError, NotFoundError
from facetrace.store.ann_index import ann_min_faces
from facetrace.store.index_files import IndexDirectory, IndexFiles
from facetrace.store.postgres_db import NOTIFY_CHANNEL, PgDatabase, redact_url
from facetrace.store.vector_index import VectorIndex

__all__ = ["Change", "IndexFollower"]

log = logging.getLogger(__name__)

_LOAD_CHUNK = 20_000
_POLL_SECONDS = 1.0
_WAKE_SECONDS = 0.1
_CATCH_UP_ROWS = 5000
PRUNE_AFTER_SECONDS = 24 * 3600.0  # a running server is at most ~1 s behind; a day is a wide margin
_PRUNE_EVERY_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class Change:
    """One row of the change log."""

    seq: int
    cid: int
    kind: str  # add | delete | associate | disassociate | delete_user | drop
    face_ids: tuple[str, ...] = ()
    user_id: str | None = None


@dataclass(slots=True)
class _Loaded:
    cid: int
    seq: int  # the log head the index reflects for this collection
    index: VectorIndex | None  # None while the collection has no vectors (its dimension is not known yet)


def _matrix(blobs: Sequence[bytes], dim: int) -> npt.NDArray[np.float32]:
    # A read-only view where float32 is little-endian already; callers copy it into their own matrix.
    return np.frombuffer(b"".join(blobs), dtype="<f4").astype(np.float32, copy=False).reshape(len(blobs), dim)


class IndexFollower:
    """Loaded indexes by collection name, and the log cursor; thread-safe (one lock around all of it)."""

    def __init__(self, db: PgDatabase, *, listen: bool = True, ann_dir: Path | None = None) -> None:
        self._db = db
        self._ann_dir = ann_dir  # where this server keeps its own index snapshots (None: memory only)
        self._directory: IndexDirectory | None = None  # opened when a collection is large enough
        self._lock = threading.RLock()
        self._loaded: dict[str, _Loaded] = {}
        self._names: dict[int, str] = {}
        with db.read("reading the change log") as conn:
            self._cursor = _head(conn)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if listen:
            self._thread = threading.Thread(target=self._listen, name="facetrace-pg-follow", daemon=True)
            self._thread.start()

    # --- reading ---------------------------------------------------------------------------------------

    def get(self, name: str) -> VectorIndex | None:
        """The collection's index as of now (None if it has no vectors yet); ``NotFoundError`` if missing."""
        with self._db.read("searching") as conn:
            row = conn.execute(
                "SELECT cid, (SELECT COALESCE(MAX(seq), 0) FROM changes) FROM collections WHERE name=%s", (name,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"collection {name!r} does not exist")
            cid, head = int(row[0]), int(row[1])
            with self._lock:
                if head > self._cursor:
                    self._catch_up(conn)
                loaded = self._loaded.get(name)
                if loaded is not None and loaded.cid == cid:
                    return loaded.index
        return self._load(name).index

    def _files(self, cid: int, faces: int) -> IndexFiles | None:
        """(Lock held.) The snapshot files of collection ``cid`` when it is large enough to have them."""
        if self._ann_dir is None:
            return None
        if self._directory is None:
            if faces < ann_min_faces() and not self._ann_dir.is_dir():
                return None
            self._directory = IndexDirectory(self._ann_dir)
        return self._directory.files(str(cid))

    def _place(self, cid: int, index: VectorIndex) -> VectorIndex:
        """Give a collection's index its snapshot files in this server's directory (once it is large)."""
        if index.files is None:
            index.files = self._files(cid, len(index))
        return index

    def preload(self) -> int:
        """Load every collection's index now (a server does this at start); returns the faces loaded."""
        with self._db.read("listing collections") as conn:
            names = [str(r[0]) for r in conn.execute("SELECT name FROM collections ORDER BY name")]
        total = 0
        for name in names:
            try:
                index = self._load(name).index
            except NotFoundError:  # deleted meanwhile
                continue
            if index is not None:
                index.prepare()  # a large collection: its compact index, reconciled with the rows just read
            total += 0 if index is None else len(index)
        return total

    def _load(self, name: str) -> _Loaded:
        with self._db.transaction("loading a collection's vectors", snapshot=True) as conn, self._lock:
            row = conn.execute(
                "SELECT cid, dim, (SELECT COALESCE(MAX(seq), 0) FROM changes), face_count FROM collections"
                " WHERE name=%s",
                (name,),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"collection {name!r} does not exist")
            cid, dim, seq = int(row[0]), row[1], int(row[2])
            old = self._loaded.get(name)
            if old is not None:
                self._names.pop(old.cid, None)
            loaded = _Loaded(cid, seq, None)
            self._loaded[name] = loaded
            self._names[cid] = name
            if dim is None:
                return loaded
            try:
                files = self._files(cid, int(row[3]))
                snapshot = VectorIndex.open_snapshot(files, int(dim)) if files is not None else None
                if snapshot is not None and self._replay(conn, loaded, snapshot, seq):
                    return loaded
                loaded.seq, loaded.index = seq, self._read_rows(conn, cid, int(dim), files)
                loaded.index.watermark = seq
            except BaseException:
                del self._loaded[name]  # not half-loaded: the next search tries again
                self._names.pop(cid, None)
                raise
            return loaded

    def _read_rows(
        self, conn: psycopg.Connection[Any], cid: int, dim: int, files: IndexFiles | None
    ) -> VectorIndex:
        """The collection's index from its rows, streamed (a large one's vectors go to its row file)."""
        index = VectorIndex(dim, files=files)
        # A server-side cursor in binary format: the vector bytes arrive as they are stored (text format
        # would send and decode them as hex: measured 2-3x slower at 200k faces).
        with conn.cursor(name="facetrace_load", binary=True) as cur:
            cur.itersize = _LOAD_CHUNK
            cur.execute("SELECT face_id, user_id, vector FROM faces WHERE cid=%s ORDER BY fid", (cid,))
            while rows := cur.fetchmany(_LOAD_CHUNK):
                index.load_rows(
                    [str(r[0]) for r in rows], _matrix([bytes(r[2]) for r in rows], dim), [r[1] for r in rows]
                )
        return index

    def _replay(self, conn: psycopg.Connection[Any], loaded: _Loaded, index: VectorIndex, head: int) -> bool:
        """(Lock held.) Bring a snapshot's index from its watermark to ``head`` with this collection's
        changes from the log; False when the log was pruned past the watermark (read the rows instead)."""
        first = conn.execute("SELECT MIN(seq) FROM changes").fetchone()
        if index.watermark < head and (first is None or first[0] is None or int(first[0]) > index.watermark + 1):
            log.info(
                "the change log no longer reaches the snapshot of collection %d; reading the rows", loaded.cid
            )
            return False
        loaded.seq, loaded.index = index.watermark, index
        after = index.watermark
        while True:
            rows = conn.execute(
                "SELECT seq, cid, kind, face_ids, user_id FROM changes WHERE cid=%s AND seq > %s AND seq <= %s"
                " ORDER BY seq LIMIT %s",
                (loaded.cid, after, head, _CATCH_UP_ROWS),
            ).fetchall()
            if not rows:
                break
            self._apply_all(conn, [Change(int(r[0]), int(r[1]), str(r[2]), tuple(r[3] or ()), r[4]) for r in rows])
            after = int(rows[-1][0])
        loaded.seq = index.watermark = head
        return True

    # --- following the log -----------------------------------------------------------------------------

    def catch_up(self) -> None:
        """Apply every committed change this server has not applied yet."""
        with self._db.read("following the change log") as conn, self._lock:
            self._catch_up(conn)

    def _catch_up(self, conn: psycopg.Connection[Any]) -> None:
        while True:
            rows = conn.execute(
                "SELECT seq, cid, kind, face_ids, user_id FROM changes WHERE seq > %s ORDER BY seq LIMIT %s",
                (self._cursor, _CATCH_UP_ROWS),
            ).fetchall()
            if not rows:
                return
            if int(rows[0][0]) != self._cursor + 1:
                # Sequence numbers have no gaps, so this server missed changes that were pruned meanwhile
                # (it was stopped in its tracks for longer than the retention): start again from the rows.
                log.warning("the change log was pruned past this server's position; reloading the indexes")
                self._loaded.clear()
                self._names.clear()
                self._cursor = _head(conn)
                return
            changes = [Change(int(r[0]), int(r[1]), str(r[2]), tuple(r[3] or ()), r[4]) for r in rows]
            self._apply_all(conn, changes)
            self._cursor = changes[-1].seq

    def _apply_all(self, conn: psycopg.Connection[Any], changes: Sequence[Change]) -> None:
        """(Lock held.) Apply changes in log order; consecutive adds to one collection fetch their vectors
        in one query."""
        i = 0
        while i < len(changes):
            j = i + 1
            if changes[i].kind == "add":
                while j < len(changes) and changes[j].kind == "add" and changes[j].cid == changes[i].cid:
                    j += 1
                self._apply_adds(conn, changes[i:j])
            else:
                self._apply(changes[i], None)
            i = j

    def _target(self, change: Change) -> _Loaded | None:
        """The loaded index the change is for, if it is loaded and does not already include the change."""
        name = self._names.get(change.cid)
        loaded = None if name is None else self._loaded.get(name)
        if loaded is None or loaded.cid != change.cid or loaded.seq >= change.seq:
            return None
        return loaded

    def _apply_adds(self, conn: psycopg.Connection[Any], changes: Sequence[Change]) -> None:
        wanted = [c for c in changes if self._target(c) is not None]
        if not wanted:
            return
        ids = [f for c in wanted for f in c.face_ids]
        found: dict[str, tuple[str | None, bytes]] = {}
        for start in range(0, len(ids), _LOAD_CHUNK):
            for face_id, user_id, blob in conn.execute(
                "SELECT face_id, user_id, vector FROM faces WHERE cid=%s AND face_id = ANY(%s)",
                (wanted[0].cid, ids[start : start + _LOAD_CHUNK]),
            ):
                found[str(face_id)] = (user_id, bytes(blob))
        for change in wanted:
            # A face deleted since is missing here; its own delete change (later in the log) is a no-op then.
            present = [f for f in change.face_ids if f in found]
            self._apply(change, present, {f: found[f] for f in present})

    def _apply(
        self,
        change: Change,
        added: Sequence[str] | None,
        rows: dict[str, tuple[str | None, bytes]] | None = None,
        matrix: npt.NDArray[np.float32] | None = None,
    ) -> None:
        if change.kind == "drop":
            name = self._names.pop(change.cid, None)
            if name is not None and (loaded := self._loaded.get(name)) is not None and loaded.cid == change.cid:
                del self._loaded[name]
            if self._directory is not None and self._directory.owner:
                self._directory.files(str(change.cid)).remove()
            return
        loaded = self._target(change)
        if loaded is None:
            return
        index = loaded.index
        if index is not None:
            index.watermark = change.seq  # before the change: a snapshot it triggers includes it
        if change.kind == "add" and added:
            if rows is not None:
                users: list[str | None] = [rows[f][0] for f in added]
                blobs = [rows[f][1] for f in added]
                dim = len(blobs[0]) // 4
                matrix = _matrix(blobs, dim)
            else:
                assert matrix is not None
                users = [None] * len(added)
            fresh = [i for i, f in enumerate(added) if index is None or f not in index]
            if fresh:
                index = index or self._place(change.cid, VectorIndex(matrix.shape[1]))
                index.watermark = change.seq
                index.add([added[i] for i in fresh], matrix[fresh], [users[i] for i in fresh])
                self._place(change.cid, index)
        elif index is not None and change.kind == "delete":
            index.remove(change.face_ids)
        elif index is not None and change.kind == "associate":
            index.set_user(change.face_ids, change.user_id)
        elif index is not None and change.kind == "disassociate":
            index.set_user(change.face_ids, None)
        elif index is not None and change.kind == "delete_user" and change.user_id is not None:
            index.clear_user(change.user_id)
        loaded.index = index
        loaded.seq = change.seq

    def committed(
        self,
        conn: psycopg.Connection[Any] | None,
        change: Change,
        matrix: npt.NDArray[np.float32] | None = None,
        users: Sequence[str | None] | None = None,
    ) -> None:
        """Apply this server's own change right after it committed: from memory when nothing else came
        between (the usual case), else by catching up with the log."""
        with self._lock:
            in_order = change.seq == self._cursor + 1
            if in_order:
                self._apply_own(change, matrix, users)
        if not in_order:
            try:
                self.catch_up()  # takes a connection before the lock, like every other path
            except FacetraceError:  # the next search catches up instead
                log.warning("could not follow the change log after a write", exc_info=True)

    def _apply_own(
        self, change: Change, matrix: npt.NDArray[np.float32] | None, users: Sequence[str | None] | None
    ) -> None:
        """(Lock held.) Apply a change this server just committed, from the vectors it already has."""
        if change.kind == "add" and matrix is not None:
            loaded = self._target(change)
            if loaded is not None:
                index = loaded.index or self._place(change.cid, VectorIndex(matrix.shape[1]))
                index.watermark = change.seq
                index.add(list(change.face_ids), matrix, list(users or [None] * len(change.face_ids)))
                self._place(change.cid, index)
                loaded.index, loaded.seq = index, change.seq
        else:
            self._apply(change, None)
        self._cursor = change.seq

    def prune(self, older_than: float = PRUNE_AFTER_SECONDS) -> int:
        """Delete change-log rows older than ``older_than`` seconds (never the newest: it carries the
        sequence on). Servers that start load from the rows, so only a server stalled for longer than that
        needs the old rows, and it notices the gap and reloads. Returns the rows deleted."""
        with self._db.read("pruning the change log") as conn:
            cur = conn.execute(
                "DELETE FROM changes WHERE at < now() - make_interval(secs => %s)"
                " AND seq < (SELECT MAX(seq) FROM changes)",
                (older_than,),
            )
            return int(cur.rowcount)

    def _listen(self) -> None:
        """Background: LISTEN for change notifications and catch up; reconnect with a back-off on failure."""
        backoff, broken = 0.5, False
        while not self._stop.is_set():
            try:
                with self._db.connect() as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    if broken:  # the database restarted or dropped us: so did the pool's idle connections
                        self._db.check_connections()
                        broken = False
                    backoff = 0.5
                    due, prune_due = 0.0, time.monotonic() + _PRUNE_EVERY_SECONDS
                    while not self._stop.is_set():
                        if time.monotonic() >= prune_due:
                            self.prune()
                            prune_due = time.monotonic() + _PRUNE_EVERY_SECONDS
                        # Short waits so close() returns quickly; a query only when notified or once a second.
                        notified = any(True for _ in conn.notifies(timeout=_WAKE_SECONDS, stop_after=1))
                        if notified or time.monotonic() >= due:
                            self.catch_up()
                            due = time.monotonic() + _POLL_SECONDS
            except (psycopg.Error, FacetraceError) as exc:
                if self._stop.is_set():
                    return
                broken = True
                log.warning("following the change log: %s; retrying", redact_url(str(exc)))
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_WAKE_SECONDS + 5)
        with self._lock:
            loaded = list(self._loaded.values())
            self._loaded.clear()
            self._names.clear()
        for entry in loaded:  # snapshots, so that the next start opens them instead of reading every row
            if entry.index is not None:
                entry.index.watermark = entry.seq
                entry.index.persist()
        if self._directory is not None:
            self._directory.close()


def _head(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()
    return 0 if row is None else int(row[0])
