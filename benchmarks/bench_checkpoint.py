"""What a checkpoint costs: seconds per `lsbm_sim.engine.checkpoint.save` and the size of state.pkl, at a given size.

Builds a scenario (--scenario, default scenarios/eco_product_launch.yaml) at --agents people, runs --steps
steps with the event log streamed to a temporary folder, and saves a checkpoint after every step, timing only the
save. Prints one line per step and the median.

    python benchmarks/bench_checkpoint.py --agents 1000000 --steps 4
    python benchmarks/bench_checkpoint.py --scenario scenarios/platform_day.yaml --agents 30000 --steps 48
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from lsbm_sim.engine import checkpoint
from lsbm_sim.engine.model import SocialModel

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "eco_product_launch.yaml")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT / "benchmarks") as tmp:
        folder = Path(tmp) / "res.checkpoint"
        started = time.perf_counter()
        model = SocialModel(
            args.scenario, overrides=[f"population.size={args.agents}"],
            events_path=Path(tmp) / "events.parquet", checkpoint_dir=folder,
        )  # fmt: skip
        print(f"{args.agents:,} agents: setup {time.perf_counter() - started:.1f} s")
        seconds = []
        for _ in range(args.steps):
            model.step()
            started = time.perf_counter()
            size = checkpoint.save(model, folder)
            seconds.append(time.perf_counter() - started)
            print(f"step {model.steps_completed}: {model.events.exposures:,} exposures so far, checkpoint "
                  f"{seconds[-1]:.2f} s, state.pkl {size / 1e6:.1f} MB")  # fmt: skip
        segments = sum(p.stat().st_size for p in (folder / checkpoint.SEGMENTS).glob("*.arrows"))
        print(f"median checkpoint {statistics.median(seconds):.2f} s; last state.pkl {size / 1e6:.1f} MB; "
              f"event segments {segments / 1e6:.1f} MB")  # fmt: skip
        model.broker.close()
        model.events.close()


if __name__ == "__main__":
    main()
