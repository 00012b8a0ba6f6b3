"""Posts: their text, topic, who posts them and when they enter.

A post enters at its step when its authors post it: each author is a root of the post's cascade and its
followers find it in their feeds. `count` authors may seed one post at once (a coordinated campaign, say).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lsbm_sim.errors import ScenarioError
from lsbm_sim.network import Network
from lsbm_sim.population import Population
from lsbm_sim.scenario import AuthorSpec, PostSpec


@dataclass
class Post:
    """A post in the simulation; `index` is its item number in the arrays and the event log."""

    index: int
    id: str
    text: str
    topic: str | None
    step: int
    authors: np.ndarray


def choose_authors(
    author: AuthorSpec, field: str, population: Population, network: Network, rng: np.random.Generator
) -> np.ndarray:
    """The agents who post it. `field` is the scenario path of this author spec, for error messages."""
    n = population.size
    if author.count > n:
        raise ScenarioError(f"{field}.count: {author.count} authors but only {n} agents")
    if author.strategy == "random":
        return np.sort(rng.choice(n, size=author.count, replace=False)).astype(np.int32)
    if author.strategy == "influencer":
        # Most followers first; ties go to the lower agent number so the choice is reproducible.
        order = np.lexsort((np.arange(n), -network.out_degree.astype(np.int64)))
        return np.sort(order[: author.count]).astype(np.int32)
    if author.strategy == "node":
        index = network.index_of(author.node)
        if index is None:
            raise ScenarioError(f"{field}.node: no node {author.node!r} in the network")
        if author.count != 1:
            raise ScenarioError(f"{field}.count: strategy 'node' names one author")
        return np.array([index], dtype=np.int32)
    # community: agents whose persona trait has the value ("interests" matches any of a person's interests)
    traits = population.traits
    if author.trait not in traits.columns:
        raise ScenarioError(f"{field}.trait: {author.trait!r} is not a persona trait (traits: {list(traits.columns)})")
    column = traits[author.trait].astype(str)
    if author.trait == "interests":
        members = np.flatnonzero(column.str.split(";").apply(lambda xs: author.value in xs).to_numpy())
    else:
        members = np.flatnonzero((column == str(author.value)).to_numpy())
    if len(members) < author.count:
        raise ScenarioError(
            f"{field}.value: {len(members)} agents have {author.trait} = {author.value!r}, {author.count} needed"
        )
    return np.sort(rng.choice(members, size=author.count, replace=False)).astype(np.int32)


def make_post(spec: PostSpec, index: int, step: int, field: str, population: Population, network: Network,
              rng: np.random.Generator) -> Post:  # fmt: skip
    return Post(
        index=index,
        id=spec.id,
        text=spec.text,
        topic=spec.topic,
        step=step,
        authors=choose_authors(spec.author, f"{field}.author", population, network, rng),
    )
