"""World builders at scale: the follower graph generator and the edge-list reader.

    python benchmarks/bench_worlds.py                                  # 1M-node follower graph; 1M and 10M edges
    python benchmarks/bench_worlds.py --nodes 100000 --edges 1000000   # a quick look

Follower graph: `network.kind: follower` (exponent 2.3, mean degree 10), built on n nodes straight into the
CSR arrays the engine uses. Edge lists: a follower graph with the given number of edges written as a text edge
list (tab-separated integer ids, and the same with string labels "u<id>"), read by `read_edgelist` (pyarrow's C
reader) and, up to `--line-reader-max` edges, by the line-by-line Python reader it falls back on (the reader
every file went through before). Each measurement is a fresh process (its own peak memory); medians of
`--repeats`. CPU s is the process's user + system time (all its threads): on a machine shared with other jobs
it moves far less than the wall-clock time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import fmt_seconds, in_child, median, peak_rss_gb, print_command, print_machine

HERE = Path(__file__).resolve()


def follower_worker(args: argparse.Namespace) -> dict:
    import numpy as np

    from lsbm_sim.world.network import generate_network
    from lsbm_sim.scenario import NetworkSpec

    spec = NetworkSpec(kind="follower", params={"exponent": 2.3, "mean_degree": 10})
    started, cpu = time.perf_counter(), time.process_time()
    net = generate_network(spec, args.n, np.random.default_rng(args.seed), None)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu, "edges": net.num_edges, "max_followers": int(net.out_degree.max()),
            "peak_rss_gb": peak_rss_gb()}  # fmt: skip


def write_worker(args: argparse.Namespace) -> dict:
    """Write the edge list files (integer ids, string labels) of a follower graph with `args.edges` edges."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pa_csv

    from lsbm_sim.world.network import follower_edges, power_law_weights

    n = max(args.edges // 10, 10)
    rng = np.random.default_rng(args.seed)
    u, v = follower_edges(power_law_weights(n, 2.3, args.edges / n, rng), None, args.edges, rng)
    order = rng.permutation(len(u))  # a file in no particular order, as exports usually are
    u, v = pa.array(u[order]), pa.array(v[order])
    options = pa_csv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    pa_csv.write_csv(pa.table({"u": u, "v": v}), args.out + ".tsv", write_options=options)
    named = {"u": pc.binary_join_element_wise("u", pc.cast(u, pa.string()), ""),
             "v": pc.binary_join_element_wise("u", pc.cast(v, pa.string()), "")}  # fmt: skip
    pa_csv.write_csv(pa.table(named), args.out + ".named.tsv", write_options=options)
    return {"edges": len(u), "bytes": Path(args.out + ".tsv").stat().st_size}


def read_worker(args: argparse.Namespace) -> dict:
    import lsbm_sim.world.graph_files as graph_files

    if args.line_reader:
        graph_files._parse_fast = lambda data, layout: None  # force the line-by-line reader
    started, cpu = time.perf_counter(), time.process_time()
    net = graph_files.read_edgelist(Path(args.path), directed=True)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu, "nodes": net.n, "edges": net.num_edges, "peak_rss_gb": peak_rss_gb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1_000_000], help="follower graph sizes")
    parser.add_argument("--edges", type=int, nargs="+", default=[1_000_000, 10_000_000], help="edge list sizes")
    parser.add_argument("--line-reader-max", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", choices=["follower", "write", "read"])
    parser.add_argument("--n", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out")
    parser.add_argument("--path")
    parser.add_argument("--line-reader", action="store_true")
    args = parser.parse_args()

    if args.worker:
        worker = {"follower": follower_worker, "write": write_worker, "read": read_worker}[args.worker]
        args.edges = args.edges[0] if isinstance(args.edges, list) else args.edges
        print(json.dumps(worker(args)))
        return

    print_machine()
    print_command()
    print("\n| follower graph nodes | edges | build s (median) | CPU s | largest follower count | peak GB |")
    print("|---|---|---|---|---|---|")
    for n in args.nodes:
        runs = [in_child(HERE, ["--worker", "follower", "--n", str(n), "--seed", str(r)], None) for r in range(args.repeats)]
        print(f"| {n:,} | {runs[0]['edges']:,} | {fmt_seconds(median([r['seconds'] for r in runs]))} | "
              f"{fmt_seconds(median([r['cpu_seconds'] for r in runs]))} | {runs[0]['max_followers']:,} | {max(r['peak_rss_gb'] for r in runs):.2f} |", flush=True)  # fmt: skip

    print("\n| edge list | file MB | nodes | pyarrow reader s (median) | CPU s | peak GB | line reader s | CPU s | peak GB |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for edges in args.edges:
            stem = str(Path(folder) / f"edges_{edges}")
            written = in_child(HERE, ["--worker", "write", "--edges", str(edges), "--out", stem], None)
            for suffix, kind in ((".tsv", "integer ids"), (".named.tsv", "string labels")):
                path = stem + suffix
                fast = [in_child(HERE, ["--worker", "read", "--path", path], None) for _ in range(args.repeats)]
                slow_cells = "- | - | -"
                if edges <= args.line_reader_max:
                    slow = [in_child(HERE, ["--worker", "read", "--path", path, "--line-reader"], None)
                            for _ in range(args.repeats)]  # fmt: skip
                    slow_cells = (f"{fmt_seconds(median([r['seconds'] for r in slow]))} | "
                                  f"{fmt_seconds(median([r['cpu_seconds'] for r in slow]))} | "
                                  f"{max(r['peak_rss_gb'] for r in slow):.2f}")  # fmt: skip
                print(f"| {written['edges']:,} edges, {kind} | {Path(path).stat().st_size / 2**20:,.0f} | "
                      f"{fast[0]['nodes']:,} | {fmt_seconds(median([r['seconds'] for r in fast]))} | "
                      f"{fmt_seconds(median([r['cpu_seconds'] for r in fast]))} | "
                      f"{max(r['peak_rss_gb'] for r in fast):.2f} | {slow_cells} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
