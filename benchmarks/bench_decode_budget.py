"""Peak memory of decoding image bombs at once, with and without the decode budget (issue 9, item 8).

A 39.7 MP PNG compresses to a few hundred KB; decoding it costs about 0.8 GB. Each configuration runs in a
fresh process (so ``ru_maxrss`` is its own peak): ``--clients`` threads each decode the bomb once, with the
process-wide decode budget unlimited or set (``facetrace serve`` sets 1536 MiB by default), at full size or
reduced the way the engine first decodes (``load_image(reduce_to=640)``: a JPEG by DCT scaling, a PNG
shrunk in Pillow's own mode before any RGB/BGR copy; the engine decodes at full size only when it finds a
face too small there, see ``FaceEngine.locate``). Prints the peak RSS per configuration (median of
``--repeat`` runs), the wall time, how many decodes were throttled, and the machine and its load.

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


def make_bomb(path: Path, fmt: str = "PNG") -> int:
    import numpy as np
    from PIL import Image as PILImage

    pixels = np.full((SIDE, SIDE, 3), 200, dtype=np.uint8)
    pixels[::97, :, :] = 40  # a few lines, so it is not one colour
    buffer = io.BytesIO()
    options = {"optimize": True} if fmt == "PNG" else {"quality": 50}
    PILImage.fromarray(pixels).save(buffer, format=fmt, **options)
    path.write_bytes(buffer.getvalue())
    return len(buffer.getvalue())


def child(bomb: Path, clients: int, budget_mb: int | None, reduce_to: int | None = None) -> None:
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
            image = load_image(data, ImageLimits(max_bytes=20 * 2**20), reduce_to=reduce_to)
            outcomes.append("ok" if image.original_width == SIDE else "wrong")
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
    parser.add_argument("--formats", default="PNG,JPEG", help="comma list of bomb formats")
    parser.add_argument("--reduce", default="none,640", help="comma list: 'none' (full size) or reduce_to pixels")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        bomb, clients, budget, reduce = args.child
        child(
            Path(bomb),
            int(clients),
            None if budget == "none" else int(budget),
            None if reduce == "none" else int(reduce),
        )
        return
    print(machine_info())
    print(f"load before: {load_average()}")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in args.formats.split(","):
            bomb = Path(tmp) / f"bomb.{fmt.lower()}"
            size = make_bomb(bomb, fmt)
            print(
                f"\nbomb: {SIDE}x{SIDE} = {SIDE * SIDE / 1e6:.1f} MP {fmt}, {size / 1024:.0f} KB; {args.clients} at once"
            )
            for reduce in args.reduce.split(","):
                for budget in args.budgets.split(","):
                    runs = []
                    for _ in range(args.repeat):
                        out = subprocess.run(
                            [sys.executable, "-m", "benchmarks.bench_decode_budget", "--child", str(bomb),
                             str(args.clients), budget, reduce],
                            capture_output=True, text=True, check=True,
                        )  # fmt: skip
                        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
                    peak = statistics.median(r["peak_mb"] for r in runs)
                    base = statistics.median(r["base_mb"] for r in runs)
                    wall = statistics.median(r["seconds"] for r in runs)
                    outcomes = runs[0]["outcomes"]
                    label = "unlimited" if budget == "none" else f"{budget} MiB"
                    decode = "full size" if reduce == "none" else f"reduce_to={reduce}"
                    print(
                        f"{decode:>14}, budget {label:>10}: peak RSS {peak:7.0f} MB (median of {len(runs)}; "
                        f"{base:.0f} MB before decoding), {wall:5.1f} s, outcomes {sorted(outcomes)}",
                        flush=True,
                    )
    print(f"load after: {load_average()}")


if __name__ == "__main__":
    main()
