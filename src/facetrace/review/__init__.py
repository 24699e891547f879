"""The human in the loop: a review queue for plausible-but-uncertain matches, and unknown people.

``ReviewQueue`` (``review/queue.py``) keeps tracks whose best match fell between the review threshold (90) and
the identification threshold (99) for a person to confirm or reject; ``UnknownPeople`` (``review/unknowns.py``)
groups unidentified tracks into strangers seen again and again, to be named. Both are fed by stream processors
and stored-video jobs through ``TrackObserver`` (``video/analysis.py``); nothing here is an event or a
sighting until a person says so. See docs/review.md.
"""

from __future__ import annotations

from facetrace.review.queue import DEFAULT_REVIEW_THRESHOLD, REVIEW_STATUSES, ReviewObserver, ReviewQueue
from facetrace.review.unknowns import (
    DEFAULT_UNKNOWN_RETENTION_DAYS,
    GroupingSettings,
    UnknownObserver,
    UnknownPeople,
)

__all__ = [
    "DEFAULT_REVIEW_THRESHOLD",
    "DEFAULT_UNKNOWN_RETENTION_DAYS",
    "REVIEW_STATUSES",
    "GroupingSettings",
    "ReviewObserver",
    "ReviewQueue",
    "UnknownObserver",
    "UnknownPeople",
]
