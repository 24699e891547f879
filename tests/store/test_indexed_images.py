"""Content hashes of indexed images (resumable bulk imports) on every store: recorded in the transaction that
adds the faces, refused the second time, gone with the collection."""

from __future__ import annotations

import hashlib

import pytest

from facetrace.audit import AuditEvent
from facetrace.errors import AlreadyExistsError, NotFoundError
from facetrace.store import FaceStore
from tests.store.conftest import MODEL, faces_with_vectors


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _event() -> AuditEvent:
    return AuditEvent("IndexFaces", "local:test", "c")


def test_a_hash_is_recorded_with_its_faces_and_refused_again(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    a, b, empty = _hash("a.jpg"), _hash("b.jpg"), _hash("no-face.jpg")
    assert store.indexed_hashes("c", [a, b]) == set()
    store.add_faces("c", faces_with_vectors(2, seed=1), audit=_event(), content_hash=a)
    store.add_faces("c", [], audit=_event(), content_hash=empty)  # an image without a face counts as done
    assert store.indexed_hashes("c", [a, b, empty]) == {a, empty}
    with pytest.raises(AlreadyExistsError):
        store.add_faces("c", faces_with_vectors(2, seed=2), audit=_event(), content_hash=a)
    with pytest.raises(AlreadyExistsError):
        store.add_faces("c", [], content_hash=empty)
    assert store.describe_collection("c").face_count == 2  # the refused batch added nothing
    store.add_faces("c", faces_with_vectors(1, seed=3), content_hash=b)
    assert store.indexed_hashes("c", [a, b, empty]) == {a, b, empty}
    assert store.describe_collection("c").face_count == 3


def test_hashes_belong_to_their_collection_and_go_with_it(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    store.create_collection("d", MODEL)
    a = _hash("a.jpg")
    store.add_faces("c", faces_with_vectors(1), content_hash=a)
    assert store.indexed_hashes("d", [a]) == set()
    store.add_faces("d", faces_with_vectors(1, seed=4), content_hash=a)  # another collection: its own import
    store.delete_collection("c")
    with pytest.raises(NotFoundError):
        store.indexed_hashes("c", [a])
    store.create_collection("c", MODEL)
    assert store.indexed_hashes("c", [a]) == set()
    assert store.indexed_hashes("d", [a]) == {a}
