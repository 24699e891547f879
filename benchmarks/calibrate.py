"""Fit SFace's cosine → similarity curve so that similarity thresholds mean false match rates.

    python benchmarks/calibrate.py            # embed (cached), fit, print the table
    python benchmarks/calibrate.py --write    # ... and write src/facetrace/data/calibration-<model>.json

Impostors (pairs of different people):
  * every pair of faces found in ``wider_val200`` (200 crowd and event photos; faces in different photos are
    different people, and so are faces in one photo). The shared copies are squashed to 416×416; each is
    first restored to its original aspect ratio (recovered from the official boxes, see
    ``common.estimate_source_height``) so faces are not distorted, then scanned with tiling at 2× so that
    small faces are found too;
  * the different-identity pairs of ``lfw_subset`` and ``dlib_johns``;
  * every labelled face (LFW, dlib's Johns, face_recognition's photos) against every WIDER face, and the three
    labelled sets against each other (they share no person).
Genuines (same person): the same-identity pairs of ``lfw_subset``, ``dlib_johns`` and face_recognition's
single-person photos (byte-identical copies dropped).

For each false match rate F the cosine threshold is the empirical (1 − F) quantile of the impostor cosines
while at least ``MIN_TAIL_PAIRS`` impostor pairs lie above it. Past that it is extrapolated from the upper
tail: the exceedances over the cosine at which ``TAIL_PAIRS`` impostor pairs remain are fitted with an
exponential (a generalised Pareto with shape 0). Cosines are bounded by 1, so the true tail is lighter than
exponential (shape < 0) and the exponential threshold errs high, i.e. safe. The shape is estimated anyway
(probability-weighted moments) and reported; if it came out positive (a heavier tail) the GPD quantile
would be used instead. Where a few impostor pairs are still observed above the fitted cosine, the higher of
the two is taken.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    ROOT,
    PairSet,
    cache_dir,
    central_face,
    estimate_source_height,
    labelled_sets,
    machine_info,
    wider_images,
)
from benchmarks.face_evidence import EVIDENCE, Arrays, face_rows, progress, save_atomic, to_arrays
from facetrace.calibration import FMR_ANCHORS
from facetrace.engine import DetectionSettings, FaceEngine
from facetrace.imaging import Image

MIN_TAIL_PAIRS = 25
"""Use the empirical quantile only while at least this many impostor pairs lie above the threshold."""
TAIL_PAIRS = 2000
"""The tail fit uses the top this-many impostor cosines."""
MIN_FACE_PX = 16
"""WIDER faces shorter than this (box height, restored pixels) are left out: too small to index."""
MIN_SCORE = 0.7
"""WIDER detections below this confidence are left out: most are hands, signs and blur, not faces."""
SAME_PEOPLE = (("3_Riot_Riot_3_318.jpg", "3_Riot_Riot_3_405.jpg", "3_Riot_Riot_3_689.jpg"),)
"""WIDER photos that show the same people (a news series; checked by eye among the highest-scoring
cross-photo pairs). Pairs of faces across photos of one group are not counted as impostors."""
WIDER_TILE_SETTINGS = DetectionSettings(small_faces=True, upscale=2.0)
REPORT_SIMILARITIES = (50.0, 70.0, 80.0, 90.0, 95.0, 99.0)
GALLERY = 300_000
CACHE_NAME = "calibration-embeddings-v2.npz"
"""Labelled sets and WIDER faces with mirrored vectors and quality evidence (v1 had vectors only)."""


# -- embedding ---------------------------------------------------------------------------------------


def embed_wider(engine: FaceEngine, tiled: FaceEngine) -> Arrays:
    """Every face in the WIDER photos, after restoring each photo's aspect ratio, with its evidence."""
    images = wider_images()
    heights: list[int | None] = []
    for item in images:
        image = engine.load(item.path)
        heights.append(estimate_source_height(item, engine.find_faces(image), side=image.height))
    known = [h for h in heights if h is not None]
    fallback = int(np.median(known)) if known else 768
    vectors: list[npt.NDArray[np.float32]] = []
    mirrored: list[npt.NDArray[np.float32]] = []
    evidence: list[npt.NDArray[np.float32]] = []
    photo: list[int] = []
    for index, (item, height) in enumerate(zip(images, heights, strict=True)):
        image = engine.load(item.path)
        source_h = height or fallback
        width = round(image.height * 1024 / source_h)
        restored = Image(pixels=cv2.resize(image.pixels, (width, image.height), interpolation=cv2.INTER_CUBIC))
        _, faces = tiled.analyze(restored, keep_crops=True)
        v, m, e = face_rows(tiled, faces)
        vectors += v
        mirrored += m
        evidence += e
        photo += [index] * len(v)
        progress("wider", index + 1, len(images))
    data = {
        f"wider_{key}": value for key, value in to_arrays(vectors, mirrored, evidence, engine.model.dim).items()
    }
    data["wider_photo"] = np.asarray(photo, dtype=np.int32)
    data["wider_estimated"] = np.asarray([h is not None for h in heights])
    return data


def embed_labelled(engine: FaceEngine, pair_set: PairSet) -> Arrays:
    """One face per image of ``pair_set`` (centred or largest), NaN rows where none was found."""
    dim = engine.model.dim
    vectors = np.full((len(pair_set.images), dim), np.nan, dtype=np.float32)
    mirrored = vectors.copy()
    evidence = np.full((len(pair_set.images), len(EVIDENCE)), np.nan, dtype=np.float32)
    for index, path in enumerate(pair_set.images):
        image = engine.load(path)
        detections = engine.find_faces(image)
        if pair_set.central:
            chosen = central_face(detections, image.width, image.height)
        else:
            chosen = detections[0] if detections else None
        if chosen is None:
            continue
        v, m, e = face_rows(engine, engine.describe(image, [chosen], keep_crops=True))
        vectors[index], mirrored[index], evidence[index] = v[0], m[0], e[0]
    data: Arrays = {f"{pair_set.name}_vectors": vectors, f"{pair_set.name}_flipped": mirrored}
    for column, name in enumerate(EVIDENCE):
        data[f"{pair_set.name}_{name}"] = evidence[:, column]
    return data


def collect(refresh: bool) -> Arrays:
    path = cache_dir() / CACHE_NAME
    if path.is_file() and not refresh:
        with np.load(path) as cached:
            return dict(cached)
    engine = FaceEngine.create()
    tiled = FaceEngine.create(settings=WIDER_TILE_SETTINGS)
    data: Arrays = {}
    for pair_set in labelled_sets():
        print(f"  embedding {pair_set.name}", file=sys.stderr)
        data.update(embed_labelled(engine, pair_set))
    data.update(embed_wider(engine, tiled))
    save_atomic(path, data)
    return data


# -- pairs -------------------------------------------------------------------------------------------


def pair_scores(
    data: dict[str, npt.NDArray[np.generic]], min_face: float, min_score: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], dict[str, int], dict[str, int]]:
    """(impostor cosines, genuine cosines, impostor pairs per source, genuine pairs per source)."""
    impostors: list[npt.NDArray[np.float32]] = []
    genuines: list[npt.NDArray[np.float32]] = []
    impostor_sources: dict[str, int] = {}
    genuine_sources: dict[str, int] = {}
    keep = (np.asarray(data["wider_box_h"]) >= min_face) & (np.asarray(data["wider_score"]) >= min_score)
    wider = np.asarray(data["wider_vectors"], dtype=np.float32)[keep]
    photo = np.asarray(data["wider_photo"])[keep]
    group = photo.copy()
    names = [item.path.name for item in wider_images()]
    for members in SAME_PEOPLE:
        indices = [names.index(name) for name in members]
        group[np.isin(photo, indices)] = indices[0]
    rows, cols = np.triu_indices(len(wider), k=1)
    distinct = (group[rows] != group[cols]) | (photo[rows] == photo[cols])
    impostors.append((wider @ wider.T)[rows[distinct], cols[distinct]])
    impostor_sources["wider_val200 x wider_val200"] = len(impostors[-1])
    labelled: list[npt.NDArray[np.float32]] = []
    for pair_set in labelled_sets():
        vectors = np.asarray(data[f"{pair_set.name}_vectors"], dtype=np.float32)
        ok = ~np.isnan(vectors).any(axis=1)
        same = [(a, b) for a, b, s in pair_set.pairs if s and ok[a] and ok[b]]
        diff = [(a, b) for a, b, s in pair_set.pairs if not s and ok[a] and ok[b]]
        if same:
            genuines.append(np.einsum("ij,ij->i", vectors[[a for a, _ in same]], vectors[[b for _, b in same]]))
            genuine_sources[pair_set.name] = len(same)
        if diff and pair_set.name != "face_recognition":
            impostors.append(np.einsum("ij,ij->i", vectors[[a for a, _ in diff]], vectors[[b for _, b in diff]]))
            impostor_sources[pair_set.name] = len(diff)
        found = vectors[ok]
        impostors.append((found @ wider.T).ravel())
        impostor_sources[f"{pair_set.name} x wider_val200"] = found.size // found.shape[1] * len(wider)
        for other in labelled:
            impostors.append((found @ other.T).ravel())
            impostor_sources[f"{pair_set.name} x earlier labelled sets"] = impostor_sources.get(
                f"{pair_set.name} x earlier labelled sets", 0
            ) + len(found) * len(other)
        labelled.append(found)
    return (
        np.concatenate(impostors).astype(np.float64),
        np.concatenate(genuines).astype(np.float64),
        impostor_sources,
        genuine_sources,
    )


# -- fitting -----------------------------------------------------------------------------------------


def gpd_shape_pwm(excess: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Generalised Pareto (shape ξ, scale σ) by probability-weighted moments (Hosking & Wallis 1987)."""
    x = np.sort(excess)
    n = len(x)
    b0 = float(x.mean())
    b1 = float(np.sum(x * (np.arange(n) / (n - 1))) / n)  # E[X F(X)]
    # Hosking's parameterisation k = −ξ: k = b0 / (b0 − 2 b1) − 2, σ = 2 b0 b1 / (b0 − 2 b1)
    a1 = b0 - b1  # E[X (1 − F(X))]
    k = b0 / (b0 - 2 * a1) - 2
    sigma = 2 * b0 * a1 / (b0 - 2 * a1)
    return -k, sigma


def tail_cosine(fmr: float, tail: dict[str, float]) -> tuple[float, str]:
    """The cosine the tail fit puts at false match rate ``fmr``."""
    u, p_u, sigma, xi = tail["cosine"], tail["fraction"], tail["exp_scale"], tail["gpd_shape"]
    if xi > 0:  # heavier than exponential: use the GPD quantile
        return u + tail["gpd_scale"] / xi * ((p_u / fmr) ** xi - 1.0), "GPD tail fit"
    return u + sigma * math.log(p_u / fmr), "exponential tail fit"


def tail_fmr(cosine: float, tail: dict[str, float]) -> float:
    """The false match rate the tail fit predicts at ``cosine`` (valid above the fit's start)."""
    u, p_u, sigma, xi = tail["cosine"], tail["fraction"], tail["exp_scale"], tail["gpd_shape"]
    if cosine <= u:
        return p_u
    if xi > 0:
        return p_u * (1.0 + xi * (cosine - u) / tail["gpd_scale"]) ** (-1.0 / xi)
    return p_u * math.exp(-(cosine - u) / sigma)


def poisson_upper(observed: int, confidence: float = 0.95) -> float:
    """One-sided upper confidence bound on a Poisson mean, having seen ``observed`` events (95%: z = 1.645)."""
    if observed > 200:  # normal approximation; the exact sum below would underflow
        return observed + 1.645 * math.sqrt(observed) + 1.0

    def cdf(mean: float) -> float:
        term = total = math.exp(-mean)
        for k in range(1, observed + 1):
            term *= mean / k
            total += term
        return total

    low, high = float(observed), float(observed) + 10.0 * math.sqrt(observed + 1.0) + 10.0
    for _ in range(100):
        middle = (low + high) / 2.0
        low, high = (middle, high) if cdf(middle) > 1.0 - confidence else (low, middle)
    return high


def empirical_cosine(fmr: float, sorted_desc: npt.NDArray[np.float64]) -> tuple[float, int]:
    """The lowest cosine with at most ``fmr`` of the impostor pairs at or above it, and how many those are."""
    allowed = math.floor(fmr * len(sorted_desc))
    if allowed >= len(sorted_desc):
        return -1.0, allowed
    return float(np.nextafter(sorted_desc[allowed], 1.0)), allowed


def threshold_for(fmr: float, sorted_desc: npt.NDArray[np.float64], tail: dict[str, float]) -> tuple[float, str]:
    """The cosine at which a fraction ``fmr`` of the impostor pairs score at or above it."""
    empirical, allowed = empirical_cosine(fmr, sorted_desc)
    if allowed >= MIN_TAIL_PAIRS:
        return empirical, "empirical"
    fitted, method = tail_cosine(fmr, tail)
    if empirical > fitted:
        return empirical, f"{method} (raised to the observed pairs)"
    return min(fitted, 0.999), method


def fit(
    impostors: npt.NDArray[np.float64], genuines: npt.NDArray[np.float64]
) -> tuple[list[float], list[float], dict[str, object], dict[str, float]]:
    sorted_desc = np.sort(impostors)[::-1]
    n = len(sorted_desc)
    u = float(sorted_desc[TAIL_PAIRS])
    excess = sorted_desc[:TAIL_PAIRS] - u
    xi, gpd_scale = gpd_shape_pwm(excess)
    tail = {
        "cosine": u,
        "fraction": TAIL_PAIRS / n,
        "exp_scale": float(excess.mean()),
        "gpd_shape": xi,
        "gpd_scale": gpd_scale,
    }
    # Anchors: every integer similarity from 50 to 99 (every fifth below), its FMR interpolated log-linearly
    # between FMR_ANCHORS, extended down to similarity 0 ↔ FMR 1 so that unrelated faces score low.
    anchors = ((0.0, 1.0), *FMR_ANCHORS)
    anchor_sims = np.array([s for s, _ in anchors])
    anchor_logs = np.log10([f for _, f in anchors])
    cosines, sims, methods = [-1.0], [0.0], {}
    for similarity in [*range(5, 50, 5), *range(50, int(anchor_sims[-1]) + 1)]:
        fmr = 10 ** float(np.interp(similarity, anchor_sims, anchor_logs))
        cosine, method = threshold_for(fmr, sorted_desc, tail)
        cosine = max(cosine, cosines[-1] + 1e-4)
        cosines.append(math.ceil(cosine * 1e6) / 1e6)  # round up: never admit a pair the threshold excluded
        sims.append(float(similarity))
        methods[float(similarity)] = method
    cosines.append(1.0)
    sims.append(100.0)
    return cosines, sims, methods, tail


def evaluate(
    cosines: list[float],
    sims: list[float],
    methods: dict[float, str],
    tail: dict[str, float],
    impostors: npt.NDArray[np.float64],
    genuines: npt.NDArray[np.float64],
) -> dict[str, dict[str, object]]:
    rows: dict[str, dict[str, object]] = {}
    sorted_desc = np.sort(impostors)[::-1]
    fmr_target = dict(FMR_ANCHORS)
    for similarity in REPORT_SIMILARITIES:
        cosine = float(np.interp(similarity, sims, cosines))
        false = int((impostors >= cosine).sum())
        true = int((genuines >= cosine).sum())
        rows[f"{similarity:g}"] = {
            "cosine": round(cosine, 4),
            "fmr_target": fmr_target[similarity],
            "impostors_at_or_above": f"{false}/{len(impostors)}",
            "fmr_measured": false / len(impostors),
            "genuines_at_or_above": f"{true}/{len(genuines)}",
            "tmr": round(true / len(genuines), 4),
            "threshold_from": methods[similarity],
            "fmr_upper_95": poisson_upper(false) / len(impostors),
            "fmr_tail_fit": tail_fmr(cosine, tail),
            "empirical_cosine": round(empirical_cosine(fmr_target[similarity], sorted_desc)[0], 4),
            "tail_fit_cosine": round(tail_cosine(fmr_target[similarity], tail)[0], 4),
        }
    return rows


def markdown(rows: dict[str, dict[str, object]], n_impostors: int) -> str:
    lines = [
        "| similarity ≥ | cosine ≥ | target FMR | measured FMR (pairs) | TMR (pairs) | threshold from |"
        " false candidates per search, 300k gallery |",
        "|---|---|---|---|---|---|---|",
    ]
    for similarity, row in rows.items():
        measured = float(row["fmr_measured"])  # type: ignore[arg-type]
        target = float(row["fmr_target"])  # type: ignore[arg-type]
        extrapolated = "tail fit" in str(row["threshold_from"])
        per_search = f"{target * GALLERY:g} (extrapolated)" if extrapolated else f"{measured * GALLERY:.3g}"
        lines.append(
            f"| {similarity} | {row['cosine']} | {target:g} | {measured:.2e} ({row['impostors_at_or_above']}) "
            f"| {float(row['tmr']):.2%} ({row['genuines_at_or_above']}) "  # type: ignore[arg-type]
            f"| {row['threshold_from']} | {per_search} |"
        )
    lines.append(f"\nImpostor pairs: {n_impostors:,}.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refresh", action="store_true", help="re-embed instead of using the cache")
    parser.add_argument("--write", action="store_true", help="write the calibration JSON into the package")
    parser.add_argument("--min-face", type=float, default=MIN_FACE_PX, help="smallest WIDER face (px)")
    parser.add_argument("--min-score", type=float, default=MIN_SCORE, help="lowest WIDER detection score")
    args = parser.parse_args()
    print(machine_info())
    data = collect(args.refresh)
    impostors, genuines, impostor_sources, genuine_sources = pair_scores(data, args.min_face, args.min_score)
    cosines, sims, methods, tail = fit(impostors, genuines)
    rows = evaluate(cosines, sims, methods, tail, impostors, genuines)
    wider_h = np.asarray(data["wider_box_h"])
    evidence: dict[str, object] = {
        "fitted_by": "benchmarks/calibrate.py",
        "date": dt.date.today().isoformat(),
        "impostor_pairs": len(impostors),
        "impostor_sources": impostor_sources,
        "genuine_pairs": len(genuines),
        "genuine_sources": genuine_sources,
        "wider_faces": {
            "found": len(wider_h),
            "used": int(((wider_h >= args.min_face) & (np.asarray(data["wider_score"]) >= args.min_score)).sum()),
            "min_face_height_px": args.min_face,
            "min_detection_score": args.min_score,
            "photos_of_the_same_people_not_paired": [list(group) for group in SAME_PEOPLE],
            "photos_with_recovered_aspect": int(np.asarray(data["wider_estimated"]).sum()),
            "detection": "aspect restored, DetectionSettings(small_faces=True, upscale=2.0)",
        },
        "thresholds": rows,
        "tail": {
            "method": (
                f"exponential (GPD shape 0) fitted to the top {TAIL_PAIRS} impostor cosines; used where fewer "
                f"than {MIN_TAIL_PAIRS} impostor pairs would lie above the threshold. Cosines are bounded by 1 "
                "so the true tail is lighter and the extrapolated thresholds err high (safe)"
            ),
            "start_cosine": round(tail["cosine"], 6),
            "start_fmr": tail["fraction"],
            "exponential_scale": round(tail["exp_scale"], 6),
            "gpd_shape_pwm": round(tail["gpd_shape"], 4),
            "gpd_scale_pwm": round(tail["gpd_scale"], 6),
            "max_impostor_cosine": round(float(impostors.max()), 6),
        },
        "caveat": (
            "pairs are not independent (each face is in many pairs), so the effective sample behind the "
            "tail is smaller than the pair count; the WIDER faces are strangers in crowds, not look-alikes"
        ),
    }
    print(markdown(rows, len(impostors)))
    print(json.dumps(evidence["tail"], indent=2))
    print(f"genuine cosines: median {np.median(genuines):.3f}, 1% {np.percentile(genuines, 1):.3f}")
    if args.write:
        model = FaceEngine.create().model.key
        target = ROOT / "src" / "facetrace" / "data" / f"calibration-{model}.json"
        document = {"model": model, "cosines": cosines, "similarities": sims, "evidence": evidence}
        target.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {target}")


if __name__ == "__main__":
    main()
