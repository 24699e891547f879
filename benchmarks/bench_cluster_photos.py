"""Pairwise precision and recall of ``facetrace.clustering`` on labelled faces, and its time and memory at ~10k.

    python benchmarks/bench_cluster_photos.py [--thresholds 90 95 99]

Uses the embeddings cached by ``benchmarks/embed_lfw_calibration.py`` (lfw_calibration: 7,239 faces of 2,882
people) and ``benchmarks/calibrate.py`` (lfw_subset, dlib_johns, face_recognition, and 2,749 WIDER FACE crowd
faces, every one a different person from every other). Names LFW files under two spellings are merged and
mislabelled photos left out, as in the calibration (``benchmarks.calibrate.ALIASES``/``EXCLUDED``).

The default threshold (95) and the graph floor (70) were chosen on LFW people in fold 0 (crc32 of the name
even); fold 1 is reported as held out. The *calibration* curve itself was fitted on all of lfw_calibration,
WIDER and the labelled sets (docs/accuracy.md), so only the clustering's own choices are held out here.

Pairwise figures: of the pairs of faces put in one group, the share that are one person (precision), and
of the pairs of faces of one person, the share put in one group (recall), with 95% Clopper–Pearson bounds;
recall per person averages each person's own share (so George W Bush's 140,000 pairs do not dominate).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.calibrate import ALIASES, CACHE_NAME, EXCLUDED, LFW_CACHE
from benchmarks.common import cache_dir, labelled_sets, load_average, machine_info
from facetrace.calibration import load_calibration
from facetrace.calibration_fit import clopper_pearson
from facetrace.clustering import ClusterSettings, cluster_faces
from facetrace.quality import quality_score


def _pairs(count: Counter[object]) -> int:
    return sum(c * (c - 1) // 2 for c in count.values())


def score(labels: npt.NDArray[np.int64], people: list[str]) -> dict[str, float | int]:
    """Pairwise precision / recall of a labelling (−1: singleton) against the true people."""
    groups = [int(label) if label >= 0 else -1 - i for i, label in enumerate(labels)]
    together = _pairs(Counter(groups))
    same = _pairs(Counter(people))
    both = _pairs(Counter(zip(groups, people, strict=True)))
    per_person: dict[str, Counter[int]] = {}
    for group, person in zip(groups, people, strict=True):
        per_person.setdefault(person, Counter())[group] += 1
    shares = [
        _pairs(c) / _pairs(Counter({0: sum(c.values())})) for c in per_person.values() if sum(c.values()) > 1
    ]
    return {
        "together": together,
        "same": same,
        "both": both,
        "precision": both / together if together else 1.0,
        "recall": both / same if same else 1.0,
        "recall_per_person": float(np.mean(shares)) if shares else 1.0,
        "people": len(shares),
    }


def report(
    name: str, vectors: npt.NDArray[np.float32], quality: list[float], people: list[str], threshold: float
) -> None:
    calibration = load_calibration("sface-2021dec")
    start = time.perf_counter()
    result = cluster_faces(vectors, quality, calibration, ClusterSettings(threshold=threshold))
    seconds = time.perf_counter() - start
    s = score(result.labels(len(people)), people)
    wrong = int(s["together"]) - int(s["both"])
    p_lo, p_hi = clopper_pearson(int(s["both"]), int(s["together"])) if s["together"] else (1.0, 1.0)
    r_lo, r_hi = clopper_pearson(int(s["both"]), int(s["same"])) if s["same"] else (1.0, 1.0)
    print(
        f"| {name} | {threshold:g} | {len(people):,} | {s['precision']:.2%} ({wrong:,} wrong of {s['together']:,}; "
        f"{p_lo:.2%}–{p_hi:.2%}) | {s['recall']:.2%} ({s['both']:,} of {s['same']:,}; {r_lo:.2%}–{r_hi:.2%}) | "
        f"{s['recall_per_person']:.1%} ({s['people']:,}) | {len(result.clusters):,} / {len(result.singletons):,} | "
        f"{seconds:.1f} s | {load_average()} |",
        flush=True,
    )


def lfw(exclude: set[str]) -> tuple[npt.NDArray[np.float32], list[float], list[str]]:
    data = np.load(cache_dir() / LFW_CACHE)
    keep = np.asarray([f"lfw_calibration/{p}" not in exclude for p in data["paths"]])
    quality = [
        quality_score(float(h), float(c)) for h, c in zip(data["box_h"][keep], data["score"][keep], strict=True)
    ]
    people = [ALIASES.get(f"lfw:{p}", f"lfw:{p}") for p in data["person"][keep]]
    return np.asarray(data["vectors"][keep], np.float32), quality, people


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[90.0, 95.0, 99.0])
    parser.add_argument("--skip-scale", action="store_true", help="skip the ~10,000-face run")
    args = parser.parse_args()
    print(machine_info())
    vectors, quality, people = lfw(set(EXCLUDED))
    fold = np.asarray([zlib.crc32(p.encode()) % 2 for p in people])
    print(
        "\n| set | threshold | faces | precision (wrong pairs; 95% CI) | recall (pairs; 95% CI) | recall per person "
        "(people) | groups / alone | time | load |\n|---|---|---|---|---|---|---|---|---|"
    )
    cached = np.load(cache_dir() / CACHE_NAME)
    for threshold in args.thresholds:
        for number, label in ((0, "LFW fold 0 (tuning)"), (1, "LFW fold 1 (held out)")):
            chosen = np.flatnonzero(fold == number)
            report(label, vectors[chosen], [quality[i] for i in chosen], [people[i] for i in chosen], threshold)
        chosen = np.flatnonzero((fold == 1) & (np.asarray(people) != "lfw:George_W_Bush"))
        report("LFW fold 1 without G. W. Bush", vectors[chosen], [quality[i] for i in chosen],
               [people[i] for i in chosen], threshold)  # fmt: skip
        for pair_set in labelled_sets():
            found = ~np.isnan(cached[f"{pair_set.name}_vectors"]).any(axis=1)
            rows = np.flatnonzero(found)
            q = [
                quality_score(
                    float(cached[f"{pair_set.name}_box_h"][i]), float(cached[f"{pair_set.name}_score"][i])
                )
                for i in rows
            ]
            report(
                pair_set.name,
                cached[f"{pair_set.name}_vectors"][rows],
                q,
                [pair_set.identities[i] for i in rows],
                threshold,
            )
    if args.skip_scale:
        return
    # ~10k faces: every LFW face plus every WIDER crowd face (each a person of its own)
    wider = np.asarray(cached["wider_vectors"], np.float32)
    wq = [
        quality_score(float(h), float(c))
        for h, c in zip(cached["wider_box_h"], cached["wider_score"], strict=True)
    ]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report("LFW all + WIDER crowds", np.concatenate([vectors, wider]), quality + wq,
           people + [f"wider:{i}" for i in range(len(wider))], 95.0)  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"\npeak resident memory {after / 1024:.0f} MiB (grew by {(after - before) / 1024:.0f} MiB in the ~10k run)"
    )


if __name__ == "__main__":
    main()
