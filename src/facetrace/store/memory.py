"""``MemoryStore``: the whole ``FaceStore`` contract in process memory, for tests and throwaway work.

It shares the vector index with the SQLite store, so search behaves identically; everything else is plain
dicts behind one lock. Nothing survives the process: "durable when it returns" holds only for the process's
lifetime.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from facetrace.audit import AuditEvent, MemoryAuditTrail
from facetrace.errors import AlreadyExistsError, ConflictError, ModelMismatchError, NotFoundError
from facetrace.store.base import CollectionInfo, Neighbor, Page, UserNeighbor
from facetrace.store.paging import check_limit, decode_name_token, decode_token, encode_token, listing_scope
from facetrace.store.vector_index import VectorIndex, as_unit_matrix, as_unit_vector
from facetrace.types import FaceRecord, UserRecord, Vector

__all__ = ["MemoryStore"]


@dataclass(eq=False)
class _Collection:
    """Mutable state of one collection (internal; callers only ever see frozen records)."""

    model: str
    created_at: float
    faces: dict[str, FaceRecord] = field(default_factory=dict)
    users: dict[str, float] = field(default_factory=dict)  # user id → created_at
    user_faces: dict[str, set[str]] = field(default_factory=dict)
    index: VectorIndex | None = None  # created with the first face, when the dimension is known
    indexed_images: set[str] = field(default_factory=set)  # content hashes of the image files indexed
    _sorted_face_ids: list[str] | None = None

    def sorted_face_ids(self) -> list[str]:
        if self._sorted_face_ids is None:
            self._sorted_face_ids = sorted(self.faces)
        return self._sorted_face_ids

    def changed(self) -> None:
        self._sorted_face_ids = None

    def user(self, user_id: str) -> UserRecord:
        return UserRecord(
            user_id=user_id,
            face_count=len(self.user_faces.get(user_id, ())),
            created_at=self.users[user_id],
        )


def _page(items: list[str], after: str | None, limit: int) -> tuple[list[str], bool]:
    """The sorted ``items`` after ``after``: up to ``limit`` of them, and whether more follow."""
    start = bisect.bisect_right(items, after) if after is not None else 0
    chunk = items[start : start + limit]
    return chunk, start + limit < len(items)


class MemoryStore:
    """A thread-safe in-memory ``FaceStore``; its audit trail is a ``MemoryAuditTrail``."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._collections: dict[str, _Collection] = {}
        self.audit = MemoryAuditTrail()

    def check_writable(self) -> None:
        """Memory always takes writes, unless audit appends are made to fail (tests)."""
        if self.audit.fail_with is not None:
            self.audit.prepare(AuditEvent("WriteCheck", "local"))

    @contextlib.contextmanager
    def _change(self, audit: AuditEvent | None) -> Iterator[None]:
        """A change and its audit record as one step: the record is prepared first (a failing trail stops
        the change before anything moved) and appended only if the change completed."""
        with self._lock, self.audit.lock:
            row = self.audit.prepare(audit) if audit is not None else None
            yield
            if row is not None:
                self.audit.commit(row)

    def _get(self, collection_id: str) -> _Collection:
        collection = self._collections.get(collection_id)
        if collection is None:
            raise NotFoundError(f"collection {collection_id!r} does not exist")
        return collection

    # --- collections ----------------------------------------------------------------------------------

    def create_collection(
        self, collection_id: str, model: str, *, audit: AuditEvent | None = None
    ) -> CollectionInfo:
        with self._change(audit):
            if collection_id in self._collections:
                raise AlreadyExistsError(f"collection {collection_id!r} already exists")
            self._collections[collection_id] = _Collection(model=model, created_at=time.time())
            return self.describe_collection(collection_id)

    def delete_collection(self, collection_id: str, *, audit: AuditEvent | None = None) -> None:
        with self._change(audit):
            self._get(collection_id)
            del self._collections[collection_id]

    def describe_collection(self, collection_id: str) -> CollectionInfo:
        with self._lock:
            c = self._get(collection_id)
            return CollectionInfo(collection_id, c.model, c.created_at, len(c.faces), len(c.users))

    def list_collections(self, *, limit: int, next_token: str | None = None) -> Page[str]:
        after = decode_name_token(next_token)
        with self._lock:
            ids, more = _page(sorted(self._collections), after, check_limit(limit))
        return Page(tuple(ids), ids[-1] if more else None)

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
        now = time.time()
        with self._change(audit):
            c = self._get(collection_id)
            if content_hash is not None and content_hash in c.indexed_images:
                raise AlreadyExistsError(f"this image was indexed into {collection_id!r} already")
            if not faces:
                if content_hash is not None:
                    c.indexed_images.add(content_hash)
                return
            dim = c.index.dim if c.index is not None else None
            matrix = as_unit_matrix([v for _, v in faces], dim)
            ids = [record.face_id for record, _ in faces]
            if len(set(ids)) != len(ids):
                raise AlreadyExistsError("the same face id is given twice")
            for record, _ in faces:
                if record.model != c.model:
                    raise ModelMismatchError(f"face from {record.model} added to a {c.model} collection")
                if record.face_id in c.faces:
                    raise AlreadyExistsError(f"face {record.face_id!r} already exists")
                if record.user_id is not None and record.user_id not in c.users:
                    raise NotFoundError(f"user {record.user_id!r} does not exist")
            if c.index is None:
                c.index = VectorIndex(matrix.shape[1])
            c.index.add(ids, matrix, [record.user_id for record, _ in faces])
            if content_hash is not None:
                c.indexed_images.add(content_hash)
            for record, _ in faces:
                c.faces[record.face_id] = record if record.created_at else replace(record, created_at=now)
                if record.user_id is not None:
                    c.user_faces.setdefault(record.user_id, set()).add(record.face_id)
            c.changed()

    def indexed_hashes(self, collection_id: str, content_hashes: Sequence[str]) -> set[str]:
        with self._lock:
            return set(content_hashes) & self._get(collection_id).indexed_images

    def delete_faces(
        self, collection_id: str, face_ids: Sequence[str], *, audit: AuditEvent | None = None
    ) -> list[str]:
        with self._change(audit):
            c = self._get(collection_id)
            deleted = [f for f in dict.fromkeys(face_ids) if f in c.faces]
            for face_id in deleted:
                record = c.faces.pop(face_id)
                if record.user_id is not None:
                    c.user_faces[record.user_id].discard(face_id)
            if c.index is not None:
                c.index.remove(deleted)
            c.changed()
            return deleted

    def get_faces(self, collection_id: str, face_ids: Sequence[str]) -> list[FaceRecord]:
        with self._lock:
            c = self._get(collection_id)
            return [c.faces[f] for f in dict.fromkeys(face_ids) if f in c.faces]

    def get_vector(self, collection_id: str, face_id: str) -> Vector:
        with self._lock:
            c = self._get(collection_id)
            vector = c.index.vector(face_id) if c.index is not None else None
        if vector is None:
            raise NotFoundError(f"face {face_id!r} does not exist")
        return vector

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
        with self._lock:
            c = self._get(collection_id)
            candidates = c.sorted_face_ids() if user_id is None else sorted(c.user_faces.get(user_id, ()))
            if wanted is not None:
                allowed = set(wanted)
                candidates = [f for f in candidates if f in allowed]
            ids, more = _page(candidates, after, limit)
            items = tuple(c.faces[f] for f in ids)
        return Page(items, encode_token(scope, ids[-1]) if more else None)

    def _searchable(self, collection_id: str, vector: Vector, limit: int) -> VectorIndex | None:
        """The collection's index, or None when it holds no vectors yet (the probe is still validated)."""
        check_limit(limit)
        with self._lock:
            index = self._get(collection_id).index
        if index is None:
            as_unit_vector(vector, None)
        return index

    def search(
        self,
        collection_id: str,
        vector: Vector,
        *,
        limit: int,
        min_cosine: float,
        exclude_face_id: str | None = None,
    ) -> list[Neighbor]:
        index = self._searchable(collection_id, vector, limit)
        if index is None:
            return []
        hits = index.search(vector, limit=limit, min_cosine=min_cosine, exclude_face_id=exclude_face_id)
        with self._lock:
            faces = self._get(collection_id).faces
            return [Neighbor(faces[f], cosine) for f, cosine in hits if f in faces]

    # --- users ----------------------------------------------------------------------------------------

    def create_user(self, collection_id: str, user_id: str, *, audit: AuditEvent | None = None) -> UserRecord:
        with self._change(audit):
            c = self._get(collection_id)
            if user_id in c.users:
                raise AlreadyExistsError(f"user {user_id!r} already exists")
            c.users[user_id] = time.time()
            return c.user(user_id)

    def delete_user(self, collection_id: str, user_id: str, *, audit: AuditEvent | None = None) -> None:
        with self._change(audit):
            c = self._get(collection_id)
            if user_id not in c.users:
                raise NotFoundError(f"user {user_id!r} does not exist")
            for face_id in c.user_faces.pop(user_id, set()):
                c.faces[face_id] = replace(c.faces[face_id], user_id=None)
            del c.users[user_id]
            if c.index is not None:
                c.index.clear_user(user_id)

    def get_user(self, collection_id: str, user_id: str) -> UserRecord:
        with self._lock:
            c = self._get(collection_id)
            if user_id not in c.users:
                raise NotFoundError(f"user {user_id!r} does not exist")
            return c.user(user_id)

    def list_users(self, collection_id: str, *, limit: int, next_token: str | None = None) -> Page[UserRecord]:
        scope = listing_scope("users", collection_id)
        after = decode_token(next_token, scope)
        check_limit(limit)
        with self._lock:
            c = self._get(collection_id)
            ids, more = _page(sorted(c.users), after, limit)
            items = tuple(c.user(u) for u in ids)
        return Page(items, encode_token(scope, ids[-1]) if more else None)

    def associate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str], *, audit: AuditEvent | None = None
    ) -> None:
        """All or nothing: ``NotFoundError`` for a missing user or face, ``ConflictError`` for a face that
        belongs to another user (it is never moved silently)."""
        with self._change(audit):
            c = self._get(collection_id)
            if user_id not in c.users:
                raise NotFoundError(f"user {user_id!r} does not exist")
            ids = list(dict.fromkeys(face_ids))
            for face_id in ids:
                record = c.faces.get(face_id)
                if record is None:
                    raise NotFoundError(f"face {face_id!r} does not exist")
                if record.user_id not in (None, user_id):
                    raise ConflictError(f"face {face_id!r} is associated to a different user")
            for face_id in ids:
                c.faces[face_id] = replace(c.faces[face_id], user_id=user_id)
            c.user_faces.setdefault(user_id, set()).update(ids)
            if c.index is not None:
                c.index.set_user(ids, user_id)

    def disassociate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str], *, audit: AuditEvent | None = None
    ) -> list[str]:
        with self._change(audit):
            c = self._get(collection_id)
            if user_id not in c.users:
                raise NotFoundError(f"user {user_id!r} does not exist")
            owned = c.user_faces.get(user_id, set())
            done = [f for f in dict.fromkeys(face_ids) if f in owned]
            for face_id in done:
                c.faces[face_id] = replace(c.faces[face_id], user_id=None)
                owned.discard(face_id)
            if c.index is not None:
                c.index.set_user(done, None)
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
        index = self._searchable(collection_id, vector, limit)
        if index is None:
            return []
        hits = index.search_users(vector, limit=limit, min_cosine=min_cosine, exclude_user_id=exclude_user_id)
        with self._lock:
            c = self._get(collection_id)
            return [UserNeighbor(c.user(u), cosine, f) for u, cosine, f in hits if u in c.users]

    def close(self) -> None:
        """Nothing to release; kept for the protocol."""
