"""Fit coefficients of the default head to randomized experiments, on each experiment's own in-silico design.

    python benchmarks/fit_experiments.py                        # every replication with role: fit
    python benchmarks/fit_experiments.py muchnik2013_first_vote [--replications N] [--set PATH=VALUE ...]

For each replication file with `role: fit` (scenarios/replications/), the coefficient it names (`fits`: a feature
for one reaction) is set by root-finding so that the simulated effect on the experiment's design equals the
published point estimate. Every evaluation runs the whole replication (its arms, its seeds: common random
numbers make the simulated effect a smooth function of the coefficient, so Brent's method converges on it).

The experiments measure one reaction each (an up-vote is a like, a sharing intention a share). What the same
feature's coefficients for the other reactions do is the file's `fits.others`: `scale` (by the same factor as the
measured one during the fit, so the head keeps the proportions between reactions it had, which no experiment here
measures, and the fitted effect is that of the head as it will ship) or `keep` (left as they are; `fits.reason`
says why). The check replications (`role: check`) are never run here.

It prints, per experiment: the root, the other reactions' scaled values, the simulated effect there with its 95%
interval, and the wall time.
"""

from __future__ import annotations

import argparse
import time

from scipy.optimize import brentq

from common import print_command, print_machine

# Where to look for each coefficient's root: wide enough to hold any believable value, of the sign the
# experiments report (herding raises, warnings lower).
BRACKETS = {"proof": (0.0, 1.5), "labeled": (-3.0, 0.0), "sharers": (-1.0, 3.0)}


def scaled(coefficient: str, reaction: str, value: float, others: str = "scale") -> dict[str, float]:
    """The feature's coefficient for every reaction when the measured reaction's is `value`: the others scaled by
    the same factor (`others="scale"`) or left as they are (`"keep"`: only the measured one is returned)."""
    from lsbm_sim.behavior.surrogate import DEFAULT_HEAD

    current = DEFAULT_HEAD[reaction][coefficient]
    if current == 0 or others == "keep":
        return {reaction: value}
    return {r: round(DEFAULT_HEAD[r][coefficient] * value / current, 6) for r in DEFAULT_HEAD}


def fit(name: str, replications: int | None, overrides: list[str], tolerance: float) -> dict:
    from lsbm_sim.studies.replications import load_replication, run_replication

    rep = load_replication(name)
    if rep.role != "fit":
        raise SystemExit(f"{name} is a check (role: check): checks are never fitted")
    if rep.published.effect is None:
        raise SystemExit(f"{name}: no published point estimate to fit to")
    coefficient, reaction = rep.fits.coefficient, rep.fits.reaction
    target = rep.published.effect
    evaluations = []

    def simulate(value: float):
        changes = [f"behavior.coefficients.{r}.{coefficient}={v}"
                   for r, v in scaled(coefficient, reaction, value, rep.fits.others).items()]
        result = run_replication(rep, replications, overrides=[*overrides, *changes])
        evaluations.append((value, result.effect, result.low, result.high))
        print(f"#   {coefficient} ({reaction}) = {value:+.4f}: effect {result.effect:.4f} "
              f"[{result.low:.4f}, {result.high:.4f}]", flush=True)  # fmt: skip
        return result

    gaps: dict[float, float] = {}

    def gap(value: float) -> float:  # remembered: Brent's method asks again for the bracket's ends
        if value not in gaps:
            effect = simulate(value).effect
            gaps[value] = effect - target if rep.effect.kind == "difference" else effect / target - 1
        return gaps[value]

    started = time.perf_counter()
    low, high = BRACKETS.get(coefficient, (-3.0, 3.0))
    at_low, at_high = gap(low), gap(high)
    if at_low * at_high > 0:
        return {"experiment": name, "coefficient": coefficient, "reaction": reaction, "target": target,
                "root": None, "bracket": (low, high), "evaluations": evaluations,
                "seconds": time.perf_counter() - started}  # fmt: skip
    root = brentq(gap, low, high, xtol=tolerance)
    final = simulate(root)
    return {"experiment": name, "coefficient": coefficient, "reaction": reaction, "target": target, "root": root,
            "scaled": scaled(coefficient, reaction, root, rep.fits.others), "effect": final.effect, "low": final.low,
            "high": final.high, "evaluations": evaluations, "seconds": time.perf_counter() - started}  # fmt: skip


def main() -> None:
    from lsbm_sim.studies.replications import load_replication, shipped_replications

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="replications to fit (default: every one with role: fit)")
    parser.add_argument("--replications", type=int, default=None, help="seeds per arm (default: each file's)")
    parser.add_argument("--set", action="append", default=[], help="a change to every experiment's world")
    parser.add_argument("--tolerance", type=float, default=0.005, help="the root's precision (coefficient units)")
    args = parser.parse_args()
    print_command()
    print_machine()
    names = args.names or [n for n in shipped_replications() if load_replication(n).role == "fit"]
    for name in names:
        print(f"# {name}")
        found = fit(name, args.replications, args.set, args.tolerance)
        if found["root"] is None:
            tried = ", ".join(f"{v:+.2f} -> {e:.3f}" for v, e, _, _ in found["evaluations"])
            print(f"{name}: no root in {found['bracket']} for {found['coefficient']} ({found['reaction']}): the "
                  f"published {found['target']} is out of reach ({tried}); {found['seconds']:.0f} s")  # fmt: skip
            continue
        others = ", ".join(f"{r} {v:+.3f}" for r, v in found["scaled"].items())
        print(f"{name}: {found['coefficient']} ({found['reaction']}) = {found['root']:+.3f} "
              f"(all reactions: {others}); simulated effect {found['effect']:.3f} "
              f"[{found['low']:.3f}, {found['high']:.3f}] against published {found['target']}; "
              f"{len(found['evaluations'])} evaluations, {found['seconds']:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
