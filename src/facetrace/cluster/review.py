"""The review queue and unknown people fed by processor actors, each write made once: ``ClaimObserver``.

A processor actor (``cluster/processors.py``) hands the tracks that end unidentified to the same observers as
an in-process processor — ``ReviewObserver`` (a review item when the best match is between the review and the
identification threshold, audited before it is kept) and ``UnknownObserver`` (the face grouped into unknown
people) — each wrapped in a ``ClaimObserver``, which makes the write at most once per track and only from the
copy of the actor that holds the processor's lease:

1. the track id is rebased above the previous incarnations' (``TRACK_BLOCK``), as the actor's events are, so a
   review item, its sighting once confirmed and the track's events share one id;
2. the write is *claimed* in ``stream_events`` under (processor, kind, track, stream ms) with a kind of its own
   (``review``, ``unknown``) — inserted only while the actor's lease is held, checked by the database's clock in
   the same statement (``EventLog.claim_write``): a copy on a node cut off from the cluster, still running
   while Ray restarts the actor elsewhere, writes nothing once its lease expired, even before its heartbeat
   notices; a key claimed before (the same track offered twice) writes nothing either;
3. only a write claimed now is made; if it fails (the audit trail or the store refused it) the claim is given
   back (deleted), so the track can be offered again, and the failure goes to the stream worker, which logs it
   as it logs any observer's (a lost review item is not an identification made unaudited); once made, the
   claim is marked done.

An actor that dies between its claim and its write (the process killed mid-write) leaves a claim that is not
done and no item: such a track is lost to review rather than offered twice.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from facetrace.cluster.processors import EventLog, Fence, WriteClaim
from facetrace.review import ReviewObserver, UnknownObserver
from facetrace.video.analysis import TrackObserver, UnresolvedTrack

__all__ = ["REVIEW_KIND", "UNKNOWN_KIND", "ClaimObserver", "claim_kind"]

log = logging.getLogger(__name__)

REVIEW_KIND = "review"
UNKNOWN_KIND = "unknown"


def claim_kind(observer: TrackObserver) -> str:
    """The ``stream_events`` kind of an observer's writes."""
    if isinstance(observer, ReviewObserver):
        return REVIEW_KIND
    if isinstance(observer, UnknownObserver):
        return UNKNOWN_KIND
    return type(observer).__name__.lower()


class ClaimObserver:
    """A ``TrackObserver`` that claims each track's write before ``inner`` makes it (module docstring)."""

    def __init__(
        self,
        inner: TrackObserver,
        log_: EventLog,
        *,
        node: str,
        track_base: int,
        fence: Fence,
        kind: str | None = None,
    ) -> None:
        """``kind``: of the claims (default ``claim_kind(inner)``)."""
        self.inner = inner
        self.kind = kind or claim_kind(inner)
        self._log = log_
        self._node = node
        self._base = track_base
        self._fence = fence

    def observe(self, track: UnresolvedTrack) -> None:
        track = replace(track, track_id=self._base + track.track_id)
        claim = WriteClaim(
            processor=track.processor, kind=self.kind, track_id=track.track_id, at_ms=track.start_stream_ms,
            wall_time=track.ended_at,
            payload={"Type": self.kind, "Processor": track.processor, "Camera": track.camera,
                     "TrackId": track.track_id, "StartStreamMs": track.start_stream_ms,
                     "EndStreamMs": track.end_stream_ms},
        )  # fmt: skip
        claim_id = self._log.claim_write(claim, self._node, self._fence)
        if claim_id is None:
            log.info("%s of track %d of %s not written: made before, or this copy lost its lease",
                     self.kind, track.track_id, track.processor)  # fmt: skip
            return
        try:
            self.inner.observe(track)
        except BaseException:
            self._log.abandon(claim_id)  # a successor (or a retry) may make it
            raise
        self._log.finish(claim_id, relay=False)
