"""Posts: their text, topic, who posts them and when they enter.

A post enters at its step when its authors post it: each author is a root of the post's cascade and its
followers find it in their feeds. `count` authors may seed one post at once (a coordinated campaign, say).
A content entry with `posts: N` stands for N posts (`expand_content` turns it into N post specs, each drawing
its own authors and, under the independent cascade, its own share probability).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lsbm_sim.errors import DataError, ScenarioError
from lsbm_sim.world.network import Network
from lsbm_sim.world.population import Population
from lsbm_sim.scenario import AuthorSpec, BetaActivity, PostBatchSpec, PostSpec, Scenario, UniformActivity


@dataclass
class Post:
    """A post in the simulation; `index` is its item number in the arrays and the event log. `p`: its own share
    probability under the independent cascade (None: the backend's)."""

    index: int
    id: str
    text: str
    topic: str | None
    step: int
    authors: np.ndarray
    p: float | None = None


def expand_content(scenario: Scenario, rng: np.random.Generator) -> list[tuple[PostSpec, str]]:
    """Every post the scenario's `content` lists, in order, with the scenario path of its entry (for messages).

    Hand-written posts come back as they are (and draw nothing from `rng`); an entry with `posts: N` becomes N
    posts with generated ids and texts and, when its `p` is a distribution, one draw of p per post from `rng`.
    """
    expanded: list[tuple[PostSpec, str]] = []
    for k, entry in enumerate(scenario.content):
        field = f"content[{k}]"
        if isinstance(entry, PostSpec):
            expanded.append((entry, field))
            continue
        texts = _batch_texts(entry, field, scenario.resolve)
        ps = _draw_probabilities(entry.p, entry.posts, rng)
        for i, pid in enumerate(entry.ids()):
            spec = PostSpec.model_construct(
                id=pid, text=texts[i % len(texts)].replace("{i}", str(i)), topic=entry.topic, author=entry.author,
                step=entry.step, p=None if ps is None else float(ps[i]), initial_likes=entry.initial_likes,
            )  # fmt: skip
            expanded.append((spec, field))
    return expanded


def _batch_texts(entry: PostBatchSpec, field: str, resolve: Callable[[Path], Path]) -> list[str]:
    if entry.text is not None:
        return [entry.text]
    if entry.texts is not None:
        return list(entry.texts)
    path = resolve(entry.text_file)
    if not path.is_file():
        raise ScenarioError(f"{field}.text_file: file not found: {path}")
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file (byte {exc.start})") from None
    texts = [line for line in lines if line]
    if not texts:
        raise DataError(f"{path}: no texts (one post text per line)")
    return texts


def _draw_probabilities(
    p: float | BetaActivity | UniformActivity | None, count: int, rng: np.random.Generator
) -> np.ndarray | None:
    if p is None:
        return None
    if isinstance(p, BetaActivity):
        return rng.beta(p.a, p.b, size=count)
    if isinstance(p, UniformActivity):
        return rng.uniform(p.low, p.high, size=count)
    return np.full(count, float(p))


def choose_authors(
    author: AuthorSpec, field: str, population: Population, network: Network, rng: np.random.Generator
) -> np.ndarray:
    """The agents who post it. `field` is the scenario path of this author spec, for error messages."""
    n = population.size
    if author.fraction is not None:  # a share of the people: as many as that is in this world
        author = author.model_copy(update={"count": max(1, round(author.fraction * n))})
    if author.count > n:
        raise ScenarioError(f"{field}.count: {author.count} authors but only {n} agents")
    if author.strategy == "random":
        return np.sort(rng.choice(n, size=author.count, replace=False)).astype(np.int32)
    if author.strategy == "influencer":
        order = _by_followers(network)[::-1]  # most followers first; ties to the lower agent number
        if author.top is None:
            return np.sort(order[: author.count]).astype(np.int32)
        if author.top > n:
            raise ScenarioError(f"{field}.top: {author.top} accounts but only {n} agents")
        return np.sort(rng.choice(order[: author.top], size=author.count, replace=False)).astype(np.int32)
    if author.strategy == "followers":
        return _by_follower_weight(author, field, network, rng)
    if author.strategy == "quantile":
        low, high = author.quantiles
        ranked = _by_followers(network)
        members = ranked[int(np.floor(low * n)) : int(np.ceil(high * n))]
        if len(members) < author.count:
            raise ScenarioError(
                f"{field}.quantiles: {len(members)} accounts rank between {low} and {high}, {author.count} needed"
            )
        return np.sort(rng.choice(members, size=author.count, replace=False)).astype(np.int32)
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


def _by_followers(network: Network) -> np.ndarray:
    """Agents from fewest to most followers, ties by agent number; computed once per network (a batch of posts
    asks for it once per post)."""
    cached = network.__dict__.get("_rank_by_followers")
    if cached is None:
        cached = np.lexsort((np.arange(network.n), network.out_degree.astype(np.int64)))
        network.__dict__["_rank_by_followers"] = cached
    return cached


def _by_follower_weight(author: AuthorSpec, field: str, network: Network, rng: np.random.Generator) -> np.ndarray:
    """`count` distinct accounts, each drawn with probability proportional to its follower count."""
    cdf = network.__dict__.get("_follower_cdf")
    if cdf is None:
        total = network.out_degree.sum(dtype=np.int64)
        cdf = np.cumsum(network.out_degree, dtype=np.float64) / max(total, 1)
        network.__dict__["_follower_cdf"] = cdf
    with_followers = int((network.out_degree > 0).sum())
    if with_followers < author.count:
        raise ScenarioError(f"{field}.count: {author.count} authors but only {with_followers} accounts have followers")
    chosen: list[int] = []
    while len(chosen) < author.count:  # distinct authors: redraw the rare repeat (one search per draw)
        pick = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
        if pick not in chosen:
            chosen.append(pick)
    return np.sort(np.array(chosen, dtype=np.int32))


def make_post(spec: PostSpec, index: int, step: int, field: str, population: Population, network: Network,
              rng: np.random.Generator) -> Post:  # fmt: skip
    """The post at position `index` of the schedule, entering at `step`, with its authors chosen now (`field`
    names the scenario entry in an error about them)."""
    return Post(
        index=index,
        id=spec.id,
        text=spec.text,
        topic=spec.topic,
        step=step,
        authors=choose_authors(spec.author, f"{field}.author", population, network, rng),
        p=spec.p,
    )
