"""The command line end to end on real photos: JSON output, exit codes, skipping bad files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from facetrace.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, str]:
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def test_detect_reports_six_faces_and_skips_bad_files(
    capsys: pytest.CaptureFixture[str], photos: dict[str, Path], tmp_path: Path
) -> None:
    bogus = tmp_path / "notes.jpg"
    bogus.write_text("not a picture")
    code, data, _ = run(capsys, "detect", str(photos["t1.jpg"]), str(bogus))
    assert code == 1
    good, bad = data["Results"]
    assert len(good["FaceDetails"]) == 6
    assert set(good["FaceDetails"][0]) == {"BoundingBox", "Landmarks", "Pose", "Quality", "Confidence"}
    assert bad["Error"]["Type"] == "InvalidImageFormatError"


def test_collection_index_search_roundtrip(
    capsys: pytest.CaptureFixture[str], photos: dict[str, Path], home: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "gallery"
    (folder / "obama").mkdir(parents=True)
    (folder / "biden").mkdir()
    shutil.copy(photos["obama.jpg"], folder / "obama" / "portrait 1.jpg")
    shutil.copy(photos["biden.jpg"], folder / "biden" / "portrait.jpg")
    (folder / "biden" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)

    assert run(capsys, "collections", "create", "people")[0] == 0
    missing = str(tmp_path / "nowhere")
    code, report, _ = run(
        capsys, "index", "people", str(folder), missing, "--recursive", "--external-id-from", "parent"
    )
    assert code == 1  # one broken file and one missing path, reported and skipped
    assert report["FacesIndexed"] == 2
    assert report["Images"] == 4
    assert report["ImagesFailed"] == 2

    code, found, _ = run(capsys, "search", "people", str(photos["obama2.jpg"]))
    assert code == 0
    assert [m["Face"]["ExternalImageId"] for m in found["FaceMatches"]] == ["obama"]
    assert found["FaceMatches"][0]["Similarity"] >= 99

    code, nobody, _ = run(capsys, "search", "people", str(photos["t1.jpg"]))
    assert code == 0
    assert nobody["FaceMatches"] == []

    code, described, _ = run(capsys, "collections", "describe", "people")
    assert described["FaceCount"] == 2
    assert described["FaceModelVersion"] == "sface-2021dec"

    code, listed, _ = run(capsys, "faces", "list", "people", "--limit", "1", "--all")
    assert len(listed["Faces"]) == 2
    face_id = listed["Faces"][0]["FaceId"]
    code, deleted, _ = run(capsys, "faces", "delete", "people", face_id)
    assert deleted["DeletedFaces"] == [face_id]
    assert run(capsys, "collections", "list")[1]["CollectionIds"] == ["people"]


def test_errors_have_exit_codes(capsys: pytest.CaptureFixture[str], photos: dict[str, Path], home: Path) -> None:
    code, _, err = run(capsys, "search", "nowhere", str(photos["obama.jpg"]))
    assert code == 1
    assert json.loads(err)["error"]["type"] == "NotFoundError"
    assert run(capsys, "collections", "create", "bad name!")[0] == 1
    run(capsys, "collections", "create", "dup")
    assert run(capsys, "collections", "create", "dup")[0] == 1


def test_usage_error_exits_2_without_traceback(home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "facetrace", "search"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "usage:" in result.stderr


def test_users_from_the_command_line(
    capsys: pytest.CaptureFixture[str], photos: dict[str, Path], home: Path
) -> None:
    run(capsys, "collections", "create", "people")
    _, first, _ = run(capsys, "index", "people", str(photos["obama.jpg"]))
    _, second, _ = run(capsys, "index", "people", str(photos["biden.jpg"]))
    obama = first["Results"][0]["FaceRecords"][0]["Face"]["FaceId"]
    biden = second["Results"][0]["FaceRecords"][0]["Face"]["FaceId"]
    assert run(capsys, "users", "create", "people", "barack")[1] == {"UserId": "barack", "UserStatus": "CREATED"}
    code, associated, _ = run(capsys, "users", "associate", "people", "barack", obama)
    assert code == 0
    assert associated["UserStatus"] == "ACTIVE"
    code, found, _ = run(capsys, "users", "search", "people", "--image", str(photos["obama2.jpg"]))
    assert [m["User"]["UserId"] for m in found["UserMatches"]] == ["barack"]
    code, nobody, _ = run(capsys, "users", "search", "people", "--face-id", biden)
    assert nobody["UserMatches"] == []
    code, refused, _ = run(capsys, "faces", "delete", "people", obama)
    assert code == 1
    assert refused["UnsuccessfulFaceDeletions"][0]["Reasons"] == ["ASSOCIATED_TO_AN_EXISTING_USER"]
    assert run(capsys, "users", "disassociate", "people", "barack", obama)[0] == 0
    assert run(capsys, "users", "list", "people")[1]["Users"] == [{"UserId": "barack", "UserStatus": "CREATED"}]


def test_compare_json_is_compare_faces_response(
    capsys: pytest.CaptureFixture[str], photos: dict[str, Path], home: Path
) -> None:
    code, data, _ = run(capsys, "compare", str(photos["obama.jpg"]), str(photos["obama2.jpg"]))
    assert code == 0
    assert set(data) == {"SourceImageFace", "FaceMatches", "UnmatchedFaces"}  # CompareFaces' members only
    similarity = data["FaceMatches"][0]["Similarity"]
    assert similarity == round(similarity, 4)
    assert similarity >= 80


def test_a_collection_created_without_thumbnails_keeps_none(
    capsys: pytest.CaptureFixture[str], photos: dict[str, Path], home: Path
) -> None:
    from facetrace.store import SQLiteStore
    from facetrace.store.ui_records import ui_records_of

    assert run(capsys, "collections", "create", "bare", "--no-thumbnails")[0] == 0
    assert run(capsys, "collections", "create", "kept")[0] == 0
    for name in ("bare", "kept"):
        assert run(capsys, "index", name, str(photos["obama.jpg"]))[0] == 0
    store = SQLiteStore(home / "facetrace.db")
    try:
        thumbnails = ui_records_of(store).thumbnails  # type: ignore[union-attr]
        assert thumbnails is not None
        for name, kept in (("bare", False), ("kept", True)):
            (face,) = store.list_faces(name, limit=10).items
            assert (thumbnails.get(name, face.face_id) is not None) is kept
    finally:
        store.close()
