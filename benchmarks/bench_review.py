"""How much confirming a review item *with enrolment* raises later recall, on LFW people nothing was tuned on.

    python benchmarks/bench_review.py [--draws 3] [--json out.json]

The review loop, simulated with the production code (``Gallery`` over a ``MemoryStore``, users scored by their
template as SearchUsers and stream processors do, the shipped calibration with its quality bands):

1. every person of the ``test`` half (``bench_users.half_of``: split by person) with ≥ 3 usable photos is
   enrolled as a user from one random photo;
2. a second photo of them is the *reviewed sighting*: it is **borderline** when their own user is its top
   match with a similarity in [90, 99) — what the review queue offers a person (below 99 it is not named);
3. a reviewer confirms it with ``--enrol``: ``ReviewQueue._enrol`` adds that face to the user (here
   ``Gallery.index_vector`` + ``associate_faces``, exactly what confirm does);
4. every other photo of the person is a later probe: *named* when their own user is the top match at ≥ 99.

Reported for the borderline people: recall at 99 per person (mean over people of each one's share of probes
named) before and after the enrolment, the paired gain with a bootstrap 95% interval over people, and the
probes misnamed (someone else ≥ 99). False identifications are checked on photos of test-half people who are
in no gallery (fewer than 3 photos), before and after, with a Poisson 95% upper bound per search.

Data: the embeddings cache of ``bench_users.py`` (``/work/cache/lfw_calibration_sface.npz``, or its own).
LFW photos stand in for a track's best face; a video track's template is usually better than one frame.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_users import Embeddings, bootstrap, half_of, load_embeddings
from benchmarks.common import load_average, machine_info, require_data
from facetrace.calibration_fit import poisson_upper
from facetrace.engine import FaceEngine
from facetrace.gallery import Gallery
from facetrace.store import MemoryStore
from facetrace.types import BoundingBox

REVIEW, IDENTIFY = 90.0, 99.0
BOX = BoundingBox(0.1, 0.1, 0.8, 0.8)


def _quality(emb: Embeddings, row: int) -> float | None:
    return None if emb.quality is None or not np.isfinite(emb.quality[row]) else float(emb.quality[row])


def _top(gallery: Gallery, emb: Embeddings, row: int, threshold: float) -> tuple[str | None, float]:
    found = gallery.search_users_vector("c", emb.vectors[row], max_users=1, threshold=threshold,
                                        quality=_quality(emb, row))  # fmt: skip
    return (found[0].user.user_id, found[0].similarity) if found else (None, 0.0)


def _enrol(gallery: Gallery, emb: Embeddings, row: int, user: str) -> None:
    face = gallery.index_vector(
        "c", emb.vectors[row], bounding_box=BOX, confidence=99.0, quality=_quality(emb, row)
    )
    gallery.associate_faces("c", user, [face.face_id], threshold=0.0)


def one_draw(
    engine: FaceEngine, emb: Embeddings, people: dict[str, np.ndarray], strangers: list[int], draw: int
) -> dict[str, Any]:
    rng = np.random.default_rng(2000 + draw)
    gallery = Gallery(engine, MemoryStore())
    gallery.create_collection("c")
    order = {name: rng.permutation(rows) for name, rows in people.items()}
    users = {name: f"u{i}" for i, name in enumerate(sorted(people))}
    for name, rows in order.items():
        gallery.create_user("c", users[name])
        _enrol(gallery, emb, int(rows[0]), users[name])
    borderline = []
    for name, rows in order.items():
        top, similarity = _top(gallery, emb, int(rows[1]), 0.0)
        if top == users[name] and REVIEW <= similarity < IDENTIFY:
            borderline.append(name)

    def recall() -> tuple[dict[str, float], int, int]:
        per_person, probes, misnamed = {}, 0, 0
        for name in borderline:
            named = 0
            for row in order[name][2:]:
                top, _ = _top(gallery, emb, int(row), IDENTIFY)
                named += top == users[name]
                misnamed += top is not None and top != users[name]
                probes += 1
            per_person[name] = named / max(1, len(order[name]) - 2)
        return per_person, probes, misnamed

    def false_ids() -> int:
        return sum(_top(gallery, emb, row, IDENTIFY)[0] is not None for row in strangers)

    before, probes, misnamed_before = recall()
    false_before = false_ids()
    for name in borderline:
        _enrol(gallery, emb, int(order[name][1]), users[name])
    after, _, misnamed_after = recall()
    false_after = false_ids()
    return {
        "people": len(people), "borderline": borderline, "probes": probes,
        "before": before, "after": after, "misnamed_before": misnamed_before, "misnamed_after": misnamed_after,
        "false_before": false_before, "false_after": false_after, "strangers": len(strangers),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = require_data()
    print(machine_info())
    emb = load_embeddings(data, None)
    names = emb.person.tolist()
    test_rows: dict[str, list[int]] = {}
    for row, name in enumerate(names):
        if half_of(name) == "test":
            test_rows.setdefault(name, []).append(row)
    people = {n: np.array(r) for n, r in test_rows.items() if len(r) >= 3}
    strangers = [r for n, rows in test_rows.items() if len(rows) < 3 for r in rows]
    print(f"embeddings: {emb.source[:80]}; test half: {len(people)} people with >= 3 photos, "
          f"{len(strangers)} photos of {sum(len(r) < 3 for r in test_rows.values())} people in no gallery")  # fmt: skip
    engine = FaceEngine.create()
    began = time.perf_counter()
    draws = [one_draw(engine, emb, people, strangers, d) for d in range(args.draws)]
    # One value per person (averaged over the draws in which they were borderline): the bootstrap resamples
    # people, not person-draws, so a person borderline in several draws does not narrow the interval.
    per: dict[str, list[tuple[float, float]]] = {}
    for d in draws:
        for name in d["borderline"]:
            per.setdefault(name, []).append((d["before"][name], d["after"][name]))
    b = np.array([np.mean([x for x, _ in v]) for v in per.values()])
    a = np.array([np.mean([y for _, y in v]) for v in per.values()])
    g = a - b
    searches = sum(d["strangers"] for d in draws)
    false_before, false_after = sum(d["false_before"] for d in draws), sum(d["false_after"] for d in draws)
    summary = {
        "draws": args.draws,
        "people_per_draw": draws[0]["people"],
        "borderline_people": len(per),
        "borderline_person_draws": sum(len(v) for v in per.values()),
        "borderline_per_draw": [len(d["borderline"]) for d in draws],
        "probes": sum(d["probes"] for d in draws),
        "recall_before": float(b.mean()), "recall_before_ci": bootstrap(b),
        "recall_after": float(a.mean()), "recall_after_ci": bootstrap(a),
        "gain": float(g.mean()), "gain_ci": bootstrap(g),
        "misnamed_before": sum(d["misnamed_before"] for d in draws),
        "misnamed_after": sum(d["misnamed_after"] for d in draws),
        "stranger_searches": searches, "false_ids_before": false_before, "false_ids_after": false_after,
        "false_id_upper_after": poisson_upper(false_after) / max(1, searches),
        "seconds": round(time.perf_counter() - began, 1), "load": load_average(),
    }  # fmt: skip
    print(
        f"\nborderline (own user top, {REVIEW:g} <= similarity < {IDENTIFY:g}) per draw: "
        f"{summary['borderline_per_draw']} of {summary['people_per_draw']} people ({len(per)} different people); "
        f"{summary['probes']} later probes"
    )
    print(
        f"recall at {IDENTIFY:g} per person, before enrolling the reviewed face: {b.mean():.1%} "
        f"(95% CI {summary['recall_before_ci'][0]:.1%}-{summary['recall_before_ci'][1]:.1%})"
    )
    print(
        f"after confirm + enrol: {a.mean():.1%} ({summary['recall_after_ci'][0]:.1%}-{summary['recall_after_ci'][1]:.1%});"
        f" gain {g.mean():+.1%} ({summary['gain_ci'][0]:+.1%} to {summary['gain_ci'][1]:+.1%})"
    )
    print(
        f"misnamed probes before/after: {summary['misnamed_before']}/{summary['misnamed_after']}; "
        f"strangers named at {IDENTIFY:g}: {false_before}/{false_after} of {searches} searches "
        f"(after: < {summary['false_id_upper_after']:.1e} per search, 95%)"
    )
    print(f"{summary['seconds']} s, load average {load_average()}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
