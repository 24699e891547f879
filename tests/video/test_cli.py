"""The video commands: a thin shell over jobs, workers and sightings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facetrace.app import open_gallery
from facetrace.cli import main
from tests.video.conftest import THRESHOLD


@pytest.fixture
def library(home: Path, photos: dict[str, Path]) -> Path:
    gallery = open_gallery(home)
    gallery.create_collection("people")
    gallery.index_faces("people", photos["obama2.jpg"], external_image_id="obama", max_faces=1)
    gallery.index_faces("people", photos["biden.jpg"], external_image_id="biden", max_faces=1)
    gallery.store.close()
    return home


def test_video_search_then_sightings(library: Path, scene: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["video", "search", "people", str(scene), "--threshold", str(THRESHOLD), "--json", "--camera", "cam1"]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["JobStatus"] == "SUCCEEDED"
    names = {p["FaceMatches"][0]["Face"]["ExternalImageId"] for p in out["Persons"]}
    assert names == {"obama", "biden"}
    assert out["VideoMetadata"]["FrameWidth"] == 640

    assert main(["sightings", "find", "--external-image-id", "biden", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["Sightings"]
    assert len(found) == 1
    assert found[0]["Camera"] == "cam1"
    assert main(["sightings", "find", "--external-image-id", "biden", "--until", "2000-01-01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["Sightings"] == []
    assert main(["sightings", "sweep", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"Deleted": 0}


def test_video_faces_and_human_output(library: Path, scene: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["video", "faces", str(scene), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["Faces"]) > 10
    assert main(["video", "search", "people", str(scene), "--threshold", str(THRESHOLD), "--no-sightings"]) == 0
    text = capsys.readouterr().out
    assert "obama" in text
    assert "biden" in text


def test_watch_a_file_in_real_time(library: Path, scene: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "watch",
            str(scene),
            "--collection",
            "people",
            "--camera",
            "gate",
            "--threshold",
            str(THRESHOLD),
            "--json",
        ]
    )
    assert code == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    identified = {e["ExternalImageId"] for e in events if e["Type"] == "TrackIdentified"}
    assert identified == {"obama", "biden"}
    assert all(e["Camera"] == "gate" for e in events)


def test_bad_input_exits_1(library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["video", "search", "people", str(tmp_path / "none.mp4"), "--json"]) == 1
    assert main(["video", "search", "nobody", str(tmp_path / "none.mp4"), "--json"]) == 1
    assert main(["sightings", "find", "--since", "yesterday-ish", "--json"]) == 1
    capsys.readouterr()
