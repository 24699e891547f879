"""The storage interface: collections of faces (metadata + identity vectors) and users.

Everything above this layer talks to ``FaceStore`` only, so the embedded SQLite store can be replaced by a
bigger backend (PostgreSQL + pgvector, a vector database) without touching the engine, the CLI or the
service. Two implementations ship: ``SQLiteStore`` (durable, the default) and ``MemoryStore`` (fast, for tests
and throwaway work). Both must pass the same contract tests (``tests/store/test_contract.py``).

Contract:
- ids are validated by the caller (``facetrace.validation``); the store trusts them.
- every mutating call is atomic and durable when it returns (an acknowledged write survives ``kill -9``).
- ``search`` is exact unless the store documents otherwise; results are sorted by cosine, best first.
- pagination tokens are opaque strings; a token from one listing is only valid for the same listing.
- missing collections raise ``NotFoundError``; creating an existing one raises ``AlreadyExistsError``.
- a collection holds vectors of one model (``FaceRecord.model`` must equal the collection's) and one dimension;
  anything else raises ``ModelMismatchError``. Vectors that are not unit length are normalised; unit vectors are
  stored bit for bit. A ``FaceRecord.created_at`` of 0 means "now".
- storage failures (disk full, corrupt or foreign database) raise ``StoreError``, never a backend exception.
- fail closed: ``audit`` is the store's hash-chained trail, in the same database. Every mutating call takes
  ``audit=event``; the record is appended in the same transaction as the change, so both commit or neither,
  and a failed append raises ``StoreError("audit store unavailable: ...")`` with nothing changed. The event is
  recorded as given, also when the call changes nothing (no faces found to delete).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from facetrace.audit import AuditEvent, AuditTrail
from facetrace.types import FaceRecord, UserRecord, Vector

__all__ = ["CollectionInfo", "FaceStore", "Neighbor", "Page", "UserNeighbor"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    collection_id: str
    model: str  # ModelInfo.key: every vector in the collection comes from this recognizer
    created_at: float  # unix seconds
    face_count: int
    user_count: int


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing; ``next_token`` is None on the last page."""

    items: tuple[T, ...]
    next_token: str | None = None


@dataclass(frozen=True, slots=True)
class Neighbor:
    face: FaceRecord
    cosine: float


@dataclass(frozen=True, slots=True)
class UserNeighbor:
    user: UserRecord
    cosine: float  # the user's score: the probe against the user's template (``vector_index.user_template``)
    face_id: str  # the user's face closest to the probe (the evidence to show)


class FaceStore(Protocol):
    """A durable home for collections. Implementations are thread-safe."""

    @property
    def audit(self) -> AuditTrail:
        """The audit trail kept in this store's database."""
        ...

    def check_writable(self) -> None:
        """Raise ``StoreError`` when the store cannot take a write now (read-only, disk full): then no change
        and no audited act can happen (the server's /healthz reports degraded)."""
        ...

    # collections
    def create_collection(
        self, collection_id: str, model: str, *, audit: AuditEvent | None = None
    ) -> CollectionInfo: ...
    def delete_collection(self, collection_id: str, *, audit: AuditEvent | None = None) -> None: ...
    def describe_collection(self, collection_id: str) -> CollectionInfo: ...
    def list_collections(self, *, limit: int, next_token: str | None = None) -> Page[str]: ...

    # faces
    def add_faces(
        self,
        collection_id: str,
        faces: Sequence[tuple[FaceRecord, Vector]],
        *,
        audit: AuditEvent | None = None,
        content_hash: str | None = None,
    ) -> None:
        """Store faces and their vectors atomically (all or none). ``content_hash`` (the sha256 of the image
        file they come from) is recorded in the same transaction, also when ``faces`` is empty; an image
        recorded before is ``AlreadyExistsError`` and nothing is added (a resumed import never duplicates)."""
        ...

    def indexed_hashes(self, collection_id: str, content_hashes: Sequence[str]) -> set[str]:
        """Which of ``content_hashes`` were recorded by ``add_faces`` in this collection."""
        ...

    def delete_faces(
        self, collection_id: str, face_ids: Sequence[str], *, audit: AuditEvent | None = None
    ) -> list[str]:
        """Delete the faces that exist; returns their ids. Missing ids are ignored."""
        ...

    def get_faces(self, collection_id: str, face_ids: Sequence[str]) -> list[FaceRecord]:
        """The faces that exist, in the order asked."""
        ...

    def get_vector(self, collection_id: str, face_id: str) -> Vector:
        """The stored vector of one face; ``NotFoundError`` if the face does not exist."""
        ...

    def list_faces(
        self,
        collection_id: str,
        *,
        limit: int,
        next_token: str | None = None,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> Page[FaceRecord]:
        """Faces in a stable order (by face id), optionally only a user's or only the given ids."""
        ...

    def search(
        self,
        collection_id: str,
        vector: Vector,
        *,
        limit: int,
        min_cosine: float,
        exclude_face_id: str | None = None,
    ) -> list[Neighbor]:
        """The ``limit`` most similar faces with cosine ≥ ``min_cosine``, best first."""
        ...

    # users
    def create_user(self, collection_id: str, user_id: str, *, audit: AuditEvent | None = None) -> UserRecord: ...
    def delete_user(self, collection_id: str, user_id: str, *, audit: AuditEvent | None = None) -> None:
        """Delete the user; its faces stay in the collection, no longer associated."""
        ...

    def get_user(self, collection_id: str, user_id: str) -> UserRecord: ...
    def list_users(self, collection_id: str, *, limit: int, next_token: str | None = None) -> Page[UserRecord]: ...
    def associate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str], *, audit: AuditEvent | None = None
    ) -> None:
        """Set ``user_id`` on the given faces (they exist and are unassociated or already this user's).

        All or nothing: a missing user or face raises ``NotFoundError``, and a face that belongs to another user
        raises ``ConflictError``; a face is never moved between users silently. Callers that report per-face
        reasons (``ASSOCIATED_TO_A_DIFFERENT_USER``) check with ``get_faces`` first.
        """
        ...

    def disassociate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str], *, audit: AuditEvent | None = None
    ) -> list[str]:
        """Clear the user on those of ``face_ids`` that belong to ``user_id``; returns them."""
        ...

    def search_users(
        self,
        collection_id: str,
        vector: Vector,
        *,
        limit: int,
        min_cosine: float,
        exclude_user_id: str | None = None,
    ) -> list[UserNeighbor]:
        """Users ranked by ``vector @ user_template(their faces' vectors)`` (≥ ``min_cosine``), best first: one
        score per user from the normalised mean of its faces, discounted for disagreement (see
        ``facetrace.store.vector_index``); exact. Each comes with the user's face closest to ``vector``."""
        ...

    def close(self) -> None: ...
