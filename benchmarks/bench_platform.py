"""A living platform at growing populations: people posting, an interest recommender filling 30% of each feed,
the default behavior model (surrogate). Wall time, peak memory, posts, exposures and the pair table's size.

Each size runs in a fresh process (scenarios/platform_day.yaml with the issue's settings: 100 steps, posting
rate 0.001, feed size 10, out-of-network 0.3; the event log keeps the engaged exposures, streamed to a file):

    python benchmarks/bench_platform.py                          # 10k, 100k, 1M people
    python benchmarks/bench_platform.py --sizes 10000 --steps 20 # a quick look
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import ROOT, fmt_seconds, in_child, peak_rss_gb, print_command, print_machine

HERE = Path(__file__).resolve()
SETTINGS = ["posting.rate=0.001", "feed.size=10", "feed.out_of_network=0.3", "feed.recommender=interest"]


def worker(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    from lsbm_sim import SocialModel

    with tempfile.TemporaryDirectory() as folder:
        model = SocialModel(ROOT / "scenarios" / "platform_day.yaml",
                            overrides=[f"population.size={args.n}", f"steps={args.steps}", *SETTINGS],
                            events_path=Path(folder) / "events.parquet")  # fmt: skip
        built = time.perf_counter()
        model.run()
        ran = time.perf_counter()
        result = model.result()
        finished = time.perf_counter()
    return {
        "n": args.n,
        "steps": args.steps,
        "setup_s": built - started,
        "steps_s": ran - built,
        "results_s": finished - ran,
        "total_s": finished - started,
        "posts": len(model.item_ids),
        "retired": int(model.retired.sum()),
        "exposures": int(model.events.exposures),
        "event_rows": int(model.events.rows),
        "pairs": len(model.state),
        "pair_table_gb": model.state.nbytes / 2**30,
        "shares": int(result.items["share"].sum()),
        "phases": {k.removesuffix("_seconds"): round(v, 2) for k, v in model.timings.items()},
        "peak_rss_gb": peak_rss_gb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    print_machine()
    print_command()
    print(f"# platform_day.yaml, {args.steps} steps, {' '.join(SETTINGS)}")
    rows = []
    for n in args.sizes:
        got = in_child(HERE, ["--worker", "--n", str(n), "--steps", str(args.steps)], args.timeout)
        if got is None:
            print(f"n = {n:,}: stopped after {args.timeout:.0f} s", flush=True)
            continue
        print(f"n = {n:,}: {json.dumps(got)}", flush=True)
        rows.append(got)
    print()
    print("| people | total s | setup s | steps s | posts | exposures | pairs kept | pair table GB | peak GB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['n']:,} | {fmt_seconds(r['total_s'])} | {fmt_seconds(r['setup_s'])} | {fmt_seconds(r['steps_s'])} "
              f"| {r['posts']:,} | {r['exposures']:,} | {r['pairs']:,} | {r['pair_table_gb']:.2f} "
              f"| {r['peak_rss_gb']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
