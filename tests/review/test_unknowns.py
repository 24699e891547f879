"""Unknown people: Obama from two photos on two cameras is one unknown person, a stranger another; naming
Obama's group makes a user that identifies a third photo of him."""

from __future__ import annotations

from pathlib import Path

import pytest

from facetrace.audit import Caller
from facetrace.engine import FaceEngine
from facetrace.errors import ConflictError, InvalidParameterError
from facetrace.gallery import Gallery
from facetrace.review import UnknownPeople
from facetrace.store.records import Records
from tests.review.conftest import unresolved


def test_unknown_faces_group_by_person_across_cameras_and_naming_identifies(
    engine: FaceEngine, database: tuple[Gallery, Records], clips: dict[str, Path], photos: dict[str, Path]
) -> None:
    gallery, records = database
    gallery.create_collection("staff")  # Biden only: Obama and the stranger are unknown here
    gallery.index_faces("staff", photos["biden.jpg"], external_image_id="biden", max_faces=1)
    people = UnknownPeople(gallery, records.unknowns)
    placed: dict[str, set[str]] = {"obama": set(), "stranger": set()}
    for clip, camera in ((clips["unknown_a"], "lobby"), (clips["unknown_b"], "yard")):
        tracks = unresolved(engine, gallery, clip, camera, collection="staff")
        assert tracks
        for track in tracks:
            who = "stranger" if track.bounding_box.top > 0.45 else "obama"  # the stranger stands low, right
            placed[who].add(people.add(track, "staff", source=camera).unknown_id)
    assert len(placed["obama"]) == 1, placed  # both cameras' Obama in one group
    assert len(placed["stranger"]) == 1
    assert placed["obama"].isdisjoint(placed["stranger"])

    groups = {p.unknown_id: p for p in people.people(collection_ids=("staff",))}
    obama = groups[next(iter(placed["obama"]))]
    assert obama.cameras == ("lobby", "yard")
    assert obama.seen >= 2
    assert obama.first_seen <= obama.last_seen
    assert obama.expires_at - obama.last_seen <= 7 * 86400 + 60  # unknowns live 7 days by default
    assert people.people(collection_ids=("people",)) == []
    assert all(f.thumbnail for f in people.faces(obama.unknown_id, thumbnails=True))

    assert gallery.search_users_by_image("staff", photos["obama3.jpg"]).matches == ()
    named = people.name(obama.unknown_id, "barack", caller=Caller("FTADMIN0000000000001"))
    assert 1 <= len(named) <= 5
    found = gallery.search_users_by_image("staff", photos["obama3.jpg"])  # a photo no camera saw
    assert [m.user.user_id for m in found.matches] == ["barack"]
    assert people.get(obama.unknown_id).named_user == "barack"
    with pytest.raises(ConflictError):
        people.name(obama.unknown_id, "barack2")
    with pytest.raises(InvalidParameterError):
        people.get("12")
