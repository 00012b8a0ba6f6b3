"""The shipped what-ifs, answered over many seeds: each effect with its 95% interval from paired runs.

A what-if compares two things on the same seeds (common random numbers): two arms of a scenario (the
misinformation claim with and without its fact-check label), or two posts of one run (the post seeded by
influencers and the same post seeded at random; headline A and headline B). For each seed the two sides share
the world, the people and every random draw up to where they differ, so the per-seed difference carries little
noise; the interval is Student's t over the per-seed differences, and the ratio's interval is a bootstrap over
seeds (both sides of a seed resampled together). The figures go into the scenarios' descriptions and
benchmarks/RESULTS.md ("The shipped what-ifs over seeds").

    python benchmarks/whatifs.py                        # every what-if, 10 seeds, shipped sizes
    python benchmarks/whatifs.py --seeds 3 --size 5000  # a quick look (not the shipped answer)
    python benchmarks/whatifs.py --vary seen=x0,x2 similarity=1  # sensitivity: the same what-ifs with a
                                                                 # coefficient of every reaction changed

`--vary FEATURE=V,...` reruns every what-if with that feature's coefficient set to V for like, share and
comment (`xF`: F times the default head's value, each reaction its own), one value at a time: how much the
answers move over a plausible range of a coefficient no experiment or data set pins down.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_command, print_machine  # noqa: E402

from lsbm_sim.behavior.surrogate import DEFAULT_HEAD  # noqa: E402
from lsbm_sim.studies.sweep import sweep  # noqa: E402
from lsbm_sim.scenario import Scenario  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class WhatIf:
    """`treatment` and `control` name either arms (override lists, compared post by post on `item`) or, with no
    arms, two posts of the same run."""

    name: str
    scenario: str
    metric: str
    treatment: str
    control: str
    item: str | None = None
    arms: dict[str, list[str]] = field(default_factory=dict)


WHATIFS = [
    WhatIf("label", "misinformation_correction", "share", treatment="label", control="no label", item="false_claim",
           arms={"label": [], "no label": ["interventions=[]"]}),
    WhatIf("label (likes)", "misinformation_correction", "like", treatment="label", control="no label",
           item="false_claim", arms={"label": [], "no label": ["interventions=[]"]}),
    WhatIf("correction vs claim", "misinformation_correction", "reach", treatment="correction", control="false_claim"),
    WhatIf("influencers vs random", "influencer_vs_random", "reach", treatment="seeded_by_influencers",
           control="seeded_at_random"),
    WhatIf("influencers vs random (shares)", "influencer_vs_random", "share", treatment="seeded_by_influencers",
           control="seeded_at_random"),
    WhatIf("headline B vs A", "headline_ab_test", "engagement", treatment="headline_b", control="headline_a"),
]  # fmt: skip


def per_seed(whatif: WhatIf, seeds: int, extra: list[str], workers: int, cache: dict) -> pd.DataFrame:
    """One row per seed: the metric on the treatment side and on the control side."""
    spec = Scenario.from_yaml(ROOT / "scenarios" / f"{whatif.scenario}.yaml").with_overrides(extra)
    if whatif.arms:
        arm_specs = {arm: spec.with_overrides(o) for arm, o in whatif.arms.items()}
        grid = {"interventions": [arm_specs[whatif.treatment].model_dump(mode="json")["interventions"],
                                  arm_specs[whatif.control].model_dump(mode="json")["interventions"]]}  # fmt: skip
    else:
        grid = {}
    key = (whatif.scenario, repr(grid), seeds, tuple(extra))
    if key not in cache:
        cache[key] = sweep(spec, grid=grid, replications=seeds, workers=workers)
    table = cache[key].copy()
    table["engagement"] = table["like"] + table["share"] + table["comment"]
    if whatif.arms:
        rows = table[table["item_id"] == whatif.item]
        wide = rows.pivot_table(index="replication", columns="combination", values=whatif.metric, aggfunc="first")
        return pd.DataFrame({"treatment": wide[0], "control": wide[1]})
    wide = table.pivot_table(index="replication", columns="item_id", values=whatif.metric, aggfunc="first")
    return pd.DataFrame({"treatment": wide[whatif.treatment], "control": wide[whatif.control]})


def effect(rows: pd.DataFrame, resamples: int = 10_000, seed: int = 0) -> dict[str, float]:
    """Means, the paired difference with a t interval, and the ratio of means with a paired bootstrap interval."""
    from scipy import stats

    t, c = rows["treatment"].to_numpy(float), rows["control"].to_numpy(float)
    d = t - c
    n = len(d)
    half = stats.t.ppf(0.975, max(n - 1, 1)) * d.std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(resamples, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = t[picks].mean(axis=1) / c[picks].mean(axis=1)
        ratio = t.mean() / c.mean()
    lo, hi = np.nanpercentile(ratios, [2.5, 97.5]) if np.isfinite(ratios).any() else (np.nan, np.nan)
    return {"seeds": n, "treatment": t.mean(), "control": c.mean(), "diff": d.mean(), "diff_low": d.mean() - half,
            "diff_high": d.mean() + half, "ratio": ratio, "ratio_low": lo, "ratio_high": hi}  # fmt: skip


def variants(vary: list[str]) -> list[tuple[str, list[str]]]:
    """("default", no override) and one (label, overrides) per value of each `FEATURE=V,...`."""
    out: list[tuple[str, list[str]]] = [("default head", [])]
    for text in vary:
        feature, _, values = text.partition("=")
        if feature not in DEFAULT_HEAD["share"] or not values:
            raise SystemExit(f"--vary {text!r}: give FEATURE=V,... with FEATURE one of {sorted(DEFAULT_HEAD['share'])}")
        for value in values.split(","):
            coefficients = {
                reaction: {feature: round(float(value[1:]) * head[feature], 4) if value.startswith("x") else float(value)}
                for reaction, head in DEFAULT_HEAD.items()
            }
            out.append((f"{feature}={value}", [f"behavior.coefficients={json.dumps(coefficients)}"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--size", type=int, help="population size for every scenario (default: as shipped)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="what-if names to run (default: all)")
    parser.add_argument("--vary", nargs="*", default=[], metavar="FEATURE=V,...",
                        help="also run with a coefficient changed (V a value, or xF: F times the default)")
    args = parser.parse_args()
    base = [f"population.size={args.size}"] if args.size else []
    print_machine()
    print_command()
    cache: dict = {}
    out = []
    chosen = [w for w in WHATIFS if not args.only or w.name in args.only]
    for variant, overrides in variants(args.vary):
        for whatif in chosen:
            start = time.perf_counter()
            e = effect(per_seed(whatif, args.seeds, base + overrides, args.workers, cache))
            e.update(whatif=whatif.name, variant=variant, scenario=whatif.scenario, metric=whatif.metric,
                     sides=f"{whatif.treatment} / {whatif.control}", seconds=time.perf_counter() - start)  # fmt: skip
            out.append(e)
            print(f"[{variant}] {whatif.scenario}: {whatif.name} ({whatif.metric}, {e['sides']}): "
                  f"{e['treatment']:,.1f} vs {e['control']:,.1f} per run; difference {e['diff']:+,.1f} "
                  f"({e['diff_low']:+,.1f} to {e['diff_high']:+,.1f}); ratio {e['ratio']:.2f} "
                  f"({e['ratio_low']:.2f}-{e['ratio_high']:.2f}); {e['seeds']} seeds, {e['seconds']:.0f} s", flush=True)  # fmt: skip
    pd.set_option("display.width", 200)
    table = pd.DataFrame(out)
    print(table.set_index(["whatif", "variant"]).drop(columns=["scenario", "sides"]).round(3).to_string())
    if args.vary:  # the sensitivity table: each what-if's ratio under each variant
        cells = table.apply(lambda r: f"{r['ratio']:.2f} ({r['ratio_low']:.2f}-{r['ratio_high']:.2f})", axis=1)
        print(table.assign(cell=cells).pivot(index="whatif", columns="variant", values="cell").to_string())


if __name__ == "__main__":
    main()
