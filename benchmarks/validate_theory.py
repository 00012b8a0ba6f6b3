"""The independent-cascade special case against theory on Erdos-Renyi graphs, over a range of <k>p.

For a Poisson (Erdos-Renyi) graph with mean degree <k> and share probability p, let R = <k>p:
- below the threshold (R < 1) every cascade from one seed is small; its size follows the Borel law of a
  Poisson(R) branching process, mean 1 / (1 - R);
- above it, one seed starts a large outbreak with probability S and a large outbreak reaches a fraction S of
  the population, where S solves S = 1 - exp(-R S).

One run of the engine carries many posts, each from one random seed (posts do not interact under the
independent cascade model, so they are independent cascades on the same graph). R uses the graph's realised
mean degree. tests/test_validation.py checks four of these values in seconds; this prints the whole curve.

    python benchmarks/validate_theory.py                          # n = 50,000, <k> = 5, 60 posts per value
    python benchmarks/validate_theory.py --n 200000 --posts 100    # closer to the n -> infinity limit
"""

from __future__ import annotations

import argparse
import math
import time

from common import print_command, print_machine


def outbreak_fraction(r: float) -> float:
    from scipy import optimize

    return 0.0 if r <= 1 else optimize.brentq(lambda s: s - 1 + math.exp(-r * s), 1e-12, 1.0)


def cascades(n: int, k: float, p: float, posts: int, seed: int):
    from lsbm_sim import Scenario, SocialModel
    from lsbm_sim.engine.model import SHARED

    scenario = Scenario.from_dict(
        {
            "name": "theory",
            "seed": seed,
            "steps": 400,
            "population": {"size": n, "activity": 1.0},
            "network": {"kind": "erdos_renyi", "params": {"mean_degree": k}},
            "content": [{"id": f"p{j}", "text": "x", "author": {"strategy": "random"}} for j in range(posts)],
            "feed": {"policy": "all", "size": None},
            "behavior": {"backend": "independent_cascade", "reactions": ["ignore", "share"], "p": p},
        }
    )
    model = SocialModel(scenario)
    model.step()
    while len(model.inbox) and model.running:  # until every cascade is over
        model.step()
    if len(model.inbox):
        raise RuntimeError(f"cascades still running after {model.steps_completed} steps")
    return ((model.status & SHARED) != 0).sum(axis=1), model.network.num_edges / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--k", type=float, default=5.0, help="mean degree")
    parser.add_argument("--posts", type=int, default=60, help="cascades per value of <k>p")
    parser.add_argument("--values", type=float, nargs="+", default=[0.5, 0.8, 0.9, 1.1, 1.25, 1.5, 2.0, 3.0, 4.0])
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    print_machine()
    print_command()
    print(f"# Erdos-Renyi n={args.n:,}, <k>={args.k}, {args.posts} single-seed cascades per value")
    print()
    print("| <k>p (realised) | theory S | P(large outbreak) | mean large outbreak / n | |diff| | "
          "mean small size | theory 1/(1-R) | seconds |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for kp in args.values:
        started = time.perf_counter()
        sizes, realised_k = cascades(args.n, args.k, kp / args.k, args.posts, args.seed)
        r = realised_k * kp / args.k
        s = outbreak_fraction(r)
        # Large: more than half the theory's outbreak (and more than 1% of everyone); small cascades near the
        # threshold reach hundreds of people, large ones thousands.
        large = sizes > max(0.5 * s * args.n, 0.01 * args.n)
        p_large = large.mean()
        se = math.sqrt(max(s * (1 - s), 1e-12) / args.posts)
        mean_large = sizes[large].mean() / args.n if large.any() else 0.0
        small_mean = sizes[~large].mean() if (~large).any() else float("nan")
        small_theory = f"{1 / (1 - r):.2f}" if r < 1 else "-"
        print(f"| {kp} ({r:.3f}) | {s:.4f} | {p_large:.3f} ± {se:.3f} | {mean_large:.4f} | {abs(mean_large - s):.4f} "
              f"| {small_mean:.2f} | {small_theory} | {time.perf_counter() - started:.1f} |", flush=True)  # fmt: skip
    print()
    print("(± is one standard error of P(large) under the theory; |diff| compares the mean large outbreak with S)")


if __name__ == "__main__":
    main()
