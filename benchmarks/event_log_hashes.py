"""A fingerprint of every shipped scenario's results: the check that a change meant to move no behaviour moved none.

    python benchmarks/event_log_hashes.py > before.txt     # on the commit before the change
    python benchmarks/event_log_hashes.py > after.txt      # on the change
    diff before.txt after.txt                               # nothing: the same event logs, byte for byte

Each shipped scenario (and each world the replications run on) is run at a small size (`--size`, default 5,000
people) for its shipped number of steps with the full event log, and the script prints one SHA-256 per table
(events, items, cascades). A table is hashed through pandas' row hashes of its values and its column names and
types, so the figure does not depend on how Parquet happens to lay out bytes, only on what the run produced.
Only the public API (`lsbm_sim.run`) is used, so the same script runs on both sides of a reorganisation.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, print_command, print_machine  # noqa: E402

from lsbm_sim import run  # noqa: E402


def table_hash(frame: pd.DataFrame) -> str:
    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=5000, help="people in each run (default 5,000)")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    print_command()
    print_machine()
    scenarios = sorted((ROOT / "scenarios").glob("*.yaml")) + sorted((ROOT / "scenarios/replications/worlds").glob("*.yaml"))
    for path in scenarios:
        started = time.perf_counter()
        result = run(path, seed=args.seed, overrides=[f"population.size={args.size}", "results.events=all"])
        name = path.relative_to(ROOT / "scenarios").with_suffix("")
        for table in ("events", "items", "cascades"):
            frame = getattr(result, table)
            print(f"{name} {table} rows={len(frame)} sha256={table_hash(frame)}", flush=True)
        print(f"# {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
