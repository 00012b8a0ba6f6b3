"""Out-of-network recommendations: a share of each online person's feed filled with posts from outside their
follows, chosen by a recommender (`feed.recommender`: interest, popularity, random, or "module:Class").

In the manner of X's and OASIS's recommenders, it works in two stages:

1. **Candidates** per persona archetype (a few thousand archetypes whatever the population), from three sources
   over the recent posts (younger than `feed.candidate_age` steps, not removed): the `CANDIDATES` posts most
   similar to the archetype's persona (sentence-embedding cosine, the newer of equally similar posts first;
   kept up to date by merging each step's new posts into the running top list, so no step scores all posts
   against all people), the most engaged posts, and the newest posts.
2. **Ranking**: the recommender scores each (archetype, candidate) row; each online person then draws the posts
   for their `round(feed.size * feed.out_of_network)` slots from their archetype's candidates with
   probability proportional to exp(score / temperature), and posts they were shown before, engaged with,
   wrote, that come from an account they follow, or that their in-network feed shows this step are dropped.

Your own recommender is a class with a `score(candidates)` method returning one number per row (higher is
shown more), and optionally a `temperature` (default 0.1). Name it in the scenario as "module:Class" (an
importable module) or "file.py:Class" (a file beside the scenario). A run's checkpoints keep its attributes
(give it `__getstate__` and `__setstate__` to choose which), so keep them picklable:

>>> class Newest:
...     temperature = 0.05
...     def score(self, candidates):
...         return -candidates.age.astype(float)   # the newest posts first, whatever the persona
>>> Newest().score(Candidates.example()).tolist()
[-0.0, -3.0]
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lsbm_sim.errors import ScenarioError
from lsbm_sim.engine.feed import Exposures, stable_order
from lsbm_sim.engine.state import ENGAGED, EXPOSED, sorted_unique

if TYPE_CHECKING:
    from lsbm_sim.engine.model import SocialModel

RECOMMENDED = -2
"""The sharer (`parent_id` in the event log) of an exposure a recommender put into a feed."""

CANDIDATES = 100
"""Candidates per source and archetype."""


@dataclass
class Candidates:
    """The rows a recommender scores: one (persona archetype, post) pair each.

    `archetype`: the persona archetype of the people the row is for; `persona`: its persona text is
    `personas[archetype]`; `item`: the post's number (its text is `texts[item]`); `similarity`: cosine similarity
    of the persona's and the post's sentence embeddings; `age`: hours since it was posted; `engagement`: its
    likes, shares and comments so far; `reach`: people shown it so far; `author`: who posted it.
    """

    archetype: np.ndarray
    item: np.ndarray
    similarity: np.ndarray
    age: np.ndarray
    engagement: np.ndarray
    reach: np.ndarray
    author: np.ndarray
    personas: Any = ()
    texts: Any = ()

    def __len__(self) -> int:
        return len(self.item)

    @classmethod
    def example(cls) -> Candidates:
        """Two rows, for documentation and tests."""
        return cls(
            archetype=np.array([0, 0]), item=np.array([0, 1]), similarity=np.array([0.4, 0.1]),
            age=np.array([0, 3]), engagement=np.array([2, 40]), reach=np.array([10, 300]), author=np.array([5, 9]),
            personas=["a persona"], texts=["a post", "another post"],
        )  # fmt: skip


class InterestRecommender:
    """Posts close to the person's interests, with a lift for engagement and a decay with age."""

    temperature = 0.05

    def score(self, c: Candidates) -> np.ndarray:
        return c.similarity + 0.03 * np.log1p(c.engagement) - 0.01 * c.age


class PopularityRecommender:
    """The most engaged recent posts, for everyone alike."""

    temperature = 0.5

    def score(self, c: Candidates) -> np.ndarray:
        return np.log1p(c.engagement) - 0.05 * c.age


class RandomRecommender:
    """Any recent post, uniformly (among the candidates: the similar, the popular and the newest)."""

    temperature = 1.0

    def score(self, c: Candidates) -> np.ndarray:
        return np.zeros(len(c))


BUILT_IN = {"interest": InterestRecommender, "popularity": PopularityRecommender, "random": RandomRecommender}


def load_recommender(name: str, resolve=Path) -> Any:
    """A built-in recommender by name, or an instance of the class "module:Class" or "file.py:Class" (a file
    path resolves against the scenario's folder), made with no arguments."""
    if name in BUILT_IN:
        return BUILT_IN[name]()
    module_name, _, class_name = name.rpartition(":")
    try:
        if module_name.endswith(".py"):
            path = resolve(module_name)
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or not path.is_file():
                raise ImportError(f"no file {path}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        raise ScenarioError(f"feed.recommender: cannot load {name!r} ({exc})") from None
    recommender = cls()
    if not callable(getattr(recommender, "score", None)):
        raise ScenarioError(f"feed.recommender: {name!r} has no score(candidates) method")
    return recommender


class Recommending:
    """The engine's side of recommendations: candidates, the recommender's scores, each person's picks."""

    def __init__(self, model: SocialModel, recommender: Any, encode):
        feed = model.scenario.feed
        self.model = model
        self.recommender = recommender
        self.name = feed.recommender
        self.slots = int(round(feed.size * feed.out_of_network))
        self.candidate_age = feed.candidate_age
        self.temperature = float(getattr(recommender, "temperature", 0.1))
        network = model.network
        self._edge_key = network.source.astype(np.int64) * network.n + network.target  # sorted: follows look-ups
        self._encode = encode
        self._persona_vectors = encode(list(model.population.personas)) if encode is not None else None
        self._text_id: dict[str, int] = {}
        self._text_similarity = np.zeros((len(model.population.personas), 0), dtype=np.float32)  # archetype x text
        self._item_text = np.zeros(0, dtype=np.int32)
        # Running top list by similarity, per archetype (item numbers, -1 = empty).
        self._similar = np.full((len(model.population.personas), 0), -1, dtype=np.int64)

    # -------------------------------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict[str, Any]:
        """What a step changes: the running top lists and the recommender's own attributes. The rest (the
        encoder, persona vectors, text similarities, the follow keys) is rebuilt from the scenario with the
        model, so a checkpoint never holds the encoder or its lock."""
        return {"similar": self._similar, "recommender": self.recommender.__getstate__()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._similar = state["similar"]
        put_state(self.recommender, state["recommender"])

    # --------------------------------------------------------------------------------------- candidates

    def _similarity_of(self, items: np.ndarray) -> np.ndarray:
        """archetype x items similarity, through the distinct texts (many posts share a pool text): each new
        text is embedded and compared with every persona once."""
        if self._encode is None:
            return np.zeros((len(self.model.population.personas), len(items)), dtype=np.float32)
        texts, known = self.model.item_texts, len(self._item_text)
        if known < len(texts):
            added = texts[known:]
            self.add_texts(added)
            ids = np.array([self._text_id[t] for t in added], dtype=np.int32)
            self._item_text = np.concatenate([self._item_text, ids])
        return self._text_similarity[:, self._item_text[items]]

    def add_texts(self, texts: list[str]) -> None:
        """Embed texts not seen before and compare them with every persona (a posting pool: all at once, at
        setup, rather than a few each step)."""
        new_texts = [t for t in dict.fromkeys(texts) if t not in self._text_id]
        if new_texts and self._encode is not None:
            block = (self._persona_vectors @ self._encode(new_texts).T).astype(np.float32)
            self._text_similarity = np.concatenate([self._text_similarity, block], axis=1)
            base = len(self._text_id)
            self._text_id.update((t, base + k) for k, t in enumerate(new_texts))

    def _recent(self, t: int) -> np.ndarray:
        m = self.model
        age = t - m.entered
        ok = (m.entered >= 0) & (age < self.candidate_age) & ~m.removed & ~m.retired
        return np.flatnonzero(ok)

    def _update_similar(self, recent: np.ndarray, entered_now: np.ndarray) -> None:
        """Merge this step's new posts into each archetype's top list by similarity; drop posts no longer recent."""
        current = self._similar
        still = np.isin(current, recent) & (current >= 0)
        merged = np.concatenate([np.where(still, current, -1), np.broadcast_to(entered_now, (len(current), len(entered_now)))], axis=1)
        if merged.shape[1] == 0:
            return
        score = np.full(merged.shape, -np.inf, dtype=np.float32)
        valid = merged >= 0
        if valid.any():
            items = sorted_unique(merged[valid])
            sim = self._similarity_of(items)
            column = np.searchsorted(items, np.maximum(merged, 0))
            score = np.where(valid, np.take_along_axis(sim, column, axis=1), -np.inf)
        keep = min(CANDIDATES, merged.shape[1])
        # Ties (equal similarity: a pool repeats its texts) go to the newer post, as a recommender keeps the
        # fresher of two equally relevant posts; were they to go to the older, old copies would hold the list and
        # a post would be a candidate only while newest or, hours later, once much engaged. The order is total
        # (by item number), so the list does not depend on the order posts arrived in within a step.
        order = np.lexsort((-merged, -score), axis=1)[:, :keep]
        self._similar = np.where(np.take_along_axis(valid, order, axis=1), np.take_along_axis(merged, order, axis=1), -1)

    def candidates(self, t: int) -> Candidates:
        m = self.model
        recent = self._recent(t)
        entered_now = np.flatnonzero(m.entered == t)
        entered_now = entered_now[np.isin(entered_now, recent)]
        self._update_similar(recent, entered_now)
        engagement = m.item_engagement()
        k = min(CANDIDATES, len(recent))
        popular = recent[np.lexsort((recent, -engagement[recent]))[:k]]
        newest = recent[np.lexsort((recent, -m.entered[recent]))[:k]]
        n_types = len(m.population.personas)
        hours_per_step = m.scenario.time.step_minutes / 60
        shared = np.concatenate([popular, newest])
        rows = np.concatenate([self._similar, np.broadcast_to(shared, (n_types, len(shared)))], axis=1)
        archetype = np.repeat(np.arange(n_types), rows.shape[1])
        item = rows.reshape(-1)
        keep = item >= 0
        archetype, item = archetype[keep], item[keep]
        # One row per (archetype, post): a post found by two sources is scored once.
        key = sorted_unique(archetype.astype(np.int64) * len(m.item_ids) + item)
        archetype, item = (key // len(m.item_ids)).astype(np.int32), key % len(m.item_ids)
        if len(item):
            items = sorted_unique(item)
            sim = self._similarity_of(items)[archetype, np.searchsorted(items, item)]
        else:
            sim = np.zeros(0, dtype=np.float32)
        return Candidates(
            archetype=archetype, item=item, similarity=sim.astype(np.float64), age=(t - m.entered[item]) * hours_per_step,
            engagement=engagement[item], reach=m.item_reach[item].copy(), author=m.first_author[item],
            personas=m.population.personas, texts=m.item_texts,
        )  # fmt: skip

    # ---------------------------------------------------------------------------------------- the picks

    def add_recommendations(self, exposures: Exposures, online: np.ndarray | None, t: int,
                            rng: np.random.Generator) -> Exposures:  # fmt: skip
        """The in-network exposures with each online person's recommended posts after them."""
        m = self.model
        if self.slots == 0:
            return exposures
        people = np.arange(m.num_agents, dtype=np.int32) if online is None else np.flatnonzero(online).astype(np.int32)
        c = self.candidates(t)
        if len(c) == 0 or len(people) == 0:
            return exposures
        score = np.asarray(self.recommender.score(c), dtype=np.float64)
        if score.shape != (len(c),) or not np.isfinite(score).all():
            raise ScenarioError(f"feed.recommender {self.name!r}: score() must return one finite number per candidate")

        # Per archetype, a cumulative distribution over its rows (rows are sorted by archetype).
        n_types = len(m.population.personas)
        starts = np.searchsorted(c.archetype, np.arange(n_types + 1))
        z = score / self.temperature
        group_max = np.full(n_types, -np.inf)
        np.maximum.at(group_max, c.archetype, z)
        weight = np.exp(z - group_max[c.archetype])
        cumulative = np.cumsum(weight)
        before = np.concatenate([[0.0], cumulative])[starts[:-1]]
        total = np.concatenate([[0.0], cumulative])[starts[1:]] - before

        # Twice the slots drawn per person (with replacement), the invalid dropped, the first `slots` kept.
        archetype = m.population.archetype[people]
        has = total[archetype] > 0
        people, archetype = people[has], archetype[has]
        draws = 2 * self.slots
        person = np.repeat(people, draws)
        kind = np.repeat(archetype, draws)
        target = before[kind] + rng.random(len(person)) * total[kind]
        row = np.minimum(np.searchsorted(cumulative, target, side="right"), starts[kind + 1] - 1)
        item = c.item[row].astype(np.int32)

        pair = person.astype(np.int64) * len(m.item_ids) + item
        first = np.zeros(len(pair), dtype=bool)
        first[np.unique(pair, return_index=True)[1]] = True  # a post drawn twice for a person counts once
        shown = np.isin(pair, exposures.agent.astype(np.int64) * len(m.item_ids) + exposures.item)
        author = m.first_author[item]
        follows = contains(self._edge_key, author.astype(np.int64) * m.network.n + person)
        seen = (m.state.status(item, person) & (EXPOSED | ENGAGED)) != 0
        ok = first & ~shown & (author != person) & ~follows & ~seen
        person, item = person[ok], item[ok]
        # The first `slots` valid draws of each person (draws are grouped by person, in draw order).
        place = np.arange(len(person)) - np.searchsorted(person, person)
        keep = place < self.slots
        person, item, place = person[keep], item[keep], place[keep]

        in_network = np.bincount(exposures.agent, minlength=m.num_agents)
        agent = np.concatenate([exposures.agent, person])
        rank = np.concatenate([exposures.rank, (in_network[person] + place).astype(np.int32)])
        order = stable_order(agent.astype(np.int64) * (int(rank.max()) + 1) + rank)  # canonical: person, position
        return Exposures(
            agent=agent[order].astype(np.int32),
            item=np.concatenate([exposures.item, item])[order].astype(np.int32),
            sharer=np.concatenate([exposures.sharer, np.full(len(person), RECOMMENDED, dtype=np.int32)])[order],
            rank=rank[order].astype(np.int32),
        )


def put_state(obj: Any, state: Any) -> None:
    """Give `obj` the state `obj.__getstate__()` returned: through its own `__setstate__`, or as pickle does for
    the default forms (None: nothing; a dict of attributes; a pair of such dicts, the second for __slots__)."""
    setstate = getattr(obj, "__setstate__", None)
    if setstate is not None:
        setstate(state)
        return
    attributes, slots = state if isinstance(state, tuple) else (state, None)
    if attributes:
        obj.__dict__.update(attributes)
    for name, value in (slots or {}).items():
        setattr(obj, name, value)


def contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each key occurs in the sorted array (a binary search each; no sort of the big array)."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[at] == keys


def make_recommender(scenario, model: SocialModel) -> Recommending | None:
    """The scenario's recommender, or None (`feed.recommender: none`: today's in-network feed only)."""
    feed = scenario.feed
    if feed.recommender == "none" or round(feed.size * feed.out_of_network) == 0:
        return None
    recommender = load_recommender(feed.recommender, scenario.resolve)
    encoder = getattr(model.behavior, "encoder", None)
    if encoder is None and feed.recommender not in ("popularity", "random"):
        from lsbm_sim.behavior.surrogate import default_encoder

        encoder = default_encoder()
    recommending = Recommending(model, recommender, encoder.encode if encoder is not None else None)
    recommending.add_texts(list(model.item_texts) + (model.posting.pool.texts if model.posting is not None else []))
    return recommending
