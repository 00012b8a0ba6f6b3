"""A full scenario with the default behavior model (the surrogate: MiniLM embeddings + logistic head) at growing
population sizes: wall time, decisions per second, peak memory, and how the cost of a step grows.

Each size runs in a fresh process (its own peak memory, a cold start as a user would have):
    import     importing lsbm_sim (and, through the first model, torch and sentence-transformers)
    setup      SocialModel(...): population, network, Mesa agents, persona and post texts embedded (a fixed
               cost: the personas are archetypes, ~1,500 texts whatever the population); with the embedding
               cache warm the vectors are read from disk and the encoder is never loaded
    steps      model.run(): the scenario's steps
    results    model.result(): the event log as a table, per-post cascade metrics, per-agent table
    peak GB    the process's peak resident memory (ru_maxrss)

    python benchmarks/bench_scale.py                              # 10k, 100k, 1M agents x 100 steps
    python benchmarks/bench_scale.py --sizes 10000 20000 --steps 20   # a quick look
    python benchmarks/bench_scale.py --scenario scenarios/misinformation_correction.yaml
    python benchmarks/bench_scale.py --sizes 1000000 --repeats 3 --embedding-cache cold warm

--embedding-cache: `cold` empties the cache before each run (the encoder is loaded and every text embedded),
`warm` fills it with one untimed run first, `off` runs with LSBM_EMBEDDING_CACHE=off. The cache lives in
.cache/bench-embeddings inside the project.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from common import ROOT, fmt_seconds, in_child, median, peak_rss_gb, print_command, print_machine

HERE = Path(__file__).resolve()


def worker(args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    from lsbm_sim import SocialModel

    imported = time.perf_counter()
    torch_before = "torch" in sys.modules
    cpu_before = time.process_time()
    model = SocialModel(args.scenario, overrides=[f"population.size={args.n}", f"steps={args.steps}"])
    built = time.perf_counter()
    # CPU seconds of this process (all its threads): less at the mercy of other jobs on a shared machine
    setup_cpu = time.process_time() - cpu_before
    model.run()
    ran = time.perf_counter()
    result = model.result()
    finished = time.perf_counter()
    broker = model.broker.stats
    phases = {k.removesuffix("_seconds"): round(v, 3) for k, v in model.timings.items() if k != "setup_seconds"}
    return {
        "n": args.n,
        "steps": args.steps,
        "import_s": imported - started,
        "setup_s": built - imported,
        "setup_cpu_s": setup_cpu,
        "steps_s": ran - built,
        "results_s": finished - ran,
        "total_s": finished - started,
        "decisions": int(broker.decisions),
        "distinct_questions": int(broker.unique_queries),
        "model_rows": int(broker.model_rows),
        "model_s": round(broker.model_seconds, 3),
        "personas": len(model.population.personas),
        "follow_edges": int(model.network.num_edges),
        "shares": int(result.items["share"].sum()),
        "phases": phases,
        "peak_rss_gb": peak_rss_gb(),
        "encoder_loaded": not torch_before and "torch" in sys.modules,
    }


def middle(values: list) -> object:
    """The median of numbers (an int stays an int); anything else as in the first run."""
    if isinstance(values[0], bool) or not isinstance(values[0], (int, float)):
        return values[0]
    return type(values[0])(median(values)) if isinstance(values[0], int) else median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "eco_product_launch.yaml"))
    parser.add_argument("--repeats", type=int, default=1, help="runs per size (medians reported)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds before a size's run is stopped")
    parser.add_argument("--embedding-cache", nargs="+", choices=["cold", "warm", "off"], default=["warm"],
                        help="state of the sentence-embedding cache for the runs (each given state in turn)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(worker(args)))
        return

    print_machine()
    print_command()
    print(f"# scenario {Path(args.scenario).name}, {args.steps} steps, default behavior model (surrogate)")
    cache_root = ROOT / ".cache" / "bench-embeddings"
    os.environ["LSBM_CACHE"] = str(cache_root)
    child = ["--steps", str(args.steps), "--scenario", args.scenario]
    runs = []
    for state in args.embedding_cache:
        os.environ.pop("LSBM_EMBEDDING_CACHE", None)
        if state == "off":
            os.environ["LSBM_EMBEDDING_CACHE"] = "off"
        for n in args.sizes:
            if state == "warm":  # one untimed run of this size fills the cache with its texts
                in_child(HERE, ["--worker", "--n", str(n), *child], args.timeout)
            repeats = []
            for _ in range(args.repeats):
                if state == "cold":
                    shutil.rmtree(cache_root, ignore_errors=True)
                got = in_child(HERE, ["--worker", "--n", str(n), *child], args.timeout)
                if got is None:
                    print(f"n = {n:,}: stopped after {args.timeout:.0f} s", flush=True)
                    break
                got["cache"] = state
                print(f"n = {n:,}: {json.dumps(got)}", flush=True)
                repeats.append(got)
            if repeats:  # the median of each figure (the machine is shared: single runs are noisy)
                runs.append({k: middle([r[k] for r in repeats]) for k in repeats[0]} | {"repeats": len(repeats)})

    print()
    print("| embedding cache | agents | runs | encoder loaded | total s | import s | setup s | setup CPU s | steps s "
          "| results s | decisions | decisions/s (steps) | distinct questions | peak GB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        loaded = "yes" if r["encoder_loaded"] else "no"
        print(f"| {r['cache']} | {r['n']:,} | {r['repeats']} | {loaded} | {fmt_seconds(r['total_s'])} "
              f"| {fmt_seconds(r['import_s'])} | {fmt_seconds(r['setup_s'])} | {fmt_seconds(r['setup_cpu_s'])} "
              f"| {fmt_seconds(r['steps_s'])} | {fmt_seconds(r['results_s'])} | {r['decisions']:,} "
              f"| {r['decisions'] / r['steps_s']:,.0f} | {r['distinct_questions']:,} | {r['peak_rss_gb']:.2f} |")  # fmt: skip

    # How cost grows: time per step against exposures (decisions) per step, each relative to the smallest size.
    if len({r["n"] for r in runs}) > 1:
        base = runs[0]
        print()
        print("| agents | ms per step | decisions per step | step time growth | decision growth | us per decision |")
        print("|---|---|---|---|---|---|")
        for r in runs:
            per_step = r["steps_s"] / r["steps"]
            decisions = r["decisions"] / r["steps"]
            print(f"| {r['n']:,} | {1000 * per_step:.1f} | {decisions:,.0f} "
                  f"| {per_step / (base['steps_s'] / base['steps']):.1f}x | {r['decisions'] / base['decisions']:.1f}x "
                  f"| {1e6 * r['steps_s'] / max(r['decisions'], 1):.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
