"""Memory of many runs one after another in one process, as a sweep worker or `calibrate --workers 1` makes
them: the resident memory after each run (a finished run's model must be freed, so it stays flat).

    python benchmarks/bench_runs_in_one_process.py                       # 8 runs of twitter_cascades at 30,000 people
    python benchmarks/bench_runs_in_one_process.py --runs 4 --people 10000
"""

from __future__ import annotations

import argparse
import gc

from common import ROOT, print_command, print_machine, resident_gb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--people", type=int, default=30_000)
    args = parser.parse_args()
    print_machine()
    print_command()
    from lsbm_sim import run

    # 600 posts (4 batches of 150) keep each run a few seconds.
    overrides = [f"population.size={args.people}", *(f"content.{k}.posts=150" for k in range(4))]
    sizes = []
    for i in range(args.runs):
        result = run(ROOT / "scenarios" / "twitter_cascades.yaml", seed=7 + i, overrides=overrides)
        del result
        gc.collect()
        sizes.append(resident_gb())
        print(f"after run {i + 1}: {sizes[-1]:.2f} GB resident", flush=True)
    print(f"growth from run 2 to run {args.runs}: {sizes[-1] - sizes[1]:+.2f} GB")


if __name__ == "__main__":
    main()
