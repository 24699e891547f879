"""Unknown people: unidentified tracks grouped across cameras and days, so "the same stranger" can be named.

When a processor keeps unidentified faces, every track that ends with nobody named (``UnresolvedTrack``)
is placed by incremental clustering on calibrated similarity:

- a group's *template* is the quality-weighted mean of its members' track templates (each a mean of frames);
- a face joins the group whose template it resembles most, only if that similarity reaches ``join_threshold``
  (95 by default: ≈ 1e-5 FMR) **and** it reaches ``member_threshold`` (90) with at least ``min_agreeing`` of the
  group's heaviest members (all of them when the group has fewer): a face never joins on one chance link
  with one member, the weakness of single-linkage clustering that chains different people together;
- otherwise it starts a new group.

Scores use the calibration's quality bands (``pair_quality``), as searches do. Groups live
``retention_days`` (7 by default, shorter than sightings') after they were last seen. ``name`` makes a user of
a group with its heaviest faces (CreateUser, then the faces added and associated, all audited).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import numpy as np

from facetrace.audit import LOCAL_CALLER, Caller
from facetrace.calibration import pair_quality
from facetrace.errors import ConflictError, InvalidParameterError, NotFoundError
from facetrace.gallery import Gallery
from facetrace.store.records import UnknownFace, UnknownPerson, UnknownRepository
from facetrace.types import BoundingBox, Vector
from facetrace.validation import check_collection_id, check_int, check_percent, check_user_id
from facetrace.video.analysis import UnresolvedTrack

__all__ = ["DEFAULT_UNKNOWN_RETENTION_DAYS", "GroupingSettings", "UnknownObserver", "UnknownPeople"]

DEFAULT_UNKNOWN_RETENTION_DAYS = 7.0
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class GroupingSettings:
    """When a face joins a group; see the module docstring."""

    join_threshold: float = 95.0
    member_threshold: float = 90.0
    min_agreeing: int = 2
    members_checked: int = 5
    retention_days: float = DEFAULT_UNKNOWN_RETENTION_DAYS

    def __post_init__(self) -> None:
        check_percent(self.join_threshold, "join_threshold")
        check_percent(self.member_threshold, "member_threshold")
        check_int(self.min_agreeing, "min_agreeing", 1, 20)
        check_int(self.members_checked, "members_checked", 1, 50)
        if not 0.0 < self.retention_days <= 36500:
            raise InvalidParameterError("retention must be more than 0 and at most 36500 days")


def _vector(data: bytes) -> Vector:
    return np.frombuffer(data, dtype="<f4").astype(np.float32)


class UnknownPeople:
    """Groups unidentified faces of one store's database (``UnknownRepository``) and names them."""

    def __init__(self, gallery: Gallery, repository: UnknownRepository, settings: GroupingSettings | None = None):
        self.gallery = gallery
        self.repository = repository
        self.settings = settings or GroupingSettings()

    def add(self, track: UnresolvedTrack, collection_id: str, *, source: str) -> UnknownPerson:
        """Place ``track`` in the group it consistently matches, or a new one; returns that group."""
        settings = self.settings
        now = time.time()
        best: tuple[float, UnknownPerson] | None = None
        for person, faces in self.repository.groups(collection_id, now):
            score = self._joins(track, faces)
            if score is not None and (best is None or score > best[0]):
                best = (score, person)
        face = UnknownFace(
            face_id=str(uuid.uuid4()), unknown_id=best[1].unknown_id if best else str(uuid.uuid4()),
            collection_id=collection_id, source=source, camera=track.camera, track_id=track.track_id,
            seen_at=track.started_at, vector=np.asarray(track.template, dtype="<f4").tobytes(),
            quality=track.template_quality, weight=max(track.evidence, 1e-3),
            thumbnail=track.thumbnails[0] if track.thumbnails else None,
            expires_at=max(track.ended_at, now) + settings.retention_days * DAY,
        )  # fmt: skip
        return self.repository.add_face(face, best[1] if best else None)

    def _joins(self, track: UnresolvedTrack, faces: list[UnknownFace]) -> float | None:
        """The similarity of ``track`` to the group's template if it joins the group, else None."""
        settings, engine = self.settings, self.gallery.engine
        vectors = np.stack([_vector(f.vector) for f in faces])
        weights = np.asarray([f.weight for f in faces], dtype=np.float32)
        template = (weights[:, None] * vectors).sum(axis=0)
        template = (template / max(float(np.linalg.norm(template)), 1e-12)).astype(np.float32)
        worst = min((f.quality for f in faces), default=None, key=lambda q: q if q is not None else -1.0)
        group_quality = None if any(f.quality is None for f in faces) else worst
        score = engine.similarity(track.template, template, pair_quality(track.template_quality, group_quality))
        if score < settings.join_threshold:
            return None
        heaviest = sorted(faces, key=lambda f: -f.weight)[: settings.members_checked]
        agreeing = sum(
            engine.similarity(track.template, _vector(f.vector), pair_quality(track.template_quality, f.quality))
            >= settings.member_threshold
            for f in heaviest
        )
        return score if agreeing >= min(settings.min_agreeing, len(heaviest)) else None

    def people(
        self, *, collection_ids: tuple[str, ...] | None = None, limit: int = 100, offset: int = 0
    ) -> list[UnknownPerson]:
        check_int(limit, "limit", 1, 1000)
        if offset < 0:
            raise InvalidParameterError("offset must be >= 0")
        return self.repository.find(collection_ids, time.time(), limit, offset)

    def get(self, unknown_id: str) -> UnknownPerson:
        person = self.repository.get(_check_id(unknown_id))
        if person is None or person.expires_at <= time.time():
            raise NotFoundError(f"there is no unknown person {unknown_id!r}")
        return person

    def faces(self, unknown_id: str, *, thumbnails: bool = False) -> list[UnknownFace]:
        return self.repository.faces(self.get(unknown_id).unknown_id, thumbnails=thumbnails)

    def name(
        self, unknown_id: str, user_id: str, *, max_faces: int = 5, caller: Caller = LOCAL_CALLER
    ) -> list[str]:
        """Make ``user_id`` in the group's collection with its ``max_faces`` heaviest faces; returns their new
        FaceIds. The group is kept, marked with the user, and no longer grows."""
        check_user_id(user_id)
        check_int(max_faces, "max_faces", 1, 100)
        person = self.get(unknown_id)
        if person.named_user is not None:
            raise ConflictError(f"unknown #{person.number} was named {person.named_user} already")
        faces = sorted(self.repository.faces(person.unknown_id), key=lambda f: -f.weight)[:max_faces]
        collection_id = check_collection_id(person.collection_id)
        self.gallery.record_event(
            caller, "NameUnknownPerson", collection_id, match_count=len(faces),
            detail={"unknown_id": person.unknown_id, "number": person.number, "user_id": user_id},
        )  # fmt: skip
        self.gallery.create_user(collection_id, user_id, caller=caller)
        face_ids = [
            self.gallery.index_vector(
                collection_id, _vector(face.vector), bounding_box=BoundingBox(0.0, 0.0, 1.0, 1.0),
                confidence=100.0, quality=face.quality, caller=caller, origin=f"unknown:{person.unknown_id}",
            ).face_id
            for face in faces
        ]  # fmt: skip
        self.gallery.associate_faces(collection_id, user_id, face_ids, threshold=0.0, caller=caller)
        self.repository.mark_named(person.unknown_id, user_id)
        return face_ids

    def sweep(self, now: float | None = None) -> int:
        return self.repository.sweep(time.time() if now is None else now)


class UnknownObserver:
    """A ``TrackObserver`` that groups a source's unresolved tracks into unknown people."""

    def __init__(self, people: UnknownPeople, collection_id: str, *, source: str) -> None:
        self.people = people
        self.collection_id = check_collection_id(collection_id)
        self.source = source

    def observe(self, track: UnresolvedTrack) -> None:
        self.people.add(track, self.collection_id, source=self.source)


def _check_id(unknown_id: str) -> str:
    try:
        return str(uuid.UUID(unknown_id))
    except (ValueError, TypeError, AttributeError):
        raise InvalidParameterError("an unknown person's id is a UUID") from None
