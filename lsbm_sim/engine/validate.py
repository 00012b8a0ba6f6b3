"""Checking a scenario without running it: everything `lsbm-sim validate` checks short of a step.

The world is built (people, graph, every post's authors), the files the scenario names are read, and the behavior
settings that can be checked without loading a model are checked. Nothing here imports Mesa or the model's step,
so `validate` answers in the time the world takes to build.

>>> check_scenario("scenarios/eco_product_launch.yaml", ["population.size=1000"])["agents"]  # doctest: +SKIP
1000
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lsbm_sim.errors import ScenarioError
from lsbm_sim.scenario import Scenario, load_scenario
from lsbm_sim.world.build import build_world, stream_seeds
from lsbm_sim.world.content import expand_content, make_post


def check_scenario(scenario: Scenario | str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Everything `validate` checks short of running: the schema, the files it names, the network, the authors
    of every post, and the behavior settings that can be checked without loading a model. Returns a summary."""
    scenario = load_scenario(scenario, overrides)
    seeds = stream_seeds(scenario.seed)
    population, network = build_world(scenario, lambda name: np.random.default_rng(seeds[name]))
    authors = np.random.default_rng(seeds["authors"])
    schedule = expand_content(scenario, np.random.default_rng(seeds["content"])) + [
        (iv.post, f"interventions[{k}].post") for k, iv in enumerate(scenario.interventions) if iv.kind == "inject"
    ]
    for k, (spec, field) in enumerate(schedule):
        make_post(spec, k, spec.step, field, population, network, authors)
    if scenario.posting is not None:  # the pool reads, and a rate column exists
        from lsbm_sim.world.posting import posting_rates, read_pool

        read_pool(scenario.resolve(scenario.posting.pool), scenario.posting.text_column, scenario.posting.topic_column)
        posting_rates(scenario.posting, population, np.random.default_rng(0))
    if ":" in scenario.feed.recommender:  # the user's class loads
        from lsbm_sim.engine.recommend import load_recommender

        load_recommender(scenario.feed.recommender, scenario.resolve)
    spec = scenario.behavior
    if spec.head is not None and not scenario.resolve(spec.head).is_file():
        raise ScenarioError(f"behavior.head: file not found: {scenario.resolve(spec.head)}")
    if spec.backend in ("hf", "vllm"):  # the checkpoint must be here (a folder, or a hub id in the local cache)
        from lsbm_sim.behavior.hf import locate_checkpoint

        locate_checkpoint(spec.model, scenario.resolve, spec.allow_pickle)
    if spec.factorized is not None:  # a readable head file; whether it fits the model is checked when that loads
        from lsbm_sim.behavior.factorized import FactorizedHead

        FactorizedHead.load(scenario.resolve(spec.factorized.head))
    return {
        "name": scenario.name,
        "agents": population.size,
        "personas": len(population.personas),
        "follow_edges": network.num_edges,
        "posts": len(schedule),
        "steps": scenario.steps,
        "backend": spec.backend,
    }
