"""The rest of the system of record: access keys, idempotency tokens, video jobs, stream processors and
sightings, as typed repositories next to the collections (``SQLiteStore.records``,
``PostgresStore.records``: both satisfy the ``Records`` protocol).

Before schema 3 these lived in ``keys.json``, ``video/*.db`` and in memory; now they are tables of the same
database, created by the migration list, so one file (one backup, one permission, one transaction) holds
everything facetrace knows about people. Each repository deals in frozen records and knows nothing of the
layers above: ``facetrace.service.keys`` and ``facetrace.video`` turn them into their own objects.

Deleting derived data with what it derives from happens inside the store's own transaction
(``SQLiteStore.delete_faces`` / ``delete_user`` / ``delete_collection``), see ``docs/server.md``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import zlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from facetrace.types import BoundingBox

__all__ = [
    "JobRecord",
    "JobRepository",
    "KeyRecord",
    "KeyRepository",
    "LeaseRepository",
    "MemoryTokens",
    "ProcessorRecord",
    "ProcessorRepository",
    "Records",
    "ReviewCandidate",
    "ReviewDecision",
    "ReviewItem",
    "ReviewQuery",
    "ReviewRepository",
    "Sighting",
    "SightingQuery",
    "SightingRepository",
    "TokenRecord",
    "TokenRepository",
    "UnknownFace",
    "UnknownPerson",
    "UnknownRepository",
    "redact_results",
]


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One access key as stored; ``secret`` is the SigV4 secret (never logged: hidden from ``repr``)."""

    access_key_id: str
    secret: str
    permission: str  # read | write | admin
    collections: tuple[str, ...] | None
    description: str
    created_at: float

    def __repr__(self) -> str:
        return f"KeyRecord({self.access_key_id!r}, permission={self.permission!r})"


class KeyRepository(Protocol):
    def list(self) -> list[KeyRecord]: ...
    def get(self, access_key_id: str) -> KeyRecord | None: ...
    def add(self, key: KeyRecord) -> None: ...
    def delete(self, access_key_id: str) -> bool:
        """True if the key existed."""
        ...


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """The stored answer to one request made with a ClientRequestToken."""

    principal: str  # the access key id that made the request
    operation: str
    token: str
    fingerprint: str  # SHA-256 of the request's parameters (the token left out)
    response: str  # the JSON answer returned the first time
    created_at: float


class TokenRepository(Protocol):
    def get(self, principal: str, operation: str, token: str, *, newer_than: float) -> TokenRecord | None: ...
    def put(self, record: TokenRecord) -> TokenRecord:
        """Store ``record`` unless one with the same key exists; returns the stored one."""
        ...

    def sweep(self, older_than: float) -> int: ...

    def exclusive(self, principal: str, operation: str, token: str) -> AbstractContextManager[None]:
        """Held while a request with this token runs: requests with one token run one at a time across every
        process sharing the database (PostgreSQL: an advisory lock; one-process stores: nothing to do, the
        caller's own lock is enough)."""
        ...


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A stored-video job: what was asked, by whom, its state, and (when done) its results."""

    job_id: str
    kind: str
    video: str
    collection_id: str | None
    threshold: float | None
    job_tag: str | None
    camera: str | None
    status: str
    message: str | None
    created_at: float
    finished_at: float | None
    metadata: str | None  # VideoMetadata as JSON
    results: bytes | None  # zlib-compressed JSON list
    principal: str
    purpose: str | None
    request: str | None  # the wire request's Video member, echoed by Get*
    face_ids: tuple[str, ...] = ()  # the faces its results name (deleted faces are redacted from them)


def redact_results(blob: bytes, gone: set[str]) -> bytes:
    """A job's compressed results without the items that matched one of the ``gone`` faces (the deletion
    cascades of every backend use it: a deleted face must not live on in a stored answer)."""
    results = json.loads(zlib.decompress(blob).decode("utf-8"))
    kept = [
        item
        for item in results
        if not any(match.get("Face", {}).get("FaceId") in gone for match in item.get("FaceMatches", ()))
    ]
    return zlib.compress(json.dumps(kept).encode("utf-8"))


class JobRepository(Protocol):
    def save(self, job: JobRecord) -> None: ...
    def get(self, job_id: str) -> JobRecord | None: ...
    def fail_interrupted(self, message: str, now: float) -> int:
        """Mark every job still IN_PROGRESS as FAILED (the process that ran it is gone)."""
        ...


@dataclass(frozen=True, slots=True)
class ProcessorRecord:
    name: str
    collection_id: str
    definition: str  # the ProcessorDefinition as JSON
    desired: str  # RUNNING or STOPPED: what resume() restores
    updated_at: float


class ProcessorRepository(Protocol):
    def list(self) -> list[ProcessorRecord]: ...
    def get(self, name: str) -> ProcessorRecord | None: ...
    def put(self, record: ProcessorRecord) -> None: ...
    def delete(self, name: str) -> None: ...


class LeaseRepository(Protocol):
    """Who runs what when several servers share one database: a lease is a row (resource, owner, expiry) that
    its owner's heartbeat keeps renewing; when the owner dies the lease expires and another may take it.

    ``owner`` is this process's instance id. Every lease of an owner is renewed together (one heartbeat),
    and ``instance:<owner>`` is the owner's own lease: the proof that it is alive."""

    @property
    def owner(self) -> str: ...

    def acquire(self, resource: str, on_lost: Callable[[str], None] | None = None) -> bool:
        """Take ``resource`` (or keep it, if ours): False while another live owner holds it. ``on_lost`` is
        called (from the heartbeat thread) if the lease is found taken by another owner later."""
        ...

    def release(self, resource: str) -> None:
        """Give ``resource`` up now (if ours), so another may take it without waiting for the expiry."""
        ...

    def revoke(self, resource: str) -> None:
        """End the lease whoever holds it (a processor stopped through another server): its holder finds it
        gone at its next heartbeat and stops what it was running."""
        ...

    def holder(self, resource: str) -> str | None:
        """The live owner of ``resource``, or None when it is free (never taken, released or expired)."""
        ...


@dataclass(frozen=True, slots=True)
class Sighting:
    """One identified track: where and when a person was seen, with a small JPEG snapshot."""

    sighting_id: str
    source: str  # processor name or job id
    camera: str
    track_id: int
    started_at: float
    ended_at: float
    start_stream_ms: int
    end_stream_ms: int
    face_id: str | None
    user_id: str | None
    external_image_id: str | None
    similarity: float | None
    bounding_box: BoundingBox | None
    expires_at: float
    snapshot: bytes | None = None
    collection_id: str | None = None
    confirmed_by: str | None = None  # the access key (or local user) who confirmed a reviewed match


@dataclass(frozen=True, slots=True)
class SightingQuery:
    face_id: str | None = None
    user_id: str | None = None
    external_image_id: str | None = None
    camera: str | None = None
    source: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100
    offset: int = 0
    snapshots: bool = False


class SightingRepository(Protocol):
    def upsert_track(self, sighting: Sighting) -> None:
        """Insert, or merge into the sighting of the same (source, track_id): the end grows, the best
        similarity and the latest identity and snapshot win."""
        ...

    def add(self, sightings: Sequence[Sighting]) -> None: ...
    def query(self, query: SightingQuery, now: float) -> list[Sighting]: ...
    def count(self) -> int: ...
    def sweep(self, now: float) -> int: ...
    def delete_source(self, source: str) -> int: ...


@dataclass(frozen=True, slots=True)
class ReviewCandidate:
    """One person a reviewed track may be: the matched face (or the user's closest face) and its similarity."""

    face_id: str
    user_id: str | None
    external_image_id: str | None
    similarity: float
    person: str  # ``identity.person_key``: user:<id>, external:<id> or face:<id>
    rejected_by: str | None = None  # who said "not this person" (None: still offered)


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """A track whose best match fell between the review threshold and the identification threshold.

    ``vector``/``vector_quality``/``vector_confidence``/``vector_box``: the track's best single face (by sample
    weight), what confirming with enrolment adds to the collection. ``status``: PENDING, CONFIRMED or
    REJECTED (every candidate rejected)."""

    item_id: str
    collection_id: str
    source: str  # processor name or job id
    camera: str
    track_id: int
    started_at: float
    ended_at: float
    start_stream_ms: int
    end_stream_ms: int
    bounding_box: BoundingBox | None
    candidates: tuple[ReviewCandidate, ...]
    review_threshold: float
    match_threshold: float
    template_quality: float | None
    vector: bytes | None
    vector_quality: float | None
    vector_confidence: float | None
    created_at: float
    expires_at: float
    status: str = "PENDING"
    decided_at: float | None = None
    decided_by: str | None = None
    confirmed_person: str | None = None
    sighting_id: str | None = None
    enrolled_face_id: str | None = None
    thumbnails: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class ReviewDecision:
    """One reviewer's answer, kept for good (with the item while it lives, and in the audit trail)."""

    item_id: str
    action: str  # CONFIRM | REJECT
    person: str
    reviewer: str
    reason: str | None
    decided_at: float


@dataclass(frozen=True, slots=True)
class ReviewQuery:
    status: str | None = "PENDING"
    collection_ids: tuple[str, ...] | None = None  # None: every collection
    source: str | None = None
    limit: int = 100
    offset: int = 0


class ReviewRepository(Protocol):
    def add(self, item: ReviewItem) -> None:
        """Store a new item with its thumbnails."""
        ...

    def get(self, item_id: str, *, thumbnails: bool = False) -> ReviewItem | None: ...
    def find(self, query: ReviewQuery, now: float) -> list[ReviewItem]:
        """Live (unexpired) items, newest first, without thumbnails."""
        ...

    def decide(
        self, item: ReviewItem, decisions: Sequence[ReviewDecision], sighting: Sighting | None = None
    ) -> bool:
        """Replace the item's state with ``item``'s (status, candidates, who decided) and keep ``decisions``, and
        the confirmed ``sighting`` if any, in one transaction; False (nothing written) when the stored item is
        no longer in the status ``item`` was read in (another reviewer answered first)."""
        ...

    def rejected(self, source: str, track_id: int) -> set[str]:
        """Persons rejected for this track of this source by any decision so far."""
        ...

    def decisions(self, item_id: str) -> list[ReviewDecision]: ...
    def sweep(self, now: float) -> int:
        """Delete expired items (and their thumbnails); decisions stay."""
        ...


@dataclass(frozen=True, slots=True)
class UnknownFace:
    """One unidentified track's face kept for grouping: its template vector, quality and weight."""

    face_id: str
    unknown_id: str
    collection_id: str
    source: str
    camera: str
    track_id: int
    seen_at: float
    vector: bytes  # float32 little-endian template of the track
    quality: float | None
    weight: float
    thumbnail: bytes | None
    expires_at: float


@dataclass(frozen=True, slots=True)
class UnknownPerson:
    """A group of unidentified faces that consistently match each other: "unknown #12"."""

    unknown_id: str
    number: int
    collection_id: str
    first_seen: float
    last_seen: float
    seen: int
    cameras: tuple[str, ...]
    expires_at: float
    named_user: str | None = None


class UnknownRepository(Protocol):
    def groups(self, collection_id: str, now: float) -> list[tuple[UnknownPerson, list[UnknownFace]]]:
        """Every live, unnamed group of the collection with its faces (no thumbnails)."""
        ...

    def add_face(self, face: UnknownFace, person: UnknownPerson | None) -> UnknownPerson:
        """Store ``face`` in its group (``person`` None: a new group, numbered here); returns the group as
        updated (seen count, cameras, first/last seen, expiry)."""
        ...

    def find(
        self, collection_ids: tuple[str, ...] | None, now: float, limit: int, offset: int
    ) -> list[UnknownPerson]: ...

    def get(self, unknown_id: str) -> UnknownPerson | None: ...
    def faces(self, unknown_id: str, *, thumbnails: bool = False) -> list[UnknownFace]: ...
    def mark_named(self, unknown_id: str, user_id: str) -> None: ...
    def sweep(self, now: float) -> int: ...


@runtime_checkable
class Records(Protocol):
    """Every repository kept in one store's database (``SQLiteRecords``, ``PostgresRecords``).

    ``leases`` is None for a store meant for one server (SQLite: one home, one server); PostgreSQL is shared
    by several, and leases say which of them runs a stream processor or a video job."""

    @property
    def keys(self) -> KeyRepository: ...
    @property
    def tokens(self) -> TokenRepository: ...
    @property
    def jobs(self) -> JobRepository: ...
    @property
    def processors(self) -> ProcessorRepository: ...
    @property
    def sightings(self) -> SightingRepository: ...
    @property
    def reviews(self) -> ReviewRepository: ...
    @property
    def unknowns(self) -> UnknownRepository: ...
    @property
    def leases(self) -> LeaseRepository | None: ...


class MemoryTokens:
    """A ``TokenRepository`` in process memory (servers over a ``MemoryStore``; gone with the process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str, str], TokenRecord] = {}

    def get(self, principal: str, operation: str, token: str, *, newer_than: float) -> TokenRecord | None:
        with self._lock:
            found = self._rows.get((principal, operation, token))
        return found if found is not None and found.created_at > newer_than else None

    def put(self, record: TokenRecord) -> TokenRecord:
        with self._lock:
            return self._rows.setdefault((record.principal, record.operation, record.token), record)

    def sweep(self, older_than: float) -> int:
        with self._lock:
            old = [key for key, row in self._rows.items() if row.created_at <= older_than]
            for key in old:
                del self._rows[key]
        return len(old)

    def exclusive(self, principal: str, operation: str, token: str) -> AbstractContextManager[None]:
        return contextlib.nullcontext()  # one process: the caller's lock is enough
