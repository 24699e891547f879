"""The review queue: tracks whose best match is plausible but not certain, answered by a person.

facetrace names someone automatically only at the identification threshold (99 by default, ≈ one false match
per million comparisons). A track whose best candidates score between a *review threshold* (90 by default,
≈ 1e-4) and that threshold becomes a ``ReviewItem``: its best thumbnails, up to five candidates with their
similarity and false match rate, camera and time. It is neither an event nor a sighting. A reviewer then

- **confirms** one candidate: a sighting marked ``confirmed_by`` the reviewer's key is stored, and optionally
  the track's best face is enrolled to that person (its user, or its ExternalImageId), so later tracks of
  them score higher (docs/review.md measures how much);
- **rejects** a candidate ("not this person"): the candidate is struck from the item and is never offered
  again for that track (same source and track id); when every candidate is struck the item is REJECTED.

Every answer is audited before it is stored (fail closed) and kept in ``review_decisions`` after the item
expires. A rejection is about one track: the same person is offered again for later tracks, which are new
evidence (docs/review.md).
"""

from __future__ import annotations

import collections
import time
import uuid
from dataclasses import replace

import numpy as np

from facetrace.audit import LOCAL_CALLER, Caller
from facetrace.errors import ConflictError, InvalidParameterError, NotFoundError
from facetrace.gallery import DEFAULT_MATCH_THRESHOLD, Gallery
from facetrace.store.records import (
    ReviewCandidate,
    ReviewDecision,
    ReviewItem,
    ReviewQuery,
    ReviewRepository,
    Sighting,
)
from facetrace.validation import check_int, check_percent
from facetrace.video.analysis import UnresolvedTrack
from facetrace.video.identity import CollectionMatcher, person_key

__all__ = [
    "DEFAULT_REVIEW_THRESHOLD",
    "REVIEW_STATUSES",
    "ReviewObserver",
    "ReviewQueue",
]

DEFAULT_REVIEW_THRESHOLD = 90.0
REVIEW_STATUSES = ("PENDING", "CONFIRMED", "REJECTED")
MAX_CANDIDATES = 5
DAY = 86400.0


class ReviewQueue:
    """Review items of one store's database (``ReviewRepository``), offered, listed and answered."""

    def __init__(self, gallery: Gallery, repository: ReviewRepository) -> None:
        self.gallery = gallery
        self.repository = repository

    # -- offering ----------------------------------------------------------------------------------------

    def offer(
        self,
        track: UnresolvedTrack,
        matcher: CollectionMatcher,
        *,
        source: str,
        match_threshold: float,
        retention_days: float = 30.0,
        caller: Caller = LOCAL_CALLER,
    ) -> ReviewItem | None:
        """Make a review item of ``track`` if its best candidates (``matcher`` searches at the review
        threshold) fall below ``match_threshold``; None when nobody is near enough, or every candidate was
        rejected for this track before."""
        matches = matcher.search(track.template, MAX_CANDIDATES, track.template_quality)
        if not matches or matches[0].similarity >= match_threshold:
            return None  # nobody plausible, or identified (its sighting is the pipeline's)
        rejected = self.repository.rejected(source, track.track_id)
        candidates = tuple(
            ReviewCandidate(
                face_id=m.face.face_id, user_id=m.face.user_id, external_image_id=m.face.external_image_id,
                similarity=round(m.similarity, 3), person=person_key(m),
            )
            for m in matches
            if person_key(m) not in rejected
        )  # fmt: skip
        if not candidates:
            return None
        now = time.time()
        item = ReviewItem(
            item_id=str(uuid.uuid4()), collection_id=matcher.collection_id, source=source, camera=track.camera,
            track_id=track.track_id, started_at=track.started_at, ended_at=track.ended_at,
            start_stream_ms=track.start_stream_ms, end_stream_ms=track.end_stream_ms,
            bounding_box=track.bounding_box, candidates=candidates, review_threshold=matcher.threshold,
            match_threshold=match_threshold, template_quality=track.template_quality,
            vector=np.asarray(track.best_vector, dtype="<f4").tobytes(), vector_quality=track.best_quality,
            vector_confidence=track.best_confidence, created_at=now,
            expires_at=track.started_at + retention_days * DAY, thumbnails=track.thumbnails,
        )  # fmt: skip
        # The candidates are a search's answer about a person: audited before they are kept (fail closed).
        self.gallery.record_event(
            caller, "ReviewItemCreated", matcher.collection_id, threshold=matcher.threshold,
            match_count=len(candidates), matched=tuple(c.face_id for c in candidates),
            detail={"item_id": item.item_id, "source": source, "track_id": track.track_id},
        )  # fmt: skip
        self.repository.add(item)
        return item

    # -- reading -----------------------------------------------------------------------------------------

    def items(
        self,
        *,
        status: str | None = "PENDING",
        collection_ids: tuple[str, ...] | None = None,
        source: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[ReviewItem]:
        """Live items, newest first; ``collection_ids`` limits them (a key scoped to some collections)."""
        if status is not None and status not in REVIEW_STATUSES:
            raise InvalidParameterError(f"status must be one of {', '.join(REVIEW_STATUSES)}")
        check_int(limit, "limit", 1, 1000)
        if offset < 0:
            raise InvalidParameterError("offset must be >= 0")
        query = ReviewQuery(status, collection_ids, source, limit, offset)
        return self.repository.find(query, time.time())

    def get(self, item_id: str, *, thumbnails: bool = False) -> ReviewItem:
        item = self.repository.get(_check_id(item_id), thumbnails=thumbnails)
        if item is None or item.expires_at <= time.time():
            raise NotFoundError(f"there is no review item {item_id!r}")
        return item

    def decisions(self, item_id: str) -> list[ReviewDecision]:
        return self.repository.decisions(_check_id(item_id))

    # -- answering ---------------------------------------------------------------------------------------

    def confirm(
        self,
        item_id: str,
        *,
        person: str | None = None,
        enrol: bool = False,
        retention_days: float = 30.0,
        caller: Caller = LOCAL_CALLER,
    ) -> ReviewItem:
        """The track is ``person`` (a candidate's person key or FaceId; default the best one still offered):
        store a confirmed sighting, and with ``enrol`` add the track's best face to that person."""
        item = self._pending(item_id)
        candidate = _candidate(item, person)
        if not self.gallery.store.get_faces(item.collection_id, [candidate.face_id]):
            raise NotFoundError(f"the candidate's face {candidate.face_id} was deleted; reject this candidate")
        self.gallery.record_event(
            caller, "ConfirmReviewItem", item.collection_id, threshold=item.review_threshold, match_count=1,
            matched=(candidate.face_id,),
            detail={"item_id": item.item_id, "person": candidate.person, "similarity": candidate.similarity,
                    "enrol": int(enrol)},
        )  # fmt: skip
        enrolled = self._enrol(item, candidate, caller) if enrol else None
        now = time.time()
        sighting = Sighting(
            sighting_id=str(uuid.uuid4()), source=item.source, camera=item.camera, track_id=item.track_id,
            started_at=item.started_at, ended_at=item.ended_at, start_stream_ms=item.start_stream_ms,
            end_stream_ms=item.end_stream_ms, face_id=candidate.face_id, user_id=candidate.user_id,
            external_image_id=candidate.external_image_id, similarity=candidate.similarity,
            bounding_box=item.bounding_box, expires_at=item.started_at + retention_days * DAY,
            snapshot=item.thumbnails[0] if item.thumbnails else None, collection_id=item.collection_id,
            confirmed_by=caller.principal,
        )  # fmt: skip
        decided = replace(
            item, status="CONFIRMED", decided_at=now, decided_by=caller.principal,
            confirmed_person=candidate.person, sighting_id=sighting.sighting_id, enrolled_face_id=enrolled,
            thumbnails=(),
        )  # fmt: skip
        decision = ReviewDecision(item.item_id, "CONFIRM", candidate.person, caller.principal, None, now)
        if not self.repository.decide(decided, [decision], sighting):
            raise ConflictError(f"review item {item_id} was answered meanwhile")
        return decided

    def reject(
        self,
        item_id: str,
        *,
        person: str | None = None,
        reason: str | None = None,
        caller: Caller = LOCAL_CALLER,
    ) -> ReviewItem:
        """The track is not ``person`` (default: none of the candidates still offered). Rejected persons are
        never offered again for this track; the item is REJECTED when none is left."""
        if reason is not None and (len(reason) > 1000 or not reason.isprintable()):
            raise InvalidParameterError("reason must be at most 1000 printable characters")
        item = self._pending(item_id)
        struck = (
            [_candidate(item, person)] if person is not None else [c for c in item.candidates if not c.rejected_by]
        )
        persons = {c.person for c in struck}
        self.gallery.record_event(
            caller, "RejectReviewItem", item.collection_id, threshold=item.review_threshold, match_count=0,
            matched=tuple(c.face_id for c in struck),
            detail={"item_id": item.item_id, "persons": ",".join(sorted(persons)), "reason": reason},
        )  # fmt: skip
        candidates = tuple(
            replace(c, rejected_by=caller.principal) if c.person in persons else c for c in item.candidates
        )
        left = [c for c in candidates if not c.rejected_by]
        now = time.time()
        decided = replace(
            item, candidates=candidates, status="PENDING" if left else "REJECTED",
            decided_at=None if left else now, decided_by=None if left else caller.principal, thumbnails=(),
        )  # fmt: skip
        decisions = [
            ReviewDecision(item.item_id, "REJECT", p, caller.principal, reason, now) for p in sorted(persons)
        ]
        if not self.repository.decide(decided, decisions):
            raise ConflictError(f"review item {item_id} was answered meanwhile")
        return decided

    def sweep(self, now: float | None = None) -> int:
        return self.repository.sweep(time.time() if now is None else now)

    # -- internals ---------------------------------------------------------------------------------------

    def _pending(self, item_id: str) -> ReviewItem:
        item = self.get(item_id, thumbnails=True)
        if item.status != "PENDING":
            raise ConflictError(f"review item {item_id} is {item.status} already")
        return item

    def _enrol(self, item: ReviewItem, candidate: ReviewCandidate, caller: Caller) -> str | None:
        """Add the track's best face to the confirmed person: associated to their user, or carrying their
        ExternalImageId (a person known by one photo gains a second)."""
        if item.vector is None or item.bounding_box is None:
            return None
        vector = np.frombuffer(item.vector, dtype="<f4").astype(np.float32)
        record = self.gallery.index_vector(
            item.collection_id, vector, bounding_box=item.bounding_box,
            confidence=item.vector_confidence or 0.0, quality=item.vector_quality,
            external_image_id=candidate.external_image_id, caller=caller, origin=f"review:{item.item_id}",
        )  # fmt: skip
        if candidate.user_id:
            # the reviewer vouched for the match: no similarity floor between the new face and the user's
            self.gallery.associate_faces(
                item.collection_id, candidate.user_id, [record.face_id], threshold=0.0, caller=caller
            )
        return record.face_id


class ReviewObserver:
    """A ``TrackObserver`` that offers a source's unresolved tracks to the review queue."""

    def __init__(
        self,
        queue: ReviewQueue,
        collection_id: str,
        *,
        source: str,
        review_threshold: float = DEFAULT_REVIEW_THRESHOLD,
        match_threshold: float = DEFAULT_MATCH_THRESHOLD,
        retention_days: float = 30.0,
        caller: Caller = LOCAL_CALLER,
    ) -> None:
        review_threshold = check_percent(review_threshold, "review_threshold")
        if review_threshold >= match_threshold:
            raise InvalidParameterError("the review threshold must be below the match threshold")
        self.queue = queue
        self.matcher = CollectionMatcher(queue.gallery, collection_id, review_threshold)
        self.source = source
        self.match_threshold = match_threshold
        self.retention_days = retention_days
        self.caller = caller
        self.offered: collections.deque[ReviewItem] = collections.deque(
            maxlen=64
        )  # the latest, for logs and tests

    def observe(self, track: UnresolvedTrack) -> None:
        item = self.queue.offer(
            track, self.matcher, source=self.source, match_threshold=self.match_threshold,
            retention_days=self.retention_days, caller=self.caller,
        )  # fmt: skip
        if item is not None:
            self.offered.append(item)


def _check_id(item_id: str) -> str:
    try:
        return str(uuid.UUID(item_id))
    except (ValueError, TypeError, AttributeError):
        raise InvalidParameterError("a review item id is a UUID") from None


def _candidate(item: ReviewItem, person: str | None) -> ReviewCandidate:
    offered = [c for c in item.candidates if not c.rejected_by]
    if person is None:
        if not offered:
            raise ConflictError(f"review item {item.item_id} has no candidate left")
        return offered[0]
    for c in offered:
        if person in (c.person, c.face_id, c.user_id, c.external_image_id):
            return c
    raise InvalidParameterError(f"{person!r} is not a candidate still offered by review item {item.item_id}")
