"""Validity: the engine's classic special cases against NDlib and against theory.

Three checks, each able to fail on a wrong engine (they were run against deliberately broken variants: a second
followee's share dropped instead of deferred, each share shown twice, shares sent to the accounts a person
follows instead of to their followers, `>` for `>=` in the threshold rule, the threshold fraction taken over
followers instead of followed accounts):

1. Independent cascade vs NDlib's IndependentCascadesModel: on the same graph and the same seed nodes, the
   final-size distributions of 200 runs each agree (two-sample KS test at 1%).
2. Independent cascade vs theory on Erdos-Renyi graphs: below the threshold <k>p = 1 every cascade stays small
   and its size follows the Borel law of a Poisson branching process (mean 1/(1 - <k>p)); above it, a single
   seed starts a large outbreak with probability S and a large outbreak reaches a fraction S of the people,
   where S = 1 - exp(-<k>p S).
3. Linear threshold vs NDlib's ThresholdModel: with the same thresholds and seeds the two reach the same final
   set through the same rounds, run by run (stronger than comparing distributions).

How NDlib 6.0.1 defines them, and how the comparison is made like for like (read from its source):
- IndependentCascadesModel: each node infected in round r tries each *successor* (a DiGraph) or neighbour (a
  Graph) once in round r + 1 with the edge's `threshold` as probability, and is then removed. Edge thresholds
  are used only when every edge has one (otherwise NDlib fills in 0.1, or 1/degree): we set all of them to p.
  Successors are followers in our convention (edge u -> v: v follows u), so the direction agrees.
- ThresholdModel: synchronous rounds; a node becomes infected when the fraction of its *predecessors* (DiGraph)
  or neighbours (Graph) that are infected reaches its threshold (`>=`). Predecessors are the accounts a person
  follows, the same denominator as our LinearThresholdModel (`in_degree`).
- Seeds: given as an explicit "Infected" list (not `fraction_infected`, which draws its own random nodes).
- Ending: NDlib never stops by itself; we iterate until no node is infected (IC) or a round changes nothing
  (threshold). The engine runs a fixed number of steps; the tests check that its feeds are empty at the end.
- Timing: the engine shows a person at most one share of a post per step, so a second followee's share is a
  new chance one step later, where NDlib gives both chances in one round. Final sizes of the independent
  cascade agree in distribution; its timing may differ. The threshold model's timing agrees exactly (a person
  always has a pending share when their count has just changed, and the count they are asked with is current).
"""

from __future__ import annotations

import math
from pathlib import Path

import ndlib.models.epidemics as ep
import ndlib.models.ModelConfig as mc
import networkx as nx
import numpy as np
import pytest
from scipy import optimize, stats

from lsbm_sim import Scenario, SocialModel
from lsbm_sim.behavior.classic import LinearThresholdModel
from lsbm_sim.engine.model import SHARED
from lsbm_sim.world.network import barabasi_albert_edges

KS_ALPHA = 0.01
RUNS = 200


# ------------------------------------------------------------------------------------------------- helpers


def write_edgelist(path: Path, source: np.ndarray, target: np.ndarray) -> Path:
    path.write_text("".join(f"{u} {v}\n" for u, v in zip(source.tolist(), target.tolist())))
    return path


def ba_graph_file(folder: Path, n: int, m: int, seed: int, directed: bool) -> Path:
    """A Barabasi-Albert graph as an edge list (no isolated nodes, so the file keeps agent numbers 0..n-1).
    Directed: the newcomer follows the m accounts it attached to (edge old -> new)."""
    new, old = barabasi_albert_edges(n, m, seed)
    return write_edgelist(folder / f"ba_{n}_{m}_{seed}_{int(directed)}.txt", old, new)


def cascade_scenario(network: dict, posts: list[dict], seed: int, steps: int, behavior: dict,
                     size: int | None = None) -> Scenario:  # fmt: skip
    """The engine's classic special case: everyone online every step, the feed shows every new share."""
    return Scenario.from_dict(
        {
            "name": "validation",
            "seed": seed,
            "steps": steps,
            "population": {"size": size, "activity": 1.0},
            "network": network,
            "content": posts,
            "feed": {"policy": "all", "size": None},
            "behavior": {"reactions": ["ignore", "share"], **behavior},
        }
    )


def sharers(model: SocialModel, item: int = 0) -> np.ndarray:
    """Agents who shared the post (its authors included): the final set of the cascade."""
    return np.flatnonzero(model.status[item] & SHARED)


def ran_to_the_end(model: SocialModel) -> bool:
    """Nothing is left in anyone's feed: more steps could not change the outcome."""
    return len(model.inbox) == 0


def ndlib_ic_final_size(graph: nx.Graph, seeds: list[int], p: float, seed: int) -> int:
    model = ep.IndependentCascadesModel(graph, seed=seed)
    config = mc.Configuration()
    config.add_model_initial_configuration("Infected", seeds)
    for edge in graph.edges():
        config.add_edge_configuration("threshold", edge, p)  # every edge, or NDlib ignores them all
    model.set_initial_status(config)
    result = model.iteration(node_status=False)  # round 0 reports the seeds
    while result["node_count"][1] > 0:
        result = model.iteration(node_status=False)
    return result["node_count"][2]


def ndlib_threshold_rounds(graph: nx.Graph, seeds: list[int], thresholds: np.ndarray) -> dict[int, int]:
    """{node: the round it became infected} for NDlib's ThresholdModel (seeds: round 0)."""
    model = ep.ThresholdModel(graph, seed=0)
    config = mc.Configuration()
    config.add_model_initial_configuration("Infected", seeds)
    for node in graph.nodes():
        config.add_node_configuration("threshold", node, float(thresholds[node]))
    model.set_initial_status(config)
    infected_at = {node: 0 for node in seeds}
    model.iteration()
    while True:
        result = model.iteration()
        new = [node for node, status in result["status"].items() if status == 1]
        if not new:
            return infected_at
        infected_at.update({node: result["iteration"] for node in new})


def outbreak_fraction(mean_excess: float) -> float:
    """The positive root S of S = 1 - exp(-R S) (0 at or below the threshold R = 1)."""
    if mean_excess <= 1:
        return 0.0
    return optimize.brentq(lambda s: s - 1 + math.exp(-mean_excess * s), 1e-9, 1.0)


# ------------------------------------------------------------------------------ 1. independent cascade / NDlib


@pytest.mark.parametrize(
    "directed, n, m, p",
    [(False, 1000, 3, 0.1), (True, 1000, 3, 0.25)],
    ids=["undirected-ba", "directed-ba"],
)
def test_independent_cascade_final_sizes_match_ndlib(tmp_path: Path, directed: bool, n: int, m: int, p: float):
    graph_file = ba_graph_file(tmp_path, n, m, seed=7, directed=directed)
    network = {"kind": "edgelist", "path": str(graph_file), "directed": directed}
    # Five seed nodes, the same in every run: the accounts with most followers.
    posts = [{"id": "seed", "text": "x", "author": {"strategy": "influencer", "count": 5}}]
    behavior = {"backend": "independent_cascade", "p": p}

    ours, seeds, graph = [], None, None
    for run in range(RUNS):
        model = SocialModel(cascade_scenario(network, posts, seed=run, steps=60, behavior=behavior))
        model.run()
        assert ran_to_the_end(model)
        ours.append(len(sharers(model)))
        if graph is None:
            seeds, graph = model.posts[0].authors.tolist(), model.network.graph
        assert model.posts[0].authors.tolist() == seeds
    theirs = [ndlib_ic_final_size(graph, seeds, p, seed=10_000 + run) for run in range(RUNS)]

    ks = stats.ks_2samp(ours, theirs)
    assert ks.pvalue > KS_ALPHA, f"engine mean {np.mean(ours):.1f}, NDlib mean {np.mean(theirs):.1f}: {ks}"
    # Not a degenerate comparison: the cascades vary and stay well away from both 5 seeds and everyone.
    assert 0.05 * n < np.mean(theirs) < 0.6 * n and np.std(theirs) > 5


# ------------------------------------------------------------------------------------- 2. theory (Erdos-Renyi)


def er_cascades(n: int, mean_degree: float, p: float, posts: int, seed: int) -> tuple[np.ndarray, float]:
    """Final sizes of `posts` independent cascades, each from one random seed node, on one Erdos-Renyi graph
    (posts do not interact under the independent cascade model, so one run gives many cascades), and the
    graph's realised mean degree."""
    network = {"kind": "erdos_renyi", "params": {"mean_degree": mean_degree}}
    content = [{"id": f"p{j}", "text": "x", "author": {"strategy": "random", "count": 1}} for j in range(posts)]
    model = SocialModel(
        cascade_scenario(network, content, seed, steps=150, behavior={"backend": "independent_cascade", "p": p}, size=n)
    )
    model.run()
    assert ran_to_the_end(model)
    sizes = ((model.status & SHARED) != 0).sum(axis=1)
    return sizes, model.network.num_edges / n


@pytest.mark.parametrize("kp", [0.5, 0.8])
def test_below_the_threshold_cascades_are_small_and_borel_distributed(kp: float):
    n, k, posts = 4000, 5.0, 600
    sizes, realised_k = er_cascades(n, k, kp / k, posts, seed=11)
    r = realised_k * kp / k
    # A Poisson(r) branching process: total size s has probability exp(-r s) (r s)^(s-1) / s! (Borel law),
    # mean 1 / (1 - r) and variance r / (1 - r)^3.
    mean, sd = 1 / (1 - r), math.sqrt(r / (1 - r) ** 3)
    assert sizes.max() < 0.05 * n
    assert abs(sizes.mean() - mean) < 4 * sd / math.sqrt(posts), (sizes.mean(), mean)
    p_one = math.exp(-r)  # the seed's first chances all fail
    assert abs((sizes == 1).mean() - p_one) < 4 * math.sqrt(p_one * (1 - p_one) / posts), ((sizes == 1).mean(), p_one)


@pytest.mark.parametrize("kp", [1.5, 2.5])
def test_above_the_threshold_large_outbreaks_reach_the_fraction_theory_gives(kp: float):
    n, k, posts = 4000, 5.0, 200
    sizes, realised_k = er_cascades(n, k, kp / k, posts, seed=12)
    s = outbreak_fraction(realised_k * kp / k)
    large = sizes > 0.1 * n
    # Outbreaks are either small (a subcritical dual branching process) or large; nothing in between.
    assert not ((sizes > 0.02 * n) & ~large).any()
    # On an undirected Erdos-Renyi graph a single seed starts a large outbreak with probability S, too.
    assert abs(large.mean() - s) < 4 * math.sqrt(s * (1 - s) / posts), (large.mean(), s)
    assert abs(sizes[large].mean() / n - s) < 0.01, (sizes[large].mean() / n, s)


# ------------------------------------------------------------------------------ 3. linear threshold / NDlib


@pytest.mark.parametrize("directed", [False, True], ids=["undirected-ba", "directed-ba"])
def test_linear_threshold_matches_ndlib_run_by_run(tmp_path: Path, directed: bool):
    n, m = 400, 3
    graph_file = ba_graph_file(tmp_path, n, m, seed=3, directed=directed)
    network = {"kind": "edgelist", "path": str(graph_file), "directed": directed}
    posts = [{"id": "seed", "text": "x", "author": {"strategy": "random", "count": 12}}]
    rng = np.random.default_rng(5)
    sizes, rounds = [], []
    for run in range(RUNS // 2):
        # Thresholds on a grid of twelfths, so that a fraction of followed accounts (1/3, 1/2, 3/4...) often
        # equals a threshold exactly and `>=` is tested, not only `>`. Not 0: NDlib activates a node with
        # threshold 0 in round 1 with no infected neighbour (0 >= 0), where the engine asks a person only once
        # someone they follow shared (for thresholds drawn from a continuous law this has probability 0).
        thresholds = rng.integers(1, 12, size=n) / 12
        model = SocialModel(
            cascade_scenario(network, posts, seed=run, steps=60, behavior={"backend": "linear_threshold"}),
            behavior=LinearThresholdModel(thresholds, reactions=("ignore", "share")),
        )
        model.run()
        assert ran_to_the_end(model)
        seeds = model.posts[0].authors.tolist()
        theirs = ndlib_threshold_rounds(model.network.graph, seeds, thresholds)

        events = model.events_so_far()
        shared = events[events["reaction"] == "share"]
        # A share at engine step t answers a share of step t - 1, as NDlib's round r answers round r - 1; the
        # authors post at step 0 and their followers see it at once, so engine step t is NDlib round t + 1.
        ours = {int(a): 0 for a in seeds} | dict(zip(shared["agent_id"].tolist(), (shared["step"] + 1).tolist()))
        assert ours == theirs, f"run {run}: {len(ours)} sharers in the engine, {len(theirs)} in NDlib"
        sizes.append(len(ours))
        rounds.append(max(ours.values()))
    # Not a degenerate comparison: cascades of many sizes, spreading over several rounds.
    assert len(set(sizes)) > 20 and max(rounds) >= 4 and np.mean(sizes) > 2 * 12
