"""The gallery: Rekognition's collection operations, composed from an engine, a store and an audit sink.

This is the library surface the CLI, the HTTP service and the video pipeline share. It validates every id
and number it is given, keeps vectors of different models apart, turns similarity thresholds into cosine
bounds once per search, answers "no match" explicitly (an empty ``matches``) instead of the nearest stranger,
and records every search, comparison and change in the audit trail before it returns: a change's record is
committed in the store's own transaction (``audit=``), a search's record (``store.audit``) before its results
are returned, so nothing happens unaudited.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from facetrace import geometry
from facetrace.audit import LOCAL_CALLER, AuditEvent, Caller
from facetrace.calibration import pair_quality
from facetrace.engine import AnalyzedFace, Comparison, FaceEngine
from facetrace.errors import FacetraceError, InvalidParameterError, ModelMismatchError, NoFaceError, NotFoundError
from facetrace.gallery.quality_filter import parse_quality_filter, quality_reasons
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
from facetrace.home import private_dir
from facetrace.imaging import Image, ImageSource
from facetrace.store.base import CollectionInfo, FaceStore, Neighbor, Page, UserNeighbor
from facetrace.store.ui_records import ui_records_of
from facetrace.thumbnails import face_thumbnail
from facetrace.types import (
    BoundingBox,
    FaceMatch,
    FaceRecord,
    QualityFilter,
    UnindexedReason,
    UserMatch,
    UserRecord,
    Vector,
)
from facetrace.validation import (
    check_collection_id,
    check_external_image_id,
    check_face_id,
    check_face_ids,
    check_int,
    check_percent,
    check_user_id,
)

__all__ = ["DEFAULT_MATCH_THRESHOLD", "MAX_FACES_PER_USER", "Gallery"]

log = logging.getLogger(__name__)
_Hit = TypeVar("_Hit", Neighbor, UserNeighbor)

DEFAULT_MATCH_THRESHOLD = 99.0
"""Default similarity for 1:N identification: about one false match in a million comparisons (docs/accuracy.md)."""
MAX_FACES_PER_USER = 100
OVERFETCH = 4
"""A banded search first asks the store for this many times the candidates it needs (see ``_candidates``)."""
MAX_CANDIDATES = 65_536
"""...and grows the request up to this many; past it, candidates ranked lower by cosine may be missed."""


class Gallery:
    """Collections of faces you can search. Thread-safe when its engine and store are."""

    def __init__(
        self,
        engine: FaceEngine,
        store: FaceStore,
        *,
        image_dir: Path | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self._image_dir = image_dir

    @property
    def model(self) -> str:
        """The FaceModelVersion of vectors this gallery makes (e.g. ``sface-2021dec``)."""
        return self.engine.model.key

    # -- collections -------------------------------------------------------------------------------------

    def create_collection(
        self, collection_id: str, *, thumbnails: bool = True, caller: Caller = LOCAL_CALLER
    ) -> CollectionInfo:
        """A new empty collection; ``thumbnails=False``: no face picture is ever kept for its faces (a store
        without thumbnail tables keeps none anyway)."""
        check_collection_id(collection_id)
        audit = _event(
            caller, "CreateCollection", collection_id, detail=None if thumbnails else {"thumbnails": "no"}
        )
        info = self.store.create_collection(collection_id, self.model, audit=audit)
        kept = ui_records_of(self.store)
        if not thumbnails and kept is not None and kept.thumbnails is not None:
            kept.thumbnails.opt_out(collection_id)
        return info

    def delete_collection(self, collection_id: str, *, caller: Caller = LOCAL_CALLER) -> None:
        check_collection_id(collection_id)
        self.store.delete_collection(collection_id, audit=_event(caller, "DeleteCollection", collection_id))
        if self._image_dir is not None:  # kept images go with their collection
            shutil.rmtree(self._image_dir / collection_id, ignore_errors=True)

    def describe_collection(self, collection_id: str) -> CollectionInfo:
        return self.store.describe_collection(check_collection_id(collection_id))

    def list_collections(self, *, limit: int = 1000, next_token: str | None = None) -> Page[str]:
        return self.store.list_collections(limit=check_int(limit, "limit", 1, 4096), next_token=next_token)

    def _collection(self, collection_id: str) -> CollectionInfo:
        """Describe a collection and make sure its vectors come from this gallery's model."""
        info = self.store.describe_collection(check_collection_id(collection_id))
        if info.model != self.model:
            raise ModelMismatchError(
                f"collection {collection_id} holds {info.model} vectors; this engine makes {self.model} vectors"
            )
        return info

    # -- faces -------------------------------------------------------------------------------------------

    def index_faces(
        self,
        collection_id: str,
        image: ImageSource | Image,
        *,
        external_image_id: str | None = None,
        max_faces: int | None = None,
        quality_filter: QualityFilter | str = QualityFilter.AUTO,
        keep_image: bool = False,
        caller: Caller = LOCAL_CALLER,
        content_hash: str | None = None,
    ) -> IndexResult:
        """Detect faces in ``image`` and add those that pass ``quality_filter``, largest first, up to ``max_faces``.

        ``content_hash``: the sha256 of the image file, recorded with its faces so a bulk import can skip the
        files it indexed before (``indexed_hashes``); an image recorded already is ``AlreadyExistsError``."""
        self._collection(collection_id)
        decoded, detections = self.engine.locate(image)  # reduced where the faces allow it
        faces = self.engine.describe(decoded, detections)
        if keep_image and decoded.reduction != 1:  # a kept image is the full-size one
            decoded = self.engine.load(image)
        return self.index_analyzed(
            collection_id, faces, image=decoded, external_image_id=external_image_id, max_faces=max_faces,
            quality_filter=quality_filter, keep_image=keep_image, caller=caller, content_hash=content_hash,
        )  # fmt: skip

    def index_analyzed(
        self,
        collection_id: str,
        faces: Sequence[AnalyzedFace],
        *,
        image: Image | None = None,
        external_image_id: str | None = None,
        max_faces: int | None = None,
        quality_filter: QualityFilter | str = QualityFilter.AUTO,
        keep_image: bool = False,
        caller: Caller = LOCAL_CALLER,
        content_hash: str | None = None,
    ) -> IndexResult:
        """The commit half of ``index_faces``: filter ``faces`` (analysed by an engine of this gallery's model,
        here or on a cluster worker: ``facetrace.cluster.indexing``) and store them with their audit record
        in one transaction. ``image`` is needed only to ``keep_image``."""
        self._collection(collection_id)
        if external_image_id is not None:
            check_external_image_id(external_image_id)
        if max_faces is not None:
            check_int(max_faces, "max_faces", 1, 100)
        if content_hash is not None and not _is_sha256(content_hash):
            raise InvalidParameterError("content_hash must be a sha256 in 64 lowercase hex digits")
        if keep_image and image is None:
            raise InvalidParameterError("keep_image needs the decoded image")
        level = parse_quality_filter(quality_filter)
        indexed: list[IndexedFace] = []
        unindexed: list[UnindexedFace] = []
        image_id = str(uuid.uuid4())
        now = time.time()
        for face in faces:  # largest first
            reasons = quality_reasons(face, level)
            if reasons:
                unindexed.append(UnindexedFace(face, reasons))
            elif max_faces is not None and len(indexed) >= max_faces:
                unindexed.append(UnindexedFace(face, (UnindexedReason.EXCEEDS_MAX_FACES,)))
            else:
                record = FaceRecord(
                    face_id=str(uuid.uuid4()),
                    bounding_box=face.detail.bounding_box,
                    image_id=image_id,
                    confidence=face.detail.confidence,
                    model=self.model,
                    external_image_id=external_image_id,
                    created_at=now,
                    quality=face.quality_score,
                )
                indexed.append(IndexedFace(record, face))
        audit = _event(
            caller,
            "IndexFaces",
            collection_id,
            match_count=len(indexed),
            matched=tuple(i.record.face_id for i in indexed),
            detail={"external_image_id": external_image_id, "unindexed": len(unindexed)},
        )
        self.store.add_faces(
            collection_id,
            [(item.record, _vector(item.face)) for item in indexed],
            audit=audit,
            content_hash=content_hash,
        )
        if image is not None:
            self._keep_thumbnails(collection_id, image, indexed)
        if indexed and keep_image and image is not None:
            self._keep_image(collection_id, image_id, image)
        return IndexResult(tuple(indexed), tuple(unindexed), self.model, image_id)

    def indexed_hashes(self, collection_id: str, content_hashes: Sequence[str]) -> set[str]:
        """Which of these image content hashes (sha256 hex) were indexed into the collection already."""
        check_collection_id(collection_id)
        if not all(_is_sha256(h) for h in content_hashes):
            raise InvalidParameterError("content hashes must be sha256 in 64 lowercase hex digits")
        return self.store.indexed_hashes(collection_id, content_hashes) if content_hashes else set()

    def index_vector(
        self,
        collection_id: str,
        vector: Vector,
        *,
        bounding_box: BoundingBox,
        confidence: float,
        quality: float | None,
        external_image_id: str | None = None,
        caller: Caller = LOCAL_CALLER,
        origin: str = "video",
    ) -> FaceRecord:
        """Add one face already embedded by this engine (a reviewed track's best frame, an unknown person's
        face): what IndexFaces stores, without the image. ``origin`` goes to the audit record."""
        self._collection(collection_id)
        if external_image_id is not None:
            check_external_image_id(external_image_id)
        if vector.shape != (self.engine.model.dim,):
            raise ModelMismatchError(f"a {vector.shape} vector is not a {self.model} vector")
        record = FaceRecord(
            face_id=str(uuid.uuid4()), bounding_box=bounding_box, image_id=str(uuid.uuid4()),
            confidence=confidence, model=self.model, external_image_id=external_image_id, created_at=time.time(),
            quality=quality,
        )  # fmt: skip
        audit = _event(
            caller, "IndexFaces", collection_id, match_count=1, matched=(record.face_id,),
            detail={"external_image_id": external_image_id, "origin": origin},
        )  # fmt: skip
        self.store.add_faces(collection_id, [(record, vector)], audit=audit)
        return record

    def keeps_thumbnails(self, collection_id: str) -> bool:
        """Whether indexing into the collection keeps dashboard thumbnails (then ``index_analyzed`` needs the
        decoded image)."""
        kept = ui_records_of(self.store)
        try:
            return kept is not None and kept.thumbnails is not None and kept.thumbnails.enabled(collection_id)
        except FacetraceError:
            return False

    def _keep_thumbnails(self, collection_id: str, image: Image, indexed: Sequence[IndexedFace]) -> None:
        """A small picture of each new face for the dashboard, unless the collection opted out. The faces are
        stored already: a thumbnail that cannot be written is logged, not a failed IndexFaces."""
        kept = ui_records_of(self.store)
        if not indexed or kept is None or kept.thumbnails is None:
            return
        try:
            if not kept.thumbnails.enabled(collection_id):
                return
            scale = image.width / image.original_width  # < 1 when the faces were found in a reduced decode
            pictures = [
                (i.record.face_id, face_thumbnail(image.pixels, geometry.rescaled(i.face.detection, scale)))
                for i in indexed
            ]
            kept.thumbnails.put(collection_id, [(face_id, jpeg) for face_id, jpeg in pictures if jpeg])
        except FacetraceError as exc:
            log.warning("face thumbnails for %s not kept: %s", collection_id, exc)

    def _keep_image(self, collection_id: str, image_id: str, image: Image) -> None:
        if self._image_dir is None:
            raise InvalidParameterError("this gallery has no image directory; images cannot be kept")
        import cv2

        folder = private_dir(self._image_dir / collection_id)
        ok, encoded = cv2.imencode(".jpg", image.pixels, [cv2.IMWRITE_JPEG_QUALITY, 92])
        if ok:
            fd = os.open(folder / f"{image_id}.jpg", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(encoded.tobytes())

    def list_faces(
        self,
        collection_id: str,
        *,
        limit: int = 1000,
        next_token: str | None = None,
        user_id: str | None = None,
        face_ids: Sequence[str] | None = None,
    ) -> Page[FaceRecord]:
        check_collection_id(collection_id)
        if user_id is not None:
            check_user_id(user_id)
        ids = check_face_ids(list(face_ids)) if face_ids is not None else None
        return self.store.list_faces(
            collection_id,
            limit=check_int(limit, "limit", 1, 4096),
            next_token=next_token,
            user_id=user_id,
            face_ids=ids,
        )

    def delete_faces(
        self, collection_id: str, face_ids: Sequence[str], *, caller: Caller = LOCAL_CALLER
    ) -> Deletion:
        """Delete faces. A face that belongs to a user must be disassociated first (as in Rekognition)."""
        check_collection_id(collection_id)
        ids = check_face_ids(list(face_ids))
        found = {face.face_id: face for face in self.store.get_faces(collection_id, ids)}
        unsuccessful, deletable = [], []
        for face_id in dict.fromkeys(ids):
            face = found.get(face_id)
            if face is None:
                unsuccessful.append(UnsuccessfulFace(face_id, ("FACE_NOT_FOUND",)))
            elif face.user_id is not None:
                unsuccessful.append(
                    UnsuccessfulFace(face_id, ("ASSOCIATED_TO_AN_EXISTING_USER",), user_id=face.user_id)
                )
            else:
                deletable.append(face_id)
        audit = _event(caller, "DeleteFaces", collection_id, match_count=len(deletable), matched=tuple(deletable))
        deleted = self.store.delete_faces(collection_id, deletable, audit=audit)
        if self._image_dir is not None:  # a kept image shows the deleted face: it goes too
            for image_id in {found[face_id].image_id for face_id in deleted}:
                (self._image_dir / collection_id / f"{image_id}.jpg").unlink(missing_ok=True)
        return Deletion(tuple(deleted), tuple(unsuccessful))

    # -- search ------------------------------------------------------------------------------------------

    def search_faces(
        self,
        collection_id: str,
        face_id: str,
        *,
        max_faces: int = 80,
        threshold: float = DEFAULT_MATCH_THRESHOLD,
        caller: Caller = LOCAL_CALLER,
    ) -> FaceSearch:
        """Faces in the collection like the stored face ``face_id`` (itself excluded), best first."""
        self._collection(collection_id)
        check_face_id(face_id)
        check_int(max_faces, "max_faces", 1, 4096)
        threshold = check_percent(threshold, "threshold")
        vector = self.store.get_vector(collection_id, face_id)
        quality = self._stored_quality(collection_id, face_id)
        matches = self._search(collection_id, vector, quality, max_faces, threshold, exclude=face_id)
        self._record_search(caller, "SearchFaces", collection_id, threshold, matches, {"face_id": face_id})
        return FaceSearch(face_id, matches, self.model)

    def search_faces_by_image(
        self,
        collection_id: str,
        image: ImageSource | Image,
        *,
        max_faces: int = 80,
        threshold: float = DEFAULT_MATCH_THRESHOLD,
        quality_filter: QualityFilter | str = QualityFilter.NONE,
        caller: Caller = LOCAL_CALLER,
    ) -> ImageSearch:
        """Faces like the largest face in ``image``, best first; ``matches`` is empty when nobody is close enough."""
        self._collection(collection_id)
        check_int(max_faces, "max_faces", 1, 4096)
        threshold = check_percent(threshold, "threshold")
        probe, _ = self._probe(image, parse_quality_filter(quality_filter))
        matches = self._search(collection_id, _vector(probe), probe.quality_score, max_faces, threshold)
        self._record_search(caller, "SearchFacesByImage", collection_id, threshold, matches)
        return ImageSearch(probe, matches, self.model)

    def _probe(
        self, image: ImageSource | Image, level: QualityFilter, *, describe_others: bool = False
    ) -> tuple[AnalyzedFace, list[AnalyzedFace]]:
        """The largest face, embedded and checked against ``level``; with ``describe_others``, the other faces
        too, described but not embedded (only the probe is searched, so only it pays for a vector)."""
        decoded, detections = self.engine.locate(image, 100 if describe_others else 1)
        if not detections:
            raise NoFaceError("there are no faces in the image")
        probe = self.engine.describe(decoded, detections[:1])[0]
        reasons = quality_reasons(probe, level)
        if reasons:
            raise NoFaceError(
                "the largest face in the image does not pass the quality filter: " + ", ".join(reasons)
            )
        others = self.engine.describe(decoded, detections[1:], embed=False) if describe_others else []
        return probe, others

    def search_vector(
        self,
        collection_id: str,
        vector: Vector,
        *,
        max_faces: int = 80,
        threshold: float = DEFAULT_MATCH_THRESHOLD,
        quality: float | None = None,
    ) -> tuple[FaceMatch, ...]:
        """Faces like ``vector`` (a vector this gallery's engine made), best first. **Not audited**: it is the
        building block for callers that search many times on behalf of one audited act (a video job, a
        stream processor's track) and record that act themselves with ``record_event``. ``quality`` is the
        probe's ``AnalyzedFace.quality_score`` (None: unknown, scored with the most conservative curve)."""
        self._collection(collection_id)
        check_int(max_faces, "max_faces", 1, 4096)
        return self._search(collection_id, vector, quality, max_faces, check_percent(threshold, "threshold"))

    def _stored_quality(self, collection_id: str, face_id: str) -> float | None:
        found = self.store.get_faces(collection_id, [face_id])
        return found[0].quality if found else None

    def _candidates(
        self,
        ask: Callable[[int], list[_Hit]],
        score: Callable[[list[_Hit]], list[float]],
        limit: int,
        threshold: float,
        quality: float | None,
    ) -> tuple[list[_Hit], list[float]]:
        """Enough store hits (ranked by cosine) to hold the ``limit`` best by similarity, and their scores.

        With quality bands a candidate ranked lower by cosine may pass its own, more lenient band where one
        ranked higher fails a stricter one. So a banded search asks for ``OVERFETCH`` × ``limit`` and asks
        for more until the store has no more candidates, or none it has not returned can reach the
        threshold or beat the ``limit``-th best score (they all have a lower cosine, so they can score at
        most ``best_similarity`` of the last one), or ``MAX_CANDIDATES`` is reached.
        """
        calibration = self.engine.calibration
        size = limit if len(calibration.bands) == 1 else limit * OVERFETCH
        while True:
            hits = ask(size)
            scores = score(hits)
            if len(hits) < size or size >= MAX_CANDIDATES or len(calibration.bands) == 1:
                return hits, scores
            ceiling = calibration.best_similarity(hits[-1].cosine, quality)
            ranked = sorted(scores, reverse=True)
            if ceiling < threshold or (len(ranked) >= limit and ranked[limit - 1] >= ceiling):
                return hits, scores
            size = min(MAX_CANDIDATES, size * 4)

    def _search(
        self,
        collection_id: str,
        vector: Vector,
        quality: float | None,
        limit: int,
        threshold: float,
        exclude: str | None = None,
    ) -> tuple[FaceMatch, ...]:
        """Faces whose pair with the probe reaches ``threshold`` on the curve of the pair's quality band.

        The store is asked with the most lenient cosine any band could accept (a cosine query); each
        candidate is then scored with its own band's curve and the survivors re-ranked by similarity.
        """
        calibration = self.engine.calibration
        min_cosine = calibration.lenient_cosine_for(threshold, quality)

        def ask(size: int) -> list[Neighbor]:
            return self.store.search(
                collection_id, vector, limit=size, min_cosine=min_cosine, exclude_face_id=exclude
            )

        def score(hits: list[Neighbor]) -> list[float]:
            return [calibration.similarity(h.cosine, pair_quality(quality, h.face.quality)) for h in hits]

        neighbors, scores = self._candidates(ask, score, limit, threshold, quality)
        matches = []
        for neighbor, similarity in zip(neighbors, scores, strict=True):
            if similarity >= threshold:  # the cosine bound is exact up to float rounding; keep the promise
                matches.append(FaceMatch(neighbor.face, round(similarity, 4)))
        matches.sort(key=lambda match: match.similarity, reverse=True)  # stable: ties keep the cosine order
        return tuple(matches[:limit])

    # -- comparison --------------------------------------------------------------------------------------

    def detect_faces(self, image: ImageSource | Image, *, max_faces: int = 100) -> list[AnalyzedFace]:
        """DetectFaces: every face with its details, largest first (no vectors, nothing stored or audited)."""
        check_int(max_faces, "max_faces", 1, 100)
        decoded, detections = self.engine.locate(image, max_faces)  # reduced where the faces allow it
        return self.engine.describe(decoded, detections, embed=False)

    def compare_faces(
        self,
        source: ImageSource | Image,
        target: ImageSource | Image,
        *,
        threshold: float = 80.0,
        quality_filter: QualityFilter | str = QualityFilter.NONE,
        caller: Caller = LOCAL_CALLER,
    ) -> Comparison:
        """CompareFaces, audited like a search. With a quality filter, the source's largest face must pass it
        and target faces that do not are left out of both lists."""
        threshold = check_percent(threshold, "threshold")
        level = parse_quality_filter(quality_filter)
        result = self.engine.compare(source, target, threshold)  # each pair scored on its quality band
        if level is not QualityFilter.NONE:
            reasons = quality_reasons(result.source, level)
            if reasons:
                raise NoFaceError(
                    "the source's largest face does not pass the quality filter: " + ", ".join(reasons)
                )
            result = Comparison(
                source=result.source,
                matches=tuple(pair for pair in result.matches if not quality_reasons(pair[0], level)),
                unmatched=tuple(pair for pair in result.unmatched if not quality_reasons(pair[0], level)),
            )
        self.record_event(caller, "CompareFaces", None, threshold=threshold, match_count=len(result.matches))
        return result

    # -- users -------------------------------------------------------------------------------------------

    def create_user(self, collection_id: str, user_id: str, *, caller: Caller = LOCAL_CALLER) -> UserRecord:
        self._collection(collection_id)
        audit = _event(caller, "CreateUser", collection_id, detail={"user_id": check_user_id(user_id)})
        user = self.store.create_user(collection_id, user_id, audit=audit)
        return _with_status(user)

    def delete_user(self, collection_id: str, user_id: str, *, caller: Caller = LOCAL_CALLER) -> None:
        check_collection_id(collection_id)
        audit = _event(caller, "DeleteUser", collection_id, detail={"user_id": check_user_id(user_id)})
        self.store.delete_user(collection_id, user_id, audit=audit)

    def get_user(self, collection_id: str, user_id: str) -> UserRecord:
        check_collection_id(collection_id)
        return _with_status(self.store.get_user(collection_id, check_user_id(user_id)))

    def list_users(
        self, collection_id: str, *, limit: int = 500, next_token: str | None = None
    ) -> Page[UserRecord]:
        check_collection_id(collection_id)
        page = self.store.list_users(collection_id, limit=check_int(limit, "limit", 1, 500), next_token=next_token)
        return Page(tuple(_with_status(u) for u in page.items), page.next_token)

    def associate_faces(
        self,
        collection_id: str,
        user_id: str,
        face_ids: Sequence[str],
        *,
        threshold: float = 75.0,
        caller: Caller = LOCAL_CALLER,
    ) -> Association:
        """Attach faces to a user. A face must resemble the user's existing faces at ``threshold`` or more."""
        self._collection(collection_id)
        check_user_id(user_id)
        ids = list(dict.fromkeys(check_face_ids(list(face_ids), maximum=100)))
        threshold = check_percent(threshold, "threshold")
        user = self.store.get_user(collection_id, user_id)
        found = {face.face_id: face for face in self.store.get_faces(collection_id, ids)}
        existing = [
            (self.store.get_vector(collection_id, face.face_id), face.quality)
            for face in self.store.list_faces(collection_id, limit=MAX_FACES_PER_USER, user_id=user_id).items
        ]
        accepted: list[str] = []
        unsuccessful: list[UnsuccessfulFace] = []
        for face_id in ids:
            face = found.get(face_id)
            if face is None:
                unsuccessful.append(UnsuccessfulFace(face_id, ("FACE_NOT_FOUND",)))
                continue
            if face.user_id is not None and face.user_id != user_id:
                unsuccessful.append(
                    UnsuccessfulFace(face_id, ("ASSOCIATED_TO_A_DIFFERENT_USER",), user_id=face.user_id)
                )
                continue
            if face.user_id == user_id:
                accepted.append(face_id)
                continue
            if existing:
                vector = self.store.get_vector(collection_id, face_id)
                best = max(
                    self.engine.similarity(vector, other, pair_quality(face.quality, quality))
                    for other, quality in existing
                )
                if best < threshold:
                    unsuccessful.append(
                        UnsuccessfulFace(face_id, ("LOW_MATCH_CONFIDENCE",), user_id=user_id, similarity=best)
                    )
                    continue
            accepted.append(face_id)
        room = MAX_FACES_PER_USER - user.face_count
        if len([f for f in accepted if found[f].user_id is None]) > room:
            raise InvalidParameterError(f"a user can have at most {MAX_FACES_PER_USER} faces")
        audit = _event(
            caller, "AssociateFaces", collection_id, match_count=len(accepted), matched=tuple(accepted),
            detail={"user_id": user_id},
        )  # fmt: skip
        self.store.associate_faces(collection_id, user_id, accepted, audit=audit)
        return Association(tuple(accepted), tuple(unsuccessful), self.get_user(collection_id, user_id))

    def disassociate_faces(
        self, collection_id: str, user_id: str, face_ids: Sequence[str], *, caller: Caller = LOCAL_CALLER
    ) -> Disassociation:
        check_collection_id(collection_id)
        check_user_id(user_id)
        ids = list(dict.fromkeys(check_face_ids(list(face_ids), maximum=100)))
        self.store.get_user(collection_id, user_id)
        found = {face.face_id: face for face in self.store.get_faces(collection_id, ids)}
        unsuccessful = []
        for face_id in ids:
            face = found.get(face_id)
            if face is None:
                unsuccessful.append(UnsuccessfulFace(face_id, ("FACE_NOT_FOUND",)))
            elif face.user_id != user_id:
                unsuccessful.append(
                    UnsuccessfulFace(face_id, ("ASSOCIATED_TO_A_DIFFERENT_USER",), user_id=face.user_id)
                )
        mine = [f for f in ids if f in found and found[f].user_id == user_id]
        audit = _event(
            caller, "DisassociateFaces", collection_id, match_count=len(mine), matched=tuple(mine),
            detail={"user_id": user_id},
        )  # fmt: skip
        done = self.store.disassociate_faces(collection_id, user_id, mine, audit=audit)
        return Disassociation(tuple(done), tuple(unsuccessful), self.get_user(collection_id, user_id))

    def search_users(
        self,
        collection_id: str,
        *,
        face_id: str | None = None,
        user_id: str | None = None,
        max_users: int = 500,
        threshold: float = DEFAULT_MATCH_THRESHOLD,
        caller: Caller = LOCAL_CALLER,
    ) -> UserSearch:
        """Users like a stored face, or like a user's faces (that user excluded), best first."""
        self._collection(collection_id)
        if (face_id is None) == (user_id is None):
            raise InvalidParameterError("give exactly one of face_id and user_id")
        check_int(max_users, "max_users", 1, 500)
        threshold = check_percent(threshold, "threshold")
        if face_id is not None:
            vector = self.store.get_vector(collection_id, check_face_id(face_id))
            vectors = [(vector, self._stored_quality(collection_id, face_id))]
        else:
            self.store.get_user(collection_id, check_user_id(user_id))
            faces = self.store.list_faces(collection_id, limit=MAX_FACES_PER_USER, user_id=user_id).items
            vectors = [(self.store.get_vector(collection_id, face.face_id), face.quality) for face in faces]
        matches = self._search_users(collection_id, vectors, max_users, threshold, exclude=user_id)
        self._record_user_search(caller, "SearchUsers", collection_id, threshold, matches)
        return UserSearch(matches, face_id, user_id, self.model)

    def search_users_by_image(
        self,
        collection_id: str,
        image: ImageSource | Image,
        *,
        max_users: int = 500,
        threshold: float = DEFAULT_MATCH_THRESHOLD,
        quality_filter: QualityFilter | str = QualityFilter.NONE,
        caller: Caller = LOCAL_CALLER,
    ) -> UserImageSearch:
        """Users like the largest face in ``image``; the other faces are reported as not searched."""
        self._collection(collection_id)
        check_int(max_users, "max_users", 1, 500)
        threshold = check_percent(threshold, "threshold")
        probe, others = self._probe(image, parse_quality_filter(quality_filter), describe_others=True)
        unsearched = tuple(UnindexedFace(face, ("FACE_NOT_LARGEST",)) for face in others)
        matches = self._search_users(collection_id, [(_vector(probe), probe.quality_score)], max_users, threshold)
        self._record_user_search(caller, "SearchUsersByImage", collection_id, threshold, matches)
        return UserImageSearch(probe, matches, unsearched, self.model)

    def search_users_vector(
        self,
        collection_id: str,
        vector: Vector,
        *,
        max_users: int = 500,
        threshold: float = DEFAULT_MATCH_THRESHOLD,
        quality: float | None = None,
    ) -> tuple[UserMatch, ...]:
        """Users like ``vector`` (scored by their template), best first; ``quality`` is the probe's face quality
        (None: unknown, the cautious band). **Not audited**, like ``search_vector``: for callers that search many
        times on behalf of one act they record themselves."""
        self._collection(collection_id)
        check_int(max_users, "max_users", 1, 500)
        return self._search_users(
            collection_id, [(vector, quality)], max_users, check_percent(threshold, "threshold")
        )

    def _search_users(
        self,
        collection_id: str,
        probes: list[tuple[Vector, float | None]],
        limit: int,
        threshold: float,
        exclude: str | None = None,
    ) -> tuple[UserMatch, ...]:
        """Users whose best face (by cosine) reaches ``threshold`` on the curve of its pair's quality band.

        Each probe asks the store with its most lenient cosine; a user is then scored by the face that gave
        its best cosine, with that face's and the probe's quality (a user's other faces are not rescored).
        """
        calibration = self.engine.calibration
        best: dict[str, tuple[float, float, UserRecord, str]] = {}
        for vector, quality in probes:
            min_cosine = calibration.lenient_cosine_for(threshold, quality)

            def ask(size: int, vector: Vector = vector, min_cosine: float = min_cosine) -> list[UserNeighbor]:
                return self.store.search_users(
                    collection_id, vector, limit=size, min_cosine=min_cosine, exclude_user_id=exclude
                )

            def score(hits: list[UserNeighbor], quality: float | None = quality) -> list[float]:
                ids = [h.face_id for h in hits]
                stored = {f.face_id: f.quality for f in self.store.get_faces(collection_id, ids)}
                return [
                    calibration.similarity(h.cosine, pair_quality(quality, stored.get(h.face_id))) for h in hits
                ]

            hits, scores = self._candidates(ask, score, limit, threshold, quality)
            for hit, similarity in zip(hits, scores, strict=True):
                current = best.get(hit.user.user_id)
                if current is None or (similarity, hit.cosine) > (current[0], current[1]):
                    best[hit.user.user_id] = (similarity, hit.cosine, hit.user, hit.face_id)
        ranked = sorted(best.values(), key=lambda item: (item[0], item[1]), reverse=True)
        matches = [
            UserMatch(_with_status(user), round(similarity, 4), (face_id,))
            for similarity, _, user, face_id in ranked
            if similarity >= threshold
        ]
        return tuple(matches[:limit])

    # -- audit -------------------------------------------------------------------------------------------

    def record_event(
        self,
        caller: Caller,
        operation: str,
        collection_id: str | None,
        *,
        threshold: float | None = None,
        match_count: int | None = None,
        matched: tuple[str, ...] = (),
        detail: dict[str, str | int | float | None] | None = None,
    ) -> None:
        """Append one event to the store's audit trail in its own transaction; raises ``StoreError`` if it
        cannot be kept, so an act that cannot be audited does not happen silently (callers return results only
        after this returned)."""
        self.store.audit.record(
            _event(caller, operation, collection_id, threshold=threshold, match_count=match_count,
                   matched=matched, detail=detail)
        )  # fmt: skip

    def _record_search(
        self,
        caller: Caller,
        operation: str,
        collection_id: str,
        threshold: float,
        matches: tuple[FaceMatch, ...],
        detail: dict[str, str | int | float | None] | None = None,
    ) -> None:
        self.record_event(
            caller, operation, collection_id, threshold=threshold, match_count=len(matches),
            matched=tuple(m.face.face_id for m in matches), detail=detail,
        )  # fmt: skip

    def _record_user_search(
        self,
        caller: Caller,
        operation: str,
        collection_id: str,
        threshold: float,
        matches: tuple[UserMatch, ...],
    ) -> None:
        self.record_event(
            caller, operation, collection_id, threshold=threshold, match_count=len(matches),
            matched=tuple(face for m in matches for face in m.face_ids),
            detail={"user_ids": ",".join(m.user.user_id for m in matches)},
        )  # fmt: skip


def _event(
    caller: Caller,
    operation: str,
    collection_id: str | None,
    *,
    threshold: float | None = None,
    match_count: int | None = None,
    matched: tuple[str, ...] = (),
    detail: dict[str, str | int | float | None] | None = None,
) -> AuditEvent:
    return AuditEvent(
        operation=operation,
        principal=caller.principal,
        collection_id=collection_id,
        purpose=caller.purpose,
        threshold=threshold,
        match_count=match_count,
        matched_face_ids=matched,
        detail=detail or {},
    )


def _vector(face: AnalyzedFace) -> Vector:
    if face.vector is None:
        raise NotFoundError("the face has no vector")
    return face.vector


def _is_sha256(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _with_status(user: UserRecord) -> UserRecord:
    """Rekognition's UserStatus: CREATED until the user has a face, then ACTIVE."""
    return dataclasses.replace(user, status="ACTIVE" if user.face_count > 0 else "CREATED")
