"""``facetrace cluster``: faces of a folder of real photos grouped by person, audited, bad files skipped."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from facetrace.cli import main
from facetrace.cli.output import EXIT_FAILURE
from tests.store.conftest import accept_audit_appends, refuse_audit_appends


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    out, _ = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {})


def test_cluster_groups_one_person_and_leaves_strangers_alone(
    capsys: pytest.CaptureFixture[str], photos: dict[str, Path], home: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "library"
    (folder / "trip").mkdir(parents=True)
    for name in ("obama.jpg", "obama2.jpg", "biden.jpg", "t1.jpg"):
        shutil.copy(photos[name], folder / name)
    shutil.copy(photos["obama3.jpg"], folder / "trip" / "obama3.jpg")  # only found with --recursive
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")

    code, flat = run(capsys, "cluster", str(folder))
    assert code == 1  # broken.jpg skipped and reported
    assert [Path(e["Image"]).name for e in flat["Errors"]] == ["broken.jpg"]
    assert [sorted(Path(f["Image"]).name for f in c["Faces"]) for c in flat["Clusters"]] == [
        ["obama.jpg", "obama2.jpg"]
    ]

    code, deep = run(capsys, "cluster", str(folder), "--recursive")
    assert deep["Faces"] == 10  # Obama ×3, Biden, six people in t1.jpg
    (group,) = deep["Clusters"]
    assert sorted(Path(f["Image"]).name for f in group["Faces"]) == ["obama.jpg", "obama2.jpg", "obama3.jpg"]
    assert group["Cohesion"] >= deep["Threshold"] == 95.0
    box = group["Faces"][0]["BoundingBox"]
    assert 0 <= box["Left"] < 1
    assert 0 < box["Width"] <= 1
    singles = sorted(Path(f["Image"]).name for f in deep["Singletons"])
    assert singles == ["biden.jpg"] + ["t1.jpg"] * 6

    code, audit = run(capsys, "audit", "list")
    assert code == 0
    records = [r for r in audit["Records"] if r["Operation"] == "ClusterFaces"]
    assert len(records) == 2
    assert records[-1]["Detail"]["faces"] == 10


def test_cluster_rejects_a_bad_threshold(capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path) -> None:
    assert main(["cluster", str(tmp_path), "--threshold", "120", "--json"]) == 1
    assert "threshold" in capsys.readouterr().err


@pytest.mark.parametrize("failure", ["disk full", "database unreachable"])
def test_cluster_shows_nothing_when_its_audit_record_cannot_be_kept(
    capsys: pytest.CaptureFixture[str], photos: dict[str, Path], home: Path, tmp_path: Path, failure: str
) -> None:
    """Fail closed: the groups are shown only once the act is on the audit trail."""
    folder = tmp_path / "library"
    folder.mkdir()
    for name in ("obama.jpg", "obama2.jpg"):
        shutil.copy(photos[name], folder / name)
    where: list[str] = []
    if failure == "disk full":
        assert main(["collections", "create", "unrelated"]) == 0  # the home's database exists
        refuse_audit_appends(home / "facetrace.db")
    else:
        where = ["--database-url", f"postgresql://facetrace@127.0.0.1:{_closed_port()}/facetrace"]
    capsys.readouterr()
    for output in (["--json"], []):
        assert main(["cluster", str(folder), *where, *output]) == EXIT_FAILURE
        out, err = capsys.readouterr()
        assert out == ""  # not a group, not a count
        assert "obama" not in err
        if output:
            error = json.loads(err)["error"]
            assert error["type"] == "StoreError"
            assert ("disk is full" if failure == "disk full" else "127.0.0.1") in error["message"]
    if failure == "disk full":
        accept_audit_appends(home / "facetrace.db")
        assert main(["cluster", str(folder), "--json"]) == 0  # healed: the same command shows its groups
        assert len(json.loads(capsys.readouterr().out)["Clusters"]) == 1


def _closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
