"""The engine against NDlib on the same independent-cascade work.

Barabasi-Albert graphs (undirected, m=5), share probability p=0.05, 1% of the people as seeds. The engine runs
its independent-cascade special case (activity 1, feed `all`, reactions ignore/share); NDlib runs
IndependentCascadesModel with every edge's threshold set to p, on the very same graph (the engine's, handed to
networkx) from the very same seed nodes, iterated until no node is infected.

Timed, per run:
    engine setup   SocialModel(...): population, the BA graph generated (NDlib's setup does not include it),
                   Mesa agents, broker
    engine run     steps until no share is left unseen in any feed (the cascade is over)
    NDlib setup    networkx graph from the edge list, a Configuration with every edge's threshold, set_initial_status
    NDlib run      iterations until no node is infected

With `--edgelist` both start from the same graph written as a text edge list ("u v" per line): the engine's
setup then reads it (`network.kind: edgelist`) instead of generating it, and NDlib's setup reads it with
`nx.read_edgelist(path, nodetype=int)`, as a user of each would; "ratio with setup" is then end to end.

Each run is a fresh process (clean memory figures; NDlib runs can be stopped at a time limit).

    python benchmarks/bench_ndlib.py                                   # n = 100,000 and 1,000,000
    python benchmarks/bench_ndlib.py --sizes 20000 --repeats 3         # a quick look
    python benchmarks/bench_ndlib.py --sizes 1000000 --ndlib-repeats 1 --ndlib-timeout 3600
    python benchmarks/bench_ndlib.py --edgelist --sizes 100000 --repeats 5 --ndlib-repeats 5   # from a file
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import fmt_seconds, in_child, median, peak_rss_gb, print_command, print_machine

HERE = Path(__file__).resolve()


def ic_scenario(n: int, m: int, p: float, seed_fraction: float, steps: int, seed: int, edgelist: str | None = None):
    from lsbm_sim import Scenario

    seeds = max(1, round(seed_fraction * n))
    network = {"kind": "barabasi_albert", "params": {"m": m}}
    if edgelist:
        network = {"kind": "edgelist", "path": edgelist}
    return Scenario.from_dict(
        {
            "name": f"ic_ba_{n}",
            "seed": seed,
            "steps": steps,
            "population": {"size": n, "activity": 1.0},
            "network": network,
            "content": [{"id": "seed", "text": "x", "author": {"strategy": "random", "count": seeds}}],
            "feed": {"policy": "all", "size": None},
            "behavior": {"backend": "independent_cascade", "reactions": ["ignore", "share"], "p": p},
        }
    )


# ------------------------------------------------------------------------------------------------ workers


def engine_worker(args: argparse.Namespace) -> dict:
    import numpy as np

    from lsbm_sim import SocialModel
    from lsbm_sim.engine.model import SHARED

    started = time.perf_counter()
    model = SocialModel(ic_scenario(args.n, args.m, args.p, args.seed_fraction, args.steps, args.seed, args.edgelist))
    setup = time.perf_counter() - started
    # Step until the cascade is over (no share left unseen in any feed), as NDlib iterates until no node is
    # infected. The engine shows a person one share of a post per step, so a person whom many followed
    # accounts' shares reach takes several steps to see them all: more steps than NDlib's rounds, same closure.
    started = time.perf_counter()
    model.step()  # step 0: the seeds post
    while len(model.inbox) and model.running:
        model.step()
    run = time.perf_counter() - started
    if args.save_graph:
        # The graph (each undirected edge once) and the seeds, for NDlib to run on the same work.
        keep = model.network.source < model.network.target
        net = model.network
        np.savez(args.save_graph, u=net.source[keep], v=net.target[keep], seeds=model.posts[0].authors)
    return {
        "setup_s": setup,
        "run_s": run,
        "final_size": int(((model.status[0] & SHARED) != 0).sum()),
        "exposures": int(model.events.rows),
        "steps": int(model.steps_completed),
        "finished": len(model.inbox) == 0,
        "timings": {k: round(v, 3) for k, v in model.timings.items()},
        "peak_rss_gb": peak_rss_gb(),
    }


def ndlib_worker(args: argparse.Namespace) -> dict:
    import ndlib.models.epidemics as ep
    import ndlib.models.ModelConfig as mc
    import networkx as nx
    import numpy as np

    data = np.load(args.graph)
    started = time.perf_counter()
    if args.edgelist:
        graph = nx.read_edgelist(args.edgelist, nodetype=int)
    else:
        graph = nx.Graph()
        graph.add_nodes_from(range(args.n))
        graph.add_edges_from(zip(data["u"].tolist(), data["v"].tolist()))
    model = ep.IndependentCascadesModel(graph, seed=args.seed)
    config = mc.Configuration()
    config.add_model_initial_configuration("Infected", data["seeds"].tolist())
    for edge in graph.edges():
        config.add_edge_configuration("threshold", edge, args.p)  # every edge, or NDlib ignores them all
    model.set_initial_status(config)
    setup = time.perf_counter() - started
    started = time.perf_counter()
    result = model.iteration(node_status=False)
    iterations = 0
    while result["node_count"][1] > 0:
        result = model.iteration(node_status=False)
        iterations += 1
    run = time.perf_counter() - started
    return {"setup_s": setup, "run_s": run, "final_size": int(result["node_count"][2]), "iterations": iterations,
            "peak_rss_gb": peak_rss_gb()}  # fmt: skip


# -------------------------------------------------------------------------------------------------- driver


def measure(size: int, args: argparse.Namespace, folder: Path) -> dict:
    common = ["--n", str(size), "--m", str(args.m), "--p", str(args.p), "--seed-fraction", str(args.seed_fraction)]
    graph = folder / f"ba_{size}.npz"
    if args.edgelist:
        # One graph for every run of both sides, written as a text edge list: networkx's BA algorithm.
        from lsbm_sim.world.network import barabasi_albert_edges

        edges = folder / f"ba_{size}.txt"
        u, v = barabasi_albert_edges(size, args.m, seed=12345)
        edges.write_text("".join(f"{a} {b}\n" for a, b in zip(u.tolist(), v.tolist())))
        common += ["--edgelist", str(edges)]
    engine = []
    for r in range(args.repeats):
        extra = ["--save-graph", str(graph)] if r == 0 else []
        worker = ["--worker", "engine", *common, "--steps", str(args.steps), "--seed", str(r), *extra]
        engine.append(in_child(HERE, worker, None))
        print(f"  engine run {r}: {json.dumps(engine[-1])}", flush=True)
    ndlib = []
    for r in range(args.ndlib_repeats):
        got = in_child(HERE, ["--worker", "ndlib", *common, "--graph", str(graph), "--seed", str(r)], args.ndlib_timeout)
        if got is None:
            print(f"  NDlib run {r}: stopped after {args.ndlib_timeout:.0f} s", flush=True)
            ndlib.append({"timed_out": True})
            break
        ndlib.append(got)
        print(f"  NDlib run {r}: {json.dumps(got)}", flush=True)
    return {"engine": engine, "ndlib": ndlib}


def summary_row(size: int, got: dict) -> str:
    engine, ndlib = got["engine"], [r for r in got["ndlib"] if not r.get("timed_out")]
    e_setup, e_run = median([r["setup_s"] for r in engine]), median([r["run_s"] for r in engine])
    e_size = median([r["final_size"] for r in engine[:1]])  # run 0 is the one NDlib repeats
    if ndlib:
        n_setup, n_run = median([r["setup_s"] for r in ndlib]), median([r["run_s"] for r in ndlib])
        n_size = median([r["final_size"] for r in ndlib])
        ratio_run, ratio_all = n_run / e_run, (n_setup + n_run) / (e_setup + e_run)
        nd = f"{fmt_seconds(n_setup)} | {fmt_seconds(n_run)} | {n_size:,.0f} | {ratio_run:,.0f}x | {ratio_all:,.1f}x"
    else:
        nd = "timed out | - | - | - | -"
    return (f"| {size:,} | {fmt_seconds(e_setup)} | {fmt_seconds(e_run)} | {e_size:,.0f} | "
            f"{max(r['peak_rss_gb'] for r in engine):.2f} | {nd} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--m", type=int, default=5)
    parser.add_argument("--p", type=float, default=0.05)
    parser.add_argument("--seed-fraction", type=float, default=0.01)
    parser.add_argument("--steps", type=int, default=2000, help="most engine steps (it stops when the cascade ends)")
    parser.add_argument("--repeats", type=int, default=3, help="engine runs per size (medians reported)")
    parser.add_argument("--ndlib-repeats", type=int, default=3, help="NDlib runs per size (at most)")
    parser.add_argument("--ndlib-timeout", type=float, default=1800, help="seconds before an NDlib run is stopped")
    parser.add_argument("--edgelist", nargs="?", const="generate", default=None,
                        help="both sides read the graph from a text edge list (setup includes reading it)")  # fmt: skip
    # worker mode (the driver runs itself in child processes)
    parser.add_argument("--worker", choices=["engine", "ndlib"])
    parser.add_argument("--n", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--graph")
    parser.add_argument("--save-graph")
    args = parser.parse_args()

    if args.worker:
        result = engine_worker(args) if args.worker == "engine" else ndlib_worker(args)
        print(json.dumps(result))
        return

    print_machine()
    print_command()
    source = ", read from a text edge list by both" if args.edgelist else ""
    print(f"# independent cascade on Barabasi-Albert(n, m={args.m}){source}, p={args.p}, {args.seed_fraction:.0%} seeds")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            print(f"n = {size:,}", flush=True)
            rows.append(summary_row(size, measure(size, args, Path(folder))))
    print()
    print("| n | engine setup s | engine run s | engine final size | engine peak GB | NDlib setup s | NDlib run s "
          "| NDlib final size | run ratio (setup excluded) | ratio with setup |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("(medians; final sizes: the engine's run 0 and NDlib's runs share graph and seeds, not random draws)")


if __name__ == "__main__":
    main()
