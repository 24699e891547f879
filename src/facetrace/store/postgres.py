"""``PostgresStore``: the ``FaceStore`` for several facetrace servers sharing one PostgreSQL database.

PostgreSQL is the system of record (collections, faces with their vectors, users, the audit chain); each
server keeps every collection's vectors in an exact in-memory ``VectorIndex`` that follows the database's
change log (``postgres_index``), so a search is one scan in memory plus one query, whatever server a load
balancer picks, and a face written through one server is searchable through all of them.

Transactions: every mutation runs in one transaction that also appends its change-log row and, when the
caller passes ``audit=``, its audit record (``postgres_audit.append``): the change, the log row and the
audit record commit together or not at all. Adding faces takes a KEY SHARE lock on the collection's row (it
cannot be deleted meanwhile; concurrent IndexFaces calls proceed together until their ``face_count`` updates
meet); deleting faces and user changes take the row exclusively (their checks stay true until COMMIT, and
two of them never wait for each other's face rows).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import errors as pg_errors

from facetrace.audit import AuditEvent
from facetrace.errors import AlreadyExistsError, ConflictError, ModelMismatchError, NotFoundError
from facetrace.store.base import CollectionInfo, Neighbor, Page, UserNeighbor
from facetrace.store.paging import check_limit, decode_name_token, decode_token, encode_token, listing_scope
from facetrace.store.postgres_audit import PostgresAuditTrail, append
from facetrace.store.postgres_db import NOTIFY_CHANNEL, PgDatabase, collection_row, lock_log
from facetrace.store.postgres_index import Change, IndexFollower
from facetrace.store.postgres_records import PostgresRecords, cascade_collection, cascade_faces, cascade_user
from facetrace.store.postgres_ui import postgres_ui_records
from facetrace.store.vector_index import as_unit_matrix, as_unit_vector
from facetrace.types import BoundingBox, FaceRecord, UserRecord, Vector

__all__ = ["PostgresStore"]

_FACE_COLUMNS = (
    "face_id, image_id, external_image_id, user_id, confidence, bb_left, bb_top, bb_width, bb_height,"
    " created_at, quality"
)
_SHARED = "FOR KEY SHARE"  # faces may change, the collection may not be deleted
_EXCLUSIVE = "FOR NO KEY UPDATE"  # one user change per collection at a time


@dataclass(slots=True)
class _Tx:
    """An open write transaction and the change it makes to the indexes (logged before COMMIT)."""

    conn: psycopg.Connection[Any]
    change: Change | None = None
    matrix: npt.NDArray[np.float32] | None = None
    users: Sequence[str | None] | None = None

    def log(self, cid: int, kind: str, face_ids: Sequence[str] = (), user_id: str | None = None) -> None:
        self.change = Change(0, cid, kind, tuple(face_ids), user_id)


def _face(row: Sequence[Any], model: str) -> FaceRecord:
    face_id, image_id, external, user_id, confidence, left, top, width, height, created, quality = row
    return FaceRecord(
        face_id=str(face_id),
        bounding_box=BoundingBox(float(left), float(top), float(width), float(height)),
        image_id=str(image_id),
        confidence=float(confidence),
        model=model,
        external_image_id=None if external is None else str(external),
        user_id=None if user_id is None else str(user_id),
        created_at=float(created),
        quality=None if quality is None else float(quality),
    )


class PostgresStore:
    """A durable, thread-safe ``FaceStore`` in a PostgreSQL database shared by any number of servers.

    ``url`` is a libpq URL (``postgresql://user:password@host/db``); the schema is created or upgraded at
    open. ``listen=False`` skips the background follower thread (one-shot CLI commands: searches still
    catch up with the log before they scan).
    """

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 16,
        timeout: float = 30.0,
        listen: bool = True,
        ann_dir: Path | None = None,
    ) -> None:
        self._db = PgDatabase(url, max_connections=max_connections, timeout=timeout)
        try:
            self._audit = PostgresAuditTrail(self._db)
            self.records = PostgresRecords.of(self._db)  # keys, tokens, video jobs, processors, sightings
            self.ui_records = postgres_ui_records(self._db)  # dashboard sessions, face thumbnails
            self._indexes = IndexFollower(self._db, listen=listen, ann_dir=ann_dir)
        except BaseException:
            self._db.close()
            raise

    @property
    def audit(self) -> PostgresAuditTrail:
        """The audit chain in this database (``AuditTrail``: record, records, verify)."""
        return self._audit

    @property
    def connection_url(self) -> str:
        """The URL with its password: for other processes of this deployment that open the same database
        (stream processor actors on a Ray cluster). Never log it; ``url`` is the masked one."""
        return self._db.url

    @property
    def url(self) -> str:
        """The database URL with its password replaced by ***: safe to print."""
        return self._db.safe_url

    @contextlib.contextmanager
    def _write(self, action: str, audit: AuditEvent | None) -> Iterator[_Tx]:
        """One write transaction: the caller's rows, then its change-log row and audit record, then COMMIT;
        the indexes learn of the change only after it committed."""
        with self._db.transaction(action) as conn:
            tx = _Tx(conn)
            yield tx
            if tx.change is not None:
                change = tx.change
                # One round trip: the lock, then the log row numbered after it (a statement's snapshot is
                # taken when it starts, so MAX(seq) is read after the lock is held), then the notification.
                with conn.pipeline():
                    lock_log(conn)
                    cur = conn.execute(
                        "INSERT INTO changes(seq, cid, kind, face_ids, user_id)"
                        " SELECT COALESCE(MAX(seq), 0) + 1, %s, %s, %s, %s FROM changes RETURNING seq",
                        (change.cid, change.kind, list(change.face_ids), change.user_id),
                    )
                    conn.execute(f"NOTIFY {NOTIFY_CHANNEL}")
                row = cur.fetchone()
                assert row is not None
                tx.change = dataclasses.replace(change, seq=int(row[0]))
            if audit is not None:
                append(conn, audit)
        if tx.change is not None:
            self._indexes.committed(None, tx.change, tx.matrix, tx.users)

    # --- collections ----------------------------------------------------------------------------------

    def create_collection(
        self, collection_id: str, model: str, *, audit: AuditEvent | None = None
    ) -> CollectionInfo:
        created = time.time()
        with self._write("creating a collection", audit) as tx:
            row = tx.conn.execute(
                "INSERT INTO collections(name, model, created_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO NOTHING RETURNING cid",
                (collection_id, model, created),
            ).fetchone()
            if row is None:
                raise AlreadyExistsError(f"collection {collection_id!r} already exists")
        return CollectionInfo(collection_id, model, created, 0, 0)

    def delete_collection(self, collection_id: str, *, audit: AuditEvent | None = None) -> None:
        with self._write("deleting a collection", audit) as tx:
            cid = collection_row(tx.conn, collection_id, "FOR UPDATE")[0]
            tx.conn.execute("DELETE FROM collections WHERE cid=%s", (cid,))  # faces and users cascade
            cascade_collection(tx.conn, collection_id)
            tx.log(cid, "drop")

    def describe_collection(self, collection_id: str) -> CollectionInfo:
        with self._db.read("describing a collection") as conn:
            row = conn.execute(
                "SELECT model, created_at, face_count, (SELECT count(*) FROM users u WHERE u.cid=c.cid)"
                " FROM collections c WHERE name=%s",
                (collection_id,),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"collection {collection_id!r} does not exist")
        return CollectionInfo(collection_id, str(row[0]), float(row[1]), int(row[2]), int(row[3]))

    def list_collections(self, *, limit: int, next_token: str | None = None) -> Page[str]:
        after = decode_name_token(next_token)
        with self._db.read("listing collections") as conn:
            rows = conn.execute(
                "SELECT name FROM collections WHERE name > %s ORDER BY name LIMIT %s",
                (after or "", check_limit(limit) + 1),
            ).fetchall()
        ids = [str(r[0]) for r in rows[:limit]]
        return Page(tuple(ids), ids[-1] if len(rows) > limit else None)

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
            users = sorted({r.user_id for r, _ in faces if r.user_id is not None})
            cid, model, dim = collection_row(conn, collection_id, _EXCLUSIVE if users else _SHARED)
            if content_hash is not None:
                # Another server importing the same file concurrently waits on this row and then conflicts.
                claimed = conn.execute(
                    "INSERT INTO indexed_images(cid, content_hash, image_id, faces, created_at)"
                    " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
                    (cid, content_hash, faces[0][0].image_id if faces else None, len(faces), now),
                ).fetchone()
                if claimed is None:
                    raise AlreadyExistsError(f"this image was indexed into {collection_id!r} already")
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
            taken = conn.execute(
                "SELECT face_id FROM faces WHERE cid=%s AND face_id = ANY(%s) LIMIT 1", (cid, ids)
            ).fetchone()
            if taken is not None:
                raise AlreadyExistsError(f"face {taken[0]!r} already exists")
            if users:
                known = conn.execute(
                    "SELECT count(*) FROM users WHERE cid=%s AND user_id = ANY(%s)", (cid, users)
                ).fetchone()
                if known is None or known[0] != len(users):
                    raise NotFoundError("a face names a user that does not exist")
            little = matrix.astype("<f4", copy=False)
            try:
                with (
                    conn.cursor() as cur,
                    cur.copy(f"COPY faces(cid, {_FACE_COLUMNS}, vector) FROM STDIN") as copy,
                ):
                    for i, (r, _) in enumerate(faces):
                        box = r.bounding_box
                        copy.write_row(
                            (cid, r.face_id, r.image_id, r.external_image_id, r.user_id, r.confidence,
                             box.left, box.top, box.width, box.height, r.created_at or now, r.quality,
                             little[i].tobytes())
                        )  # fmt: skip
            except pg_errors.UniqueViolation as exc:  # added by another server since the check above
                raise AlreadyExistsError("a face with one of these ids already exists") from exc
            # The dimension is fixed by the first faces; a concurrent first batch of another width loses here.
            row = conn.execute(
                "UPDATE collections SET face_count=face_count+%s, dim=COALESCE(dim, %s) WHERE cid=%s RETURNING dim",
                (len(faces), matrix.shape[1], cid),
            ).fetchone()
            if row is None or row[0] != matrix.shape[1]:
                raise ModelMismatchError(
                    f"vector has {matrix.shape[1]} dimensions, the collection's has {row and row[0]}"
                )
            tx.log(cid, "add", ids)
            tx.matrix, tx.users = matrix, [r.user_id for r, _ in faces]

    def indexed_hashes(self, collection_id: str, content_hashes: Sequence[str]) -> set[str]:
        with self._db.read("reading indexed images") as conn:
            cid = collection_row(conn, collection_id)[0]
            rows = conn.execute(
                "SELECT content_hash FROM indexed_images WHERE cid=%s AND content_hash = ANY(%s)",
                (cid, list(content_hashes)),
            ).fetchall()
        return {str(row[0]) for row in rows}

    def delete_faces(
        self, collection_id: str, face_ids: Sequence[str], *, audit: AuditEvent | None = None
    ) -> list[str]:
        wanted = list(dict.fromkeys(face_ids))
        with self._write("deleting faces", audit) as tx:
            # Exclusive, like user changes: a delete locks face rows that an association may be waiting
            # for, and both then update the collection row; one at a time, they cannot deadlock.
            cid = collection_row(tx.conn, collection_id, _EXCLUSIVE)[0]
            found = {
                str(r[0])
                for r in tx.conn.execute(
                    "DELETE FROM faces WHERE cid=%s AND face_id = ANY(%s) RETURNING face_id", (cid, wanted)
                )
            }
            if not found:
                return []
            tx.conn.execute("UPDATE collections SET face_count=face_count-%s WHERE cid=%s", (len(found), cid))
            deleted = [f for f in wanted if f in found]
            cascade_faces(tx.conn, deleted)
            tx.log(cid, "delete", deleted)
        return deleted

    def get_faces(self, collection_id: str, face_ids: Sequence[str]) -> list[FaceRecord]:
        wanted = list(dict.fromkeys(face_ids))
        with self._db.read("reading faces") as conn:
            cid, model, _ = collection_row(conn, collection_id)
            rows = conn.execute(
                f"SELECT {_FACE_COLUMNS} FROM faces WHERE cid=%s AND face_id = ANY(%s)",  # noqa: S608
                (cid, wanted),
            ).fetchall()
        by_id = {str(r[0]): _face(r, model) for r in rows}
        return [by_id[f] for f in wanted if f in by_id]

    def get_vector(self, collection_id: str, face_id: str) -> Vector:
        with self._db.read("reading a vector") as conn:
            cid = collection_row(conn, collection_id)[0]
            row = conn.execute("SELECT vector FROM faces WHERE cid=%s AND face_id=%s", (cid, face_id)).fetchone()
        if row is None:
            raise NotFoundError(f"face {face_id!r} does not exist")
        return np.frombuffer(bytes(row[0]), dtype="<f4").astype(np.float32)

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
        where, params = ["cid=%s", "face_id > %s"], [after or ""]
        if user_id is not None:
            where.append("user_id=%s")
            params.append(user_id)
        if wanted is not None:
            where.append("face_id = ANY(%s)")
            params.append(wanted)  # type: ignore[arg-type]
        with self._db.read("listing faces") as conn:
            cid, model, _ = collection_row(conn, collection_id)
            rows = conn.execute(
                f"SELECT {_FACE_COLUMNS} FROM faces WHERE {' AND '.join(where)}"  # noqa: S608
                " ORDER BY face_id LIMIT %s",
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
        with self._db.read("searching") as conn:
            rows = conn.execute(
                f"SELECT c.model, {', '.join('f.' + c.strip() for c in _FACE_COLUMNS.split(','))}"  # noqa: S608
                " FROM faces f JOIN collections c ON c.cid=f.cid WHERE c.name=%s AND f.face_id = ANY(%s)",
                (collection_id, [face_id for face_id, _ in hits]),
            ).fetchall()
        found = {str(r[1]): _face(r[1:], str(r[0])) for r in rows}
        # A face deleted (through any server) after the scan is left out rather than returned half-known.
        return [Neighbor(found[face_id], cosine) for face_id, cosine in hits if face_id in found]

    def preload(self) -> int:
        """Load every collection's vectors now (``facetrace serve`` does, before taking requests)."""
        return self._indexes.preload()

    # --- users ----------------------------------------------------------------------------------------

    def _users(self, conn: psycopg.Connection[Any], cid: int, user_ids: Sequence[str]) -> dict[str, UserRecord]:
        rows = conn.execute(
            "SELECT u.user_id, u.created_at,"
            " (SELECT count(*) FROM faces f WHERE f.cid=u.cid AND f.user_id=u.user_id)"
            " FROM users u WHERE u.cid=%s AND u.user_id = ANY(%s)",
            (cid, list(user_ids)),
        ).fetchall()
        return {str(r[0]): UserRecord(str(r[0]), face_count=int(r[2]), created_at=float(r[1])) for r in rows}

    def _require_user(self, conn: psycopg.Connection[Any], cid: int, user_id: str) -> None:
        if conn.execute("SELECT 1 FROM users WHERE cid=%s AND user_id=%s", (cid, user_id)).fetchone() is None:
            raise NotFoundError(f"user {user_id!r} does not exist")

    def create_user(self, collection_id: str, user_id: str, *, audit: AuditEvent | None = None) -> UserRecord:
        created = time.time()
        with self._write("creating a user", audit) as tx:
            cid = collection_row(tx.conn, collection_id, _SHARED)[0]
            row = tx.conn.execute(
                "INSERT INTO users(cid, user_id, created_at) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING RETURNING user_id",
                (cid, user_id, created),
            ).fetchone()
            if row is None:
                raise AlreadyExistsError(f"user {user_id!r} already exists")
        return UserRecord(user_id, created_at=created)

    def delete_user(self, collection_id: str, user_id: str, *, audit: AuditEvent | None = None) -> None:
        with self._write("deleting a user", audit) as tx:
            cid = collection_row(tx.conn, collection_id, _EXCLUSIVE)[0]
            self._require_user(tx.conn, cid, user_id)
            tx.conn.execute("UPDATE faces SET user_id=NULL WHERE cid=%s AND user_id=%s", (cid, user_id))
            tx.conn.execute("DELETE FROM users WHERE cid=%s AND user_id=%s", (cid, user_id))
            cascade_user(tx.conn, collection_id, user_id)
            tx.log(cid, "delete_user", (), user_id)

    def get_user(self, collection_id: str, user_id: str) -> UserRecord:
        with self._db.read("reading a user") as conn:
            cid = collection_row(conn, collection_id)[0]
            user = self._users(conn, cid, [user_id]).get(user_id)
        if user is None:
            raise NotFoundError(f"user {user_id!r} does not exist")
        return user

    def list_users(self, collection_id: str, *, limit: int, next_token: str | None = None) -> Page[UserRecord]:
        scope = listing_scope("users", collection_id)
        after = decode_token(next_token, scope)
        check_limit(limit)
        with self._db.transaction("listing users", snapshot=True) as conn:
            cid = collection_row(conn, collection_id)[0]
            ids = [
                str(r[0])
                for r in conn.execute(
                    "SELECT user_id FROM users WHERE cid=%s AND user_id > %s ORDER BY user_id LIMIT %s",
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
            cid = collection_row(tx.conn, collection_id, _EXCLUSIVE)[0]
            self._require_user(tx.conn, cid, user_id)
            owners = {
                str(r[0]): r[1]
                for r in tx.conn.execute(
                    "SELECT face_id, user_id FROM faces WHERE cid=%s AND face_id = ANY(%s) FOR UPDATE",
                    (cid, wanted),
                )
            }
            for face_id in wanted:
                if face_id not in owners:
                    raise NotFoundError(f"face {face_id!r} does not exist")
                if owners[face_id] not in (None, user_id):
                    raise ConflictError(f"face {face_id!r} is associated to a different user")
            tx.conn.execute(
                "UPDATE faces SET user_id=%s WHERE cid=%s AND face_id = ANY(%s)", (user_id, cid, wanted)
            )
            tx.log(cid, "associate", wanted, user_id)

    def disassociate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str], *, audit: AuditEvent | None = None
    ) -> list[str]:
        wanted = list(dict.fromkeys(face_ids))
        with self._write("disassociating faces", audit) as tx:
            cid = collection_row(tx.conn, collection_id, _EXCLUSIVE)[0]
            self._require_user(tx.conn, cid, user_id)
            done_set = {
                str(r[0])
                for r in tx.conn.execute(
                    "UPDATE faces SET user_id=NULL WHERE cid=%s AND user_id=%s AND face_id = ANY(%s)"
                    " RETURNING face_id",
                    (cid, user_id, wanted),
                )
            }
            done = [f for f in wanted if f in done_set]
            if done:
                tx.log(cid, "disassociate", done, user_id)
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
        with self._db.read("searching users") as conn:
            cid = collection_row(conn, collection_id)[0]
            users = self._users(conn, cid, [u for u, _, _ in hits])
        return [UserNeighbor(users[u], cosine, face_id) for u, cosine, face_id in hits if u in users]

    def check_writable(self) -> None:
        """Commit a tiny write (``facetrace_meta.last_write_check``): ``StoreError`` when the database cannot
        take writes (read-only server, full disk), which also means no audit record can be appended."""
        with self._db.transaction("writing to the database") as conn:
            conn.execute(
                "INSERT INTO facetrace_meta VALUES ('last_write_check', now()::text)"
                " ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
            )

    def close(self) -> None:
        """Stop following the log and close every connection. Safe to call twice."""
        self.records.close()  # gives up this server's leases: its processors may run elsewhere at once
        self._indexes.close()
        self._db.close()
