"""Real cascades: how fast twitter16 loads, how far the shipped default is from it, and what a calibration costs.

    python benchmarks/bench_cascades.py load                     # twitter16 trees -> per-cascade table, median of 3
    python benchmarks/bench_cascades.py default [--reps 4]       # KS table: shipped default vs twitter16 check half
    python benchmarks/bench_cascades.py calibrate [--trials 8]   # wall time of a calibration on 2 workers
    python benchmarks/bench_cascades.py calibrate --default-model --trials 4   # the same with the default model
    python benchmarks/bench_cascades.py shipped [--reps 2]       # twitter_cascades.yaml vs the CHECK halves
    python benchmarks/bench_cascades.py variant [--reps 2] [--set PATH=VALUE ...] [--batches K --every S]
                                                                 # a world variant of it vs the FIT halves

`shipped` runs `scenarios/twitter_cascades.yaml` (1,000 ordinary posts in 4 batches on a 100,000-person
follower graph, the default head as shipped, i.e. calibrated) over `--reps` seeds and prints the KS table
against twitter16's check half (the half `lsbm-sim calibrate` held out, split_real seed 0) with the
real-vs-real floor, and the share of posts nobody shared beside auspol's share of size-1 cascades (a data set
that keeps its unshared posts) on auspol's held-out half (split_real seed 0) and on all of it.

`variant` is how the scenario's world was chosen: it runs the scenario with `--set` changes (and, with
`--batches K --every S`, its 1,000 posts re-cut into K equal batches posted S steps apart; K = 1: all at step
0) and prints one table row scored on the FIT halves only (twitter16's and auspol's, split_real seed 0):
matched-size KS on depth and structural virality, KS on size, the share of real trees in shared size bins,
and the unshared share.

`default` runs `scenarios/eco_product_launch.yaml` (the default behavior model on a 5,000-person Barabasi-Albert
graph) with each of its two posts seeded by 50 random accounts (so each run gives 100 trees), over `--reps`
seeds, and compares its trees with the held-out (check) half of twitter16 that `lsbm-sim calibrate` would use
(split_real, seed 0): KS overall and at matched size, bootstrap intervals, and the real-vs-real floor.

`calibrate` times `lsbm_sim.studies.calibrate.calibrate` on a realistic case: the independent cascade model on a
20,000-person Barabasi-Albert graph (m = 3) with 1,000 seeding accounts (1,000 trees a run), `behavior.p` fitted
to twitter16's fit half, 2 replications a trial, 2 local worker processes; it prints the time per trial and
what 30 trials would take. With `--default-model` it fits `feed.size` of the `default` world above instead
(the head's own coefficients are fitted in the world of `shipped` instead, via behavior.coefficients: RESULTS.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, print_machine

TWITTER16 = ROOT.parent / "shared" / "data" / "twitter16_cascades"
# The world `default` and `calibrate --default-model` were designed for: eco_product_launch's first, 5,000-person
# Barabasi-Albert graph (the scenario now runs 200,000 people on a follower graph).
ECO_WORLD = ["population.size=5000", "network.kind=barabasi_albert", "network.params={m: 5}"]
AUSPOL = ROOT.parent / "shared" / "data" / "auspol_retweet_cascades"


def load(repeats: int) -> None:
    from lsbm_sim.analysis.cascades import load_cascades

    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        table = load_cascades(TWITTER16)
        times.append(time.perf_counter() - started)
    print(f"twitter16: {table.attrs['notes']['lines']:,} lines -> {len(table)} cascades in "
          f"{statistics.median(times):.2f} s (median of {repeats}; all {', '.join(f'{t:.2f}' for t in times)})")
    print("notes:", table.attrs["notes"])


def default(reps: int) -> None:
    from lsbm_sim.studies.calibrate import simulate, split_real
    from lsbm_sim.analysis.cascades import load_cascades
    from lsbm_sim.analysis.compare import compare
    from lsbm_sim.scenario import load_scenario

    real = load_cascades(TWITTER16)
    _, check = split_real(real, seed=0)
    spec = load_scenario(ROOT / "scenarios" / "eco_product_launch.yaml", ECO_WORLD)
    seeding = {"content.0.author": {"strategy": "random", "count": 50}, "content.1.author": {"strategy": "random", "count": 50}}
    started = time.perf_counter()
    sim = simulate(spec, seeding, reps, "local", 2, None)
    print(f"simulated {len(sim)} trees in {time.perf_counter() - started:.0f} s "
          f"(median size {sim['cascade_size'].median():.0f}, depth {sim['depth'].median():.0f}, "
          f"virality {sim['structural_virality'].median():.2f}; twitter16 check half: size "
          f"{check['cascade_size'].median():.0f}, depth {check['depth'].median():.0f}, "
          f"virality {check['structural_virality'].median():.2f})")  # fmt: skip
    table = compare(sim, check, bootstrap=200, seed=0).table
    print(table.round(3).to_string(index=False))


def shipped(reps: int) -> None:
    from lsbm_sim.studies.calibrate import simulate, split_real
    from lsbm_sim.analysis.cascades import load_cascades
    from lsbm_sim.analysis.compare import compare
    from lsbm_sim.scenario import load_scenario

    real = load_cascades(TWITTER16)
    _, check = split_real(real, seed=0)
    spec = load_scenario(ROOT / "scenarios" / "twitter_cascades.yaml")
    started = time.perf_counter()
    sim = simulate(spec, {}, reps, "local", 2, None)
    print(f"simulated {len(sim)} trees in {time.perf_counter() - started:.0f} s ({reps} seeds)")
    table = compare(sim, check, bootstrap=200, seed=0).table
    print(table[["metric", "ks_overall", "floor_overall", "ks_matched", "ks_matched_low", "ks_matched_high",
                 "floor_matched", "matched_share"]].round(3).to_string(index=False))  # fmt: skip
    auspol = load_cascades(AUSPOL)
    _, auspol_check = split_real(auspol, seed=0)  # its fit half chose the world (`variant`); this half did not
    unshared = float((sim["cascade_size"] == 1).mean())
    for name, part in (("held-out half", auspol_check), ("all", auspol)):
        real_unshared = float((part["cascade_size"] == 1).mean())
        print(f"posts nobody shared: simulated {unshared:.3f}, auspol ({name}, {len(part)} cascades) size-1 "
              f"cascades {real_unshared:.3f}; difference {unshared - real_unshared:+.3f}")


def staggered(spec, batches: int, every: int):
    """The scenario with all its posts (its batches must differ only in id and step) re-cut into `batches`
    equal batches posted `every` steps apart; 1 batch: every post at step 0, with the ids the unstaggered
    scenario had (`post-{i}`)."""
    from lsbm_sim.scenario import Scenario

    data = spec.model_dump(mode="json")
    entries = data["content"]
    first = {k: v for k, v in entries[0].items() if k not in ("id", "step", "posts")}
    if any({k: v for k, v in e.items() if k not in ("id", "step", "posts")} != first for e in entries):
        sys.exit("--batches re-cuts batches that differ only in id, step and posts")
    total = sum(e["posts"] for e in entries)
    data["content"] = [{**first, "posts": total // batches, "step": k * every,
                        "id": "post-{i}" if batches == 1 else f"post-{k}-{{i}}"} for k in range(batches)]  # fmt: skip
    return Scenario.from_dict(data, base_dir=spec.base_dir)


def variant(overrides: list[str], reps: int, workers: int, label: str, batches: int | None, every: int) -> None:
    """One world variant of the shipped scenario scored on the FIT halves only (twitter16 split_real seed 0,
    auspol split_real seed 0): what the scenario's world was chosen by. No bootstrap or floor (speed)."""
    from lsbm_sim.studies.calibrate import simulate, split_real
    from lsbm_sim.analysis.cascades import load_cascades
    from lsbm_sim.analysis.compare import compare
    from lsbm_sim.scenario import load_scenario

    fit, _ = split_real(load_cascades(TWITTER16), seed=0)
    auspol_fit, _ = split_real(load_cascades(AUSPOL), seed=0)
    spec = load_scenario(ROOT / "scenarios" / "twitter_cascades.yaml", overrides)
    if batches is not None:
        spec = staggered(spec, batches, every)
    started = time.perf_counter()
    sim = simulate(spec, {}, reps, "local", workers, None)
    seconds = time.perf_counter() - started
    table = compare(sim, fit, bootstrap=0, floor_splits=0).table.set_index("metric")
    unshared = float((sim["cascade_size"] == 1).mean())
    real_unshared = float((auspol_fit["cascade_size"] == 1).mean())
    print(f"| {label or '; '.join(overrides) or 'as shipped'} | {table.loc['depth', 'ks_matched']:.3f} | "
          f"{table.loc['structural_virality', 'ks_matched']:.3f} | {table.loc['cascade_size', 'ks_overall']:.3f} | "
          f"{table.loc['depth', 'matched_share']:.2f} | {unshared:.3f} (auspol fit half {real_unshared:.3f}) | "
          f"{len(sim)} trees, median size {sim['cascade_size'].median():.0f}, max {sim['cascade_size'].max()}, "
          f"{seconds:.0f} s |", flush=True)  # fmt: skip


def calibrate_timing(trials: int, workers: int, default_model: bool) -> None:
    from lsbm_sim.studies.calibrate import calibrate
    from lsbm_sim.analysis.cascades import load_cascades
    from lsbm_sim.scenario import load_scenario

    real = load_cascades(TWITTER16)
    if default_model:  # the default behavior model: eco_product_launch, 2 posts x 50 random authors, fit feed.size
        spec = load_scenario(ROOT / "scenarios" / "eco_product_launch.yaml", [*ECO_WORLD,
            "content.0.author={strategy: random, count: 50}", "content.1.author={strategy: random, count: 50}"])
        param, size = "feed.size=2..30", "5,000 agents, default behavior model"
    else:
        spec = load_scenario(ROOT / "scenarios" / "independent_cascade.yaml", [
            "population.size=20000", "network.kind=barabasi_albert", "network.params={m: 3}",
            "content.0.author.count=1000", "steps=30",
        ])  # fmt: skip
        param, size = "behavior.p=0.05..0.6:log", "20,000 agents, independent cascade"
    times = []
    last = [time.perf_counter()]

    def tick(done, total, value):
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now
        print(f"  trial {done}/{total}: score {value:.3f}, {times[-1]:.1f} s", flush=True)

    with tempfile.TemporaryDirectory(dir=ROOT / ".cache" if (ROOT / ".cache").is_dir() else None) as folder:
        started = time.perf_counter()
        result = calibrate(spec, real, [param], trials=trials, replications=2, workers=workers,
                           out=Path(folder) / "cal", progress=tick)  # fmt: skip
        total = time.perf_counter() - started
    per_trial = statistics.median(times)
    print(f"{trials} trials, {workers} workers, 2 replications of {size}: {total:.0f} s in all "
          f"(median {per_trial:.1f} s a trial; the rest: loading twitter16, the best point's rerun and reports)")
    print(f"best {result.best}; fit score {result.fit_score:.3f}, check {result.check_score:.3f}")
    print(f"30 trials at this rate: {(total - sum(times) + 30 * per_trial) / 60:.1f} min")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["load", "default", "calibrate", "shipped", "variant"])
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                        help="variant: a change to scenarios/twitter_cascades.yaml (repeatable)")
    parser.add_argument("--label", default="", help="variant: the row's name in the printed table")
    parser.add_argument("--batches", type=int, help="variant: re-cut the posts into this many equal batches ...")
    parser.add_argument("--every", type=int, default=2, help="variant: ... this many steps apart")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--default-model", action="store_true", help="calibrate: the default behavior model")
    args = parser.parse_args()
    if not TWITTER16.is_dir():
        sys.exit(f"twitter16 not found at {TWITTER16}")
    print_machine()
    print("command:", " ".join(["python", *sys.argv]))
    if args.what == "load":
        load(args.repeats)
    elif args.what == "default":
        default(args.reps)
    elif args.what == "shipped":
        shipped(args.reps)
    elif args.what == "variant":
        variant(args.overrides, args.reps, args.workers, args.label, args.batches, args.every)
    else:
        calibrate_timing(args.trials, args.workers, args.default_model)


if __name__ == "__main__":
    main()
