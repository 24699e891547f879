"""``facetrace review`` and ``facetrace unknowns``: a thin shell over the queue, on a real home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facetrace.app import open_gallery
from facetrace.cli import main


@pytest.fixture
def library(home: Path, photos: dict[str, Path]) -> Path:
    gallery = open_gallery(home)
    gallery.create_collection("people")
    gallery.index_faces("people", photos["obama3.jpg"], external_image_id="obama", max_faces=1)
    gallery.index_faces("people", photos["biden.jpg"], external_image_id="biden", max_faces=1)
    gallery.store.close()
    return home


@pytest.mark.slow
def test_review_from_the_command_line(
    library: Path, clips: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["video", "search", "people", str(clips["borderline"]), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["Persons"] == []  # nobody named at 99

    assert main(["review", "list", "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)["ReviewItems"]
    (candidate,) = item["Candidates"]
    assert candidate["ExternalImageId"] == "obama"
    assert 90 <= candidate["Similarity"] < 99
    assert 1e-6 < candidate["FalseMatchRate"] <= 1e-4  # what a similarity between 90 and 99 means

    folder = tmp_path / "thumbs"
    assert main(["review", "show", item["ReviewItemId"], "--thumbnails", str(folder), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["ThumbnailFiles"]
    assert all(Path(p).read_bytes().startswith(b"\xff\xd8") for p in shown["ThumbnailFiles"])

    assert main(["review", "confirm", item["ReviewItemId"], "--person", "nobody", "--json"]) == 1
    capsys.readouterr()
    assert main(["review", "reject", item["ReviewItemId"], "--reason", "not him", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["Status"] == "REJECTED"
    assert main(["review", "confirm", item["ReviewItemId"], "--json"]) == 1  # answered already
    capsys.readouterr()
    assert main(["review", "show", item["ReviewItemId"], "--json"]) == 0
    decisions = json.loads(capsys.readouterr().out)["Decisions"]
    assert [(d["Action"], d["Person"], d["Reason"]) for d in decisions] == [
        ("REJECT", "external:obama", "not him")
    ]

    # a live watch offers the same person for review again: a later track is new evidence
    assert main(["watch", str(clips["borderline"]), "--collection", "people", "--camera", "door", "--json"]) == 0
    capsys.readouterr()
    assert main(["review", "list", "--json"]) == 0
    (again,) = json.loads(capsys.readouterr().out)["ReviewItems"]
    assert (again["Source"], again["Camera"]) == ("watch:door", "door")
    assert again["Candidates"][0]["ExternalImageId"] == "obama"

    assert main(["unknowns", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"UnknownPeople": []}
    assert main(["unknowns", "show", "not-an-id"]) == 1
