"""The gallery: Rekognition's collection operations over an engine, a store and an audit trail.

``core`` holds the ``Gallery`` itself, ``results`` the records its operations return, ``quality_filter``
Rekognition's QualityFilter levels.
"""

from __future__ import annotations

from facetrace.gallery.core import DEFAULT_MATCH_THRESHOLD, MAX_FACES_PER_USER, Gallery
from facetrace.gallery.quality_filter import QUALITY_BARS, QualityBar, parse_quality_filter, quality_reasons
from facetrace.gallery.results import (
    Association,
    Deletion,
    Disassociation,
    FaceSearch,
    ImageSearch,
    IndexedFace,
    IndexResult,
    UnindexedFace,
    UnsuccessfulFace,
    UserImageSearch,
    UserSearch,
)

__all__ = [
    "DEFAULT_MATCH_THRESHOLD",
    "MAX_FACES_PER_USER",
    "QUALITY_BARS",
    "Association",
    "Deletion",
    "Disassociation",
    "FaceSearch",
    "Gallery",
    "ImageSearch",
    "IndexResult",
    "IndexedFace",
    "QualityBar",
    "UnindexedFace",
    "UnsuccessfulFace",
    "UserImageSearch",
    "UserSearch",
    "parse_quality_filter",
    "quality_reasons",
]
