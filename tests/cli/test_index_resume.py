"""`facetrace index` names what it did not index, in words, and a re-run skips what was indexed (by content)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from facetrace.cli import main
from facetrace.store import SQLiteStore


def test_index_names_missing_paths_and_faceless_images_and_resumes(
    capsys: pytest.CaptureFixture[str], photos: dict[str, Path], home: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(photos["obama.jpg"], folder / "obama.jpg")
    shutil.copy(photos["obama.jpg"], folder / "obama-copy.jpg")  # the same bytes under another name
    shutil.copy(photos["biden.jpg"], folder / "biden.jpg")
    cv2.imwrite(str(folder / "wall.png"), np.full((240, 320, 3), 120, np.uint8))
    assert main(["collections", "create", "people", "--json"]) == 0
    capsys.readouterr()

    code = main(["index", "people", str(folder), str(tmp_path / "nowhere")])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"skipped {tmp_path / 'nowhere'}: no such file or folder" in err
    assert f"no face indexed from {folder / 'wall.png'}: no face found" in err
    assert "indexed 2 face(s) from 2 image(s)" in out
    assert "1 image(s) gave no face" in out
    assert "1 image(s) indexed before, skipped" in out  # obama-copy.jpg: same content as obama.jpg

    code = main(["index", "people", str(folder), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["FacesIndexed"] == 0
    assert report["ImagesSkipped"] == 4
    assert {r["Skipped"] for r in report["Results"]} == {
        "indexed into this collection before",
        f"same content as {folder / 'obama-copy.jpg'}",
    }
    store = SQLiteStore(home / "facetrace.db")
    try:
        assert store.describe_collection("people").face_count == 2  # nothing twice
    finally:
        store.close()


def test_index_says_why_faces_were_refused(
    capsys: pytest.CaptureFixture[str], photos: dict[str, Path], home: Path, tmp_path: Path
) -> None:
    small = tmp_path / "small.jpg"
    image = cv2.imread(str(photos["t1.jpg"]))
    cv2.imwrite(str(small), cv2.resize(image, None, fx=0.12, fy=0.12, interpolation=cv2.INTER_AREA))
    assert main(["collections", "create", "people", "--json"]) == 0
    capsys.readouterr()
    code = main(["index", "people", str(small), "--quality-filter", "HIGH"])
    out, err = capsys.readouterr()
    assert code == 0
    assert f"no face indexed from {small}:" in err
    assert "none taken:" in err
    assert "indexed 0 face(s) from 0 image(s)" in out
