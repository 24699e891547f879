"""What a person reads: the command line's words, as a new user found them wanting (issue #11's list).

Each test runs a command without ``--json`` and checks the sentence that tells the user what happened: which
file, which of two inputs, how close the best candidate came, that more records follow.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from facetrace.cli import main


def human(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_a_missing_file_is_named_once_and_is_not_a_format_error(
    capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path
) -> None:
    missing = str(tmp_path / "nope.jpg")
    code, _, err = human(capsys, "detect", missing)
    assert code == 1
    assert one_line(err).count("nope.jpg") == 1
    assert "no such file" in err
    main(["detect", missing, "--json"])
    out, _ = capsys.readouterr()
    assert json.loads(out)["Results"][0]["Error"]["Type"] == "ImageFileError"


def test_detect_says_no_faces_instead_of_an_empty_table(
    capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path
) -> None:
    blank = tmp_path / "wall.png"
    PILImage.fromarray(np.full((240, 320, 3), 200, np.uint8)).save(blank)
    code, out, _ = human(capsys, "detect", str(blank))
    assert code == 0
    assert "no faces found" in out
    assert "┏" not in out  # no table


def test_compare_says_which_input_is_wrong(
    capsys: pytest.CaptureFixture[str], photos: dict[str, Path], home: Path, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a picture")
    blank = tmp_path / "wall.png"
    PILImage.fromarray(np.full((240, 320, 3), 200, np.uint8)).save(blank)
    code, _, err = human(capsys, "compare", str(photos["obama.jpg"]), str(notes))
    assert code == 1
    assert one_line(err).startswith("error: target ")
    assert "notes.jpg" in err
    code, _, err = human(capsys, "compare", str(blank), str(photos["obama.jpg"]))
    assert code == 1
    assert "source" in err
    assert "wall.png" in err
    assert "no faces" in err
    code, out, _ = human(capsys, "compare", str(photos["obama.jpg"]), str(blank))
    assert code == 0
    assert "no face in target" in one_line(out)


def test_search_no_match_says_how_close_the_best_came_and_errors_name_the_file(
    capsys: pytest.CaptureFixture[str], photos: dict[str, Path], home: Path, tmp_path: Path
) -> None:
    assert main(["collections", "create", "people", "--json"]) == 0
    assert main(["index", "people", str(photos["biden.jpg"]), "--json"]) == 0
    capsys.readouterr()
    code, out, _ = human(capsys, "search", "people", str(photos["obama.jpg"]))
    assert code == 0
    text = one_line(out)
    assert "no match" in text
    closest = float(text.split("closest face scores ")[1].split(":")[0])
    assert 0 <= closest < 99
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a picture")
    code, _, err = human(capsys, "search", "people", str(notes))
    assert code == 1
    assert "notes.jpg" in err


def test_collection_describe_prints_a_date_not_an_epoch(capsys: pytest.CaptureFixture[str], home: Path) -> None:
    main(["collections", "create", "people", "--json"])
    capsys.readouterr()
    code, out, _ = human(capsys, "collections", "describe", "people")
    assert code == 0
    created = next(line for line in out.splitlines() if "created" in line)
    assert "-" in created
    assert ":" in created.split("created:")[1]  # 2026-12-01 02:17:48+00:00


def test_tables_keep_ids_whole_on_a_narrow_terminal(
    capsys: pytest.CaptureFixture[str], photos: dict[str, Path], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    main(["collections", "create", "people", "--json"])
    main(["index", "people", str(photos["obama.jpg"]), "--external-id-from", "filename", "--json"])
    capsys.readouterr()
    main(["faces", "list", "people", "--json"])
    face_id = json.loads(capsys.readouterr().out)["Faces"][0]["FaceId"]
    code, out, _ = human(capsys, "faces", "list", "people")
    assert code == 0
    assert face_id in out  # whole, not "0d4a8c9e-1f2b…"
    assert main(["keys", "create", "--permission", "read", "--json"]) == 0
    key_id = json.loads(capsys.readouterr().out)["AccessKeyId"]
    code, out, _ = human(capsys, "keys", "list")
    assert key_id in out


def test_audit_list_says_more_records_follow(
    capsys: pytest.CaptureFixture[str], photos: dict[str, Path], home: Path
) -> None:
    for name in ("a", "b", "c"):
        main(["collections", "create", name, "--json"])
    capsys.readouterr()
    code, out, _ = human(capsys, "audit", "list", "--limit", "2")
    assert code == 0
    assert "more records follow" in out
    assert main(["audit", "list", "--limit", "2", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed["Records"]) == 2
    assert listed["NextAfter"] == listed["Records"][-1]["Seq"]
    main(["audit", "list", "--after", str(listed["NextAfter"]), "--json"])
    rest = json.loads(capsys.readouterr().out)
    assert rest["Records"]
    assert "NextAfter" not in rest


def test_external_id_from_parent_warns_about_loose_photos(
    capsys: pytest.CaptureFixture[str], photos: dict[str, Path], home: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "people"
    (folder / "obama").mkdir(parents=True)
    shutil.copy(photos["obama.jpg"], folder / "obama" / "1.jpg")
    shutil.copy(photos["biden.jpg"], folder / "loose.jpg")
    main(["collections", "create", "people", "--json"])
    capsys.readouterr()
    code, _, err = human(capsys, "index", "people", str(folder), "-r", "--external-id-from", "parent")
    assert code == 0
    assert "1 image(s) lie directly in" in one_line(err)
    assert "'people'" in err


def test_video_faces_refuses_a_file_that_is_not_a_video(
    capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a picture")
    code, _, err = human(capsys, "video", "faces", str(notes), "--quiet")
    assert code == 1
    assert "notes.jpg" in err
    assert "no video frame" in err
    code, _, err = human(capsys, "video", "faces", str(notes), "--min-confidence", "20")
    assert code == 1
    assert "--min-confidence" in err


def test_help_and_light_commands_do_not_load_the_models(home: Path) -> None:
    # What a start costs is what it imports: --help and `keys list` must not pull in OpenCV or onnxruntime.
    probe = (
        "import sys\n"
        "from facetrace.cli import main\n"
        "main(['keys', 'list', '--json'])\n"
        "heavy = sorted({'cv2', 'onnxruntime', 'onnx', 'av'} & set(sys.modules))\n"
        "print('heavy=' + ','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "heavy="
    helped = subprocess.run(
        [sys.executable, "-c", "import sys\nfrom facetrace.cli import build_parser\nbuild_parser(['--help'])\n"
         "print('numpy' in sys.modules)"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert helped.stdout.strip() == "False"
