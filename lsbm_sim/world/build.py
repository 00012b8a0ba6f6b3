"""The world a scenario describes: its people (personas, activity) and who follows whom, built from the
scenario's random streams. A network read from a file fixes the number of people and the order of the rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from lsbm_sim.errors import DataError, ScenarioError
from lsbm_sim.world.network import Network, generate_network
from lsbm_sim.world.population import Population, build_population
from lsbm_sim.scenario import FILE_KINDS, Scenario


# New streams go at the end: a SeedSequence's i-th child does not depend on how many are spawned, so the
# streams listed before keep their numbers.
STREAMS = ("population", "network", "authors", "activity", "feed", "sampling", "interventions", "thresholds", "content")


def stream_seeds(seed: int) -> dict[str, np.random.SeedSequence]:
    """The seed of each named random stream of a run with this seed."""
    return dict(zip(STREAMS, np.random.SeedSequence(seed).spawn(len(STREAMS))))


def build_world(scenario: Scenario, stream: Callable[[str], np.random.Generator]) -> tuple[Population, Network]:
    """The population and the network. A network file fixes the number of people; a stochastic block model
    needs the people's traits first."""
    pop_spec, net_spec = scenario.population, scenario.network
    persona_path = scenario.resolve(pop_spec.path) if pop_spec.path is not None else None
    if net_spec.kind in FILE_KINDS:
        from lsbm_sim.world.graph_files import load_network  # (pyarrow's reader: only for graphs from files)

        network = load_network(net_spec, scenario.resolve(net_spec.path))
        if pop_spec.size is not None and pop_spec.size != network.n:
            raise ScenarioError(f"population.size is {pop_spec.size} but {net_spec.path} has {network.n} nodes")
        population = build_population(pop_spec, network.n, stream("population"), persona_path)
        population = align_population(population, network, persona_path)
        return population, network
    population = build_population(pop_spec, None, stream("population"), persona_path)
    degree_file = scenario.resolve(net_spec.path) if net_spec.path is not None else None
    traits = population.traits if net_spec.kind == "stochastic_block" else None  # (made only when needed)
    network = generate_network(net_spec, population.size, stream("network"), traits, degree_file)
    return population, network


def align_population(population: Population, network: Network, path: Path | None) -> Population:
    """Put persona rows in the network's node order (by the CSV's `node` column, when it has one)."""
    if population.size != network.n:
        raise DataError(f"{path}: {population.size} personas for {network.n} network nodes")
    if population.node_labels is None:
        return population
    position = {str(label): i for i, label in enumerate(population.node_labels)}
    labels = network.node_labels if network.node_labels is not None else list(range(network.n))
    missing = [lab for lab in labels if str(lab) not in position]
    if missing:
        raise DataError(f"{path}: no persona row for network node(s) {missing[:5]}")
    order = np.array([position[str(lab)] for lab in labels])
    return population.reordered(order, labels)
