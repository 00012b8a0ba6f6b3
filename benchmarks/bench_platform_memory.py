"""Where the living platform's memory goes, step by step: resident memory and the size of each growing part
(the pair table, the pending feed entries, the share cascades), one line a step, flushed as it goes so that a
long run can be followed (and a run stopped early still leaves its figures).

    python benchmarks/bench_platform_memory.py --n 1000000 --steps 96          # platform_day as shipped
    python benchmarks/bench_platform_memory.py --n 10000000 --steps 96 > platform_10m.log

Run it under `/usr/bin/time -v` for the peak the kernel saw; the last line prints this process's peak too.
`--tracemalloc 15` also prints the 15 source lines holding the most memory after the last step (Python's
allocation tracer: several times slower, so for small populations).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from common import ROOT, peak_rss_gb, print_command, print_machine, resident_gb


def nbytes(*arrays) -> int:
    return sum(a.nbytes for a in arrays)


def parts(model) -> dict:
    inbox = model.inbox
    return {
        "pairs": len(model.state),
        "pair_slots": len(model.state.keys),
        "pair_table_gb": model.state.nbytes / 2**30,
        "pending": len(inbox),
        "inbox_gb": nbytes(inbox.agent, inbox.item, inbox.sharer, inbox.created, inbox.sequence) / 2**30,
        "cascade_gb": sum(nbytes(*c) for c in model._cascade) / 2**30,
        "posts": len(model.item_ids),
        "event_rows": int(model.events.rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--steps", type=int, default=96)
    parser.add_argument("--set", action="append", default=[], help="more scenario overrides (KEY=VALUE)")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="K", help="print the K largest holders at the end")
    args = parser.parse_args()
    if args.tracemalloc:
        import tracemalloc

        tracemalloc.start()
    print_machine()
    print_command()
    started = time.perf_counter()
    from lsbm_sim import SocialModel

    with tempfile.TemporaryDirectory() as folder:
        model = SocialModel(ROOT / "scenarios" / "platform_day.yaml",
                            overrides=[f"population.size={args.n}", f"steps={args.steps}", *args.set],
                            events_path=Path(folder) / "events.parquet")  # fmt: skip
        network = model.network
        graph_gb = sum(getattr(a, "nbytes", 0) for a in vars(network).values()) / 2**30
        print(json.dumps({"step": "setup", "s": round(time.perf_counter() - started, 1), "rss_gb": round(resident_gb(), 2),
                          "peak_gb": round(peak_rss_gb(), 2), "network_arrays_gb": round(graph_gb, 3)}), flush=True)  # fmt: skip
        while model.running and model.steps < args.steps:
            model.step()
            row = {"step": model.steps_completed, "s": round(time.perf_counter() - started, 1),
                   "rss_gb": round(resident_gb(), 2), "peak_gb": round(peak_rss_gb(), 2)}  # fmt: skip
            row.update({k: (round(v, 3) if isinstance(v, float) else v) for k, v in parts(model).items()})
            print(json.dumps(row), flush=True)
        if args.tracemalloc:
            snapshot = tracemalloc.take_snapshot()
            for stat in snapshot.statistics("lineno")[: args.tracemalloc]:
                print(f"# {stat.size / 2**20:9.1f} MB {stat.count:>10,} blocks  {stat.traceback[0]}")
        model.result()
    print(json.dumps({"step": "done", "s": round(time.perf_counter() - started, 1), "peak_gb": round(peak_rss_gb(), 2),
                      "exposures": int(model.events.exposures), "timings": {k: round(v, 1) for k, v in model.timings.items()}}))  # fmt: skip


if __name__ == "__main__":
    main()
