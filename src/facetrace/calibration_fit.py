"""Fitting a calibration: from labelled faces to one cosine → similarity curve per quality band.

Shared by ``benchmarks/calibrate.py`` (which fits the shipped SFace curve on LFW and WIDER, with its data
sets' label errors and person split) and ``facetrace calibrate`` (which fits any recognizer on a user's own
labelled folder). Only the statistics live here; where the faces come from is the caller's business.

For each false match rate F the cosine threshold is the empirical (1 − F) quantile of the impostor cosines
(pairs of different people) while at least ``MIN_TAIL_PAIRS`` impostor pairs lie above it. Past that it is
extrapolated from the upper tail: the exceedances over the cosine at which ``TAIL_PAIRS`` impostor pairs
remain are fitted with an exponential (a generalised Pareto with shape 0). Cosines are bounded by 1, so the
true tail is lighter than exponential and the exponential threshold errs high, i.e. safe. The shape is
estimated anyway (probability-weighted moments) and reported; if it came out positive (a heavier tail) the
GPD quantile is used instead. Where impostor pairs are still observed above the fitted cosine, the higher
of the two is taken. Measured rates come with two-sided 95% Clopper–Pearson intervals; true match rates
(TMR) are given per pair and per person (the mean over people of each person's share of genuine pairs).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from facetrace.calibration import FMR_ANCHORS, Calibration, Curve, QualityBand
from facetrace.errors import InvalidInputError

__all__ = [
    "BAND_CUTS",
    "BAND_NAMES",
    "MAX_IMPOSTOR_PHOTOS",
    "MIN_FIT_PAIRS",
    "MIN_TAIL_PAIRS",
    "PAIRS_FOR_ONE_IN_A_MILLION",
    "PUBLISHED",
    "TAIL_PAIRS",
    "CurveFit",
    "Pairs",
    "all_pairs",
    "band_table",
    "clopper_pearson",
    "face_bands",
    "fit_bands",
    "fit_curve",
    "held_out_person",
    "measure",
    "pair_similarity",
    "per_person_rate",
    "poisson_upper",
    "report_table",
    "tail_fmr",
    "tmr_at_fmr",
]

MIN_TAIL_PAIRS = 25
"""Use the empirical quantile only while at least this many impostor pairs lie above the threshold."""
TAIL_PAIRS = 2000
"""The tail fit uses the top this-many impostor cosines (a quarter of them when there are fewer than 8,000)."""
MIN_FIT_PAIRS = 40
"""A band needs at least this many impostor pairs to be fitted at all (10 of them make its tail)."""
PUBLISHED = (80.0, 90.0, 95.0, 99.0)
"""The thresholds reports measure (the FMR anchors users pick from)."""
BAND_CUTS = (75.0,)
"""``face_quality`` at which the clear band begins (a pair is clear when both its faces are)."""
BAND_NAMES = ("low", "clear")
MAX_IMPOSTOR_PHOTOS = 20
"""Impostor pairs use at most this many photos of one person (the first in order): one person with hundreds
of photos would otherwise make one family's look-alike pairs a large share of the tail."""
PAIRS_FOR_ONE_IN_A_MILLION = 3_000_000
"""Impostor pairs needed before 0 false matches bounds the FMR below 1e-6 (rule of three, 95%): with
fewer, the 99 threshold (and 95 with fewer than 300,000) rests on the tail fit, not on observed pairs."""


# -- pairs -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pairs:
    """Cosines of every impostor and genuine pair among some faces, with the pair's quality band."""

    impostors: npt.NDArray[np.float32]
    impostor_band: npt.NDArray[np.int8]  # the band of the pair's worse face (the curve it is scored with)
    impostor_top: npt.NDArray[np.int8]  # the band of its better face
    genuines: npt.NDArray[np.float32]
    genuine_band: npt.NDArray[np.int8]
    genuine_person: npt.NDArray[np.int64]
    top: list[tuple[float, int, int]]  # the highest-scoring impostor pairs (cosine, face a, face b)


def face_bands(quality: npt.NDArray[np.float64], cuts: Sequence[float]) -> npt.NDArray[np.int8]:
    """Band index of each face: 0 below cuts[0] (and unknown quality, NaN), i for quality ≥ cuts[i-1]."""
    known = np.nan_to_num(np.asarray(quality, dtype=np.float64), nan=-1.0)
    return np.searchsorted(np.asarray(cuts, dtype=np.float64), known, side="right").astype(np.int8)


def all_pairs(
    vectors: npt.NDArray[np.float32],
    identity: npt.NDArray[np.int64],
    quality: npt.NDArray[np.float64],
    cuts: Sequence[float],
    *,
    block: npt.NDArray[np.int64] | None = None,
    source: npt.NDArray[Any] | None = None,
    max_impostor_photos: int | None = MAX_IMPOSTOR_PHOTOS,
    top: int = 0,
    rows: int = 1024,
) -> Pairs:
    """Every pair of faces once (i < j), in blocks of ``rows`` so memory stays small.

    ``identity``: faces with equal codes are the same person (genuine pairs), others impostors. ``block``:
    faces sharing a block id ≥ 0 are never paired as impostors (photos that may show the same people).
    ``source``: genuine pairs only between faces of one source (a person's photos in two data sets may be
    copies of each other). ``max_impostor_photos``: see ``MAX_IMPOSTOR_PHOTOS`` (None: every photo).
    ``top``: also keep the highest-scoring impostor pairs, to look for label errors by eye.
    """
    n = len(vectors)
    bands = face_bands(quality, cuts)
    identity = np.asarray(identity, dtype=np.int64)
    block = np.full(n, -1, dtype=np.int64) if block is None else np.asarray(block, dtype=np.int64)
    source = np.zeros(n, dtype=np.int64) if source is None else np.asarray(source)
    rank = np.zeros(n, dtype=np.int64)  # each face's place among its person's photos
    seen: dict[int, int] = {}
    for index, person in enumerate(identity.tolist()):
        rank[index] = seen.get(person, 0)
        seen[person] = rank[index] + 1
    usable = np.ones(n, dtype=bool) if max_impostor_photos is None else rank < max_impostor_photos
    impostor_top: list[npt.NDArray[np.int8]] = []
    impostors: list[npt.NDArray[np.float32]] = []
    impostor_band: list[npt.NDArray[np.int8]] = []
    genuines: list[npt.NDArray[np.float32]] = []
    genuine_band: list[npt.NDArray[np.int8]] = []
    genuine_person: list[npt.NDArray[np.int64]] = []
    best: list[tuple[float, int, int]] = []
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        cos = vectors[start:stop] @ vectors.T
        i = np.arange(start, stop)[:, None]
        j = np.arange(n)[None, :]
        upper = j > i
        same = identity[start:stop, None] == identity[None, :]
        blocked = (block[start:stop, None] >= 0) & (block[start:stop, None] == block[None, :])
        pair_band = np.minimum(bands[start:stop, None], bands[None, :])
        impostor = upper & ~same & ~blocked & usable[start:stop, None] & usable[None, :]
        genuine = upper & same & (source[start:stop, None] == source[None, :])
        impostors.append(cos[impostor])
        impostor_band.append(pair_band[impostor])
        impostor_top.append(np.maximum(bands[start:stop, None], bands[None, :])[impostor])
        genuines.append(cos[genuine])
        genuine_band.append(pair_band[genuine])
        genuine_person.append(np.broadcast_to(identity[start:stop, None], cos.shape)[genuine])
        if top:
            flat = np.where(impostor, cos, -2.0)
            k = min(top, flat.size)
            chosen = np.argpartition(flat.ravel(), -k)[-k:]
            rows_at, cols_at = np.unravel_index(chosen, flat.shape)
            best += [
                (float(flat[x, y]), start + int(x), int(y))
                for x, y in zip(rows_at.tolist(), cols_at.tolist(), strict=True)
                if flat[x, y] > -2
            ]
            best = sorted(best, reverse=True)[:top]
    if n == 0:
        empty = np.empty(0, dtype=np.float32)
        none = np.empty(0, dtype=np.int8)
        return Pairs(empty, none, none, empty, none, np.empty(0, dtype=np.int64), [])
    return Pairs(
        np.concatenate(impostors), np.concatenate(impostor_band), np.concatenate(impostor_top), np.concatenate(genuines),
        np.concatenate(genuine_band), np.concatenate(genuine_person), best,
    )  # fmt: skip


def held_out_person(name: str, seed: str) -> bool:
    """A seeded half/half split by person: a stable hash of the name, never of the photos."""
    return hashlib.sha256(f"{seed}:{name}".encode()).digest()[0] % 2 == 1


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
    """Similarity of each pair on the curve of its band (band indices beyond the calibration's last band
    use the last one: a one-band calibration scores every pair on its one curve)."""
    out = np.empty(len(cosines), dtype=np.float64)
    last = len(calibration.bands) - 1
    for number, band in enumerate(calibration.bands):
        chosen = (bands >= number) if number == last else (bands == number)
        out[chosen] = np.interp(cosines[chosen], band.curve.cosines, band.curve.similarities)
    return out


def measure(
    calibration: Calibration,
    pairs: Pairs,
    only_band: int | None = None,
    thresholds: Sequence[float] = PUBLISHED,
) -> dict[str, dict[str, object]]:
    """At each threshold: measured FMR with its 95% interval, TMR per pair and per person."""
    impostor_keep = np.ones(len(pairs.impostors), bool) if only_band is None else pairs.impostor_band == only_band
    genuine_keep = np.ones(len(pairs.genuines), bool) if only_band is None else pairs.genuine_band == only_band
    impostor_sim = pair_similarity(calibration, pairs.impostors[impostor_keep], pairs.impostor_band[impostor_keep])
    genuine_sim = pair_similarity(calibration, pairs.genuines[genuine_keep], pairs.genuine_band[genuine_keep])
    person = pairs.genuine_person[genuine_keep]
    rows: dict[str, dict[str, object]] = {}
    target = dict(FMR_ANCHORS)
    for threshold in thresholds:
        false = int((impostor_sim >= threshold).sum())
        low, high = clopper_pearson(false, len(impostor_sim))
        passed = genuine_sim >= threshold
        per_person, people = per_person_rate(passed, person)
        rows[f"{threshold:g}"] = {
            "fmr_target": target.get(threshold),
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
    """Generalised Pareto (shape ξ, scale σ) by probability-weighted moments (Hosking & Wallis 1987).

    Degenerate tails (every exceedance equal, e.g. duplicated photos) give shape 0, the exponential."""
    x = np.sort(excess)
    n = len(x)
    b0 = float(x.mean())
    b1 = float(np.sum(x * (np.arange(n) / (n - 1))) / n)  # E[X F(X)]
    # Hosking's parameterisation k = −ξ: k = b0 / (b0 − 2 b1) − 2, σ = 2 b0 b1 / (b0 − 2 b1)
    a1 = b0 - b1  # E[X (1 − F(X))]
    if abs(b0 - 2 * a1) < 1e-12:
        return 0.0, b0
    k = b0 / (b0 - 2 * a1) - 2
    sigma = 2 * b0 * a1 / (b0 - 2 * a1)
    return float(-k), float(sigma)


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
        return float(p_u * (1.0 + xi * (cosine - u) / tail["gpd_scale"]) ** (-1.0 / xi))
    return p_u * math.exp(-(cosine - u) / max(sigma, 1e-12))


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


@dataclass(frozen=True)
class CurveFit:
    """One band's fitted curve, how each anchor's threshold was set, and the tail fit behind it."""

    cosines: tuple[float, ...]
    similarities: tuple[float, ...]
    methods: dict[float, str]  # similarity → "empirical" or which tail fit
    tail: dict[str, float]

    @property
    def curve(self) -> Curve:
        return Curve(self.cosines, self.similarities)


def fit_curve(impostors: npt.NDArray[np.float64]) -> CurveFit:
    """The cosine → similarity curve of one band, from its impostor cosines (at least ``MIN_FIT_PAIRS``)."""
    sorted_desc = np.sort(np.asarray(impostors, dtype=np.float64))[::-1]
    n = len(sorted_desc)
    if n < MIN_FIT_PAIRS:
        raise InvalidInputError(f"{n} impostor pairs are too few to fit a curve (at least {MIN_FIT_PAIRS})")
    tail_pairs = max(MIN_FIT_PAIRS // 4, min(TAIL_PAIRS, n // 4))
    u = float(sorted_desc[tail_pairs])
    excess = sorted_desc[:tail_pairs] - u
    xi, gpd_scale = gpd_shape_pwm(excess)
    tail = {
        "cosine": u,
        "fraction": tail_pairs / n,
        "exp_scale": max(float(excess.mean()), 1e-6),
        "gpd_shape": xi,
        "gpd_scale": gpd_scale,
        "pairs": float(tail_pairs),
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
    # Past 0.999 (a tail no data reaches) the anchors may run beyond cosine 1: those similarities are then
    # out of reach, which is the safe reading of a tail nobody can measure.
    cosines.append(max(1.0, cosines[-1] + 1e-4))
    sims.append(100.0)
    return CurveFit(tuple(cosines), tuple(sims), methods, tail)


def fit_bands(
    pairs: Pairs, cuts: Sequence[float], model: str, names: Sequence[str] = BAND_NAMES
) -> tuple[Calibration, dict[str, object]]:
    """One curve per quality band, each fitted on the impostor pairs whose faces are *both* in it
    (``cuts`` empty: one band, fitted on every impostor pair), and the evidence behind each band.

    A pair is scored with the band of its worse face, so a low × clear pair gets the curve fitted on
    low × low pairs, whose tail is the heavier (measured on SFace: crowd × crowd impostors reach higher
    cosines than crowd × clear ones): the rule errs towards caution.
    """
    bands: list[QualityBand] = []
    evidence: dict[str, object] = {}
    count = len(cuts) + 1
    band_names = list(names[:count]) if count > 1 else ["all"]
    for number, name in enumerate(band_names):
        if count == 1:
            within = np.ones(len(pairs.impostors), dtype=bool)
            genuine_pairs = len(pairs.genuines)
        else:
            within = (pairs.impostor_band == number) & (pairs.impostor_top == number)
            genuine_pairs = int((pairs.genuine_band == number).sum())
        impostors = pairs.impostors[within].astype(np.float64)
        fitted = fit_curve(impostors)
        low = 0.0 if number == 0 else float(cuts[number - 1])
        bands.append(QualityBand(name, low, fitted.curve))
        tail = fitted.tail
        evidence[name] = {
            "min_quality": low,
            "impostor_pairs": len(impostors),
            "genuine_pairs": genuine_pairs,
            "threshold_from": {f"{k:g}": v for k, v in fitted.methods.items() if k in PUBLISHED},
            "cosine_at": {
                f"{t:g}": round(float(np.interp(t, fitted.similarities, fitted.cosines)), 4) for t in PUBLISHED
            },
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


# -- reports -----------------------------------------------------------------------------------------------


def band_table(pairs: Pairs, cuts: Sequence[float], names: Sequence[str] = BAND_NAMES) -> str:
    """Why bands: the empirical impostor cosine at each false match rate, per pair of face bands."""
    lines = [
        "| faces | impostor pairs | cosine at FMR 1e-3 | 1e-4 | 1e-5 | 1e-6 |",
        "|---|---|---|---|---|---|",
    ]
    names = names[: len(cuts) + 1]
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


def report_table(title: str, rows: dict[str, dict[str, object]]) -> str:
    """``measure``'s rows as a Markdown table."""
    lines = [
        f"**{title}**\n",
        "| similarity ≥ | target FMR | measured FMR (pairs) | 95% CI | TMR per pair | TMR per person (people) |",
        "|---|---|---|---|---|---|",
    ]
    for threshold, row in rows.items():
        low, high = (float(v) for v in row["fmr_95ci"])  # type: ignore[attr-defined]
        tmr_pair = row["tmr_per_pair"]
        tmr_person = row["tmr_per_person"]
        pair_text = "n/a" if tmr_pair is None else f"{float(tmr_pair):.2%} ({row['genuines_at_or_above']})"  # type: ignore[arg-type]
        person_text = "n/a" if tmr_person is None else f"{float(tmr_person):.2%} ({row['people']})"  # type: ignore[arg-type]
        target = row["fmr_target"]
        lines.append(
            f"| {threshold} | {'' if target is None else f'{float(target):g}'} "  # type: ignore[arg-type]
            f"| {float(row['fmr_measured']):.2g} ({row['impostors_at_or_above']}) "  # type: ignore[arg-type]
            f"| {low:.1g} – {high:.2g} | {pair_text} | {person_text} |"
        )
    return "\n".join(lines)
