"""Peak memory of decoding image bombs at once, with and without the decode budget (issue 9, item 8).

A 39.7 MP PNG compresses to a few hundred KB; decoding it costs about 0.8 GB. Each configuration runs in a
fresh process (so ``ru_maxrss`` is its own peak): ``--clients`` threads each decode the bomb once, with the
process-wide decode budget unlimited or set (``facetrace serve`` sets 1536 MiB by default). Prints the peak
RSS per configuration (median of ``--repeat`` runs), the wall time, how many decodes were throttled, and the
machine and its load.

    .venv/bin/python -m benchmarks.bench_decode_budget --clients 4 --repeat 3
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import load_average, machine_info

SIDE = 6300  # 6300 x 6300 = 39.7 MP


def make_bomb(path: Path) -> int:
    import numpy as np
    from PIL import Image as PILImage

    pixels = np.full((SIDE, SIDE, 3), 200, dtype=np.uint8)
    pixels[::97, :, :] = 40  # a few lines, so it is not one colour
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="PNG", optimize=True)
    path.write_bytes(buffer.getvalue())
    return len(buffer.getvalue())


def child(bomb: Path, clients: int, budget_mb: int | None) -> None:
    import resource
    import threading
    import time

    from facetrace.budget import configure_decode_budget
    from facetrace.errors import FacetraceError
    from facetrace.imaging import ImageLimits, load_image

    configure_decode_budget(None if budget_mb is None else budget_mb * 2**20, wait=120)
    data = bomb.read_bytes()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcomes: list[str] = []

    def decode() -> None:
        try:
            image = load_image(data, ImageLimits(max_bytes=20 * 2**20))
            outcomes.append("ok" if image.width == SIDE else "wrong")
            del image
        except FacetraceError as exc:
            outcomes.append(type(exc).__name__)

    started = time.perf_counter()
    threads = [threading.Thread(target=decode) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"base_mb": base / 1024, "peak_mb": peak / 1024, "seconds": time.perf_counter() - started,
                      "outcomes": outcomes}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--budgets", default="none,1536,800", help="comma list of MiB, 'none' for unlimited")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        bomb, clients, budget = args.child
        child(Path(bomb), int(clients), None if budget == "none" else int(budget))
        return
    print(machine_info())
    print(f"load before: {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        bomb = Path(tmp) / "bomb.png"
        size = make_bomb(bomb)
        print(
            f"bomb: {SIDE}x{SIDE} = {SIDE * SIDE / 1e6:.1f} MP PNG, {size / 1024:.0f} KB; {args.clients} at once"
        )
        for budget in args.budgets.split(","):
            runs = []
            for _ in range(args.repeat):
                out = subprocess.run(
                    [sys.executable, "-m", "benchmarks.bench_decode_budget", "--child", str(bomb),
                     str(args.clients), budget],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            peak = statistics.median(r["peak_mb"] for r in runs)
            base = statistics.median(r["base_mb"] for r in runs)
            wall = statistics.median(r["seconds"] for r in runs)
            outcomes = runs[0]["outcomes"]
            label = "unlimited" if budget == "none" else f"{budget} MiB"
            print(
                f"budget {label:>10}: peak RSS {peak:7.0f} MB (median of {len(runs)}; {base:.0f} MB before decoding),"
                f" {wall:5.1f} s, outcomes {sorted(outcomes)}"
            )
    print(f"load after: {load_average()}")


if __name__ == "__main__":
    main()
