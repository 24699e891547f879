"""The gallery on real photos: indexing, quality filtering, search with explicit no-match, users, audit."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facetrace.audit import AuditEvent, Caller
from facetrace.calibration import pair_quality
from facetrace.engine import FaceEngine
from facetrace.errors import (
    AlreadyExistsError,
    InvalidParameterError,
    ModelMismatchError,
    NoFaceError,
    NotFoundError,
    StoreError,
)
from facetrace.gallery import Gallery
from facetrace.store.memory import MemoryStore
from facetrace.store.vector_index import user_template


class RecordingAudit:
    """The events in the store's own audit trail, as the gallery recorded them."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    @property
    def events(self) -> list[AuditEvent]:
        return [record.event for record in self.store.audit.records()]


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def audit(store: MemoryStore) -> RecordingAudit:
    return RecordingAudit(store)


@pytest.fixture
def gallery(engine: FaceEngine, store: MemoryStore) -> Gallery:
    gallery = Gallery(engine, store)
    gallery.create_collection("people")
    return gallery


def test_index_then_identify_and_reject_a_stranger(gallery: Gallery, photos: dict[str, Path]) -> None:
    obama = gallery.index_faces("people", photos["obama.jpg"], external_image_id="obama")
    gallery.index_faces("people", photos["biden.jpg"], external_image_id="biden")
    assert len(obama.indexed) == 1
    assert obama.indexed[0].record.model == "sface-2021dec"

    found = gallery.search_faces_by_image("people", photos["obama2.jpg"])
    assert [m.face.external_image_id for m in found.matches] == ["obama"]
    assert found.matches[0].similarity >= 99.0

    # t1.jpg's people are neither Obama nor Biden: at the default threshold the answer is an explicit no-match.
    stranger = gallery.search_faces_by_image("people", photos["t1.jpg"])
    assert stranger.matches == ()
    # ...even though a permissive threshold would return the nearest strangers.
    loose = gallery.search_faces_by_image("people", photos["t1.jpg"], threshold=0.0)
    assert len(loose.matches) == 2


def test_search_by_face_id_excludes_the_face_itself(gallery: Gallery, photos: dict[str, Path]) -> None:
    first = gallery.index_faces("people", photos["obama.jpg"], external_image_id="a").indexed[0].record
    gallery.index_faces("people", photos["obama2.jpg"], external_image_id="b")
    gallery.index_faces("people", photos["biden.jpg"], external_image_id="c")
    result = gallery.search_faces("people", first.face_id, threshold=90.0)
    assert [m.face.external_image_id for m in result.matches] == ["b"]


def test_max_faces_reports_the_rest_as_exceeding(gallery: Gallery, photos: dict[str, Path]) -> None:
    result = gallery.index_faces("people", photos["t1.jpg"], max_faces=2, quality_filter="NONE")
    assert len(result.indexed) == 2
    assert len(result.unindexed) == 4
    assert all(u.reasons == ("EXCEEDS_MAX_FACES",) for u in result.unindexed)
    # the indexed ones are the largest
    areas = [i.face.detection.area for i in result.indexed] + [u.face.detection.area for u in result.unindexed]
    assert areas[:2] == sorted(areas, reverse=True)[:2]


def test_quality_filter_rejects_blurred_and_dark_faces(gallery: Gallery, photos: dict[str, Path]) -> None:
    pixels = cv2.imread(str(photos["obama.jpg"]))
    blurred = cv2.GaussianBlur(pixels, (0, 0), 12)
    result = gallery.index_faces("people", blurred, quality_filter="HIGH")
    assert result.indexed == ()
    assert "LOW_SHARPNESS" in result.unindexed[0].reasons
    dark = (pixels.astype(np.float32) * 0.04).astype(np.uint8)
    dark_result = gallery.index_faces("people", dark, quality_filter="MEDIUM")
    assert all("LOW_BRIGHTNESS" in u.reasons for u in dark_result.unindexed)
    assert dark_result.indexed == ()
    # with NONE the same sharp photo goes in
    assert len(gallery.index_faces("people", pixels, quality_filter="NONE").indexed) == 1


def test_list_and_delete_faces_paginated(gallery: Gallery, photos: dict[str, Path]) -> None:
    gallery.index_faces("people", photos["t1.jpg"], quality_filter="NONE")
    ids: list[str] = []
    token = None
    while True:
        page = gallery.list_faces("people", limit=4, next_token=token)
        ids.extend(face.face_id for face in page.items)
        token = page.next_token
        if token is None:
            break
    assert len(ids) == len(set(ids)) == 6
    missing = "00000000-0000-4000-8000-000000000000"
    deletion = gallery.delete_faces("people", [ids[0], missing])
    assert deletion.deleted == (ids[0],)
    assert deletion.unsuccessful[0].face_id == missing
    assert deletion.unsuccessful[0].reasons == ("FACE_NOT_FOUND",)
    assert gallery.describe_collection("people").face_count == 5


def test_users_associate_search_and_protect_faces(gallery: Gallery, photos: dict[str, Path]) -> None:
    o1 = gallery.index_faces("people", photos["obama.jpg"]).indexed[0].record.face_id
    o2 = gallery.index_faces("people", photos["obama2.jpg"]).indexed[0].record.face_id
    b1 = gallery.index_faces("people", photos["biden.jpg"]).indexed[0].record.face_id
    assert gallery.create_user("people", "barack").status == "CREATED"
    gallery.create_user("people", "joe")
    first = gallery.associate_faces("people", "barack", [o1])
    assert first.associated == (o1,)
    assert first.user.status == "ACTIVE"
    # Biden's face does not resemble Barack's existing face: refused with LOW_MATCH_CONFIDENCE.
    second = gallery.associate_faces("people", "barack", [o2, b1])
    assert second.associated == (o2,)
    assert second.unsuccessful[0].face_id == b1
    assert second.unsuccessful[0].reasons == ("LOW_MATCH_CONFIDENCE",)
    gallery.associate_faces("people", "joe", [b1])
    # a face of another user is not moved
    moved = gallery.associate_faces("people", "joe", [o1])
    assert moved.unsuccessful[0].reasons == ("ASSOCIATED_TO_A_DIFFERENT_USER",)

    found = gallery.search_users_by_image("people", photos["obama3.jpg"], threshold=90.0)
    assert [m.user.user_id for m in found.matches] == ["barack"]
    by_face = gallery.search_users("people", face_id=b1, threshold=90.0)
    assert [m.user.user_id for m in by_face.matches] == ["joe"]

    # a face that belongs to a user is not deleted until it is disassociated
    refused = gallery.delete_faces("people", [o1])
    assert refused.deleted == ()
    assert refused.unsuccessful[0].reasons == ("ASSOCIATED_TO_AN_EXISTING_USER",)
    gallery.disassociate_faces("people", "barack", [o1])
    assert gallery.delete_faces("people", [o1]).deleted == (o1,)
    assert [u.user_id for u in gallery.list_users("people").items] == ["barack", "joe"]
    gallery.delete_user("people", "joe")
    assert gallery.list_faces("people", face_ids=[b1]).items[0].user_id is None


def test_a_user_is_scored_by_the_template_of_its_photos(
    gallery: Gallery, engine: FaceEngine, photos: dict[str, Path]
) -> None:
    """SearchUsersByImage scores a user by the template of its photos (``user_template``: their normalised mean,
    discounted for disagreement), reports the user's photo closest to the probe, and names Obama from two
    other photos of him at the default threshold while Biden stays far below it."""
    enrolled = [gallery.index_faces("people", photos[n]).indexed[0] for n in ("obama2.jpg", "obama3.jpg")]
    gallery.create_user("people", "barack")
    gallery.associate_faces("people", "barack", [f.record.face_id for f in enrolled])
    vectors = [f.face.vector for f in enrolled]
    template = user_template(vectors)
    closeness: dict[str, float] = {}
    for name in ("obama.jpg", "obama_partial_face.jpg", "obama_partial_face2.jpg"):
        _, probe = engine.largest_face(photos[name])
        assert probe.vector is not None
        found = gallery.search_users_by_image("people", photos[name], threshold=80.0)
        assert [m.user.user_id for m in found.matches] == ["barack"]
        match = found.matches[0]
        # Scored on the band of the probe's quality and that of the user's closest face.
        closest = gallery.store.get_faces("people", list(match.face_ids))[0]
        band = pair_quality(probe.quality_score, closest.quality)
        expected = engine.calibration.similarity(float(template @ probe.vector), band)
        assert match.similarity == pytest.approx(expected, abs=1e-3)
        singles = [
            engine.calibration.similarity(
                float(f.face.vector @ probe.vector), pair_quality(probe.quality_score, f.record.quality)
            )
            for f in enrolled
        ]
        assert match.face_ids == (enrolled[int(np.argmax(singles))].record.face_id,)
        closeness[name] = float(template @ probe.vector) - max(float(v @ probe.vector) for v in vectors)
    # a half-hidden face is closer to the two photos together than to either alone
    assert closeness["obama_partial_face2.jpg"] > 0.01
    assert [m.user.user_id for m in gallery.search_users_by_image("people", photos["obama.jpg"]).matches] == [
        "barack"
    ]
    assert gallery.search_users_by_image("people", photos["biden.jpg"], threshold=80.0).matches == ()


def test_every_search_and_change_is_audited(
    gallery: Gallery, audit: RecordingAudit, photos: dict[str, Path]
) -> None:
    face = gallery.index_faces("people", photos["obama.jpg"]).indexed[0].record
    caller = Caller(principal="AKIDEXAMPLE", purpose="case-42")
    gallery.search_faces_by_image("people", photos["obama2.jpg"], threshold=95.0, caller=caller)
    gallery.compare_faces(photos["obama.jpg"], photos["biden.jpg"], caller=caller)
    operations = [e.operation for e in audit.events]
    assert operations == ["CreateCollection", "IndexFaces", "SearchFacesByImage", "CompareFaces"]
    search = audit.events[2]
    assert search.principal == "AKIDEXAMPLE"
    assert search.purpose == "case-42"
    assert search.threshold == 95.0
    assert search.matched_face_ids == (face.face_id,)
    assert audit.events[3].match_count == 0


def test_nothing_happens_unaudited(
    gallery: Gallery, store: MemoryStore, audit: RecordingAudit, photos: dict[str, Path]
) -> None:
    """Fail closed: when the trail refuses appends, changes are not made and searches return nothing."""
    face = gallery.index_faces("people", photos["obama.jpg"]).indexed[0].record
    before = len(audit.events)
    store.audit.fail_with = "disk full"
    with pytest.raises(StoreError, match="audit store unavailable"):
        gallery.index_faces("people", photos["biden.jpg"])
    with pytest.raises(StoreError, match="audit store unavailable"):
        gallery.delete_faces("people", [face.face_id])
    with pytest.raises(StoreError, match="audit store unavailable"):
        gallery.create_collection("other")
    with pytest.raises(StoreError, match="audit store unavailable"):
        gallery.search_faces_by_image("people", photos["obama2.jpg"])
    with pytest.raises(StoreError, match="audit store unavailable"):
        gallery.create_user("people", "barack")
    store.audit.fail_with = None
    assert [f.face_id for f in gallery.list_faces("people").items] == [face.face_id]
    assert gallery.list_collections().items == ("people",)
    assert gallery.list_users("people").items == ()
    assert len(audit.events) == before
    assert store.audit.verify().ok


def test_bad_input_is_a_typed_error(gallery: Gallery, photos: dict[str, Path]) -> None:
    with pytest.raises(InvalidParameterError):
        gallery.create_collection("no spaces allowed")
    with pytest.raises(AlreadyExistsError):
        gallery.create_collection("people")
    with pytest.raises(NotFoundError):
        gallery.search_faces_by_image("missing", photos["obama.jpg"])
    with pytest.raises(InvalidParameterError):
        gallery.search_faces_by_image("people", photos["obama.jpg"], threshold=101)
    with pytest.raises(InvalidParameterError):
        gallery.index_faces("people", photos["obama.jpg"], external_image_id="bad/slash")
    with pytest.raises(InvalidParameterError):
        gallery.index_faces("people", photos["obama.jpg"], quality_filter="SUPERB")
    with pytest.raises(InvalidParameterError):
        gallery.search_faces("people", "not-a-uuid")
    with pytest.raises(NoFaceError):
        gallery.search_faces_by_image("people", np.full((200, 200, 3), 127, np.uint8))
    assert gallery.describe_collection("people").face_count == 0


def test_vectors_of_another_model_are_never_compared(engine: FaceEngine, photos: dict[str, Path]) -> None:
    store = MemoryStore()
    store.create_collection("legacy", "other-model-v1")
    gallery = Gallery(engine, store)
    with pytest.raises(ModelMismatchError):
        gallery.search_faces_by_image("legacy", photos["obama.jpg"])
    with pytest.raises(ModelMismatchError):
        gallery.index_faces("legacy", photos["obama.jpg"])


def test_detect_and_compare_with_a_quality_filter(
    gallery: Gallery, audit: RecordingAudit, photos: dict[str, Path]
) -> None:
    assert len(gallery.detect_faces(photos["t1.jpg"])) == 6
    assert len(gallery.detect_faces(photos["t1.jpg"], max_faces=2)) == 2
    sharp = cv2.imread(str(photos["obama2.jpg"]))
    blurred = cv2.GaussianBlur(sharp, (0, 0), 12)
    target = np.hstack([sharp, cv2.resize(blurred, (sharp.shape[1], sharp.shape[0]))])
    plain = gallery.compare_faces(photos["obama.jpg"], target, threshold=0.0)
    assert len(plain.matches) == 2
    filtered = gallery.compare_faces(photos["obama.jpg"], target, threshold=0.0, quality_filter="HIGH")
    assert len(filtered.matches) == 1
    assert audit.events[-1].match_count == 1
    with pytest.raises(NoFaceError):
        gallery.compare_faces(blurred, target, quality_filter="HIGH")


def test_kept_images_go_with_their_faces_and_collection(
    engine: FaceEngine, photos: dict[str, Path], tmp_path: Path
) -> None:
    import stat

    gallery = Gallery(engine, MemoryStore(), image_dir=tmp_path / "images")
    gallery.create_collection("people")
    first = gallery.index_faces("people", photos["obama.jpg"], keep_image=True)
    second = gallery.index_faces("people", photos["biden.jpg"], keep_image=True)
    kept = tmp_path / "images" / "people" / f"{first.image_id}.jpg"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    gallery.delete_faces("people", [first.indexed[0].record.face_id])
    assert not kept.exists()  # it shows the deleted face
    assert (tmp_path / "images" / "people" / f"{second.image_id}.jpg").exists()
    gallery.delete_collection("people")
    assert not (tmp_path / "images" / "people").exists()
