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
import dataclasses
import datetime as dt
import hashlib
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    DATA,
    ROOT,
    PairSet,
    cache_dir,
    chosen_face,
    estimate_source_height,
    labelled_sets,
    load_average,
    machine_info,
    median_ms,
    timed,
    wider_images,
)
from benchmarks.face_evidence import EVIDENCE, Arrays, face_rows, progress, save_atomic, to_arrays
from facetrace.calibration import FMR_ANCHORS, Calibration, Curve, QualityBand, pair_quality
from facetrace.engine import DetectionSettings, FaceEngine
from facetrace.imaging import Image
from facetrace.quality import quality_score

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
PUBLISHED = (80.0, 90.0, 95.0, 99.0)
"""The thresholds the report measures (the FMR anchors users pick from)."""
LFW_CACHE = "lfw_calibration_sface.npz"
BAND_CUTS = (75.0,)
"""``face_quality`` at which the clear band begins (a pair is clear when both its faces are)."""
BAND_NAMES = ("low", "clear")
MAX_IMPOSTOR_PHOTOS = 20
"""Impostor pairs use at most this many photos of one person (the first by name): George W. Bush's 530
photos would otherwise make one family's look-alike pairs (him and Jeb Bush) a large share of the tail."""
SPLIT_SEED = "facetrace-calibration-2026"
SPLIT_NOTE = (
    "lfw_calibration split by person (sha256 of seed:name, odd first byte = held out); wider_val200 by photo "
    "(odd index held out); the curve for this report is fitted on the other half and the other sets"
)
ALIASES = {
    "face_recognition:Joe Biden": "lfw:Joseph_Biden",
    # One person filed under two names in LFW (checked by eye among the highest-scoring impostor pairs).
    "lfw:Glenn_Rivers": "lfw:Doc_Rivers",
    "lfw:John_Burnett": "lfw:John_Barnett",
    "lfw:Sung_Hong_Choi": "lfw:Choi_Sung-hong",
    "lfw:Mireya_Elisa_Moscoso_Rodriguez": "lfw:Mireya_Moscoso",
    "lfw:Prince_Felipe": "lfw:Felipe_De_Borbon",
    "lfw:Yingfan_Wang": "lfw:Wang_Yingfan",
    "lfw:Nan_Wang": "lfw:Wang_Nan",
    "lfw:Virgina_Ruano_Pascal": "lfw:Ruano_Pascual",
}
"""Names for one person: pairs of them are the same person, never impostors."""
EXCLUDED = [
    # One photo filed under two names (byte-for-byte the same picture): which name is right is unknown.
    "lfw_calibration/Carlos_Beltran/Carlos_Beltran_0001.jpg",
    "lfw_calibration/Raul_Ibanez/Raul_Ibanez_0001.jpg",
    "lfw_calibration/Andrew_Caldecott/Andrew_Caldecott_0001.jpg",
    "lfw_calibration/Andrew_Gilligan/Andrew_Gilligan_0001.jpg",
    "lfw_calibration/Gabrielle_Rose/Gabrielle_Rose_0001.jpg",
    "lfw_calibration/Martha_Bowen/Martha_Bowen_0002.jpg",
    # Janica Kostelic (her sponsor's headband) filed as Anja Paerson; King Hamad of Bahrain filed as Mahmoud Abbas.
    "lfw_calibration/Anja_Paerson/Anja_Paerson_0001.jpg",
    "lfw_calibration/Mahmoud_Abbas/Mahmoud_Abbas_0012.jpg",
    # WIDER faces of people LFW holds: Michael Jackson and Michael Winterbottom at press conferences.
    "wider_val200/images/9_Press_Conference_Press_Conference_9_332.jpg#2740",
    "wider_val200/images/9_Press_Conference_Press_Conference_9_214.jpg#2728",
    # Two posters of one man (Gaddafi) held up in one protest photo: the same person twice, not two people.
    "wider_val200/images/2_Demonstration_Demonstrators_2_456.jpg#1931",
    "wider_val200/images/2_Demonstration_Demonstrators_2_456.jpg#1933",
]
"""Faces left out as label errors (``--inspect`` shows the highest-scoring impostor pairs side by side).
Look-alikes stay: brothers (George W. and Jeb Bush), sisters (the Hentzens), masked protesters."""
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
        chosen = chosen_face(engine, image, pair_set)
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


# -- faces and pairs ---------------------------------------------------------------------------------


@dataclass
class Faces:
    """Every face of the calibration, one row each, from all sources.

    ``identity``: faces with equal codes are the same person; ``block``: faces sharing a block id ≥ 0 are never
    paired as impostors (photos of one news series; face_recognition's photos, some of which show the same
    scene); ``held_out``: people (LFW) or photos (WIDER) kept out of the fit for the held-out report.
    """

    vectors: npt.NDArray[np.float32]
    flipped: npt.NDArray[np.float32]
    quality: npt.NDArray[np.float64]
    identity: npt.NDArray[np.int64]
    block: npt.NDArray[np.int64]
    source: npt.NDArray[np.str_]
    label: npt.NDArray[np.str_]  # path or description, for the inspection of high-scoring pairs
    held_out: npt.NDArray[np.bool_]
    names: list[str]  # identity code → name

    def __len__(self) -> int:
        return len(self.vectors)

    def subset(self, keep: npt.NDArray[np.bool_]) -> Faces:
        return Faces(
            self.vectors[keep], self.flipped[keep], self.quality[keep], self.identity[keep], self.block[keep],
            self.source[keep], self.label[keep], self.held_out[keep], self.names,
        )  # fmt: skip

    def with_flip(self) -> Faces:
        """The same faces with test-time flip averaging: the normalised sum of each vector and its mirror's."""
        summed = self.vectors + self.flipped
        summed /= np.linalg.norm(summed, axis=1, keepdims=True)
        return dataclasses.replace(self, vectors=summed.astype(np.float32))


def canonical(identity: str) -> str:
    return ALIASES.get(identity, identity)


def held_out_person(name: str) -> bool:
    """The seeded half/half split by person: a stable hash of the name, never the photos."""
    return hashlib.sha256(f"{SPLIT_SEED}:{name}".encode()).digest()[0] % 2 == 1


def quality_column(data: Arrays, prefix: str) -> npt.NDArray[np.float64]:
    """``face_quality`` of each face from its cached evidence (the same function the engine uses)."""
    heights, scores = data[f"{prefix}box_h"], data[f"{prefix}score"]
    return np.asarray(
        [quality_score(float(h), float(c)) for h, c in zip(heights, scores, strict=True)], dtype=np.float64
    )


def assemble(data: Arrays, lfw: Arrays | None, excluded_photos: set[str]) -> Faces:
    """All faces: WIDER crowds, dlib's Johns, face_recognition's photos, and lfw_calibration (when given;
    lfw_subset's ten people are all in it, so lfw_subset is then left to the checks, not the fit)."""
    names: dict[str, int] = {}

    def code(name: str) -> int:
        return names.setdefault(name, len(names))

    parts: list[dict[str, npt.NDArray[np.generic]]] = []
    # WIDER: every face a different person, except across the photos of one news series (one block).
    keep = (np.asarray(data["wider_box_h"]) >= MIN_FACE_PX) & (np.asarray(data["wider_score"]) >= MIN_SCORE)
    photo = np.asarray(data["wider_photo"])
    images = wider_images()
    files = [item.path.name for item in images]
    block = np.full(len(photo), -1, dtype=np.int64)
    for number, members in enumerate(SAME_PEOPLE):
        block[np.isin(photo, [files.index(name) for name in members])] = number
    count = len(photo)
    parts.append({
        "vectors": data["wider_vectors"], "flipped": data["wider_flipped"], "quality": quality_column(data, "wider_"),
        "identity": np.asarray([code(f"wider:{i}") for i in range(count)]), "block": block,
        "source": np.full(count, "wider_val200"), "label": np.asarray([f"{images[p].path.relative_to(DATA)}#{i}" for i, p in enumerate(photo)]),
        "held_out": photo % 2 == 1,
        "keep": keep & np.asarray([f"{images[p].path.relative_to(DATA)}#{i}" not in excluded_photos for i, p in enumerate(photo)]),
    })  # fmt: skip
    sets = [s for s in labelled_sets() if not (lfw is not None and s.name == "lfw_subset")]
    for number, pair_set in enumerate(sets, start=len(SAME_PEOPLE)):
        found = ~np.isnan(np.asarray(data[f"{pair_set.name}_vectors"])).any(axis=1)
        identities = [canonical(f"{pair_set.name}:{name}") for name in pair_set.identities]
        parts.append({
            "vectors": data[f"{pair_set.name}_vectors"], "flipped": data[f"{pair_set.name}_flipped"],
            "quality": np.where(found, quality_column({k: np.nan_to_num(v) for k, v in data.items()}, f"{pair_set.name}_"), np.nan),
            "identity": np.asarray([code(n) for n in identities]),
            "block": np.full(len(found), number if pair_set.name == "face_recognition" else -1),
            "source": np.full(len(found), pair_set.name),
            "label": np.asarray([str(p.relative_to(DATA)) for p in pair_set.images]),
            "held_out": np.zeros(len(found), dtype=bool), "keep": found,
        })  # fmt: skip
    if lfw is not None:
        paths = [str(p) for p in lfw["paths"]]
        persons = [str(p) for p in lfw["person"]]
        parts.append({
            "vectors": lfw["vectors"], "flipped": lfw["flipped"], "quality": quality_column(lfw, ""),
            "identity": np.asarray([code(canonical(f"lfw:{p}")) for p in persons]), "block": np.full(len(paths), -1),
            "source": np.full(len(paths), "lfw_calibration"),
            "label": np.asarray([f"lfw_calibration/{p}" for p in paths]),
            "held_out": np.asarray([held_out_person(canonical(f"lfw:{p}")) for p in persons]),
            "keep": np.asarray([f"lfw_calibration/{p}" not in excluded_photos for p in paths]),
        })  # fmt: skip
    keep_all = np.concatenate([np.asarray(p["keep"], dtype=bool) for p in parts])

    def column(key: str) -> npt.NDArray[np.generic]:
        return np.concatenate([np.asarray(p[key]) for p in parts])[keep_all]

    return Faces(
        vectors=np.asarray(column("vectors"), dtype=np.float32), flipped=np.asarray(column("flipped"), dtype=np.float32),
        quality=np.asarray(column("quality"), dtype=np.float64), identity=np.asarray(column("identity"), dtype=np.int64),
        block=np.asarray(column("block"), dtype=np.int64), source=np.asarray(column("source")),
        label=np.asarray(column("label")), held_out=np.asarray(column("held_out"), dtype=bool),
        names=sorted(names, key=names.__getitem__),
    )  # fmt: skip


@dataclass
class Pairs:
    """Cosines of every impostor and genuine pair among some faces, with the pair's quality band."""

    impostors: npt.NDArray[np.float32]
    impostor_band: npt.NDArray[np.int8]  # the band of the pair's worse face (the curve it is scored with)
    impostor_top: npt.NDArray[np.int8]  # the band of its better face
    genuines: npt.NDArray[np.float32]
    genuine_band: npt.NDArray[np.int8]
    genuine_person: npt.NDArray[np.int64]
    top: list[tuple[float, int, int]]  # the highest-scoring impostor pairs (cosine, face a, face b)


def face_bands(faces: Faces, cuts: Sequence[float]) -> npt.NDArray[np.int8]:
    """Band index of each face: 0 below cuts[0] (and unknown quality), i for quality ≥ cuts[i-1]."""
    quality = np.nan_to_num(faces.quality, nan=-1.0)
    return np.searchsorted(np.asarray(cuts), quality, side="right").astype(np.int8)


def all_pairs(faces: Faces, cuts: Sequence[float], *, top: int = 0, rows: int = 1024) -> Pairs:
    """Every pair of ``faces`` once (i < j), in blocks of rows so memory stays small."""
    bands = face_bands(faces, cuts)
    vectors = faces.vectors
    rank = np.zeros(len(faces), dtype=np.int64)  # each face's place among its person's photos
    seen: dict[int, int] = {}
    for index, identity in enumerate(faces.identity.tolist()):
        rank[index] = seen.get(identity, 0)
        seen[identity] = rank[index] + 1
    usable = rank < MAX_IMPOSTOR_PHOTOS
    impostor_top: list[npt.NDArray[np.int8]] = []
    impostors: list[npt.NDArray[np.float32]] = []
    impostor_band: list[npt.NDArray[np.int8]] = []
    genuines: list[npt.NDArray[np.float32]] = []
    genuine_band: list[npt.NDArray[np.int8]] = []
    genuine_person: list[npt.NDArray[np.int64]] = []
    best: list[tuple[float, int, int]] = []
    n = len(faces)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        cos = vectors[start:stop] @ vectors.T
        i = np.arange(start, stop)[:, None]
        j = np.arange(n)[None, :]
        upper = j > i
        same = faces.identity[start:stop, None] == faces.identity[None, :]
        blocked = (faces.block[start:stop, None] >= 0) & (faces.block[start:stop, None] == faces.block[None, :])
        pair_band = np.minimum(bands[start:stop, None], bands[None, :])
        impostor = upper & ~same & ~blocked & usable[start:stop, None] & usable[None, :]
        genuine = upper & same & (faces.source[start:stop, None] == faces.source[None, :])
        impostors.append(cos[impostor])
        impostor_band.append(pair_band[impostor])
        impostor_top.append(np.maximum(bands[start:stop, None], bands[None, :])[impostor])
        genuines.append(cos[genuine])
        genuine_band.append(pair_band[genuine])
        genuine_person.append(np.broadcast_to(faces.identity[start:stop, None], cos.shape)[genuine])
        if top:
            flat = np.where(impostor, cos, -2.0)
            k = min(top, flat.size)
            index = np.argpartition(flat.ravel(), -k)[-k:]
            a, b = np.unravel_index(index, flat.shape)
            best += [
                (float(flat[x, y]), start + int(x), int(y)) for x, y in zip(a, b, strict=True) if flat[x, y] > -2
            ]
            best = sorted(best, reverse=True)[:top]
    return Pairs(
        np.concatenate(impostors), np.concatenate(impostor_band), np.concatenate(impostor_top), np.concatenate(genuines),
        np.concatenate(genuine_band), np.concatenate(genuine_person), best,
    )  # fmt: skip


# -- bounds and measurement ----------------------------------------------------------------------------


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X ≤ k) for X ~ Binomial(n, p), summed in log space (k small)."""
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0 if k < n else 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
        for i in range(k + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided exact (Clopper–Pearson) interval for a proportion k/n; beyond 2,000 events on either side
    the Wilson score interval, which is then indistinguishable."""
    if n == 0:
        return 0.0, 1.0
    alpha = (1.0 - confidence) / 2.0
    if min(k, n - k) > 2000:
        z = 1.959964
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(0.0, centre - half), min(1.0, centre + half)
    if n - k < k:  # work on the smaller tail
        low, high = clopper_pearson(n - k, n, confidence)
        return 1.0 - high, 1.0 - low

    def solve(target: Callable[[float], bool]) -> float:
        low, high = 0.0, 1.0
        for _ in range(200):
            middle = (low + high) / 2.0
            low, high = (middle, high) if target(middle) else (low, middle)
        return (low + high) / 2.0

    upper = 1.0 if k == n else solve(lambda p: _binomial_cdf(k, n, p) > alpha)
    lower = 0.0 if k == 0 else solve(lambda p: 1.0 - _binomial_cdf(k - 1, n, p) < alpha)
    return lower, upper


def per_person_rate(passed: npt.NDArray[np.bool_], person: npt.NDArray[np.int64]) -> tuple[float, int]:
    """Mean over people of each person's fraction of genuine pairs that pass, and how many people."""
    if len(person) == 0:
        return float("nan"), 0
    people, index = np.unique(person, return_inverse=True)
    rates = np.bincount(index, weights=passed.astype(np.float64)) / np.bincount(index)
    return float(rates.mean()), len(people)


def pair_similarity(
    calibration: Calibration, cosines: npt.NDArray[np.float32], bands: npt.NDArray[np.int8]
) -> npt.NDArray[np.float64]:
    """Similarity of each pair on the curve of its band."""
    out = np.empty(len(cosines), dtype=np.float64)
    for number, band in enumerate(calibration.bands):
        chosen = bands == number
        out[chosen] = np.interp(cosines[chosen], band.curve.cosines, band.curve.similarities)
    return out


def measure(calibration: Calibration, pairs: Pairs, only_band: int | None = None) -> dict[str, dict[str, object]]:
    """At each published threshold: measured FMR with its 95% interval, TMR per pair and per person."""
    impostor_keep = np.ones(len(pairs.impostors), bool) if only_band is None else pairs.impostor_band == only_band
    genuine_keep = np.ones(len(pairs.genuines), bool) if only_band is None else pairs.genuine_band == only_band
    impostor_sim = pair_similarity(calibration, pairs.impostors[impostor_keep], pairs.impostor_band[impostor_keep])
    genuine_sim = pair_similarity(calibration, pairs.genuines[genuine_keep], pairs.genuine_band[genuine_keep])
    person = pairs.genuine_person[genuine_keep]
    rows: dict[str, dict[str, object]] = {}
    target = dict(FMR_ANCHORS)
    for threshold in PUBLISHED:
        false = int((impostor_sim >= threshold).sum())
        low, high = clopper_pearson(false, len(impostor_sim))
        passed = genuine_sim >= threshold
        per_person, people = per_person_rate(passed, person)
        rows[f"{threshold:g}"] = {
            "fmr_target": target[threshold],
            "impostors_at_or_above": f"{false}/{len(impostor_sim)}",
            "fmr_measured": false / max(1, len(impostor_sim)),
            "fmr_95ci": [low, high],
            "genuines_at_or_above": f"{int(passed.sum())}/{len(genuine_sim)}",
            "tmr_per_pair": round(float(passed.mean()), 4) if len(passed) else None,
            "tmr_per_person": round(per_person, 4) if people else None,
            "people": people,
        }
    return rows


def tmr_at_fmr(pairs: Pairs, fmr: float, band: int | None = None) -> tuple[float, float, float]:
    """(cosine, TMR per pair, TMR per person) at the empirical cosine where a fraction ``fmr`` of the
    impostor pairs score at or above it: the recognizer's own trade-off, no curve involved."""
    imp = pairs.impostors if band is None else pairs.impostors[pairs.impostor_band == band]
    keep = np.ones(len(pairs.genuines), bool) if band is None else pairs.genuine_band == band
    allowed = math.floor(fmr * len(imp))
    cosine = float(np.nextafter(np.partition(imp, len(imp) - allowed - 1)[len(imp) - allowed - 1], 1.0))
    passed = pairs.genuines[keep] >= cosine
    return cosine, float(passed.mean()), per_person_rate(passed, pairs.genuine_person[keep])[0]


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


# -- bands -----------------------------------------------------------------------------------------------


def fit_bands(pairs: Pairs, cuts: Sequence[float], model: str) -> tuple[Calibration, dict[str, object]]:
    """One curve per quality band, each fitted on the impostor pairs whose faces are *both* in it.

    A pair is scored with the band of its worse face, so a low × clear pair gets the curve fitted on
    low × low pairs, whose tail is the heavier (measured: crowd × crowd impostors reach higher cosines than
    crowd × clear ones): the rule errs towards caution.
    """
    bands: list[QualityBand] = []
    evidence: dict[str, object] = {}
    for number, name in enumerate(BAND_NAMES[: len(cuts) + 1]):
        within = (pairs.impostor_band == number) & (pairs.impostor_top == number)
        impostors = pairs.impostors[within].astype(np.float64)
        cosines, sims, methods, tail = fit(impostors, np.empty(0))
        low = 0.0 if number == 0 else float(cuts[number - 1])
        bands.append(QualityBand(name, low, Curve(tuple(cosines), tuple(sims))))
        evidence[name] = {
            "min_quality": low,
            "impostor_pairs": len(impostors),
            "genuine_pairs": int((pairs.genuine_band == number).sum()),
            "threshold_from": {f"{k:g}": v for k, v in methods.items() if k in PUBLISHED},
            "cosine_at": {f"{t:g}": round(float(np.interp(t, sims, cosines)), 4) for t in PUBLISHED},
            "tail": {
                "start_cosine": round(tail["cosine"], 6),
                "start_fmr": tail["fraction"],
                "exponential_scale": round(tail["exp_scale"], 6),
                "gpd_shape_pwm": round(tail["gpd_shape"], 4),
                "max_impostor_cosine": round(float(impostors.max()), 6),
            },
        }
    base = bands[0].curve
    calibration = Calibration(model, base.cosines, base.similarities, bands=tuple(bands))
    return calibration, evidence


def band_table(pairs: Pairs, cuts: Sequence[float]) -> str:
    """Why bands: the empirical impostor cosine at each false match rate, per pair of face bands."""
    lines = [
        "| faces | impostor pairs | cosine at FMR 1e-3 | 1e-4 | 1e-5 | 1e-6 |",
        "|---|---|---|---|---|---|",
    ]
    names = BAND_NAMES[: len(cuts) + 1]
    for low in range(len(names)):
        for high in range(low, len(names)):
            chosen = (pairs.impostor_band == low) & (pairs.impostor_top == high)
            imp = np.sort(pairs.impostors[chosen])[::-1]
            cells = []
            for fmr in (1e-3, 1e-4, 1e-5, 1e-6):
                k = math.floor(fmr * len(imp))
                cells.append(f"{imp[k]:.3f}" if k >= 1 else "n/a")
            lines.append(f"| {names[low]} × {names[high]} | {len(imp):,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- reports -----------------------------------------------------------------------------------------------


def report_table(title: str, rows: dict[str, dict[str, object]]) -> str:
    lines = [
        f"**{title}**\n",
        "| similarity ≥ | target FMR | measured FMR (pairs) | 95% CI | TMR per pair | TMR per person (people) |",
        "|---|---|---|---|---|---|",
    ]
    for threshold, row in rows.items():
        low, high = row["fmr_95ci"]  # type: ignore[misc]
        tmr_pair = row["tmr_per_pair"]
        pair_text = "n/a" if tmr_pair is None else f"{float(tmr_pair):.2%} ({row['genuines_at_or_above']})"  # type: ignore[arg-type]
        lines.append(
            f"| {threshold} | {float(row['fmr_target']):g} | {float(row['fmr_measured']):.2g} "  # type: ignore[arg-type]
            f"({row['impostors_at_or_above']}) | {low:.1g} – {high:.2g} | {pair_text} "
            f"| {float(row['tmr_per_person'] or 0):.2%} ({row['people']}) |"  # type: ignore[arg-type]
        )
    return "\n".join(lines)


def inspect(faces: Faces, pairs: Pairs, folder: Path) -> None:
    """The highest-scoring impostor pairs, side by side as PNGs, to find label errors by eye."""
    folder.mkdir(parents=True, exist_ok=True)
    for rank, (cosine, a, b) in enumerate(pairs.top):
        print(f"{rank:3d} {cosine:.4f} {faces.label[a]}  {faces.label[b]}")
        left, right = (cv2.imread(str(DATA / faces.label[x].split("#")[0])) for x in (a, b))
        if left is None or right is None:
            continue
        height = 250
        tiles = [cv2.resize(img, (round(img.shape[1] * height / img.shape[0]), height)) for img in (left, right)]
        cv2.imwrite(str(folder / f"{rank:03d}_{cosine:.3f}.png"), np.hstack(tiles))


def swapped(faces: Faces) -> Faces:
    """The other fold: the held-out half of LFW people and WIDER photos becomes the fitted one."""
    split = (faces.source == "lfw_calibration") | (faces.source == "wider_val200")
    return dataclasses.replace(faces, held_out=faces.held_out ^ split)


def held_out_report(faces: Faces, cuts: Sequence[float], model: str) -> tuple[dict[str, object], str, Calibration]:
    """Fit on everything but the held-out people and photos; measure on those."""
    fit_pairs = all_pairs(faces.subset(~faces.held_out), cuts)
    calibration, _ = fit_bands(fit_pairs, cuts, model)
    lfw = faces.subset(faces.held_out & (faces.source == "lfw_calibration"))
    crowd = faces.subset(faces.held_out & (faces.source == "wider_val200"))
    lfw_pairs, crowd_pairs = all_pairs(lfw, cuts), all_pairs(crowd, cuts)
    clear = len(cuts)
    tables = {
        "lfw_all": measure(calibration, lfw_pairs),
        "lfw_clear": measure(calibration, lfw_pairs, only_band=clear),
        "crowd": measure(calibration, crowd_pairs),
    }
    text = "\n\n".join([
        report_table(f"Held-out LFW people ({len(lfw)} photos of {len(set(lfw.identity))} people; all pairs, each on its band)", tables["lfw_all"]),
        report_table("Held-out LFW people, clear pairs only", tables["lfw_clear"]),
        report_table(f"Held-out WIDER crowd photos ({len(crowd)} faces of 100 photos)", tables["crowd"]),
    ])  # fmt: skip
    return {"split": SPLIT_NOTE, **tables}, text, calibration


def flip_report(faces: Faces, cuts: Sequence[float]) -> tuple[dict[str, object], str]:
    """Test-time flip averaging: TMR at FMR 1e-6 on held-out LFW people, plain vs flip-averaged vectors."""
    rows: dict[str, object] = {"ms_per_face": flip_cost()}
    lines = ["| vectors | cosine at FMR 1e-6 | TMR per pair | TMR per person |", "|---|---|---|---|"]
    lfw = faces.held_out & (faces.source == "lfw_calibration")
    for name, chosen in (("plain", faces), ("flip-averaged", faces.with_flip())):
        pairs = all_pairs(chosen.subset(lfw), cuts)
        cosine, per_pair, per_person = tmr_at_fmr(pairs, 1e-6)
        rows[name] = {
            "cosine": round(cosine, 4),
            "tmr_per_pair": round(per_pair, 4),
            "tmr_per_person": round(per_person, 4),
        }
        lines.append(f"| {name} | {cosine:.4f} | {per_pair:.2%} | {per_person:.2%} |")
    cost = rows["ms_per_face"]
    lines.append(f"\nembedding cost, median ms per face: {cost}")  # the mirrored crop is one more embed
    return rows, "\n".join(lines)


def flip_cost(rounds: int = 150) -> dict[str, object]:
    """Median milliseconds to embed one aligned face alone, and with its mirror (a batch of two).

    The two are timed in alternation, round after round, so that load from other processes on a shared
    machine falls on both alike.
    """
    engine = FaceEngine.create()
    image = engine.load(sorted((DATA / "lfw_subset" / "Tony_Blair").glob("*.jpg"))[0])
    _, faces = engine.analyze(image, max_faces=1, keep_crops=True)
    crop = faces[0].crop
    assert crop is not None
    one = crop[None]
    both = np.stack([crop, np.ascontiguousarray(crop[:, ::-1])])
    plain: list[float] = []
    flipped: list[float] = []
    for _ in range(rounds):
        plain += timed(lambda: engine.embed_crops(one), 1, warmup=1)
        flipped += timed(lambda: engine.embed_crops(both), 1, warmup=1)
    return {"plain": round(median_ms(plain), 2), "with_flip": round(median_ms(flipped), 2), "load": load_average()}


def labelled_checks(calibration: Calibration, data: Arrays) -> dict[str, object]:
    """Wrong names at 99 on every labelled set: impostor pairs that reach 99 on their band."""
    out: dict[str, object] = {}
    for pair_set in labelled_sets():
        vectors = np.asarray(data[f"{pair_set.name}_vectors"], dtype=np.float32)
        quality = quality_column({k: np.nan_to_num(v) for k, v in data.items()}, f"{pair_set.name}_")
        ok = ~np.isnan(vectors).any(axis=1)
        diff = [(a, b) for a, b, same in pair_set.pairs if not same and ok[a] and ok[b]]
        wrong = sum(
            1
            for a, b in diff
            if calibration.similarity(float(vectors[a] @ vectors[b]), pair_quality(quality[a], quality[b])) >= 99.0
        )
        out[pair_set.name] = f"{wrong}/{len(diff)}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refresh", action="store_true", help="re-embed instead of using the cache")
    parser.add_argument("--write", action="store_true", help="write the calibration JSON into the package")
    parser.add_argument(
        "--lfw", type=Path, default=None, help="lfw_calibration cache (benchmarks/embed_lfw_calibration.py)"
    )
    parser.add_argument("--inspect", type=Path, default=None, help="write the top impostor pairs as PNGs here")
    parser.add_argument("--flip", action="store_true", help="also measure test-time flip averaging")
    args = parser.parse_args()
    print(machine_info())
    data = collect(args.refresh)
    lfw_path = args.lfw or cache_dir() / LFW_CACHE
    if not lfw_path.is_file():
        sys.exit(f"{lfw_path} is missing: run benchmarks/embed_lfw_calibration.py first")
    with np.load(lfw_path) as cached:
        lfw = dict(cached)
    faces = assemble(data, lfw, set(EXCLUDED))
    cuts = BAND_CUTS
    model = FaceEngine.create().model.key
    if args.inspect:
        inspect(faces, all_pairs(faces, cuts, top=60), args.inspect)
        return
    held_out, held_out_text, split_calibration = held_out_report(faces, cuts, model)
    other_half, other_half_text, _ = held_out_report(swapped(faces), cuts, model)
    all_faces = all_pairs(faces, cuts)
    calibration, band_evidence = fit_bands(all_faces, cuts, model)
    print("\n## Impostor tails per pair band (all data)\n")
    print(band_table(all_faces, cuts))
    print("\n## Held out (fitted without these people and photos)\n")
    print(held_out_text)
    print("\n## The other fold (fitted on the half held out above, measured on the half fitted above)\n")
    print(other_half_text)
    crowd = faces.subset(faces.source == "wider_val200")
    in_sample = {
        "all": measure(calibration, all_faces),
        "crowd": measure(calibration, all_pairs(crowd, cuts)),
        "by_band": {
            n: measure(calibration, all_faces, only_band=i) for i, n in enumerate(BAND_NAMES[: len(cuts) + 1])
        },
    }
    print("\n## Shipped curve, on all the data it was fitted on\n")
    print(report_table(f"All sources ({len(faces)} faces)", in_sample["all"]))  # type: ignore[arg-type]
    print()
    print(report_table(f"WIDER crowds, all {len(crowd)} faces", in_sample["crowd"]))  # type: ignore[arg-type]
    bands = face_bands(faces, cuts)
    per_band = {
        str(src): {
            name: int(((faces.source == src) & (bands == i)).sum())
            for i, name in enumerate(BAND_NAMES[: len(cuts) + 1])
        }
        for src in np.unique(faces.source)
    }
    print(f"\nfaces per band: {per_band}")
    checks = {
        "split_curve": labelled_checks(split_calibration, data),
        "shipped_curve": labelled_checks(calibration, data),
    }
    print(f"\nimpostor pairs at or above 99 on the labelled sets: {checks}")
    flip: dict[str, object] = {}
    if args.flip:
        flip, flip_text = flip_report(faces, cuts)
        print("\n## Test-time flip averaging, held-out LFW people\n")
        print(flip_text)
    evidence: dict[str, object] = {
        "fitted_by": "benchmarks/calibrate.py",
        "date": dt.date.today().isoformat(),
        "quality": "facetrace.quality.face_quality: min(size 16→96 px, detector score 0.5→0.9) on 0–100",
        "band_cuts": list(cuts),
        "faces_per_band": per_band,
        "max_impostor_photos_per_person": MAX_IMPOSTOR_PHOTOS,
        "impostor_pairs": len(all_faces.impostors),
        "genuine_pairs": len(all_faces.genuines),
        "excluded_label_errors": EXCLUDED,
        "aliases": ALIASES,
        "bands": band_evidence,
        "held_out": held_out,
        "held_out_other_fold": other_half,
        "in_sample": in_sample,
        "labelled_sets_wrong_at_99": checks,
        "flip": flip,
        "machine": machine_info(),
        "caveat": (
            "pairs are not independent (each face is in many pairs), so the effective sample behind the "
            "tail is smaller than the pair count"
        ),
    }
    if args.write:
        target = ROOT / "src" / "facetrace" / "data" / f"calibration-{model}.json"
        document = {
            "model": model,
            "cosines": list(calibration.cosines),
            "similarities": list(calibration.similarities),
            "bands": [
                {
                    "name": b.name,
                    "min_quality": b.min_quality,
                    "cosines": list(b.curve.cosines),
                    "similarities": list(b.curve.similarities),
                }
                for b in calibration.bands
            ],
            "evidence": evidence,
        }
        target.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n", encoding="utf-8")
        print(f"wrote {target}")


if __name__ == "__main__":
    main()
