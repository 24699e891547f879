"""Audit records the library cannot write itself: reads of enrolment data, administrative acts on the wire,
subscriptions to ``/events`` and denied attempts.

Searches, comparisons and changes to collections are audited by the library (``Gallery``), whichever door
they came through. What only the server sees is recorded here:

- ``AUDITED_READS`` (ListFaces, ListUsers, DescribeCollection, the video job results and stream processor
  descriptions): recorded after the handler succeeded and *before* the answer is sent; if the record cannot
  be written the caller gets an error instead of the data (fail closed).
- ``AUDITED_ACTS`` (stream processors created, started, stopped, deleted; video jobs started): recorded
  *before* the act, so no act happens without its record (a refused act leaves a record of the attempt).
- ``DeniedAttempts``: AccessDenied and signature failures, recorded at most ``per_minute`` times a minute in
  all (each record carries how many were left out before it), so a flood of bad requests cannot fill the
  disk. A denied attempt's principal is the key id the request *claimed* (unverified), marked ``claimed:``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

from facetrace.audit import AuditEvent, AuditTrail, Caller
from facetrace.gallery import Gallery

__all__ = ["AUDITED_ACTS", "AUDITED_READS", "DeniedAttempts", "record_act", "record_read"]

log = logging.getLogger(__name__)

AUDITED_READS = frozenset(
    {
        "ListReviewItems",  # candidate faces of tracks, camera and time: enrolment data about people
        "DescribeReviewItem",
        "ListUnknownPeople",
        "DescribeUnknownPerson",
        "ListFaces",
        "ListUsers",
        "DescribeCollection",
        "GetFaceDetection",
        "GetFaceSearch",
        "DescribeStreamProcessor",
        "ListStreamProcessors",
    }
)
AUDITED_ACTS = frozenset(
    {
        "CreateStreamProcessor",
        "StartStreamProcessor",
        "StopStreamProcessor",
        "DeleteStreamProcessor",
        "StartFaceDetection",
        "StartFaceSearch",
    }
)

_DETAIL_PARAMS = ("Name", "JobId", "UserId", "MaxResults", "NextToken")
_CLAIMED_KEY = re.compile(r"Credential=([A-Za-z0-9]{1,128})/")
_SAFE = re.compile(r"[^A-Za-z0-9._:/-]")


def _detail(params: dict[str, Any]) -> dict[str, str | int | float | None]:
    detail: dict[str, str | int | float | None] = {}
    for name in _DETAIL_PARAMS:
        value = params.get(name)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            detail[name] = value if isinstance(value, int) else value[:256]
    video = params.get("Video")
    if isinstance(video, dict) and isinstance(video.get("S3Object"), dict):
        s3 = video["S3Object"]
        detail["S3Object"] = f"{s3.get('Bucket')}/{s3.get('Name')}"[:512]
    return detail


def _collection(params: dict[str, Any]) -> str | None:
    collection = params.get("CollectionId")
    if collection is None:
        collection = ((params.get("Settings") or {}).get("FaceSearch") or {}).get("CollectionId")
    return collection if isinstance(collection, str) else None


def record_act(gallery: Gallery, caller: Caller, operation: str, params: dict[str, Any]) -> None:
    """Record an administrative act before it runs (``StoreError`` stops it: no act without its record)."""
    if operation in AUDITED_ACTS:
        gallery.record_event(caller, operation, _collection(params), detail=_detail(params))


def record_read(
    gallery: Gallery, caller: Caller, operation: str, params: dict[str, Any], answer: dict[str, Any]
) -> None:
    """Record a read of enrolment data after it succeeded, before it is answered (fail closed)."""
    if operation not in AUDITED_READS:
        return
    detail = _detail(params)
    for member in ("Faces", "Users", "Persons", "StreamProcessors", "ReviewItems", "UnknownPeople"):
        if isinstance(answer.get(member), list):
            detail["returned"] = len(answer[member])
    faces = answer.get("Faces") if operation == "ListFaces" else None
    matched = tuple(str(f.get("FaceId")) for f in faces if isinstance(f, dict)) if isinstance(faces, list) else ()
    gallery.record_event(caller, operation, _collection(params), matched=matched, detail=detail)


class DeniedAttempts:
    """Records refused requests in the audit trail, at most ``per_minute`` a minute (a token bucket)."""

    def __init__(self, trail: AuditTrail, per_minute: int = 60) -> None:
        self._trail = trail
        self._rate = per_minute / 60.0
        self._capacity = float(per_minute)
        self._tokens = float(per_minute)
        self._stamp = time.monotonic()
        self._suppressed = 0
        self._lock = threading.Lock()

    @property
    def suppressed(self) -> int:
        """Denied attempts not recorded since the last record (the next record carries this count)."""
        return self._suppressed

    def _admit(self) -> int | None:
        """The count left out before this one when it may be recorded now; None when it is left out."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if self._tokens < 1.0:
                self._suppressed += 1
                return None
            self._tokens -= 1.0
            left_out, self._suppressed = self._suppressed, 0
            return left_out

    def record(
        self,
        error_type: str,
        *,
        key_id: str | None,
        authorization: str | None,
        target: str | None,
        client: str | None,
    ) -> bool:
        """Record one denied attempt unless over the rate; True when recorded. Never raises: the request is
        refused either way, and a failing trail is reported by every audited act anyway."""
        left_out = self._admit()
        if left_out is None:
            return False
        if key_id is not None:
            principal = key_id
        else:
            claimed = _CLAIMED_KEY.search(authorization or "")
            principal = f"claimed:{claimed.group(1)}" if claimed else "anonymous"
        operation = _SAFE.sub("?", (target or "").rpartition(".")[2][:64]) or "-"
        detail: dict[str, str | int | float | None] = {
            "error": error_type,
            "operation": operation,
            "client": _SAFE.sub("?", (client or "")[:64]),
            "left_out_before": left_out,
        }
        try:
            self._trail.record(AuditEvent("DeniedAttempt", principal, detail=detail))
        except Exception as exc:
            log.warning("could not record a denied attempt: %s", exc)
            return False
        return True
