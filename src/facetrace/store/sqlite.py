"""``SQLiteStore``: the durable default ``FaceStore``, one SQLite file plus an in-memory index per collection.

The database (``sqlite_db``: WAL, ``synchronous=FULL``) is the source of truth; each collection's vectors are
also held in a ``VectorIndex`` for exact search, cached and kept fresh by ``sqlite_index.IndexCache``.
Writes are serialised through one writer connection (SQLite allows one writer anyway) and update the cache
only after they commit; reads use pooled connections on WAL snapshots and never wait for a writer. Vectors
of different models are never mixed: a collection records its model key and its vectors' dimension, and
refuses faces of any other.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facetrace.audit import AUDIT_UNAVAILABLE, AuditEvent, load_audit_key
from facetrace.errors import AlreadyExistsError, ConflictError, ModelMismatchError, NotFoundError
from facetrace.store.base import CollectionInfo, Neighbor, Page, UserNeighbor
from facetrace.store.paging import check_limit, decode_name_token, decode_token, encode_token, listing_scope
from facetrace.store.sqlite_audit import SQLiteAuditTrail
from facetrace.store.sqlite_db import Database, collection_row, translate
from facetrace.store.sqlite_index import IndexCache
from facetrace.store.sqlite_records import SQLiteRecords, cascade_collection, cascade_faces, cascade_user
from facetrace.store.ui_records import SQLiteUiRecords
from facetrace.store.vector_index import VectorIndex, as_unit_matrix, as_unit_vector
from facetrace.types import BoundingBox, FaceRecord, UserRecord, Vector

__all__ = ["SQLiteStore"]

_FACE_COLUMNS = (
    "face_id, image_id, external_image_id, user_id, confidence, bb_left, bb_top, bb_width, bb_height, created_at,"
    " quality"
)
_IN_IDS = "face_id IN (SELECT value FROM json_each(?))"


_Change = Callable[[VectorIndex | None], VectorIndex | None]


@dataclass(slots=True)
class _Tx:
    """An open write transaction and what to do to the in-memory indexes once it has committed:
    ``changes`` are (collection, cid, new generation, change to its index)."""

    conn: sqlite3.Connection
    changes: list[tuple[str, int, int, _Change]] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)


def _face(row: Sequence[object], model: str) -> FaceRecord:
    face_id, image_id, external, user_id, confidence, left, top, width, height, created, quality = row
    return FaceRecord(
        face_id=str(face_id),
        bounding_box=BoundingBox(float(left), float(top), float(width), float(height)),  # type: ignore[arg-type]
        image_id=str(image_id),
        confidence=float(confidence),  # type: ignore[arg-type]
        model=model,
        external_image_id=None if external is None else str(external),
        user_id=None if user_id is None else str(user_id),
        created_at=float(created),  # type: ignore[arg-type]
        quality=None if quality is None else float(quality),  # type: ignore[arg-type]
    )


class SQLiteStore:
    """A durable, thread-safe ``FaceStore`` in one SQLite file (``open_store`` puts it in the home).

    ``audit`` is the hash-chained trail in the same file; a mutating call given ``audit=event`` appends the
    record in its own transaction, so the change and its record are saved together or not at all.
    ``records`` are the other repositories in the file; deleting faces, a user or a collection removes the
    data derived from them (sightings with their snapshots, job results naming them) in the same transaction.
    """

    def __init__(self, path: Path, *, timeout: float = 30.0, keyed: bool = True) -> None:
        self.path = Path(path)
        self._db = Database(self.path, timeout=timeout)
        self._indexes = IndexCache(self._db)
        # records keyed with the environment's audit key, else the one beside the database (made on first use)
        self.audit = SQLiteAuditTrail(self._db, load_audit_key(Path(path).parent) if keyed else None)
        self.records = SQLiteRecords.of(self._db)  # keys, tokens, video jobs, processors, sightings
        self.ui_records = SQLiteUiRecords.of(self._db)  # dashboard sessions, face thumbnails

    @property
    def database(self) -> Database:
        """The connections (for the other record repositories that share this file)."""
        return self._db

    def check_writable(self) -> None:
        """``StoreError`` when the database cannot take a write now (read-only, disk full)."""
        self._db.check_writable()

    def _bump(
        self, conn: sqlite3.Connection, cid: int, generation: int, faces: int = 0, dim: int | None = None
    ) -> int:
        conn.execute(
            "UPDATE collections SET generation=generation+1, face_count=face_count+?, dim=COALESCE(dim, ?)"
            " WHERE cid=?",
            (faces, dim, cid),
        )
        return generation + 1

    @contextlib.contextmanager
    def _write(self, action: str, audit: AuditEvent | None = None) -> Iterator[_Tx]:
        """A write transaction; its ``after_commit`` steps run once it committed, still under the write lock,
        so index changes happen in commit order and never for a transaction that rolled back. With ``audit``,
        the record is appended last inside the transaction (also when the block returns early), and any
        storage failure is reported as the audit store being unavailable: nothing was saved."""
        label = action if audit is None else f"{AUDIT_UNAVAILABLE}: {action}"
        with self._db.write_lock, translate(label, self.path):
            tx: _Tx | None = None
            try:
                with self._db.transaction() as conn:
                    tx = _Tx(conn)
                    yield tx
                    if audit is not None:
                        self.audit.append(conn, audit)
                    # Searches that see this commit before its change reached the index wait for the change
                    # instead of reloading the whole index.
                    self._indexes.expect([(name, generation) for name, _, generation, _ in tx.changes])
                for name, cid, generation, change in tx.changes:
                    self._indexes.apply(name, cid, generation, change)
                for step in tx.after_commit:
                    step()
            finally:
                if tx is not None:
                    self._indexes.settle([name for name, _, _, _ in tx.changes])

    # --- collections ----------------------------------------------------------------------------------

    def create_collection(
        self, collection_id: str, model: str, *, audit: AuditEvent | None = None
    ) -> CollectionInfo:
        with self._write("creating a collection", audit) as tx:
            conn = tx.conn
            if conn.execute("SELECT 1 FROM collections WHERE name=?", (collection_id,)).fetchone():
                raise AlreadyExistsError(f"collection {collection_id!r} already exists")
            created = time.time()
            conn.execute(
                "INSERT INTO collections(name, model, created_at) VALUES (?, ?, ?)",
                (collection_id, model, created),
            )
        return CollectionInfo(collection_id, model, created, 0, 0)

    def delete_collection(self, collection_id: str, *, audit: AuditEvent | None = None) -> None:
        with self._write("deleting a collection", audit) as tx:
            cid = collection_row(tx.conn, collection_id)[0]
            for table in (
                "vectors",
                "faces",
                "vector_changes",
                "vector_changes_floor",
                "users",
                "indexed_images",
                "collections",
            ):
                tx.conn.execute(f"DELETE FROM {table} WHERE cid=?", (cid,))  # noqa: S608 (fixed names)
            cascade_collection(tx.conn, collection_id)
            tx.after_commit.append(lambda: self._indexes.forget(collection_id))

    def describe_collection(self, collection_id: str) -> CollectionInfo:
        with translate("describing a collection", self.path), self._db.reader() as conn:
            row = conn.execute(
                "SELECT model, created_at, face_count, (SELECT COUNT(*) FROM users u WHERE u.cid=c.cid)"
                " FROM collections c WHERE name=?",
                (collection_id,),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"collection {collection_id!r} does not exist")
        return CollectionInfo(collection_id, str(row[0]), float(row[1]), int(row[2]), int(row[3]))

    def list_collections(self, *, limit: int, next_token: str | None = None) -> Page[str]:
        after = decode_name_token(next_token)
        with translate("listing collections", self.path), self._db.reader() as conn:
            rows = conn.execute(
                "SELECT name FROM collections WHERE name > ? ORDER BY name LIMIT ?",
                (after or "", check_limit(limit) + 1),
            ).fetchall()
        ids = [str(r[0]) for r in rows[:limit]]
        return Page(tuple(ids), ids[-1] if len(rows) > limit else None)

    def preload(self) -> int:
        """Load every collection's vectors (and a large one's compact index) now; returns the faces loaded.

        ``facetrace serve`` calls this before it takes requests: loaded on the first search instead, 300,000
        faces held that search and every search queued behind it for seconds, and eight clients arriving at
        once got ThrottlingExceptions (docs/server.md, "Throughput at the CPU bound")."""
        with translate("listing collections", self.path), self._db.reader() as conn:
            names = [str(r[0]) for r in conn.execute("SELECT name FROM collections ORDER BY name")]
        total = 0
        for name in names:
            try:
                index = self._indexes.get(name)
            except NotFoundError:  # deleted meanwhile
                continue
            total += 0 if index is None else len(index)
        return total

    # --- faces ----------------------------------------------------------------------------------------

    def add_faces(
        self,
        collection_id: str,
        faces: Sequence[tuple[FaceRecord, Vector]],
        *,
        audit: AuditEvent | None = None,
        content_hash: str | None = None,
    ) -> None:
        if not faces and content_hash is None:
            if audit is not None:
                self.audit.record(audit)
            return
        ids = [record.face_id for record, _ in faces]
        if len(set(ids)) != len(ids):
            raise AlreadyExistsError("the same face id is given twice")
        now = time.time()
        with self._write("adding faces", audit) as tx:
            conn = tx.conn
            cid, model, dim, generation = collection_row(conn, collection_id)
            if content_hash is not None:
                if conn.execute(
                    "SELECT 1 FROM indexed_images WHERE cid=? AND content_hash=?", (cid, content_hash)
                ).fetchone():
                    raise AlreadyExistsError(f"this image was indexed into {collection_id!r} already")
                conn.execute(
                    "INSERT INTO indexed_images(cid, content_hash, image_id, faces, created_at) VALUES (?,?,?,?,?)",
                    (cid, content_hash, faces[0][0].image_id if faces else None, len(faces), now),
                )
            if not faces:
                return
            matrix = as_unit_matrix([vector for _, vector in faces], None)
            for record, _ in faces:
                if record.model != model:
                    raise ModelMismatchError(f"face from {record.model} added to a {model} collection")
            if dim is not None and matrix.shape[1] != dim:
                raise ModelMismatchError(
                    f"vector has {matrix.shape[1]} dimensions, the collection's model has {dim}"
                )
            listed = json.dumps(ids)
            taken = conn.execute(
                "SELECT face_id FROM faces WHERE cid=? AND face_id IN (SELECT value FROM json_each(?)) LIMIT 1",
                (cid, listed),
            )
            if (row := taken.fetchone()) is not None:
                raise AlreadyExistsError(f"face {row[0]!r} already exists")
            users = sorted({r.user_id for r, _ in faces if r.user_id is not None})
            if users:
                known = conn.execute(
                    "SELECT COUNT(*) FROM users WHERE cid=? AND user_id IN (SELECT value FROM json_each(?))",
                    (cid, json.dumps(users)),
                ).fetchone()[0]
                if known != len(users):
                    raise NotFoundError("a face names a user that does not exist")
            base = int(conn.execute("SELECT COALESCE(MAX(fid), 0) FROM faces").fetchone()[0]) + 1
            conn.executemany(
                "INSERT INTO faces(fid, cid, face_id, image_id, external_image_id, user_id, confidence,"
                " bb_left, bb_top, bb_width, bb_height, created_at, quality) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (base + i, cid, r.face_id, r.image_id, r.external_image_id, r.user_id, r.confidence,
                     r.bounding_box.left, r.bounding_box.top, r.bounding_box.width, r.bounding_box.height,
                     r.created_at or now, r.quality)
                    for i, (r, _) in enumerate(faces)
                ],
            )  # fmt: skip
            little = matrix.astype("<f4", copy=False)
            conn.executemany(
                "INSERT INTO vectors(fid, cid, vector) VALUES (?, ?, ?)",
                [(base + i, cid, little[i].tobytes()) for i in range(len(faces))],
            )
            generation = self._bump(conn, cid, generation, faces=len(faces), dim=matrix.shape[1])
            user_ids = [r.user_id for r, _ in faces]

            def change(index: VectorIndex | None) -> VectorIndex:
                index = index or VectorIndex(matrix.shape[1])
                index.add(ids, matrix, user_ids)
                return index

            tx.changes.append((collection_id, cid, generation, change))

    def indexed_hashes(self, collection_id: str, content_hashes: Sequence[str]) -> set[str]:
        with translate("reading indexed images", self.path), self._db.reader() as conn:
            cid = collection_row(conn, collection_id)[0]
            rows = conn.execute(
                "SELECT content_hash FROM indexed_images WHERE cid=? AND content_hash IN"
                " (SELECT value FROM json_each(?))",
                (cid, json.dumps(list(content_hashes))),
            ).fetchall()
        return {str(row[0]) for row in rows}

    def delete_faces(
        self, collection_id: str, face_ids: Sequence[str], *, audit: AuditEvent | None = None
    ) -> list[str]:
        wanted = list(dict.fromkeys(face_ids))
        with self._write("deleting faces", audit) as tx:
            conn = tx.conn
            cid, _, _, generation = collection_row(conn, collection_id)
            listed = json.dumps(wanted)
            found = {
                str(r[0])
                for r in conn.execute(
                    "SELECT face_id FROM faces WHERE cid=? AND face_id IN (SELECT value FROM json_each(?))",
                    (cid, listed),
                )
            }
            if not found:
                return []
            conn.execute(
                "DELETE FROM vectors WHERE fid IN"
                " (SELECT fid FROM faces WHERE cid=? AND face_id IN (SELECT value FROM json_each(?)))",
                (cid, listed),
            )
            conn.execute(
                "DELETE FROM faces WHERE cid=? AND face_id IN (SELECT value FROM json_each(?))", (cid, listed)
            )
            generation = self._bump(conn, cid, generation, faces=-len(found))
            deleted = [f for f in wanted if f in found]
            cascade_faces(conn, deleted)

            def change(index: VectorIndex | None) -> VectorIndex | None:
                if index is not None:
                    index.remove(deleted)
                return index

            tx.changes.append((collection_id, cid, generation, change))
        return deleted

    def get_faces(self, collection_id: str, face_ids: Sequence[str]) -> list[FaceRecord]:
        wanted = list(dict.fromkeys(face_ids))
        with translate("reading faces", self.path), self._db.reader(snapshot=True) as conn:
            cid, model, _, _ = collection_row(conn, collection_id)
            rows = conn.execute(
                f"SELECT {_FACE_COLUMNS} FROM faces WHERE cid=? AND {_IN_IDS}",  # noqa: S608
                (cid, json.dumps(wanted)),
            ).fetchall()
        by_id = {str(r[0]): _face(r, model) for r in rows}
        return [by_id[f] for f in wanted if f in by_id]

    def get_vector(self, collection_id: str, face_id: str) -> Vector:
        with translate("reading a vector", self.path), self._db.reader(snapshot=True) as conn:
            cid = collection_row(conn, collection_id)[0]
            row = conn.execute(
                "SELECT v.vector FROM faces f JOIN vectors v ON v.fid=f.fid WHERE f.cid=? AND f.face_id=?",
                (cid, face_id),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"face {face_id!r} does not exist")
        return np.frombuffer(row[0], dtype="<f4").astype(np.float32)

    def list_faces(
        self,
        collection_id: str,
        *,
        limit: int,
        next_token: str | None = None,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> Page[FaceRecord]:
        wanted = sorted(set(face_ids)) if face_ids is not None else None
        scope = listing_scope("faces", collection_id, user_id, wanted)
        after = decode_token(next_token, scope)
        check_limit(limit)
        where, params = ["cid=?", "face_id > ?"], [after or ""]
        if user_id is not None:
            where.append("user_id=?")
            params.append(user_id)
        if wanted is not None:
            where.append(_IN_IDS)
            params.append(json.dumps(wanted))
        with translate("listing faces", self.path), self._db.reader(snapshot=True) as conn:
            cid, model, _, _ = collection_row(conn, collection_id)
            rows = conn.execute(
                f"SELECT {_FACE_COLUMNS} FROM faces WHERE {' AND '.join(where)}"  # noqa: S608
                " ORDER BY face_id LIMIT ?",
                (cid, *params, limit + 1),
            ).fetchall()
        items = tuple(_face(r, model) for r in rows[:limit])
        return Page(items, encode_token(scope, items[-1].face_id) if len(rows) > limit else None)

    # --- search -----------------------------------------------------------------------------------------

    def search(
        self,
        collection_id: str,
        vector: Vector,
        *,
        limit: int,
        min_cosine: float,
        exclude_face_id: str | None = None,
    ) -> list[Neighbor]:
        check_limit(limit)
        index = self._indexes.get(collection_id)
        if index is None:
            as_unit_vector(vector, None)
            return []
        hits = index.search(vector, limit=limit, min_cosine=min_cosine, exclude_face_id=exclude_face_id)
        if not hits:
            return []
        found = {f.face_id: f for f in self.get_faces(collection_id, [face_id for face_id, _ in hits])}
        # A face deleted between the scan and this read is left out rather than returned half-known.
        return [Neighbor(found[face_id], cosine) for face_id, cosine in hits if face_id in found]

    # --- users ----------------------------------------------------------------------------------------

    def _users(self, conn: sqlite3.Connection, cid: int, user_ids: Sequence[str]) -> dict[str, UserRecord]:
        rows = conn.execute(
            "SELECT u.user_id, u.created_at,"
            " (SELECT COUNT(*) FROM faces f WHERE f.cid=u.cid AND f.user_id=u.user_id)"
            " FROM users u WHERE u.cid=? AND u.user_id IN (SELECT value FROM json_each(?))",
            (cid, json.dumps(list(user_ids))),
        ).fetchall()
        return {str(r[0]): UserRecord(str(r[0]), face_count=int(r[2]), created_at=float(r[1])) for r in rows}

    def _require_user(self, conn: sqlite3.Connection, cid: int, user_id: str) -> None:
        if conn.execute("SELECT 1 FROM users WHERE cid=? AND user_id=?", (cid, user_id)).fetchone() is None:
            raise NotFoundError(f"user {user_id!r} does not exist")

    def create_user(self, collection_id: str, user_id: str, *, audit: AuditEvent | None = None) -> UserRecord:
        with self._write("creating a user", audit) as tx:
            cid = collection_row(tx.conn, collection_id)[0]
            if tx.conn.execute("SELECT 1 FROM users WHERE cid=? AND user_id=?", (cid, user_id)).fetchone():
                raise AlreadyExistsError(f"user {user_id!r} already exists")
            created = time.time()
            tx.conn.execute(
                "INSERT INTO users(cid, user_id, created_at) VALUES (?, ?, ?)", (cid, user_id, created)
            )
        return UserRecord(user_id, created_at=created)

    def delete_user(self, collection_id: str, user_id: str, *, audit: AuditEvent | None = None) -> None:
        with self._write("deleting a user", audit) as tx:
            cid, _, _, generation = collection_row(tx.conn, collection_id)
            self._require_user(tx.conn, cid, user_id)
            tx.conn.execute("UPDATE faces SET user_id=NULL WHERE cid=? AND user_id=?", (cid, user_id))
            tx.conn.execute("DELETE FROM users WHERE cid=? AND user_id=?", (cid, user_id))
            cascade_user(tx.conn, collection_id, user_id)
            generation = self._bump(tx.conn, cid, generation)

            def change(index: VectorIndex | None) -> VectorIndex | None:
                if index is not None:
                    index.clear_user(user_id)
                return index

            tx.changes.append((collection_id, cid, generation, change))

    def get_user(self, collection_id: str, user_id: str) -> UserRecord:
        with translate("reading a user", self.path), self._db.reader(snapshot=True) as conn:
            cid = collection_row(conn, collection_id)[0]
            user = self._users(conn, cid, [user_id]).get(user_id)
        if user is None:
            raise NotFoundError(f"user {user_id!r} does not exist")
        return user

    def list_users(self, collection_id: str, *, limit: int, next_token: str | None = None) -> Page[UserRecord]:
        scope = listing_scope("users", collection_id)
        after = decode_token(next_token, scope)
        check_limit(limit)
        with translate("listing users", self.path), self._db.reader(snapshot=True) as conn:
            cid = collection_row(conn, collection_id)[0]
            ids = [
                str(r[0])
                for r in conn.execute(
                    "SELECT user_id FROM users WHERE cid=? AND user_id > ? ORDER BY user_id LIMIT ?",
                    (cid, after or "", limit + 1),
                )
            ]
            users = self._users(conn, cid, ids[:limit])
        items = tuple(users[u] for u in ids[:limit])
        return Page(items, encode_token(scope, items[-1].user_id) if len(ids) > limit else None)

    def associate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str], *, audit: AuditEvent | None = None
    ) -> None:
        """All or nothing: ``NotFoundError`` for a missing user or face, ``ConflictError`` for a face that
        belongs to another user (it is never moved silently)."""
        wanted = list(dict.fromkeys(face_ids))
        with self._write("associating faces", audit) as tx:
            cid, _, _, generation = collection_row(tx.conn, collection_id)
            self._require_user(tx.conn, cid, user_id)
            owners = dict(
                tx.conn.execute(
                    "SELECT face_id, user_id FROM faces"
                    " WHERE cid=? AND face_id IN (SELECT value FROM json_each(?))",
                    (cid, json.dumps(wanted)),
                )
            )
            for face_id in wanted:
                if face_id not in owners:
                    raise NotFoundError(f"face {face_id!r} does not exist")
                if owners[face_id] not in (None, user_id):
                    raise ConflictError(f"face {face_id!r} is associated to a different user")
            tx.conn.execute(
                "UPDATE faces SET user_id=? WHERE cid=? AND face_id IN (SELECT value FROM json_each(?))",
                (user_id, cid, json.dumps(wanted)),
            )
            generation = self._bump(tx.conn, cid, generation)

            def change(index: VectorIndex | None) -> VectorIndex | None:
                if index is not None:
                    index.set_user(wanted, user_id)
                return index

            tx.changes.append((collection_id, cid, generation, change))

    def disassociate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str], *, audit: AuditEvent | None = None
    ) -> list[str]:
        wanted = list(dict.fromkeys(face_ids))
        with self._write("disassociating faces", audit) as tx:
            cid, _, _, generation = collection_row(tx.conn, collection_id)
            self._require_user(tx.conn, cid, user_id)
            done_set = {
                str(r[0])
                for r in tx.conn.execute(
                    "UPDATE faces SET user_id=NULL"
                    " WHERE cid=? AND user_id=? AND face_id IN (SELECT value FROM json_each(?)) RETURNING face_id",
                    (cid, user_id, json.dumps(wanted)),
                )
            }
            done = [f for f in wanted if f in done_set]
            if done:
                generation = self._bump(tx.conn, cid, generation)

                def change(index: VectorIndex | None) -> VectorIndex | None:
                    if index is not None:
                        index.set_user(done, None)
                    return index

                tx.changes.append((collection_id, cid, generation, change))
        return done

    def search_users(
        self,
        collection_id: str,
        vector: Vector,
        *,
        limit: int,
        min_cosine: float,
        exclude_user_id: str | None = None,
    ) -> list[UserNeighbor]:
        check_limit(limit)
        index = self._indexes.get(collection_id)
        if index is None:
            as_unit_vector(vector, None)
            return []
        hits = index.search_users(vector, limit=limit, min_cosine=min_cosine, exclude_user_id=exclude_user_id)
        if not hits:
            return []
        with translate("searching users", self.path), self._db.reader(snapshot=True) as conn:
            cid = collection_row(conn, collection_id)[0]
            users = self._users(conn, cid, [u for u, _, _ in hits])
        return [UserNeighbor(users[u], cosine, face_id) for u, cosine, face_id in hits if u in users]

    def close(self) -> None:
        """Close the database; the indexes are dropped. Safe to call twice."""
        self._indexes.clear()  # first: it snapshots large indexes and prunes the change log
        self._db.close()
