"""Embed ../shared/data/lfw_calibration once: one face per photo (the centred one), with evidence.

    python benchmarks/embed_lfw_calibration.py [--out PATH]

Writes (atomically) an .npz with ``paths`` (relative to lfw_calibration/), ``person``, ``vectors`` (N, 128),
``flipped`` (N, 128: the mirrored crop's vector) and the evidence columns of ``benchmarks.face_evidence``;
``missing`` lists the photos where no face was found. Default: the benchmark cache.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import cache_dir, central_face, machine_info, require_data
from benchmarks.face_evidence import face_rows, progress, save_atomic, to_arrays
from facetrace.engine import FaceEngine

CACHE_NAME = "lfw_calibration_sface.npz"


def lfw_calibration_photos() -> list[Path]:
    folder = require_data() / "lfw_calibration"
    return sorted(p for p in folder.glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def embed_lfw(out: Path) -> None:
    engine = FaceEngine.create()
    root = require_data() / "lfw_calibration"
    photos = lfw_calibration_photos()
    paths, person, missing = [], [], []
    vectors, mirrored, evidence = [], [], []
    start = time.perf_counter()
    for index, path in enumerate(photos, 1):
        image = engine.load(path)
        chosen = central_face(engine.find_faces(image), image.width, image.height)
        if chosen is None:
            missing.append(str(path.relative_to(root)))
        else:
            faces = engine.describe(image, [chosen], keep_crops=True)
            v, m, e = face_rows(engine, faces)
            vectors += v
            mirrored += m
            evidence += e
            paths.append(str(path.relative_to(root)))
            person.append(path.parent.name)
        progress("lfw_calibration", index, len(photos))
    data = to_arrays(vectors, mirrored, evidence, engine.model.dim)
    data["paths"] = np.asarray(paths)
    data["person"] = np.asarray(person)
    data["missing"] = np.asarray(missing, dtype=str)
    save_atomic(out, data)
    print(f"{len(paths)} faces, {len(missing)} photos without one, {time.perf_counter() - start:.0f} s → {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=cache_dir() / CACHE_NAME)
    args = parser.parse_args()
    print(machine_info())
    embed_lfw(args.out)


if __name__ == "__main__":
    main()
