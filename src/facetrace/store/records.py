"""The rest of the system of record: access keys, idempotency tokens, video jobs, stream processors and
sightings, as typed repositories next to the collections (``SQLiteStore.records``).

Before schema 3 these lived in ``keys.json``, ``video/*.db`` and in memory; now they are tables of the same
database, created by the migration list, so one file (one backup, one permission, one transaction) holds
everything facetrace knows about people. Each repository deals in frozen records and knows nothing of the
layers above: ``facetrace.service.keys`` and ``facetrace.video`` turn them into their own objects.

Deleting derived data with what it derives from happens inside the store's own transaction
(``SQLiteStore.delete_faces`` / ``delete_user`` / ``delete_collection``), see ``docs/server.md``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from facetrace.types import BoundingBox

__all__ = [
    "JobRecord",
    "JobRepository",
    "KeyRecord",
    "KeyRepository",
    "MemoryTokens",
    "ProcessorRecord",
    "ProcessorRepository",
    "Sighting",
    "SightingQuery",
    "SightingRepository",
    "TokenRecord",
    "TokenRepository",
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
    def put(self, record: ProcessorRecord) -> None: ...
    def delete(self, name: str) -> None: ...


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
