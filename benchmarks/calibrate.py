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

The statistics (pair scoring, per-band thresholds from empirical quantiles and a tail fit, Clopper–Pearson
bounds, TMR per pair and per person) are ``facetrace.calibration_fit``, shared with ``facetrace calibrate``;
this script keeps what is particular to these data sets: restoring WIDER's photos, the label errors, the
aliases and the split by person.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Sequence
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
from facetrace import calibration_fit as fit_lib
from facetrace.calibration import Calibration, calibration_to_json, pair_quality
from facetrace.calibration_fit import (
    BAND_CUTS,
    BAND_NAMES,
    MAX_IMPOSTOR_PHOTOS,
    Pairs,
    band_table,
    fit_bands,
    measure,
    report_table,
    tmr_at_fmr,
)
from facetrace.engine import DetectionSettings, FaceEngine
from facetrace.imaging import Image
from facetrace.quality import quality_score

MIN_FACE_PX = 16
"""WIDER faces shorter than this (box height, restored pixels) are left out: too small to index."""
MIN_SCORE = 0.7
"""WIDER detections below this confidence are left out: most are hands, signs and blur, not faces."""
SAME_PEOPLE = (("3_Riot_Riot_3_318.jpg", "3_Riot_Riot_3_405.jpg", "3_Riot_Riot_3_689.jpg"),)
"""WIDER photos that show the same people (a news series; checked by eye among the highest-scoring
cross-photo pairs). Pairs of faces across photos of one group are not counted as impostors."""
WIDER_TILE_SETTINGS = DetectionSettings(small_faces=True, upscale=2.0)
LFW_CACHE = "lfw_calibration_sface.npz"
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
    return fit_lib.held_out_person(name, SPLIT_SEED)


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


def all_pairs(faces: Faces, cuts: Sequence[float], *, top: int = 0) -> Pairs:
    """Every pair of ``faces`` once (``calibration_fit.all_pairs``): face_recognition's photos and one news
    series never paired as impostors (``block``), genuine pairs only within one source."""
    return fit_lib.all_pairs(
        faces.vectors, faces.identity, faces.quality, cuts, block=faces.block, source=faces.source,
        max_impostor_photos=MAX_IMPOSTOR_PHOTOS, top=top,
    )  # fmt: skip


def face_bands(faces: Faces, cuts: Sequence[float]) -> npt.NDArray[np.int8]:
    return fit_lib.face_bands(faces.quality, cuts)


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
    parser.add_argument("--out", type=Path, default=None, help="write the calibration JSON here instead")
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
    if args.write or args.out:
        target = args.out or ROOT / "src" / "facetrace" / "data" / f"calibration-{model}.json"
        document = calibration_to_json(dataclasses.replace(calibration, evidence=evidence))
        target.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n", encoding="utf-8")
        print(f"wrote {target}")


if __name__ == "__main__":
    main()
