"""The audit trail: who searched for whom, when, why, and what came back.

Face search can hurt people when it is wrong or abused, so every search, comparison and change to a
collection is recorded — by the library itself, so the CLI, the server and the video pipeline are all
covered. This module holds the event record and the sink interface; the hash-chained, append-only
implementation lives beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["LOCAL_CALLER", "AuditEvent", "AuditSink", "Caller"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking, and why: ``principal`` is an access key id or ``local:<user>``; ``purpose`` a case ref."""

    principal: str = "local"
    purpose: str | None = None


LOCAL_CALLER = Caller()


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audited operation. Never contains an image or a vector."""

    operation: str  # Rekognition's operation name, e.g. SearchFacesByImage
    principal: str
    collection_id: str | None = None
    purpose: str | None = None
    threshold: float | None = None
    match_count: int | None = None
    matched_face_ids: tuple[str, ...] = ()
    detail: dict[str, str | int | float | None] = field(default_factory=dict)


class AuditSink(Protocol):
    def record(self, event: AuditEvent) -> None:
        """Append ``event`` durably; raise ``StoreError`` if it cannot be recorded."""
        ...
