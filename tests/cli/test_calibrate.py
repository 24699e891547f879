"""``facetrace calibrate`` and ``--recognizer/--calibration`` end to end, on real photos.

SFace plays "the user's own recognizer": loaded by path through the generic ONNX embedder under another
name (``mysface-1``), so its vectors and collections are a different model's as far as facetrace knows.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from math import comb
from pathlib import Path
from typing import Any

import boto3
import cv2
import httpx
import pytest
from botocore.config import Config

from facetrace.calibration import calibration_from_json
from facetrace.cli import main
from facetrace.engine import FaceEngine
from facetrace.models.assets import ARTIFACTS, artifact_path, sha256_file
from facetrace.models.onnx_embedder import SFACE_FILE

OBAMA = ("obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg", "obama_partial_face2.jpg")


def cli(*argv: str) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """Run the CLI with --json; (exit code, stdout JSON, stderr JSON error)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, "--json"])
    text = err.getvalue().strip().splitlines()
    error = json.loads(text[-1]) if text and text[-1].startswith("{") else {}
    return code, (json.loads(out.getvalue()) if out.getvalue().strip() else {}), error


def sface_path() -> Path:
    return artifact_path(ARTIFACTS[SFACE_FILE])


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, Path], engine: FaceEngine) -> Path:
    """Nine people: Obama (5 photos), Biden, Tom Hanks, and the six guests of t1.jpg (one crop each);
    plus an unreadable file and a text file that is not an image."""
    root = tmp_path_factory.mktemp("labelled") / "people"
    for person, names in {"obama": OBAMA, "biden": ("biden.jpg",), "hanks": ("Tom_Hanks_54745.png",)}.items():
        (root / person).mkdir(parents=True)
        for name in names:
            shutil.copy(photos[name], root / person / name)
    (root / "biden" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (root / "hanks" / "notes.txt").write_text("not a photo")
    image, faces = engine.analyze(photos["t1.jpg"], embed=False)
    assert len(faces) == 6
    for number, face in enumerate(faces):
        d, margin = face.detection, 0.6
        x0, y0 = max(0, int(d.x - margin * d.w)), max(0, int(d.y - margin * d.h))
        x1, y1 = int(d.x + d.w * (1 + margin)), int(d.y + d.h * (1 + margin))
        (root / f"guest{number}").mkdir()
        assert cv2.imwrite(str(root / f"guest{number}" / "t1.jpg"), image.pixels[y0:y1, x0:x1])
    return root


@pytest.fixture(scope="module")
def user_model(people: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The calibration of "mysface-1" fitted on ``people`` and the command's report."""
    out = tmp_path_factory.mktemp("calibration") / "mysface.json"
    code, report, error = cli(
        "calibrate", str(people), "--model", str(sface_path()), "--name", "mysface", "--version", "1",
        "--mean", "0", "--std", "1", "--out", str(out),
    )  # fmt: skip
    assert code == 0, error
    return out, report


def test_calibrate_a_users_model_reports_pairs_and_writes_a_loadable_calibration(
    user_model: tuple[Path, dict[str, Any]],
) -> None:
    out, report = user_model
    faces_per_person = [5, 1, 1, 1, 1, 1, 1, 1, 1]  # every photo but the broken one has a face
    faces = sum(faces_per_person)
    genuine = sum(comb(k, 2) for k in faces_per_person)
    assert report["Model"] == "mysface-1"
    assert (report["People"], report["Photos"], report["Faces"]) == (9, 14, 13)
    assert [s["Path"].endswith("broken.jpg") for s in report["SkippedImages"]] == [True]
    assert report["NoFace"] == []
    assert report["ImpostorPairs"] == comb(faces, 2) - genuine == 68
    assert report["GenuinePairs"] == genuine == 10
    # too few low-quality faces for two bands, far too few pairs for 1e-6: both said, loudly
    assert list(report["Bands"]) == ["all"]
    warnings = " ".join(report["Warnings"])
    assert "one quality band" in warnings
    assert "too few to support FMR 1e-6" in warnings
    rows = report["InSample"]
    assert list(rows) == ["80", "90", "95", "99"]
    assert all(row["impostors_at_or_above"].endswith("/68") for row in rows.values())
    assert all(row["genuines_at_or_above"].endswith("/10") for row in rows.values())
    assert rows["99"]["fmr_95ci"][1] > 1e-6  # 68 pairs cannot bound anything near 1e-6
    assert report["Bands"]["all"]["threshold_from"]["99"] != "empirical"

    top = report["TopImpostorPairs"]  # where to look for label errors first
    assert len(top) == 5
    assert [p["Cosine"] for p in top] == sorted((p["Cosine"] for p in top), reverse=True)
    assert all(Path(p["A"]).parent != Path(p["B"]).parent for p in top)
    assert report["DuplicatesLeftOut"] == []

    document = json.loads(out.read_text())
    calibration = calibration_from_json(document)
    assert calibration.model == "mysface-1"
    assert len(calibration.bands) == 1
    assert calibration.cosine_for(80.0) < calibration.cosine_for(99.0)
    assert document["recognizer"]["sha256"] == sha256_file(sface_path())
    assert (document["recognizer"]["mean"], document["recognizer"]["std"]) == (0.0, 1.0)
    assert document["evidence"]["impostor_pairs"] == 68


def test_commands_run_the_users_recognizer_with_its_calibration(
    user_model: tuple[Path, dict[str, Any]], people: Path, photos: dict[str, Path], home: Path
) -> None:
    out, _ = user_model
    own = ("--recognizer", str(sface_path()), "--calibration", str(out))
    assert cli("collections", "create", "mine", *own)[0] == 0
    code, indexed, _ = cli("index", "mine", str(people / "obama"), "--external-id-from", "parent", *own)
    assert code == 0
    assert indexed["FacesIndexed"] == 5
    assert {r["FaceModelVersion"] for r in indexed["Results"]} == {"mysface-1"}
    assert cli("collections", "describe", "mine", *own)[1]["FaceModelVersion"] == "mysface-1"

    code, found, _ = cli("search", "mine", str(photos["obama2.jpg"]), "--threshold", "90", *own)
    assert code == 0
    assert found["FaceModelVersion"] == "mysface-1"
    assert {m["Face"]["ExternalImageId"] for m in found["FaceMatches"]} == {"obama"}
    code, nobody, _ = cli("search", "mine", str(photos["biden.jpg"]), "--threshold", "90", *own)
    assert (code, nobody["FaceMatches"]) == (0, [])

    code, compared, _ = cli("compare", str(photos["obama.jpg"]), str(photos["biden.jpg"]), *own)
    assert code == 0
    assert compared["FaceMatches"] == []
    code, detected, _ = cli("detect", str(photos["t1.jpg"]), *own)
    assert code == 0
    assert len(detected["Results"][0]["FaceDetails"]) == 6


def test_a_collection_of_another_model_is_refused(
    user_model: tuple[Path, dict[str, Any]], people: Path, photos: dict[str, Path], home: Path, tmp_path: Path
) -> None:
    out, _ = user_model
    own = ("--recognizer", str(sface_path()), "--calibration", str(out))
    assert cli("collections", "create", "plain")[0] == 0  # the default model's
    code, _, error = cli("index", "plain", str(people / "obama"), *own)
    assert code == 1
    assert error["error"]["type"] == "ModelMismatchError"
    assert "sface-2021dec" in error["error"]["message"]
    assert "mysface-1" in error["error"]["message"]

    assert cli("collections", "create", "mine", *own)[0] == 0
    assert cli("index", "mine", str(people / "obama"), *own)[0] == 0
    code, _, error = cli("search", "mine", str(photos["obama2.jpg"]))  # the default SFace
    assert (code, error["error"]["type"]) == (1, "ModelMismatchError")

    # The same weights under another name and version are another model: its vectors never meet mysface-1's.
    renamed = json.loads(out.read_text())
    renamed["model"] = "mysface-2"
    renamed["recognizer"]["version"] = "2"
    other = tmp_path / "renamed.json"
    other.write_text(json.dumps(renamed))
    code, _, error = cli(
        "search", "mine", str(photos["obama2.jpg"]), "--recognizer", str(sface_path()), "--calibration", str(other)
    )
    assert (code, error["error"]["type"]) == (1, "ModelMismatchError")
    code, _, error = cli(
        "users", "create", "plain", "alice", "--recognizer", str(sface_path()), "--calibration", str(other)
    )
    assert (code, error["error"]["type"]) == (1, "ModelMismatchError")


def test_a_recognizer_needs_the_calibration_fitted_on_it(
    user_model: tuple[Path, dict[str, Any]], photos: dict[str, Path], home: Path, tmp_path: Path
) -> None:
    out, _ = user_model
    probe = str(photos["obama.jpg"])
    code, _, error = cli("detect", probe, "--recognizer", str(sface_path()))
    assert (code, error["error"]["type"]) == (1, "InvalidParameterError")
    assert "--calibration" in error["error"]["message"]

    tampered = json.loads(out.read_text())
    tampered["recognizer"]["sha256"] = "0" * 64  # fitted on some other file
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(tampered))
    code, _, error = cli("compare", probe, probe, "--recognizer", str(sface_path()), "--calibration", str(wrong))
    assert (code, error["error"]["type"]) == (1, "ModelMismatchError")

    shipped = tmp_path / "shipped.json"  # SFace's own calibration names no user recognizer
    shipped.write_text(
        (Path(__file__).parents[2] / "src/facetrace/data/calibration-sface-2021dec.json").read_text()
    )
    code, _, error = cli("compare", probe, probe, "--recognizer", str(sface_path()), "--calibration", str(shipped))
    assert (code, error["error"]["type"]) == (1, "InvalidParameterError")

    for bad in (tmp_path / "missing.json", tmp_path / "garbage.json"):
        if bad.name == "garbage.json":
            bad.write_text("{not json")
        code, _, error = cli("compare", probe, probe, "--calibration", str(bad))
        assert (code, error["error"]["type"]) == (1, "InvalidParameterError")
    # a calibration of mysface-1 cannot be put on the default SFace either
    code, _, error = cli("compare", probe, probe, "--calibration", str(out))
    assert (code, error["error"]["type"]) == (1, "ModelMismatchError")


def test_calibrate_validates_its_inputs(people: Path, tmp_path: Path) -> None:
    def refused(*argv: str) -> str:
        code, _, error = cli("calibrate", *argv, "--out", str(tmp_path / "c.json"))
        assert code == 1, argv
        return f"{error['error']['type']}: {error['error']['message']}"

    assert "does not exist" in refused(str(tmp_path / "nowhere"))
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(people / "obama" / "obama.jpg", flat)
    assert "no person folders" in refused(str(flat))
    alone = tmp_path / "alone"
    shutil.copytree(people / "obama", alone / "obama")
    assert "one person only" in refused(str(alone))
    few = tmp_path / "few"  # three people: 2 impostor pairs… far below what a curve needs
    for person in ("biden", "hanks", "guest0"):
        shutil.copytree(people / person, few / person)
    assert refused(str(few)).startswith("InvalidInputError")
    assert "too few" in refused(str(few))

    not_onnx = tmp_path / "model.onnx"
    not_onnx.write_bytes(b"definitely not a protobuf")
    message = refused(str(people), "--model", str(not_onnx), "--name", "x", "--version", "1")
    assert message.startswith("InvalidParameterError")
    assert "not a usable face recognizer" in message
    detector = artifact_path(ARTIFACTS["face_detection_yunet_2023mar.onnx"])  # valid ONNX, not a recognizer
    message = refused(str(people), "--model", str(detector), "--name", "x", "--version", "1")
    assert "not a usable face recognizer" in message
    assert "--name" in refused(str(people), "--model", str(sface_path()), "--version", "1")
    assert "does not exist" in refused(
        str(people), "--model", str(tmp_path / "none.onnx"), "--name", "x", "--version", "1"
    )
    code, _, error = cli("calibrate", str(people), "--out", str(tmp_path / "no" / "such" / "c.json"))
    assert (code, error["error"]["type"]) == (1, "InvalidParameterError")


def test_copies_of_one_photo_are_left_out(people: Path, tmp_path: Path) -> None:
    """A copy in one person's folder would be a genuine pair of cosine 1; a photo filed under two people is
    a label error: every copy of it is left out, and said so."""
    folder = tmp_path / "people"
    shutil.copytree(people, folder)
    shutil.copy(folder / "obama" / "obama3.jpg", folder / "obama" / "obama3 (copy).jpg")
    shutil.copy(folder / "obama" / "obama2.jpg", folder / "hanks" / "who is this.jpg")
    code, report, error = cli("calibrate", str(folder), "--out", str(tmp_path / "c.json"))
    assert code == 0, error
    left_out = sorted(Path(p).name for p in report["DuplicatesLeftOut"])
    assert len(left_out) == 3  # one of the two obama3 copies, and both obama2 copies
    assert {"obama2.jpg", "who is this.jpg"} < set(left_out)
    assert {"obama3.jpg", "obama3 (copy).jpg"} & set(left_out)
    assert any("filed under 2 people" in w for w in report["Warnings"])
    faces_per_person = [4, 1, 1, 1, 1, 1, 1, 1, 1]
    assert report["Faces"] == sum(faces_per_person)
    assert report["GenuinePairs"] == comb(4, 2)
    assert report["ImpostorPairs"] == comb(12, 2) - comb(4, 2)


def test_calibrate_without_a_model_recalibrates_sface(
    people: Path, photos: dict[str, Path], home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ours.json"
    code, report, _ = cli("calibrate", str(people), "--out", str(out))
    assert code == 0
    assert report["Model"] == "sface-2021dec"
    assert (report["ImpostorPairs"], report["GenuinePairs"]) == (68, 10)
    document = json.loads(out.read_text())
    assert "recognizer" not in document
    assert calibration_from_json(document).model == "sface-2021dec"
    # the default collection works with the re-calibrated SFace: same model, another scale
    assert cli("collections", "create", "staff")[0] == 0
    assert cli("index", "staff", str(people / "obama"), "--external-id-from", "parent")[0] == 0
    code, found, _ = cli(
        "search", "staff", str(photos["obama2.jpg"]), "--threshold", "90", "--calibration", str(out)
    )
    assert code == 0
    assert {m["Face"]["ExternalImageId"] for m in found["FaceMatches"]} == {"obama"}


@pytest.mark.shared
def test_calibrate_on_lfw_subset_holds_out_people(shared: Path, tmp_path: Path) -> None:
    """Ten LFW people, ten photos each: 4,500 impostor and 450 genuine pairs, and a held-out check."""
    out = tmp_path / "lfw.json"
    code, report, error = cli("calibrate", str(shared / "lfw_subset"), "--out", str(out))
    assert code == 0, error
    faces = report["Faces"]
    assert (report["People"], report["Photos"]) == (10, 100)
    assert faces >= 98  # LFW's centred faces are found (the largest face is taken)
    assert report["ImpostorPairs"] + report["GenuinePairs"] == comb(faces, 2)
    if faces == 100:
        assert (report["ImpostorPairs"], report["GenuinePairs"]) == (4500, 450)
    held = report["HeldOut"]
    assert "skipped" not in held, held
    assert held["A"]["people"] + held["B"]["people"] == 10
    assert calibration_from_json(json.loads(out.read_text())).model == "sface-2021dec"


def test_serve_runs_the_users_recognizer(
    user_model: tuple[Path, dict[str, Any]], photos: dict[str, Path], tmp_path: Path
) -> None:
    """``facetrace serve --recognizer --calibration``: collections made over the wire are the user's model's."""
    out, _ = user_model
    home = tmp_path / "home"
    code, key, _ = cli("keys", "create", "--permission", "admin", "--home", str(home))
    assert code == 0
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    command = [sys.executable, "-m", "facetrace", "serve", "--home", str(home), "--port", str(port)]
    command += ["--recognizer", str(sface_path()), "--calibration", str(out)]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        client = boto3.client(
            "rekognition", endpoint_url=url, region_name="eu-central-1",
            aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
            config=Config(retries={"total_max_attempts": 1}),
        )  # fmt: skip
        assert client.create_collection(CollectionId="mine")["FaceModelVersion"] == "mysface-1"
        client.index_faces(
            CollectionId="mine", Image={"Bytes": photos["obama.jpg"].read_bytes()}, ExternalImageId="obama"
        )
        found = client.search_faces_by_image(
            CollectionId="mine", Image={"Bytes": photos["obama2.jpg"].read_bytes()}, FaceMatchThreshold=90
        )
        assert found["FaceModelVersion"] == "mysface-1"
        assert [m["Face"]["ExternalImageId"] for m in found["FaceMatches"]] == ["obama"]
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0].decode()
    assert "recognizer mysface-1" in output
