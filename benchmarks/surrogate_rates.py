"""The embedded default's reaction rates: what its documented head produces on the shipped scenarios.

For each scenario it prints (1) the mean probability of each reaction for a first exposure through one friend's
share (no likes yet, just posted), averaged over the scenario's people and posts, and (2) the rates per
exposure actually realised in a run of the scenario.

    python benchmarks/surrogate_rates.py            # every shipped scenario that uses the surrogate
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from lsbm_sim import BehaviorQuery, Scenario, SocialContext, SocialModel, run
from lsbm_sim.behavior.surrogate import SurrogateModel

ROOT = Path(__file__).resolve().parents[1]


def first_exposure_rates(model: SocialModel, surrogate: SurrogateModel) -> dict[str, float]:
    counts = np.bincount(model.population.archetype, minlength=len(model.population.personas))
    weights = counts / counts.sum()
    personas, dispositions = model.population.personas, model.population.dispositions
    queries = [
        BehaviorQuery(p, text, SocialContext(sharers=1), disposition=d)
        for p, d in zip(personas, dispositions)
        for text in model.item_texts
    ]
    probs = surrogate.predict_proba(queries).reshape(len(personas), len(model.item_texts), -1)
    mean = (probs * weights[:, None, None]).sum(axis=0).mean(axis=0)
    return dict(zip(surrogate.reactions, mean))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=None, help="override population.size")
    args = parser.parse_args()
    rows = []
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        scenario = Scenario.from_yaml(path)
        if scenario.behavior.backend != "surrogate":
            continue
        overrides = [f"population.size={args.size}"] if args.size else []
        model = SocialModel(scenario, overrides=overrides)
        surrogate = model.behavior
        prior = first_exposure_rates(model, surrogate)
        events = run(scenario, overrides=overrides).events
        realised = events["reaction"].value_counts(normalize=True)
        for reaction in surrogate.reactions:
            if reaction == "ignore":
                continue
            rows.append({"scenario": path.stem, "reaction": reaction,
                         "first exposure (model)": prior[reaction],
                         "per exposure (run)": float(realised.get(reaction, 0.0)),
                         "exposures in run": len(events)})  # fmt: skip
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 160)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print()
    print(table.groupby("reaction")[["first exposure (model)", "per exposure (run)"]].mean().round(3).to_string())


if __name__ == "__main__":
    main()
