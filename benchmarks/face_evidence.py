"""Identity vectors plus the per-face evidence that calibration by face quality needs, cached on disk.

For every face: the vector, the vector of the horizontally mirrored aligned crop (test-time flip
averaging), and what the engine can say about the face's quality — box size in pixels, eye distance,
detector confidence, sharpness, brightness and pose. ``benchmarks/calibrate.py`` uses these to find which
features separate the impostor tails and to cut quality bands.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facetrace.engine import AnalyzedFace, FaceEngine

EVIDENCE = ("box_w", "box_h", "eye_px", "score", "sharpness", "brightness", "yaw", "pitch", "roll")
"""Per-face quality evidence columns (pixels, 0–1 detector score, 0–100 quality, degrees)."""

Arrays = dict[str, npt.NDArray[np.generic]]


def face_rows(engine: FaceEngine, faces: Sequence[AnalyzedFace]) -> tuple[list[npt.NDArray[np.float32]], ...]:
    """(vectors, mirrored vectors, evidence rows) for faces analysed with ``keep_crops=True``."""
    if not faces:
        return [], [], []
    crops = np.stack([face.crop for face in faces if face.crop is not None])
    flipped = engine.embed_crops(np.ascontiguousarray(crops[:, :, ::-1]))
    vectors, mirrored, evidence = [], [], []
    for index, face in enumerate(faces):
        assert face.vector is not None
        d, detail = face.detection, face.detail
        eyes = float(np.linalg.norm(d.landmarks[1] - d.landmarks[0]))
        row = (
            d.w,
            d.h,
            eyes,
            d.score,
            detail.quality.sharpness,
            detail.quality.brightness,
            detail.pose.yaw,
            detail.pose.pitch,
            detail.pose.roll,
        )
        vectors.append(face.vector)
        mirrored.append(flipped[index])
        evidence.append(np.asarray(row, dtype=np.float32))
    return vectors, mirrored, evidence


def to_arrays(
    vectors: list[npt.NDArray[np.float32]],
    mirrored: list[npt.NDArray[np.float32]],
    evidence: list[npt.NDArray[np.float32]],
    dim: int,
) -> Arrays:
    table = np.asarray(evidence, dtype=np.float32).reshape(-1, len(EVIDENCE))
    data: Arrays = {
        "vectors": np.asarray(vectors, dtype=np.float32).reshape(-1, dim),
        "flipped": np.asarray(mirrored, dtype=np.float32).reshape(-1, dim),
    }
    for column, name in enumerate(EVIDENCE):
        data[name] = table[:, column]
    return data


def save_atomic(path: Path, data: Arrays) -> None:
    """Write ``path`` via a temporary name so a reader never sees half a file."""
    temporary = path.with_name(path.name + ".partial.npz")
    np.savez_compressed(temporary, **data)  # type: ignore[arg-type]
    os.replace(temporary, path)


def progress(label: str, done: int, total: int) -> None:
    if done % 50 == 0 or done == total:
        print(f"\r  {label} {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)
