"""The ``FaceStore`` contract, run against every implementation (``store`` is parametrised in conftest)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

import numpy as np
import pytest

from facetrace.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidParameterError,
    ModelMismatchError,
    NotFoundError,
)
from facetrace.store import FaceStore
from facetrace.store.vector_index import user_template
from tests.store.conftest import DIM, MODEL, face, faces_with_vectors, unit_vectors

# --- collections -------------------------------------------------------------------------------------------


def test_create_describe_delete_collection(store: FaceStore) -> None:
    info = store.create_collection("people", MODEL)
    assert (info.collection_id, info.model, info.face_count, info.user_count) == ("people", MODEL, 0, 0)
    assert info.created_at > 0
    assert store.describe_collection("people") == info
    with pytest.raises(AlreadyExistsError):
        store.create_collection("people", MODEL)
    store.delete_collection("people")
    with pytest.raises(NotFoundError):
        store.describe_collection("people")
    with pytest.raises(NotFoundError):
        store.delete_collection("people")


def test_delete_collection_removes_faces_users_and_vectors(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    faces = faces_with_vectors(20)
    store.add_faces("c", faces)
    store.create_user("c", "alice")
    store.associate_faces("c", "alice", [faces[0][0].face_id])
    assert store.search("c", faces[0][1], limit=1, min_cosine=0.5)  # index is loaded
    store.delete_collection("c")
    store.create_collection("c", "other-model")
    info = store.describe_collection("c")
    assert (info.model, info.face_count, info.user_count) == ("other-model", 0, 0)
    assert store.search("c", faces[0][1], limit=5, min_cosine=-1.0) == []
    assert store.list_faces("c", limit=100).items == ()
    with pytest.raises(NotFoundError):
        store.get_user("c", "alice")
    with pytest.raises(NotFoundError):
        store.get_vector("c", faces[0][0].face_id)


def test_list_collections_paginates_in_order(store: FaceStore) -> None:
    names = [f"col-{i:02d}" for i in range(23)]
    for name in reversed(names):
        store.create_collection(name, MODEL)
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = store.list_collections(limit=5, next_token=token)
        seen.extend(page.items)
        pages += 1
        token = page.next_token
        if token is None:
            break
    assert seen == names
    assert pages == 5


ALL_METHODS: list[tuple[str, Callable[[FaceStore], object]]] = [
    ("describe", lambda s: s.describe_collection("nope")),
    ("add", lambda s: s.add_faces("nope", faces_with_vectors(1))),
    ("delete_faces", lambda s: s.delete_faces("nope", ["x"])),
    ("get_faces", lambda s: s.get_faces("nope", ["x"])),
    ("get_vector", lambda s: s.get_vector("nope", "x")),
    ("list_faces", lambda s: s.list_faces("nope", limit=5)),
    ("search", lambda s: s.search("nope", unit_vectors(1)[0], limit=5, min_cosine=0.0)),
    ("create_user", lambda s: s.create_user("nope", "u")),
    ("delete_user", lambda s: s.delete_user("nope", "u")),
    ("get_user", lambda s: s.get_user("nope", "u")),
    ("list_users", lambda s: s.list_users("nope", limit=5)),
    ("associate", lambda s: s.associate_faces("nope", "u", ["x"])),
    ("disassociate", lambda s: s.disassociate_faces("nope", "u", ["x"])),
    ("search_users", lambda s: s.search_users("nope", unit_vectors(1)[0], limit=5, min_cosine=0.0)),
]


@pytest.mark.parametrize(("name", "call"), ALL_METHODS, ids=[m[0] for m in ALL_METHODS])
def test_missing_collection_is_not_found(store: FaceStore, name: str, call: Callable[[FaceStore], object]) -> None:
    with pytest.raises(NotFoundError):
        call(store)


# --- faces -------------------------------------------------------------------------------------------------


def test_add_get_and_vectors_round_trip(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    faces = faces_with_vectors(10)
    store.add_faces("c", faces)
    asked = [faces[7][0].face_id, "missing", faces[2][0].face_id, faces[7][0].face_id]
    got = store.get_faces("c", asked)
    assert [f.face_id for f in got] == [faces[7][0].face_id, faces[2][0].face_id]
    stored = got[0]
    original = faces[7][0]
    assert (stored.bounding_box, stored.image_id, stored.confidence, stored.model) == (
        original.bounding_box,
        original.image_id,
        original.confidence,
        MODEL,
    )
    assert stored.created_at > 0  # 0 means "now"
    vector = store.get_vector("c", original.face_id)
    assert vector.dtype == np.float32
    assert vector.shape == (DIM,)
    np.testing.assert_allclose(vector, faces[7][1], atol=1e-6)
    assert store.describe_collection("c").face_count == 10
    with pytest.raises(NotFoundError):
        store.get_vector("c", "missing")


def test_vectors_are_normalised(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    record = face()
    store.add_faces("c", [(record, np.full(DIM, 3.0, dtype=np.float32))])
    assert float(np.linalg.norm(store.get_vector("c", record.face_id))) == pytest.approx(1.0, abs=1e-6)
    hit = store.search("c", np.full(DIM, 0.5, dtype=np.float32), limit=1, min_cosine=0.0)
    assert hit[0].cosine == pytest.approx(1.0, abs=1e-5)


def test_add_is_all_or_nothing(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    existing = faces_with_vectors(3, seed=1)
    store.add_faces("c", existing)
    batch = [*faces_with_vectors(4, seed=2), existing[1]]
    with pytest.raises(AlreadyExistsError):
        store.add_faces("c", batch)
    duplicate = faces_with_vectors(1, seed=3)
    with pytest.raises(AlreadyExistsError):
        store.add_faces("c", duplicate * 2)
    assert store.describe_collection("c").face_count == 3
    assert store.get_faces("c", [f.face_id for f, _ in batch[:4]]) == []
    hits = store.search("c", batch[0][1], limit=10, min_cosine=0.99)
    assert hits == []


def test_models_are_never_mixed(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    with pytest.raises(ModelMismatchError):
        store.add_faces("c", [(face(model="arcface-r100"), unit_vectors(1)[0])])
    store.add_faces("c", faces_with_vectors(2))
    with pytest.raises(ModelMismatchError):
        store.add_faces("c", faces_with_vectors(1, dim=512))
    with pytest.raises(ModelMismatchError):
        store.search("c", unit_vectors(1, dim=512)[0], limit=1, min_cosine=0.0)
    assert store.describe_collection("c").face_count == 2


@pytest.mark.parametrize(
    "vector",
    [np.zeros(DIM, np.float32), np.full(DIM, np.nan, np.float32), np.ones((2, DIM), np.float32)],
    ids=["zero", "nan", "2d"],
)
def test_bad_vectors_are_refused(store: FaceStore, vector: np.ndarray) -> None:
    store.create_collection("c", MODEL)
    with pytest.raises(InvalidParameterError):
        store.add_faces("c", [(face(), vector)])
    with pytest.raises(InvalidParameterError):
        store.search("c", vector, limit=1, min_cosine=0.0)


def test_a_batch_of_mixed_widths_is_refused(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    batch = [(face(), unit_vectors(1)[0]), (face(), unit_vectors(1, dim=64)[0])]
    with pytest.raises(InvalidParameterError):
        store.add_faces("c", batch)
    assert store.describe_collection("c").face_count == 0


def test_delete_faces(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    faces = faces_with_vectors(6)
    store.add_faces("c", faces)
    gone = [faces[4][0].face_id, "missing", faces[1][0].face_id, faces[4][0].face_id]
    assert store.delete_faces("c", gone) == [faces[4][0].face_id, faces[1][0].face_id]
    assert store.delete_faces("c", gone) == []
    assert store.describe_collection("c").face_count == 4
    assert store.search("c", faces[4][1], limit=1, min_cosine=0.9) == []
    assert store.search("c", faces[5][1], limit=1, min_cosine=0.9)[0].face.face_id == faces[5][0].face_id
    remaining = {f.face_id for f in store.list_faces("c", limit=100).items}
    assert remaining == {f.face_id for f, _ in faces} - {faces[1][0].face_id, faces[4][0].face_id}


def _all_pages(store: FaceStore, limit: int, **kwargs: object) -> tuple[list[str], int]:
    ids: list[str] = []
    token = None
    pages = 0
    while True:
        page = store.list_faces("c", limit=limit, next_token=token, **kwargs)  # type: ignore[arg-type]
        ids.extend(f.face_id for f in page.items)
        pages += 1
        token = page.next_token
        if token is None:
            return ids, pages


def test_list_faces_paginates_by_face_id(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    faces = faces_with_vectors(37)
    store.add_faces("c", faces[:20])
    store.add_faces("c", faces[20:])
    ids, pages = _all_pages(store, 10)
    assert ids == sorted(f.face_id for f, _ in faces)
    assert pages == 4
    exact, pages = _all_pages(store, 37)
    assert exact == ids
    assert pages == 1


def test_list_faces_filters(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    faces = faces_with_vectors(12)
    store.add_faces("c", faces)
    store.create_user("c", "bob")
    bobs = sorted(f.face_id for f, _ in faces[:5])
    store.associate_faces("c", "bob", bobs)
    assert _all_pages(store, 2, user_id="bob")[0] == bobs
    assert _all_pages(store, 2, user_id="nobody")[0] == []
    wanted = [faces[9][0].face_id, faces[0][0].face_id, "missing"]
    assert _all_pages(store, 1, face_ids=wanted)[0] == sorted(wanted[:2])
    assert _all_pages(store, 5, user_id="bob", face_ids=wanted)[0] == [faces[0][0].face_id]
    assert all(f.user_id == "bob" for f in store.list_faces("c", limit=10, user_id="bob").items)


@pytest.mark.parametrize("token", ["garbage", "", "!!!", "WzEsMiwzXQ", "eyJhIjoxfQ"])
def test_bad_tokens_are_invalid_parameters(store: FaceStore, token: str) -> None:
    store.create_collection("c", MODEL)
    with pytest.raises(InvalidParameterError):
        store.list_faces("c", limit=5, next_token=token)
    with pytest.raises(InvalidParameterError):
        store.list_users("c", limit=5, next_token=token)


@pytest.mark.parametrize("token", ["", "!!!", "a/b", "x" * 256])
def test_bad_collection_tokens_are_invalid_parameters(store: FaceStore, token: str) -> None:
    """A ListCollections token is the last name of the previous page (so it fits Rekognition's 255-character
    NextToken even for 255-character ids); anything that cannot be a collection id is refused."""
    with pytest.raises(InvalidParameterError):
        store.list_collections(limit=5, next_token=token)


def test_long_collection_ids_page_with_short_enough_tokens(store: FaceStore) -> None:
    names = sorted(c * 255 for c in "abc")
    for name in names:
        store.create_collection(name, MODEL)
    first = store.list_collections(limit=1)
    assert first.next_token is not None
    assert len(first.next_token) <= 255
    rest = store.list_collections(limit=5, next_token=first.next_token)
    assert list(first.items) + list(rest.items) == names


def test_token_of_another_listing_is_refused(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    store.create_collection("d", MODEL)
    store.add_faces("c", faces_with_vectors(5))
    token = store.list_faces("c", limit=2).next_token
    assert token is not None
    assert len(store.list_faces("c", limit=2, next_token=token).items) == 2
    with pytest.raises(InvalidParameterError):
        store.list_faces("d", limit=2, next_token=token)
    with pytest.raises(InvalidParameterError):
        store.list_faces("c", limit=2, next_token=token, user_id="u")
    with pytest.raises(InvalidParameterError):
        store.list_users("c", limit=2, next_token=token)


@pytest.mark.parametrize("limit", [0, -1])
def test_bad_limits(store: FaceStore, limit: int) -> None:
    store.create_collection("c", MODEL)
    with pytest.raises(InvalidParameterError):
        store.list_faces("c", limit=limit)
    with pytest.raises(InvalidParameterError):
        store.search("c", unit_vectors(1)[0], limit=limit, min_cosine=0.0)


# --- search ------------------------------------------------------------------------------------------------


def test_search_is_exact_and_sorted(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    faces = faces_with_vectors(3000, seed=5)
    store.add_faces("c", faces)
    matrix = np.stack([v for _, v in faces])
    ids = [f.face_id for f, _ in faces]
    for probe in unit_vectors(5, seed=6):
        scores = matrix @ probe
        expected = [ids[i] for i in np.argsort(-scores)[:25]]
        hits = store.search("c", probe, limit=25, min_cosine=-1.0)
        assert [h.face.face_id for h in hits] == expected
        np.testing.assert_allclose([h.cosine for h in hits], np.sort(scores)[::-1][:25], atol=1e-5)


def test_search_threshold_limit_and_exclusion(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    base = unit_vectors(1, seed=9)[0]
    noise = unit_vectors(5, seed=10)
    # Five faces at decreasing similarity to ``base``.
    vectors = [base + w * n for w, n in zip([0.0, 0.3, 0.6, 1.0, 3.0], noise, strict=True)]
    faces = [(face(), (v / np.linalg.norm(v)).astype(np.float32)) for v in vectors]
    store.add_faces("c", faces)
    hits = store.search("c", base, limit=10, min_cosine=0.5)
    cosines = [h.cosine for h in hits]
    assert cosines == sorted(cosines, reverse=True)
    assert min(cosines) >= 0.5
    assert [h.face.face_id for h in hits] == [f.face_id for f, _ in faces[: len(hits)]]
    assert 2 <= len(hits) < 5
    assert len(store.search("c", base, limit=2, min_cosine=-1.0)) == 2
    excluded = store.search("c", base, limit=2, min_cosine=-1.0, exclude_face_id=faces[0][0].face_id)
    assert [h.face.face_id for h in excluded] == [faces[1][0].face_id, faces[2][0].face_id]


def test_search_of_empty_collection(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    assert store.search("c", unit_vectors(1)[0], limit=5, min_cosine=-1.0) == []
    assert store.search_users("c", unit_vectors(1)[0], limit=5, min_cosine=-1.0) == []


def test_search_stays_exact_after_deletes(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    faces = faces_with_vectors(500, seed=11)
    store.add_faces("c", faces)
    probe = unit_vectors(1, seed=12)[0]
    store.search("c", probe, limit=1, min_cosine=-1.0)  # load the index, then change it
    rng = np.random.default_rng(13)
    doomed = {faces[i][0].face_id for i in rng.choice(500, 250, replace=False)}
    store.delete_faces("c", list(doomed))
    added = faces_with_vectors(50, seed=14)
    store.add_faces("c", added)
    alive = [(f, v) for f, v in faces if f.face_id not in doomed] + added
    assert {f.face_id for f in store.list_faces("c", limit=1000).items} == {f.face_id for f, _ in alive}
    scores = np.stack([v for _, v in alive]) @ probe
    expected = [alive[i][0].face_id for i in np.argsort(-scores)[:30]]
    assert [h.face.face_id for h in store.search("c", probe, limit=30, min_cosine=-1.0)] == expected


def test_collections_do_not_share_vectors(store: FaceStore) -> None:
    store.create_collection("a", MODEL)
    store.create_collection("b", MODEL)
    faces = faces_with_vectors(4)
    store.add_faces("a", faces[:2])
    store.add_faces("b", faces[2:])
    found = {h.face.face_id for h in store.search("a", faces[2][1], limit=10, min_cosine=-1.0)}
    assert found == {faces[0][0].face_id, faces[1][0].face_id}


# --- users -------------------------------------------------------------------------------------------------


def test_user_lifecycle(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    faces = faces_with_vectors(4)
    store.add_faces("c", faces)
    user = store.create_user("c", "alice")
    assert (user.user_id, user.face_count, user.status) == ("alice", 0, "ACTIVE")
    with pytest.raises(AlreadyExistsError):
        store.create_user("c", "alice")
    store.associate_faces("c", "alice", [faces[0][0].face_id, faces[1][0].face_id])
    store.associate_faces("c", "alice", [faces[1][0].face_id])  # already hers: a no-op
    assert store.get_user("c", "alice").face_count == 2
    assert store.describe_collection("c").user_count == 1
    assert [f.user_id for f in store.get_faces("c", [faces[0][0].face_id, faces[2][0].face_id])] == ["alice", None]
    store.delete_user("c", "alice")
    with pytest.raises(NotFoundError):
        store.get_user("c", "alice")
    with pytest.raises(NotFoundError):
        store.delete_user("c", "alice")
    assert store.describe_collection("c").face_count == 4
    assert all(f.user_id is None for f in store.list_faces("c", limit=10).items)
    assert store.search_users("c", faces[0][1], limit=5, min_cosine=-1.0) == []


def test_associate_never_moves_a_face_silently(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    faces = faces_with_vectors(3)
    store.add_faces("c", faces)
    store.create_user("c", "alice")
    store.create_user("c", "bob")
    store.associate_faces("c", "alice", [faces[0][0].face_id])
    with pytest.raises(ConflictError):
        store.associate_faces("c", "bob", [faces[1][0].face_id, faces[0][0].face_id])
    with pytest.raises(NotFoundError):
        store.associate_faces("c", "bob", [faces[1][0].face_id, "missing"])
    with pytest.raises(NotFoundError):
        store.associate_faces("c", "carol", [faces[1][0].face_id])
    owners = [f.user_id for f in store.get_faces("c", [f.face_id for f, _ in faces])]
    assert owners == ["alice", None, None]  # all or nothing
    assert store.get_user("c", "bob").face_count == 0


def test_disassociate_only_the_users_faces(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    faces = faces_with_vectors(3)
    store.add_faces("c", faces)
    store.create_user("c", "alice")
    store.create_user("c", "bob")
    store.associate_faces("c", "alice", [faces[0][0].face_id, faces[1][0].face_id])
    store.associate_faces("c", "bob", [faces[2][0].face_id])
    asked = [faces[2][0].face_id, faces[1][0].face_id, "missing"]
    assert store.disassociate_faces("c", "alice", asked) == [faces[1][0].face_id]
    owners = [f.user_id for f in store.get_faces("c", [f.face_id for f, _ in faces])]
    assert owners == ["alice", None, "bob"]
    with pytest.raises(NotFoundError):
        store.disassociate_faces("c", "carol", asked)


def test_list_users_paginates(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    names = sorted(f"user-{i}" for i in range(11))
    for name in names:
        store.create_user("c", name)
    faces = faces_with_vectors(2)
    store.add_faces("c", faces)
    store.associate_faces("c", "user-3", [f.face_id for f, _ in faces])
    seen = []
    token = None
    while True:
        page = store.list_users("c", limit=4, next_token=token)
        seen.extend(page.items)
        token = page.next_token
        if token is None:
            break
    assert [u.user_id for u in seen] == names
    assert {u.user_id: u.face_count for u in seen}["user-3"] == 2


def _expected_users(
    owner: dict[str, str], vectors: dict[str, np.ndarray], probe: np.ndarray, limit: int
) -> list[tuple[str, float, str]]:
    """(user, score, the user's closest face) by brute force: the score is the probe's dot product with
    ``user_template`` of the user's vectors (each computed afresh)."""
    mine: dict[str, list[str]] = {}
    for face_id, user in owner.items():
        mine.setdefault(user, []).append(face_id)
    rows = []
    for user, face_ids in mine.items():
        closest = max(face_ids, key=lambda f: float(vectors[f] @ probe))
        rows.append((user, float(user_template([vectors[f] for f in face_ids]) @ probe), closest))
    return sorted(rows, key=lambda row: -row[1])[:limit]


def test_search_users_ranks_by_template(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    faces = faces_with_vectors(600, seed=21)
    store.add_faces("c", faces)
    users = [f"u{i}" for i in range(40)]
    owner: dict[str, str] = {}
    for i, user in enumerate(users):
        store.create_user("c", user)
        mine = [f.face_id for f, _ in faces[i * 10 : i * 10 + 10]]  # 400 associated faces, 200 not
        store.associate_faces("c", user, mine)
        owner.update(dict.fromkeys(mine, user))
    vectors = {f.face_id: v for f, v in faces}
    probes = unit_vectors(3, seed=22)
    store.search_users("c", probes[0], limit=1, min_cosine=-1.0)  # the templates exist; now change the users
    for i in range(1, 6):  # u1..u5 lose three faces each, u6..u8 lose two faces outright
        dropped = [f.face_id for f, _ in faces[i * 10 : i * 10 + 3]]
        assert sorted(store.disassociate_faces("c", f"u{i}", dropped)) == sorted(dropped)
        for face_id in dropped:
            del owner[face_id]
    for i in range(6, 9):
        gone = [f.face_id for f, _ in faces[i * 10 : i * 10 + 2]]
        store.disassociate_faces("c", f"u{i}", gone)
        store.delete_faces("c", gone)
        for face_id in gone:
            del owner[face_id]
    for probe in probes:
        expected = _expected_users(owner, vectors, probe, 7)
        got = store.search_users("c", probe, limit=7, min_cosine=-1.0)
        assert [(g.user.user_id, g.face_id) for g in got] == [(u, f) for u, _, f in expected]
        np.testing.assert_allclose([g.cosine for g in got], [c for _, c, _ in expected], atol=1e-5)
        top = got[0].user.user_id
        without = store.search_users("c", probe, limit=7, min_cosine=-1.0, exclude_user_id=top)
        assert top not in [g.user.user_id for g in without]
        assert [g.user.user_id for g in without[:6]] == [g.user.user_id for g in got[1:7]]
        floor = expected[3][1]
        assert [g.user.user_id for g in store.search_users("c", probe, limit=7, min_cosine=floor)] == [
            u for u, _, _ in expected[:4]
        ]


def test_search_users_finds_a_user_whose_faces_agree(store: FaceStore) -> None:
    """Five faces near one point make a template near it: a probe near that point finds the user."""
    store.create_collection("c", MODEL)
    centre = unit_vectors(1, seed=40)[0]
    near = centre + 0.08 * unit_vectors(6, seed=41)
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    faces = faces_with_vectors(6, seed=42)
    faces = [(record, vector.astype(np.float32)) for (record, _), vector in zip(faces, near, strict=True)]
    store.add_faces("c", faces + faces_with_vectors(50, seed=43))
    store.create_user("c", "twin")
    store.create_user("c", "empty")
    store.associate_faces("c", "twin", [f.face_id for f, _ in faces[:5]])
    probe = faces[5][1]
    closest = max(faces[:5], key=lambda fv: float(fv[1] @ probe))[0].face_id
    hits = store.search_users("c", probe, limit=3, min_cosine=0.9)
    assert [(h.user.user_id, h.face_id) for h in hits] == [("twin", closest)]
    assert hits[0].user.face_count == 5
    assert "empty" not in [h.user.user_id for h in store.search_users("c", probe, limit=5, min_cosine=-1.0)]


def test_concurrent_adds_from_many_threads(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    batches = [faces_with_vectors(25, seed=100 + t) for t in range(8)]
    errors: list[BaseException] = []

    def work(batch: list) -> None:
        try:
            for i in range(0, len(batch), 5):
                store.add_faces("c", batch[i : i + 5])
                store.search("c", batch[i][1], limit=3, min_cosine=-1.0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.describe_collection("c").face_count == 200
    for batch in batches:
        probe_face, probe = batch[-1]
        assert store.search("c", probe, limit=1, min_cosine=0.99)[0].face.face_id == probe_face.face_id


def test_face_quality_round_trips_and_may_be_unknown(store: FaceStore) -> None:
    store.create_collection("c", MODEL)
    (known, v1), (unknown, v2) = faces_with_vectors(2)
    store.add_faces("c", [(dataclasses.replace(known, quality=87.25), v1), (unknown, v2)])
    got = {f.face_id: f.quality for f in store.get_faces("c", [known.face_id, unknown.face_id])}
    assert got == {known.face_id: 87.25, unknown.face_id: None}
    hit = store.search("c", v1, limit=1, min_cosine=0.5)[0]
    assert hit.face.quality == 87.25
