"""Do sweeps and calibrations use the cores? The same sweep and the same calibration with 1 worker and with 2.

Each is timed as a user runs it: a whole `lsbm-sim` process from start to its last line (worker start, encoder
load, every run, writing the table), several times, alternating 1 and 2 workers so that drift on a shared
machine hits both alike; the figure is the ratio of medians.

    python benchmarks/bench_workers.py                    # 8 runs of 200k people; 16 calibration trials
    python benchmarks/bench_workers.py --repeats 1 --size 20000 --runs 4 --trials 4   # a quick look
    python benchmarks/bench_workers.py --only sweep --size 1000000                     # runs of a few seconds

The calibration fits the share intercept to per-post rates of one earlier run of the same scenario (written as
a generic impressions CSV), so it needs no real data.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_command, print_machine  # noqa: E402

SCENARIO = "influencer_vs_random"


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def impressions_csv(folder: Path, size: int) -> Path:
    """Per-post impressions and reactions of one run, as the generic impressions CSV."""
    import pandas as pd

    from lsbm_sim import run
    from lsbm_sim.catalog import find_scenario

    frames = []
    for seed in range(20):  # enough posts for a rate to fit: two per run
        items = run(find_scenario(SCENARIO), seed=100 + seed, overrides=[f"population.size={size}", "results.events=none"]).items
        frames.append(pd.DataFrame({"post_id": items["item_id"] + f"-{seed}", "impressions": items["impressions"],
                                    "likes": items["like"], "shares": items["share"], "comments": items["comment"]}))  # fmt: skip
    path = folder / "impressions.csv"
    pd.concat(frames).to_csv(path, index=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=8, help="sweep runs (replications)")
    parser.add_argument("--trials", type=int, default=16, help="calibration trials (1 run each)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["sweep", "calibrate"], help="time one of the two commands")
    args = parser.parse_args()
    print_machine()
    print_command()
    size = f"population.size={args.size}"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        real = impressions_csv(folder, args.size) if args.only != "sweep" else None
        commands = {
            "sweep": lambda w, i: ["lsbm-sim", "sweep", SCENARIO, "--replications", str(args.runs), "--workers", str(w),
                                   "--set", size, "--out", str(folder / f"sweep-{w}-{i}")],
            "calibrate": lambda w, i: ["lsbm-sim", "calibrate", SCENARIO, "--impressions", str(real),
                                       "--param", "behavior.coefficients.share.intercept=-9..-5",
                                       "--trials", str(args.trials), "--replications", "1", "--workers", str(w),
                                       "--set", size, "--out", str(folder / f"calibrate-{w}-{i}")],
        }  # fmt: skip
        for name, command in commands.items():
            if args.only not in (None, name):
                continue
            seconds: dict[int, list[float]] = {1: [], 2: []}
            for i in range(args.repeats):
                for workers in (1, 2) if i % 2 == 0 else (2, 1):
                    seconds[workers].append(timed(command(workers, i)))
            one, two = statistics.median(seconds[1]), statistics.median(seconds[2])
            what = f"{args.runs} runs" if name == "sweep" else f"{args.trials} trials"
            print(f"{name} ({what} of {args.size:,} people, {SCENARIO}): 1 worker {one:.1f} s, 2 workers {two:.1f} s "
                  f"(medians of {args.repeats}; {[round(s, 1) for s in seconds[1]]} / {[round(s, 1) for s in seconds[2]]}): "
                  f"speed-up {one / two:.2f}x", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
