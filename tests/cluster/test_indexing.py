"""Bulk indexing through Ray workers gives exactly the faces of an in-process run, and resumes after a kill.

500 real face photos: crops of the 14 faces in the registry photos (tests/photos.py), each shifted, scaled,
mirrored and lit differently, so every file has its own bytes (and content hash) and its own vectors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from facetrace.cli import main
from facetrace.engine import FaceEngine
from facetrace.gallery import Gallery
from facetrace.gallery.bulk import FileOutcome, IndexOptions, ThreadAnalyser, index_files
from facetrace.store import MemoryStore, SQLiteStore
from tests.cluster.raycluster import local_cluster

pytestmark = pytest.mark.slow

PHOTOS = 500


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    with local_cluster() as address:
        yield address


def face_photos(engine: FaceEngine, photos: dict[str, Path], folder: Path, count: int) -> list[Path]:
    """``count`` distinct JPEG crops of real faces, 112–176 px."""
    faces = []
    for name in sorted(photos):
        image, found = engine.analyze(photos[name], embed=False)
        faces.extend((image.pixels, face.detection) for face in found if face.detection.w >= 40)
    rng = np.random.default_rng(11)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(count):
        pixels, det = faces[k % len(faces)]
        side = det.w * rng.uniform(1.6, 2.2)
        cx = det.x + det.w / 2 + rng.uniform(-0.12, 0.12) * det.w
        cy = det.y + det.h / 2 + rng.uniform(-0.12, 0.12) * det.h
        x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        crop = pixels[y0 : int(cy + side / 2), x0 : int(cx + side / 2)]
        out = int(rng.integers(112, 177))
        crop = cv2.resize(crop, (out, out), interpolation=cv2.INTER_AREA)
        if k % 2:
            crop = crop[:, ::-1]
        crop = np.clip(crop.astype(np.float32) * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8)
        path = folder / f"face{k:04d}.jpg"
        cv2.imwrite(str(path), crop, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def library(engine: FaceEngine, photos: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return face_photos(engine, photos, tmp_path_factory.mktemp("faces"), PHOTOS)


def _faces(gallery: Gallery, collection: str) -> dict[str, list[tuple[tuple[float, ...], np.ndarray]]]:
    """File stem → its faces' (box, confidence) and vector, from the store."""
    found: dict[str, list[tuple[tuple[float, ...], np.ndarray]]] = {}
    token = None
    while True:
        page = gallery.store.list_faces(collection, limit=1000, next_token=token)
        for face in page.items:
            box = face.bounding_box
            key = (round(box.left, 5), round(box.top, 5), round(box.width, 5), round(box.height, 5),
                   round(face.confidence, 3))  # fmt: skip
            vector = gallery.store.get_vector(collection, face.face_id)
            found.setdefault(face.external_image_id or "", []).append((key, vector))
        token = page.next_token
        if token is None:
            return found


class Killed(Exception):
    """Stands for the import being killed after some files were committed."""


def test_ray_indexing_gives_the_in_process_faces_and_resumes_without_duplicates(
    cluster: str, engine: FaceEngine, library: list[Path], tmp_path: Path
) -> None:
    from facetrace.cluster.indexing import EngineSpec, RayAnalyser

    local = Gallery(engine, MemoryStore())
    local.create_collection("people")
    outcomes = index_files(local, "people", library, ThreadAnalyser(engine, workers=2))
    expected = _faces(local, "people")
    assert sum(len(o.result.indexed) for o in outcomes if o.result) == sum(map(len, expected.values())) > 400

    store = SQLiteStore(tmp_path / "facetrace.db")
    remote = Gallery(engine, store)
    remote.create_collection("people")
    analyser = RayAnalyser(EngineSpec(), remote.model)

    committed: list[FileOutcome] = []

    def kill_after_150(outcome: FileOutcome) -> None:
        committed.append(outcome)
        if len(committed) == 150:
            raise Killed

    with pytest.raises(Killed):
        index_files(remote, "people", library, analyser, options=IndexOptions(batch_size=8),
                    on_outcome=kill_after_150)  # fmt: skip
    before = store.describe_collection("people").face_count
    assert 0 < before < len(library)

    resumed = index_files(remote, "people", library, analyser, options=IndexOptions(batch_size=8))
    skipped = [o for o in resumed if o.skipped]
    assert len(skipped) == 150  # exactly what the killed run committed
    assert [o.path for o in resumed] == [str(p) for p in library]

    got = _faces(remote, "people")
    assert sorted(got) == sorted(expected)
    for stem, faces in expected.items():
        assert sorted(k for k, _ in got[stem]) == sorted(k for k, _ in faces), stem  # no duplicate, none lost
        for (key, vector), (other_key, other) in zip(sorted(faces, key=lambda f: f[0]),
                                                     sorted(got[stem], key=lambda f: f[0]), strict=True):  # fmt: skip
            assert key == other_key
            assert float(np.dot(vector, other)) > 0.9999
    store.close()


def test_cli_index_ray_names_what_it_skips_and_resumes(
    cluster: str, library: list[Path], photos: dict[str, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    home = tmp_path / "home"
    monkeypatch.setenv("FACETRACE_HOME", str(home))
    folder = tmp_path / "in"
    folder.mkdir()
    for path in library[:6]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "landscape.jpg").write_bytes(cv2.imencode(".jpg", np.full((200, 300, 3), 90, np.uint8))[1].tobytes())
    assert main(["collections", "create", "people", "--json"]) == 0
    capsys.readouterr()

    code = main(["index", "people", str(folder), str(tmp_path / "nowhere"), "--ray", cluster, "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1  # the missing path
    assert report["FacesIndexed"] == 6
    assert report["ImagesWithoutFaces"] == 1

    code = main(["index", "people", str(folder), "--ray", cluster])
    captured = capsys.readouterr()
    assert code == 0
    assert "indexed 0 face(s)" in captured.out
    assert "7 image(s) indexed before, skipped" in captured.out
