"""``facetrace calibrate``: fit a recognizer's similarity curve on a labelled folder of one's own people.

The folder holds one sub-folder per person (``LABELLED_DIR/<person>/<photo>``). The largest face of each
photo is embedded; every pair of faces of different people is an impostor pair, every pair of one person's
faces a genuine pair; the statistics are ``facetrace.calibration_fit``'s, the same that fitted the shipped
SFace curve. The result is a calibration document that ``--calibration`` (with ``--recognizer`` for a
user's own model) loads in every other command and in the server.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

from facetrace.calibration import Calibration, calibration_to_json
from facetrace.calibration_fit import (
    BAND_CUTS,
    MIN_FIT_PAIRS,
    PAIRS_FOR_ONE_IN_A_MILLION,
    Pairs,
    all_pairs,
    fit_bands,
    held_out_person,
    measure,
)
from facetrace.cli import add_command
from facetrace.cli.collections import IMAGE_SUFFIXES
from facetrace.cli.output import emit, progress, stderr
from facetrace.engine import FaceEngine
from facetrace.errors import InvalidInputError, InvalidParameterError

MIN_BAND_PAIRS = 25_000
"""Two quality bands only when both the low × low and the clear × clear impostor pairs number at least this
many (so that each band's FMR 1e-3 threshold is empirical); otherwise one band for every pair."""
SPLIT_SEED = "facetrace-calibrate"
TOP_IMPOSTORS = 5
"""The report lists this many of the highest-scoring impostor pairs: the first place to look for label
errors (one person under two names, someone else's photo in a folder), which set the tail."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.]{0,63}$")


def register(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = add_command(
        subparsers,
        "calibrate",
        parents=[common],
        description="Embed the largest face of every LABELLED_DIR/<person>/<photo>, fit the cosine → "
        "similarity curve so that thresholds mean false match rates (80 ↔ 1e-3 … 99 ↔ 1e-6), write it as "
        "JSON and report what the data supports. See docs/accuracy.md.",
    )
    parser.add_argument("folder", metavar="LABELLED_DIR", help="one sub-folder per person, their photos inside")
    parser.add_argument(
        "--model", metavar="ONNX_PATH", help="ArcFace-style ONNX recognizer (default: the built-in SFace)"
    )
    parser.add_argument("--name", help="the recognizer's name (with --model), e.g. arcface")
    parser.add_argument("--version", help="its version (with --model), e.g. r100-2024")
    parser.add_argument(
        "--mean", type=float, default=127.5, help="input normalisation (pixel - mean) / std (default 127.5)"
    )
    parser.add_argument("--std", type=float, default=127.5, help="(default 127.5; SFace: mean 0, std 1)")
    parser.add_argument("--bgr", action="store_true", help="the model takes BGR, not RGB, input")
    parser.add_argument(
        "--out", metavar="FILE", help="where to write the calibration (default calibration-<model>.json)"
    )
    parser.add_argument("--workers", type=int, default=2, help="photos analysed in parallel (default 2)")
    parser.set_defaults(func=_calibrate)


@dataclass(frozen=True)
class LabelledFaces:
    """The largest face of each readable photo, with its person, and what could not be used."""

    vectors: npt.NDArray[np.float32]
    quality: npt.NDArray[np.float64]
    identity: npt.NDArray[np.int64]
    people: list[str]  # identity code → folder name
    photos: int
    skipped: list[dict[str, str]]  # unreadable images: path and reason
    no_face: list[str]
    paths: list[str]  # the photo of each face


def drop_copies(people: dict[str, list[Path]]) -> tuple[dict[str, list[Path]], list[str], list[str]]:
    """Byte-identical photos: a person's second copy would be a genuine pair of cosine 1 (left out, kept
    once); one photo filed under two people is a label error whose right name is unknown (every copy left
    out, and warned about). Returns the people left, the copies dropped, and the warnings."""
    by_hash: dict[str, list[tuple[str, Path]]] = {}
    for name, paths in people.items():
        for path in paths:
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                digest = f"unreadable:{path}"  # embedding will report it
            by_hash.setdefault(digest, []).append((name, path))
    dropped: set[Path] = set()
    warnings: list[str] = []
    for copies in by_hash.values():
        if len(copies) < 2:
            continue
        names = sorted({name for name, _ in copies})
        if len(names) == 1:
            dropped.update(path for _, path in copies[1:])
        else:
            dropped.update(path for _, path in copies)
            listed = ", ".join(str(path) for _, path in copies)
            warnings.append(f"one photo filed under {len(names)} people ({listed}): left out, fix the labels")
    kept = {name: [p for p in paths if p not in dropped] for name, paths in people.items()}
    return {name: paths for name, paths in kept.items() if paths}, sorted(str(p) for p in dropped), warnings


def person_folders(folder: Path) -> dict[str, list[Path]]:
    """``<person>`` → their image files; validates the layout (typed errors, never a traceback)."""
    if not folder.exists():
        raise InvalidParameterError(f"{folder} does not exist")
    if not folder.is_dir():
        raise InvalidParameterError(f"{folder} is not a folder of person folders")
    people: dict[str, list[Path]] = {}
    try:
        for person in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            photos = sorted(p for p in person.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if photos:
                people[person.name] = photos
    except OSError as exc:
        raise InvalidParameterError(f"cannot read {folder}: {exc.strerror or exc}") from None
    if not people:
        raise InvalidParameterError(
            f"{folder} has no person folders with photos: expected {folder}/<person>/<photo>.jpg"
        )
    if len(people) < 2:
        raise InvalidParameterError(
            f"{folder} has photos of one person only ({next(iter(people))}): impostor pairs need at least two"
        )
    return people


def embed_folder(engine: FaceEngine, people: dict[str, list[Path]], workers: int, show: bool) -> LabelledFaces:
    """The largest face of every photo; unreadable photos and photos without a face are counted, not fatal."""
    jobs = [(name, path) for name, paths in people.items() for path in paths]

    def one(job: tuple[str, Path]) -> tuple[str, Path, Any]:
        name, path = job
        try:
            _, faces = engine.analyze(path, max_faces=1)
        except InvalidInputError as exc:
            return name, path, exc
        return name, path, faces[0] if faces else None

    vectors: list[npt.NDArray[np.float32]] = []
    quality: list[float] = []
    identity: list[int] = []
    names: dict[str, int] = {}
    skipped: list[dict[str, str]] = []
    no_face: list[str] = []
    paths: list[str] = []
    with (
        progress(len(jobs), "embedding", enabled=show) as advance,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="calibrate") as pool,
    ):
        for name, path, result in pool.map(one, jobs):  # in order: a person's first photos come first
            advance(1)
            if isinstance(result, InvalidInputError):
                skipped.append({"Path": str(path), "Reason": result.message})
            elif result is None:
                no_face.append(str(path))
            else:
                assert result.vector is not None
                vectors.append(result.vector)
                quality.append(result.quality_score)
                identity.append(names.setdefault(name, len(names)))
                paths.append(str(path))
    dim = engine.model.dim
    return LabelledFaces(
        vectors=np.asarray(vectors, dtype=np.float32).reshape(-1, dim),
        quality=np.asarray(quality, dtype=np.float64),
        identity=np.asarray(identity, dtype=np.int64),
        people=sorted(names, key=names.__getitem__),
        photos=len(jobs),
        skipped=skipped,
        no_face=no_face,
        paths=paths,
    )


def _pairs(
    faces: LabelledFaces, keep: npt.NDArray[np.bool_] | None, cuts: tuple[float, ...], top: int = 0
) -> Pairs:
    chosen = np.ones(len(faces.vectors), dtype=bool) if keep is None else keep
    return all_pairs(faces.vectors[chosen], faces.identity[chosen], faces.quality[chosen], cuts, top=top)


def _held_out(faces: LabelledFaces, cuts: tuple[float, ...], model: str) -> dict[str, Any]:
    """Fit on half the people (a seeded hash of the folder name), measure on the other half, and swap."""
    half = np.asarray([held_out_person(faces.people[i], SPLIT_SEED) for i in faces.identity], dtype=bool)
    folds: dict[str, Any] = {}
    for label, measured in (("A", half), ("B", ~half)):
        people = len(set(faces.identity[measured].tolist()))
        if people < 2 or len(set(faces.identity[~measured].tolist())) < 2:
            return {"skipped": "fewer than two people in one half"}
        try:
            fitted, _ = fit_bands(_pairs(faces, ~measured, cuts), cuts, model)
        except InvalidInputError as exc:
            return {"skipped": f"a half is too small to fit on: {exc.message}"}
        folds[label] = {
            "people": people,
            "faces": int(measured.sum()),
            "rows": measure(fitted, _pairs(faces, measured, cuts)),
        }
    return {"split": f"by person: sha256('{SPLIT_SEED}:<folder name>'), odd first byte = half A", **folds}


def _fit(faces: LabelledFaces, model: str) -> tuple[Calibration, dict[str, Any], Pairs, list[str]]:
    """Two quality bands when the data has enough pairs in each, else one; and what to warn about."""
    warnings: list[str] = []
    banded = _pairs(faces, None, BAND_CUTS, top=TOP_IMPOSTORS)
    low_low = int(((banded.impostor_band == 0) & (banded.impostor_top == 0)).sum())
    clear_clear = int(((banded.impostor_band == 1) & (banded.impostor_top == 1)).sum())
    low_faces = int((faces.quality < BAND_CUTS[0]).sum())
    if low_low >= MIN_BAND_PAIRS and clear_clear >= MIN_BAND_PAIRS:
        cuts: tuple[float, ...] = BAND_CUTS
        pairs = banded
    else:
        cuts = ()
        pairs = _pairs(faces, None, cuts, top=TOP_IMPOSTORS)
        warnings.append(
            f"one quality band: {low_faces} of {len(faces.vectors)} faces are below quality {BAND_CUTS[0]:g} "
            f"({low_low:,} low × low and {clear_clear:,} clear × clear impostor pairs; two bands need "
            f"{MIN_BAND_PAIRS:,} of each). Every pair is scored on one curve: small, blurred or crowd faces "
            "usually reach higher impostor scores than clear ones, so their false match rate is likely above "
            "the stated one"
        )
    if len(pairs.impostors) < MIN_FIT_PAIRS:
        raise InvalidInputError(
            f"{len(pairs.impostors)} impostor pairs are too few to fit (at least {MIN_FIT_PAIRS}: e.g. ten "
            "people with one usable photo each)"
        )
    calibration, bands = fit_bands(pairs, cuts, model)
    if len(pairs.impostors) < PAIRS_FOR_ONE_IN_A_MILLION:
        warnings.append(
            f"only {len(pairs.impostors):,} impostor pairs: too few to support FMR 1e-6 (similarity 99). About "
            f"{PAIRS_FOR_ONE_IN_A_MILLION:,} are needed before seeing no false match bounds it below 1e-6 "
            "(95%); extrapolated thresholds rest on a tail fit, not on observed pairs"
        )
    for name, band in bands.items():
        guessed = [t for t, how in band["threshold_from"].items() if how != "empirical"]  # type: ignore[index]
        if guessed:
            warnings.append(
                f"band {name}: thresholds {', '.join(guessed)} are extrapolated from the impostor tail"
            )
    if len(pairs.genuines) == 0:
        warnings.append("no person has two usable photos: no true match rate can be measured")
    return calibration, bands, pairs, warnings


def _calibrate(args: argparse.Namespace) -> int:
    from facetrace.app import Recognizer, open_recognizer

    if not 1 <= args.workers <= 64:
        raise InvalidParameterError("--workers must be between 1 and 64")
    recognizer: Recognizer | None = None
    if args.model is None:
        if args.name or args.version:
            raise InvalidParameterError("--name and --version name a --model; without one SFace is calibrated")
    else:
        for flag, value in (("--name", args.name), ("--version", args.version)):
            if not value or not _NAME.match(value):
                raise InvalidParameterError(f"--model needs {flag}: letters, digits, '.' and '_' (up to 64)")
        if args.std <= 0:
            raise InvalidParameterError("--std must be positive")
        recognizer = Recognizer(
            Path(args.model), args.name, args.version, mean=args.mean, std=args.std, swap_rb=not args.bgr
        )
    people, copies, copy_warnings = drop_copies(person_folders(Path(args.folder)))
    if len(people) < 2:
        raise InvalidInputError("fewer than two people are left once copies of one photo are left out")
    if recognizer is None:
        engine = FaceEngine.create()
    else:
        engine = open_recognizer(recognizer, Calibration.uncalibrated(recognizer.key))
    model = engine.model.key
    out = Path(args.out) if args.out else Path(f"calibration-{model}.json")
    if not out.parent.is_dir():
        raise InvalidParameterError(f"--out: folder {out.parent} does not exist")
    faces = embed_folder(engine, people, args.workers, show=not args.json)
    if len(faces.people) < 2:
        raise InvalidInputError(f"faces were found for {len(faces.people)} person only: at least two are needed")
    calibration, bands, pairs, warnings = _fit(faces, model)
    warnings = copy_warnings + warnings
    top = [{"Cosine": round(cosine, 4), "A": faces.paths[a], "B": faces.paths[b]} for cosine, a, b in pairs.top]
    cuts = BAND_CUTS if len(calibration.bands) > 1 else ()
    in_sample = measure(calibration, pairs)
    held_out = _held_out(faces, cuts, model)
    summary: dict[str, Any] = {
        "Model": model,
        "Output": str(out),
        "People": len(faces.people),
        "Photos": faces.photos,
        "Faces": len(faces.vectors),
        "SkippedImages": faces.skipped,
        "NoFace": faces.no_face,
        "DuplicatesLeftOut": copies,
        "TopImpostorPairs": top,
        "ImpostorPairs": len(pairs.impostors),
        "GenuinePairs": len(pairs.genuines),
        "Bands": bands,
        "InSample": in_sample,
        "HeldOut": held_out,
        "Warnings": warnings,
    }
    evidence = {
        "fitted_by": "facetrace calibrate",
        "date": dt.date.today().isoformat(),
        "folder": str(Path(args.folder).resolve()),
        "people": len(faces.people),
        "photos": faces.photos,
        "faces": len(faces.vectors),
        "skipped_images": len(faces.skipped),
        "photos_without_face": len(faces.no_face),
        "duplicates_left_out": len(copies),
        "quality": "facetrace.quality.face_quality: min(size 16→96 px, detector score 0.5→0.9) on 0–100",
        "band_cuts": list(cuts),
        "impostor_pairs": len(pairs.impostors),
        "genuine_pairs": len(pairs.genuines),
        "bands": bands,
        "in_sample": in_sample,
        "held_out": held_out,
        "warnings": warnings,
        "caveat": "pairs are not independent (each face is in many pairs), so the effective sample behind the "
        "tail is smaller than the pair count; the figures hold for people and photos like these",
    }
    document = calibration_to_json(dataclasses.replace(calibration, evidence=evidence))
    if recognizer is not None:
        document["recognizer"] = recognizer.describe()
    partial = out.with_name(out.name + ".partial")
    partial.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(partial, out)  # a reader never sees half a calibration
    emit(args, summary, lambda console: _render(console, summary))
    return 0


def _rate(row: dict[str, Any], key: str) -> str:
    value = row[key]
    return "n/a" if value is None else f"{float(value):.2%}"


def _table(title: str, rows: dict[str, dict[str, Any]], methods: dict[str, dict[str, str]] | None) -> Table:
    columns = ["sim. ≥", "target FMR", "impostor pairs ≥", "measured FMR (95% CI)", "TMR per pair"]
    columns += ["TMR per person (people)"] + (["threshold from"] if methods else [])
    table = Table(*columns, title=title)
    for threshold, row in rows.items():
        low, high = row["fmr_95ci"]
        cells = [
            threshold,
            f"{row['fmr_target']:g}",
            str(row["impostors_at_or_above"]),
            f"{row['fmr_measured']:.2g} ({low:.1g} – {high:.2g})",
            f"{_rate(row, 'tmr_per_pair')} ({row['genuines_at_or_above']})",
            f"{_rate(row, 'tmr_per_person')} ({row['people']})",
        ]
        if methods:
            cells.append("; ".join(f"{band}: {_short(how[threshold])}" for band, how in methods.items()))
        table.add_row(*cells)
    return table


def _short(method: str) -> str:
    """'exponential tail fit (raised to the observed pairs)' → 'tail fit, raised'."""
    if method == "empirical":
        return method
    return "tail fit, raised" if "raised" in method else "tail fit"


def _render(console: Console, summary: dict[str, Any]) -> None:
    console.print(
        f"calibrated [bold]{summary['Model']}[/] on {summary['Faces']} faces of {summary['People']} people "
        f"({summary['Photos']} photos; {len(summary['SkippedImages'])} unreadable, {len(summary['NoFace'])} "
        f"without a face): {summary['ImpostorPairs']:,} impostor pairs, {summary['GenuinePairs']:,} genuine pairs"
    )
    for item in summary["SkippedImages"]:
        stderr.print(f"[yellow]skipped[/] {item['Path']}: {item['Reason']}")
    for path in summary["DuplicatesLeftOut"]:
        stderr.print(f"[yellow]left out[/] {path}: a byte-identical copy of another photo")
    bands = summary["Bands"]
    for name, band in bands.items():
        console.print(
            f"band [bold]{name}[/] (quality ≥ {band['min_quality']:g}): {band['impostor_pairs']:,} impostor "
            f"pairs; cosine at " + ", ".join(f"{t}: {c}" for t, c in band["cosine_at"].items())
        )
    console.print("highest-scoring impostor pairs (check these for label errors):")
    for pair in summary["TopImpostorPairs"]:
        console.print(f"  {pair['Cosine']:.4f}  {pair['A']}  {pair['B']}")
    methods = {name: band["threshold_from"] for name, band in bands.items()}
    console.print(_table("On every pair it was fitted on", summary["InSample"], methods))
    held = summary["HeldOut"]
    if "skipped" in held:
        console.print(f"held-out check skipped: {held['skipped']}")
    else:
        for fold in ("A", "B"):
            part = held[fold]
            console.print(
                _table(
                    f"Held out: {part['people']} people ({part['faces']} faces) the curve of the other half "
                    "was not fitted on",
                    part["rows"],
                    None,
                )
            )
    for warning in summary["Warnings"]:
        stderr.print(f"[bold yellow]warning:[/] {warning}")
    console.print(f"wrote {summary['Output']}")
