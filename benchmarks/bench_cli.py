"""Whole `lsbm-sim` processes as a user starts them, timed from outside (hyperfine-style: several runs, medians).

    python benchmarks/bench_cli.py                        # --help, validate, and the IC race at 100,000 nodes
    python benchmarks/bench_cli.py --sizes 100000 1000000 --ndlib-runs 1

1. `lsbm-sim --help` and `lsbm-sim validate` of a small scenario: the command line's start (imports).
2. The independent cascade end to end from a text edge list, against NDlib doing the same work as a user of it
   would: one process each that reads the edge list, runs the cascade from the same seed nodes until it is over,
   and writes what it found (lsbm-sim its results folder; NDlib a CSV of the final status of every node). The
   graph is networkx's Barabasi-Albert (m=5) written once as "u v" lines; p = 0.05; 1% of the nodes are seeds.
   lsbm-sim's scenario names the seed nodes by id, so both start from the same nodes.

Every command runs `--runs` times (NDlib `--ndlib-runs`), alternating sides, and the medians are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, print_command, print_machine

NDLIB_SCRIPT = '''
import csv, sys
import networkx as nx
import ndlib.models.ModelConfig as mc
import ndlib.models.epidemics as ep
edges, seeds, p, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
graph = nx.read_edgelist(edges, nodetype=int)
model = ep.IndependentCascadesModel(graph, seed=1)
config = mc.Configuration()
config.add_model_initial_configuration("Infected", [int(s) for s in open(seeds).read().split()])
for edge in graph.edges():
    config.add_edge_configuration("threshold", edge, p)
model.set_initial_status(config)
result = model.iteration()
while result["node_count"][1] > 0:
    result = model.iteration()
with open(out, "w", newline="") as f:
    csv.writer(f).writerows([("node", "status"), *sorted(model.status.items())])
'''


def timed(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def medians(commands: dict[str, list[str]], runs: dict[str, int], cwd: Path) -> dict[str, float]:
    """Each command `runs[name]` times, taking turns so that a noisy minute falls on both sides."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_ in range(max(runs.values())):
        for name, command in commands.items():
            if round_ < runs[name]:
                times[name].append(timed(command, cwd))
    for name, values in times.items():
        print(f"  {name}: " + ", ".join(f"{v:.2f}" for v in values) + f" s -> median {statistics.median(values):.2f} s",
              flush=True)  # fmt: skip
    return {name: statistics.median(values) for name, values in times.items()}


def write_ic_inputs(n: int, folder: Path, p: float, seed_fraction: float, cli: str) -> tuple[Path, Path, Path]:
    """The edge list, lsbm-sim's scenario and NDlib's seed nodes. A first (untimed) run of the scenario picks the
    seeds (1% of the nodes, at random) and finds the step its cascade ends; the timed runs stop there, as NDlib
    stops iterating when no node is infected."""
    import numpy as np
    import yaml

    from lsbm_sim import load_results
    from lsbm_sim.world.network import barabasi_albert_edges

    u, v = barabasi_albert_edges(n, 5, seed=1)
    edges = folder / f"ba_{n}.txt"
    np.savetxt(edges, np.column_stack([u, v]), fmt="%d", delimiter=" ")
    spec = {
        "name": f"ic_{n}", "seed": 1, "steps": 500,
        "population": {"activity": 1.0},
        "network": {"kind": "edgelist", "path": edges.name},
        "content": [{"id": "seed", "text": "x", "author": {"strategy": "random", "count": max(1, round(seed_fraction * n))}}],
        "feed": {"policy": "all", "size": None},
        "behavior": {"backend": "independent_cascade", "reactions": ["ignore", "share"], "p": p},
    }  # fmt: skip
    scenario = folder / f"ic_{n}.yaml"
    scenario.write_text(yaml.safe_dump(spec))
    subprocess.run([cli, "run", str(scenario), "--out", str(folder / "first"), "--overwrite", "-q"], check=True,
                   capture_output=True)  # fmt: skip
    first = load_results(folder / "first")
    spec["steps"] = int(first.events["step"].max()) + 1
    scenario.write_text(yaml.safe_dump(spec))
    seeds = folder / f"seeds_{n}.txt"
    seeds.write_text(" ".join(str(a) for a in sorted(first.cascades["author"].astype(int).tolist())))
    return edges, seeds, scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--ndlib-runs", type=int, default=3)
    parser.add_argument("--p", type=float, default=0.05)
    parser.add_argument("--seed-fraction", type=float, default=0.01)
    args = parser.parse_args()
    print_command()
    print_machine()
    cli = str(Path(sys.executable).with_name("lsbm-sim"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print("the command line's start:")
        start = medians({"lsbm-sim --help": [cli, "--help"],
                         "lsbm-sim validate eco_product_launch (1,000 people)":
                             [cli, "validate", "eco_product_launch", "--set", "population.size=1000"]},
                        {"lsbm-sim --help": args.runs, "lsbm-sim validate eco_product_launch (1,000 people)": args.runs},
                        ROOT)  # fmt: skip
        report = {"start": start, "ic": {}}
        script = folder / "ndlib_ic.py"
        script.write_text(NDLIB_SCRIPT)
        for n in args.sizes:
            edges, seeds, scenario = write_ic_inputs(n, folder, args.p, args.seed_fraction, cli)
            print(f"independent cascade from an edge list, {n:,} nodes (BA m=5, p={args.p}, {seeds.read_text().count(' ') + 1:,} seeds):")
            commands = {
                "lsbm-sim run": [cli, "run", str(scenario), "--out", str(folder / f"run_{n}"), "--overwrite", "-q"],
                "NDlib": [sys.executable, str(script), str(edges), str(seeds), str(args.p), str(folder / f"ndlib_{n}.csv")],
            }  # fmt: skip
            got = medians(commands, {"lsbm-sim run": args.runs, "NDlib": args.ndlib_runs}, folder)
            ratio = got["NDlib"] / got["lsbm-sim run"]
            print(f"  lsbm-sim is {ratio:.1f}x faster end to end", flush=True)
            report["ic"][n] = {**got, "ratio": ratio}
        print(json.dumps(report))


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    main()
