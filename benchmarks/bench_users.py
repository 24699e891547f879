"""Users with several photos (CreateUser + AssociateFaces): how much recall each enrolled photo buys at 99 / 95.

    python benchmarks/bench_users.py [--half test|tune|all] [--draws 5] [--json out.json]

Data: ``../shared/data/lfw_calibration`` (LFW, deep-funneled, 250×250, ``<Name>/<Name>_000N.jpg``). Each photo
is embedded once (its centred face, the production pipeline: YuNet, alignment, SFace) and cached under
``/work/cache`` (``FACETRACE_USERS_CACHE``): a colleague's cache of every photo
(``lfw_calibration_sface.npz``) when it exists, else this script's own (people with ≥ 2 photos only).

People are split in two halves by a hash of their name (``half_of``), so a policy can be chosen on one half
(``tune``) and reported on the other (``test``), which nothing here was tuned on. Similarities come from the
calibration the package ships (``load_calibration``), so the figures can be re-run after a new fit.

What is measured, per enrolment size k (photos per user):

* **genuine**: a gallery of users, one per cohort person (people with ≥ 4 photos for k = 1, 3; ≥ 6 for
  k = 1, 3, 5), each enrolled from k random photos; every other photo of those people is a probe (the same
  probes for every k of a cohort within a draw). A probe is *named* at threshold T when the top user is its
  own and scores ≥ T; *misnamed* when the top user is someone else and scores ≥ T. TMR is averaged per person
  (LFW is dominated by a few people), over ``--draws`` random choices of the enrolled photos; the 95% interval
  is a bootstrap over people.
* **impostor**: every photo of people of the same half who are *not* in the gallery (fewer than 4 photos, or
  only 1 when the colleague's cache has everyone) is searched against the same gallery; a false
  identification is any user ≥ T. Reported per search and per comparison, with a Poisson 95% upper bound.
* **template check**: a fused template is not a single face, and the calibration was fitted on single-face
  pairs. So the per-comparison false match rate of every policy's user score is measured on *all* impostor
  pairs the data allow (every user of both halves against every photo of someone else) at 80, 90, 95 and 99,
  next to the single-face rate on the same photos. If templates scored higher against strangers than single
  faces do, a template's similarity would overstate what its threshold promises.

Policies (the score a user gets against a probe vector p, from its enrolled unit vectors v_1..v_k):

* ``max_face``: max_i p·v_i (facetrace's SearchUsers up to this change: the best single face);
* ``template``: p·t with t = Σ v_i / ‖Σ v_i‖ (the normalised mean; one comparison per user);
* ``template_q``: the same with each v_i weighted by its face quality (``quality_weight``);
* ``max_both``: max(template, max_face);
* ``shrunk_a``: the template's cosine × ‖mean of the v_i‖^a, a conservative template score: a template's
  cosine to strangers has a heavier tail than a single face's (the normalisation divides by ‖mean‖ < 1),
  and a = 1 is the plain mean of the k single-face cosines. ``shrunk_0.25`` is what SearchUsers uses
  (``facetrace.store.vector_index.TEMPLATE_AGREEMENT_POWER``): chosen on the tune half as the smallest discount
  whose impostor rate per comparison matched the same users' single faces at 70 and 80.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import central_face, load_average, machine_info, require_data
from facetrace.calibration import Calibration, load_calibration
from facetrace.calibration_fit import poisson_upper

Floats = npt.NDArray[np.float32]
MODEL = "sface-2021dec"
CACHE = Path(os.environ.get("FACETRACE_USERS_CACHE", "/work/cache"))
SHARED_CACHE = CACHE / "lfw_calibration_sface.npz"
OWN_CACHE = CACHE / "users_lfw_calibration_sface.npz"
THRESHOLDS = (99.0, 95.0)
CHECK_THRESHOLDS = (70.0, 80.0, 90.0, 95.0, 99.0)
SHRINKS = (0.2, 0.25, 0.3, 0.5)
SAME_FACE = {
    "Sung_Hong_Choi": "Choi_Sung-hong",  # one man under two spellings
    "Glenn_Rivers": "Doc_Rivers",  # Doc Rivers' given name is Glenn
    "Mireya_Elisa_Moscoso_Rodriguez": "Mireya_Moscoso",
    "Raul_Ibanez": "Carlos_Beltran",  # the next three: one photo filed under two names (cosine 0.95-0.99)
    "Andrew_Gilligan": "Andrew_Caldecott",
    "Martha_Bowen": "Gabrielle_Rose",
}
"""LFW label noise found among the highest-scoring "impostor" pairs (cosine ≥ 0.70, looked at by name): these
are one person, or one photo, under two names, so their pairs are not counted as impostors."""
POLICIES = ("max_face", "template", "template_q", "max_both", *(f"shrunk_{a:g}" for a in SHRINKS))


# -- data ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Embeddings:
    """One row per photo with a usable face: who it is, its unit vector, its quality weight (0–1)."""

    person: npt.NDArray[np.str_]
    vectors: Floats
    weight: Floats
    source: str
    quality: Floats | None = None  # facetrace.quality.face_quality of each face (None: not in the cache)


def half_of(name: str) -> str:
    """``tune`` or ``test``: a fixed split of people by a hash of the name (no photo of a person in both).

    The hash's *second* byte: the shared lfw_calibration set itself seems to be the LFW people whose hash's first
    byte is even (2,879 of its 2,882 names), so that byte cannot split it."""
    return "test" if hashlib.sha256(name.encode()).digest()[1] % 2 else "tune"


def quality_weight(confidence: float, yaw: float, pitch: float, face_px: float, sharpness: float) -> float:
    """How much a face should count in a fused template: the video tracker's sample weight for one frame
    (``facetrace.video.identity.sample_weight``): confidence × frontality × size × sharpness, 0–1."""
    frontal = max(0.1, math.cos(math.radians(min(89.0, abs(yaw))))) * max(
        0.1, math.cos(math.radians(min(89.0, abs(pitch))))
    )
    size = min(1.0, max(0.2, face_px / 64.0))
    sharp = min(1.0, 0.25 + sharpness / 40.0)
    return float(min(1.0, max(0.05, confidence / 100.0)) * frontal * size * sharp)


def _from_shared(path: Path) -> Embeddings:
    """The colleague's cache: ``paths``, ``person``, ``vectors`` (+ ``flipped``) and quality columns."""
    data = np.load(path, allow_pickle=False)
    keys = set(data.files)
    vectors = np.asarray(data["vectors"], dtype=np.float32)
    person = np.asarray(data["person"]).astype(str)
    ok = np.isfinite(vectors).all(axis=1) & (np.linalg.norm(vectors, axis=1) > 0.5)
    n = len(person)

    def column(*names: str, default: float) -> npt.NDArray[np.float64]:
        for name in names:
            if name in keys and data[name].shape[:1] == (n,):
                return np.asarray(data[name], dtype=np.float64)
        return np.full(n, default)

    confidence = column("confidence", "score", default=100.0)
    if confidence.max() <= 1.0:
        confidence = confidence * 100.0
    yaw, pitch = column("yaw", default=0.0), column("pitch", default=0.0)
    face_px = column("face_px", "box_w", "width", "w", default=64.0)
    sharpness = column("sharpness", default=40.0)
    weight = np.array(
        [quality_weight(*row) for row in zip(confidence, yaw, pitch, face_px, sharpness, strict=True)],
        dtype=np.float32,
    )
    from facetrace.quality import quality_score

    box_h = column("box_h", default=float("nan"))
    quality = np.array([quality_score(h, c / 100.0) for h, c in zip(box_h, confidence, strict=True)], np.float32)
    vectors = vectors[ok] / np.linalg.norm(vectors[ok], axis=1, keepdims=True)
    return Embeddings(person[ok], vectors.astype(np.float32), weight[ok], f"{path} ({sorted(keys)})", quality[ok])


def _embed_own(data: Path, limit: int | None) -> Embeddings:
    """Embed every photo of the people with ≥ 2 photos (cached; ``limit`` people for a quick trial)."""
    from facetrace.engine import FaceEngine  # only when embedding

    folders = sorted(p for p in (data / "lfw_calibration").iterdir() if p.is_dir())
    folders = [f for f in folders if len(list(f.glob("*.jpg"))) >= 2][:limit]
    cache = OWN_CACHE if limit is None else CACHE / f"users_lfw_calibration_sface_{limit}.npz"
    if cache.exists():
        saved = np.load(cache, allow_pickle=False)
        return Embeddings(saved["person"].astype(str), saved["vectors"], saved["weight"], str(cache))
    engine = FaceEngine.create()
    people, vectors, weights, paths = [], [], [], []
    began = time.perf_counter()
    for i, folder in enumerate(folders):
        for path in sorted(folder.glob("*.jpg")):
            image = engine.load(path)
            chosen = central_face(engine.find_faces(image), image.width, image.height)
            if chosen is None:
                continue
            face = engine.describe(image, [chosen])[0]
            assert face.vector is not None
            d = face.detail
            people.append(folder.name)
            paths.append(str(path.relative_to(data)))
            vectors.append(face.vector)
            weights.append(
                quality_weight(
                    d.confidence, d.pose.yaw, d.pose.pitch, min(chosen.w, chosen.h), d.quality.sharpness
                )
            )
        if i % 50 == 0:
            print(
                f"  embedded {i + 1}/{len(folders)} people, {len(vectors)} faces, {time.perf_counter() - began:.0f} s"
            )
    CACHE.mkdir(parents=True, exist_ok=True)
    arrays = {
        "person": np.array(people),
        "paths": np.array(paths),
        "vectors": np.array(vectors, dtype=np.float32),
        "weight": np.array(weights, dtype=np.float32),
    }
    np.savez(cache, **arrays)  # type: ignore[arg-type]
    return Embeddings(arrays["person"], arrays["vectors"], arrays["weight"], str(cache))


def load_embeddings(data: Path, limit: int | None) -> Embeddings:
    emb = _from_shared(SHARED_CACHE) if limit is None and SHARED_CACHE.exists() else _embed_own(data, limit)
    person = np.array([SAME_FACE.get(name, name) for name in emb.person.tolist()])
    return Embeddings(person, emb.vectors, emb.weight, emb.source, emb.quality)


def clear_faces_only(emb: Embeddings, cal: Calibration) -> tuple[Embeddings, float | None]:
    """The faces in the calibration's clearest band, and that band's lowest quality.

    Every pair is then scored on one curve, the one SearchUsers uses for such faces (a pair takes the band of
    its worse face). Without quality evidence every face counts as unknown: the cautious band."""
    if emb.quality is None or len(cal.bands) < 2:
        return emb, None
    clear = cal.bands[-1].min_quality
    keep = emb.quality >= clear
    print(f"quality: {int((~keep).sum())} of {len(keep)} faces below the {cal.bands[-1].name!r} band left out")
    return Embeddings(emb.person[keep], emb.vectors[keep], emb.weight[keep], emb.source, emb.quality[keep]), clear


# -- scoring ---------------------------------------------------------------------------------------------


def _unit(rows: Floats) -> Floats:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def user_scores(probes: Floats, enrolled: Floats, weights: Floats) -> dict[str, Floats]:
    """Each policy's (probes × users) score. ``enrolled`` is (users, k, dim), ``weights`` (users, k)."""
    faces = np.einsum("pd,ukd->puk", probes, enrolled)
    template = probes @ _unit(enrolled.sum(axis=1)).T
    weighted = probes @ _unit(np.einsum("uk,ukd->ud", weights, enrolled)).T
    best_face = faces.max(axis=2)
    # ‖mean of the k unit vectors‖ ≤ 1: how much the user's photos agree (1: identical photos)
    agreement = np.linalg.norm(enrolled.mean(axis=1), axis=1)
    return {
        "max_face": best_face,
        "template": template,
        "template_q": weighted,
        "max_both": np.maximum(template, best_face),
        **{f"shrunk_{a:g}": template * agreement[None, :] ** a for a in SHRINKS},
    }


@dataclass(frozen=True)
class Cohort:
    """People with at least ``min_photos`` photos; ``sizes`` are the enrolment sizes tried on them."""

    min_photos: int
    sizes: tuple[int, ...]


def _rows_by_person(emb: Embeddings, names: list[str]) -> dict[str, npt.NDArray[np.intp]]:
    order = {name: i for i, name in enumerate(names)}
    rows: dict[str, list[int]] = {name: [] for name in names}
    for row, name in enumerate(emb.person):
        if name in order:
            rows[name].append(row)
    return {name: np.array(r, dtype=np.intp) for name, r in rows.items()}


def _draws(
    emb: Embeddings, people: list[str], cohort: Cohort, draws: int
) -> Iterator[tuple[int, dict[str, npt.NDArray[np.intp]], dict[str, npt.NDArray[np.intp]]]]:
    """(draw, enrolment order per person, probe rows per person): the first k of the order are enrolled for
    size k; probes are the photos after the largest size, so every k sees the same probes."""
    rows = _rows_by_person(emb, people)
    largest = max(cohort.sizes)
    for draw in range(draws):
        rng = np.random.default_rng(1000 + draw)
        order = {name: rng.permutation(r) for name, r in rows.items()}
        yield draw, {n: o[:largest] for n, o in order.items()}, {n: o[largest:] for n, o in order.items()}


def bootstrap(per_person: npt.NDArray[np.float64], rounds: int = 2000) -> tuple[float, float]:
    rng = np.random.default_rng(7)
    means = per_person[rng.integers(0, len(per_person), (rounds, len(per_person)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def identification(
    emb: Embeddings,
    cal: Calibration,
    people: list[str],
    strangers: list[str],
    cohort: Cohort,
    draws: int,
    quality: float | None = None,
) -> dict[str, Any]:
    """Genuine TMR and impostor false identifications, per enrolment size and policy, at ``THRESHOLDS``
    (on the curve of pairs of ``quality``)."""
    cos = {t: cal.cosine_for(t, quality) for t in THRESHOLDS}
    stranger_rows = np.concatenate([r for r in _rows_by_person(emb, strangers).values()] or [np.empty(0, np.intp)])
    named = {(k, p, t): np.zeros(len(people)) for k in cohort.sizes for p in POLICIES for t in THRESHOLDS}
    misnamed = {(k, p, t): 0 for k in cohort.sizes for p in POLICIES for t in THRESHOLDS}
    false_searches = {(k, p, t): 0 for k in cohort.sizes for p in POLICIES for t in THRESHOLDS}
    false_pairs = {(k, p, t): 0 for k in cohort.sizes for p in POLICIES for t in THRESHOLDS}
    probes_total = 0
    for _, enrol, probes in _draws(emb, people, cohort, draws):
        probe_rows = np.concatenate([probes[n] for n in people])
        owner = np.concatenate([np.full(len(probes[n]), i) for i, n in enumerate(people)])
        probes_total += len(probe_rows)
        for k in cohort.sizes:
            enrolled = np.stack([emb.vectors[enrol[n][:k]] for n in people])
            weights = np.stack([emb.weight[enrol[n][:k]] for n in people])
            genuine = user_scores(emb.vectors[probe_rows], enrolled, weights)
            impostor = user_scores(emb.vectors[stranger_rows], enrolled, weights) if len(stranger_rows) else None
            for policy, scores in genuine.items():
                top = scores.argmax(axis=1)
                best = scores[np.arange(len(top)), top]
                for t in THRESHOLDS:
                    hit = (top == owner) & (best >= cos[t])
                    named[(k, policy, t)] += np.bincount(owner, weights=hit, minlength=len(people)) / np.bincount(
                        owner, minlength=len(people)
                    )
                    misnamed[(k, policy, t)] += int(((top != owner) & (best >= cos[t])).sum())
                    if impostor is not None:
                        above = impostor[policy] >= cos[t]
                        false_searches[(k, policy, t)] += int(above.any(axis=1).sum())
                        false_pairs[(k, policy, t)] += int(above.sum())
    searches = len(stranger_rows) * draws
    rows = []
    for k in cohort.sizes:
        for policy in POLICIES:
            if k == 1 and policy != "max_face":
                continue  # one photo: every policy is the same score
            row: dict[str, Any] = {"k": k, "policy": policy}
            for t in THRESHOLDS:
                per_person = named[(k, policy, t)] / draws
                low, high = bootstrap(per_person)
                fs, fp = false_searches[(k, policy, t)], false_pairs[(k, policy, t)]
                row[f"tmr_{t:g}"] = float(per_person.mean())
                row[f"tmr_{t:g}_ci"] = (low, high)
                row[f"misnamed_{t:g}"] = misnamed[(k, policy, t)]
                row[f"false_searches_{t:g}"] = fs
                row[f"false_per_search_{t:g}"] = fs / max(1, searches)
                row[f"false_per_search_{t:g}_upper"] = poisson_upper(fs) / max(1, searches)
                row[f"false_pairs_{t:g}"] = fp
            rows.append(row)
    return {
        "people": len(people),
        "probes_per_draw": probes_total // draws,
        "draws": draws,
        "impostor_searches": searches,
        "gallery_users": len(people),
        "rows": rows,
    }


def template_check(
    emb: Embeddings, cal: Calibration, sizes: tuple[int, ...], draws: int, quality: float | None = None
) -> dict[str, Any]:
    """Per-comparison false match rate of each policy's score against strangers, next to single faces."""
    cos = {t: cal.cosine_for(t, quality) for t in CHECK_THRESHOLDS}
    names, counts = np.unique(emb.person, return_counts=True)
    report: dict[str, Any] = {}
    person_index = {n: i for i, n in enumerate(names)}
    owner_of_row = np.array([person_index[n] for n in emb.person])
    # single faces: every pair of photos of different people (upper triangle)
    above = {t: 0 for t in CHECK_THRESHOLDS}
    pairs = 0
    for start in range(0, len(emb.vectors), 2048):
        block = emb.vectors[start : start + 2048] @ emb.vectors.T
        rows = np.arange(start, min(start + 2048, len(emb.vectors)))
        mask = (owner_of_row[rows][:, None] != owner_of_row[None, :]) & (
            rows[:, None] < np.arange(len(emb.vectors))
        )
        pairs += int(mask.sum())
        for t in CHECK_THRESHOLDS:
            above[t] += int(((block >= cos[t]) & mask).sum())
    report["single_face"] = {"pairs": pairs, **{f"{t:g}": above[t] for t in CHECK_THRESHOLDS}}
    for k in sizes:
        users = [n for n, c in zip(names, counts, strict=True) if c >= k]
        rows_of = _rows_by_person(emb, users)
        tallies = {p: {t: 0 for t in CHECK_THRESHOLDS} for p in (*POLICIES, "each_face")}
        comparisons = 0
        for draw in range(draws):
            rng = np.random.default_rng(2000 + draw)
            picked = [rng.permutation(rows_of[n])[:k] for n in users]
            enrolled, weights = (
                np.stack([emb.vectors[p] for p in picked]),
                np.stack([emb.weight[p] for p in picked]),
            )
            user_owner = np.array([person_index[n] for n in users])
            for start in range(0, len(emb.vectors), 1024):
                stop = min(start + 1024, len(emb.vectors))
                scores = user_scores(emb.vectors[start:stop], enrolled, weights)
                stranger = owner_of_row[start:stop][:, None] != user_owner[None, :]
                comparisons += int(stranger.sum())
                for policy, s in scores.items():
                    for t in CHECK_THRESHOLDS:
                        tallies[policy][t] += int(((s >= cos[t]) & stranger).sum())
                # the same users' faces one by one (k comparisons per user): the per-face baseline
                faces = np.einsum("pd,ukd->puk", emb.vectors[start:stop], enrolled)
                for t in CHECK_THRESHOLDS:
                    tallies["each_face"][t] += int(((faces >= cos[t]) & stranger[:, :, None]).sum())
        report[f"k{k}"] = {
            "users": len(users),
            "comparisons": comparisons,
            **{p: {f"{t:g}": tallies[p][t] for t in CHECK_THRESHOLDS} for p in (*POLICIES, "each_face")},
        }
    return report


# -- output ----------------------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def print_identification(title: str, result: dict[str, Any]) -> None:
    print(f"\n{title}: {result['people']} people enrolled (gallery of {result['gallery_users']} users), "
          f"{result['probes_per_draw']} genuine probes and {result['impostor_searches'] // result['draws']} "
          f"impostor probes per draw, {result['draws']} draws")  # fmt: skip
    print("| photos enrolled | policy | TMR @99 (95% CI) | TMR @95 (95% CI) | misnamed @99 / @95 "
          "| impostor searches with a false identification @99 (upper bound per search) | @95 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for row in result["rows"]:
        cells = [str(row["k"]), row["policy"]]
        for t in THRESHOLDS:
            low, high = row[f"tmr_{t:g}_ci"]
            cells.append(f"{_pct(row[f'tmr_{t:g}'])} ({_pct(low)}–{_pct(high)})")
        cells.append(f"{row['misnamed_99']} / {row['misnamed_95']}")
        for t in THRESHOLDS:
            cells.append(
                f"{row[f'false_searches_{t:g}']} / {result['impostor_searches']:,} "
                f"(≤ {row[f'false_per_search_{t:g}_upper']:.1e})"
            )
        print("| " + " | ".join(cells) + " |")


def print_check(check: dict[str, Any]) -> None:
    single = check["single_face"]
    print("\ntemplate check: impostor comparisons at or above each threshold (rate; 95% upper bound)")
    print("| score | k | comparisons | " + " | ".join(f"@{t:g}" for t in CHECK_THRESHOLDS) + " |")
    print("|---|---|---|" + "---|" * len(CHECK_THRESHOLDS))

    def cells(counts: dict[str, int], n: int) -> str:
        return " | ".join(
            f"{counts[f'{t:g}']} ({counts[f'{t:g}'] / n:.1e}; ≤ {poisson_upper(counts[f'{t:g}']) / n:.1e})"
            for t in CHECK_THRESHOLDS
        )

    print(f"| single face pairs | 1 | {single['pairs']:,} | {cells(single, single['pairs'])} |")
    for key, value in check.items():
        if key == "single_face":
            continue
        for policy in (*POLICIES, "each_face"):
            if key == "k1" and policy != "max_face":
                continue
            n = value["comparisons"] * (int(key[1:]) if policy == "each_face" else 1)
            label = "each face alone (per face)" if policy == "each_face" else policy
            print(f"| {label} | {key[1:]} | {n:,} | {cells(value[policy], n)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--half", choices=("test", "tune", "all"), default="test")
    parser.add_argument("--draws", type=int, default=5, help="random choices of the enrolled photos")
    parser.add_argument("--limit", type=int, help="embed only this many people (a quick trial)")
    parser.add_argument("--skip-check", action="store_true", help="skip the all-pairs template check")
    parser.add_argument("--only-check", action="store_true", help="only the all-pairs template check")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()
    data = require_data()
    print(machine_info())
    cal = load_calibration(MODEL)
    emb, quality = clear_faces_only(load_embeddings(data, args.limit), cal)
    print(f"embeddings: {len(emb.person)} faces of {len(set(emb.person.tolist()))} people from {emb.source}")
    print(
        "calibration: " + ", ".join(f"{t:g} ↔ cosine {cal.cosine_for(t, quality):.4f}" for t in CHECK_THRESHOLDS)
    )
    names, counts = np.unique(emb.person, return_counts=True)
    count = dict(zip(names.tolist(), counts.tolist(), strict=True))
    mine = [n for n in names.tolist() if args.half == "all" or half_of(n) == args.half]
    report: dict[str, Any] = {"load_start": load_average(), "half": args.half, "source": emb.source}
    for cohort in () if args.only_check else (Cohort(4, (1, 3)), Cohort(6, (1, 3, 5))):
        people = [n for n in mine if count[n] >= cohort.min_photos]
        strangers = [n for n in mine if count[n] < 4]
        result = identification(emb, cal, people, strangers, cohort, args.draws, quality)
        report[f"cohort_{cohort.min_photos}"] = result
        print_identification(f"{args.half} half, people with ≥ {cohort.min_photos} photos", result)
    if not args.skip_check:
        keep = np.array([args.half == "all" or half_of(n) == args.half for n in emb.person.tolist()])
        half = Embeddings(emb.person[keep], emb.vectors[keep], emb.weight[keep], emb.source)
        check = template_check(half, cal, (1, 3, 5), draws=max(1, args.draws // 2), quality=quality)
        report["template_check"] = check
        print(f"\n({args.half} half: {int(keep.sum())} photos, users and strangers both from it)")
        print_check(check)
    report["load_end"] = load_average()
    print(f"\nload average at end: {report['load_end']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
