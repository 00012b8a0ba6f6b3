"""People post: who writes a post in a step, and which text from the scenario's pool they post.

Each person posts in a step with their own rate (`posting.rate`: one number, a distribution drawn once per
person, or a persona CSV column). A poster picks a text from the pool (`posting.pool`: CSV, Parquet or JSONL with
`text` and optional `topic`) by their interests: text k is chosen with weight exp(interest * similarity(persona,
text k)), the cosine similarity of the sentence embeddings the behavior model uses, so people mostly post about
what they care about and sometimes about anything. Without a sentence encoder (the classic backends) the
choice is uniform. Every draw comes from the model's `posting` stream, one vector per step.

>>> pool = read_pool(Path("scenarios/data/posts.jsonl"))  # doctest: +SKIP
>>> pool.texts[:1]  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lsbm_sim.errors import DataError, ScenarioError
from lsbm_sim.world.population import Population
from lsbm_sim.scenario import BetaActivity, ColumnRate, PostingSpec, UniformActivity


@dataclass
class Pool:
    """The texts people post: `texts[k]`, `topics[k]` (None where the file has no topic)."""

    texts: list[str]
    topics: list[str | None]

    def __len__(self) -> int:
        return len(self.texts)


def read_pool(path: Path, text_column: str = "text", topic_column: str | None = "topic") -> Pool:
    """Read a pool file (.csv, .tsv, .parquet, .jsonl): texts from `text_column`, topics from `topic_column` when
    the file has it (a column asked for by another name than the default must be there)."""
    from lsbm_sim.readers import describe_rows, load_table, read_jsonl

    if not path.is_file():
        raise DataError(f"posting.pool: file not found: {path}")
    # JSONL through the reader that names a bad line; the rest through the table loader the fine-tuning uses.
    frame = pd.DataFrame(read_jsonl(path)) if path.suffix.lower() in (".jsonl", ".ndjson") else load_table(path)
    if text_column not in frame.columns:
        raise DataError(f"{path}: no {text_column!r} column for posting.text_column (columns: {list(frame.columns)})")
    texts = frame[text_column].tolist()
    empty = [i + 1 for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if empty:
        raise DataError(f"{path}: {text_column!r} is empty in {describe_rows(empty)}")
    if not texts:
        raise DataError(f"{path}: no posts")
    topics = [None] * len(texts)
    if topic_column is not None and topic_column != "topic" and topic_column not in frame.columns:
        raise DataError(f"{path}: no {topic_column!r} column for posting.topic_column (columns: {list(frame.columns)})")
    if topic_column is not None and topic_column in frame.columns:
        topics = [str(t) if pd.notna(t) and str(t).strip() else None for t in frame[topic_column].tolist()]
    return Pool(texts=texts, topics=topics)


def posting_rates(spec: PostingSpec, population: Population, rng: np.random.Generator) -> np.ndarray:
    """Each person's probability of posting in a step."""
    rate, n = spec.rate, population.size
    if isinstance(rate, BetaActivity):
        return rng.beta(rate.a, rate.b, size=n)
    if isinstance(rate, UniformActivity):
        return rng.uniform(rate.low, rate.high, size=n)
    if isinstance(rate, ColumnRate):
        if rate.column not in population.traits.columns:
            raise ScenarioError(
                f"posting.rate.column: {rate.column!r} is not a column of the persona CSV "
                f"(columns: {list(population.traits.columns)})"
            )
        values = pd.to_numeric(population.traits[rate.column].astype(str), errors="coerce").to_numpy(np.float64)
        bad = np.flatnonzero(~np.isfinite(values) | (values < 0) | (values > 1))
        if len(bad):
            raise DataError(f"persona column {rate.column!r} must be a number in [0, 1] (row(s) {bad[:5].tolist()})")
        return values
    return np.full(n, float(rate))


class Posting:
    """Who posts in a step and what.

    `choice_cdf[a]` is the cumulative distribution over pool texts of a person of persona archetype a (one row
    per archetype: a few thousand rows whatever the population).
    """

    def __init__(self, spec: PostingSpec, pool: Pool, population: Population, rates: np.ndarray,
                 encode=None):  # fmt: skip
        self.pool = pool
        self.rates = rates
        self.archetype = population.archetype
        n_types = len(population.personas)
        if encode is None or spec.interest == 0:
            weights = np.ones((n_types, len(pool)))
        else:
            similarity = encode(list(population.personas)) @ encode(pool.texts).T
            logits = spec.interest * similarity.astype(np.float64)
            weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        cdf = np.cumsum(weights, axis=1)
        self.choice_cdf = cdf / cdf[:, -1:]

    def state_dict(self) -> dict:
        """Nothing a step changes lives here: the draws come from the model's `posting` stream, whose state the
        checkpoint keeps with the other streams; the pool, the rates and the choice table are rebuilt from the
        scenario (the table is people's archetypes x pool texts: large, and derived)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"posting holds no checkpoint state, got {sorted(state)}")

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """This step's posters (ascending) and the pool index of the text each posts."""
        authors = np.flatnonzero(rng.random(len(self.rates)) < self.rates).astype(np.int32)
        u = rng.random(len(authors))
        cdf = self.choice_cdf[self.archetype[authors]]  # posters x pool: a step's posters, not everyone
        text = (cdf < u[:, None]).sum(axis=1)
        return authors, np.minimum(text, len(self.pool) - 1)


def make_posting(scenario, population: Population, behavior, stream) -> Posting | None:
    """The scenario's posting, or None when people do not post. Texts are chosen by interest when the behavior
    model has a sentence encoder (the surrogate), uniformly otherwise."""
    spec = scenario.posting
    if spec is None:
        return None
    pool = read_pool(scenario.resolve(spec.pool), spec.text_column, spec.topic_column)
    rates = posting_rates(spec, population, stream("posting_rates"))
    encoder = getattr(behavior, "encoder", None)
    return Posting(spec, pool, population, rates, encode=encoder.encode if encoder is not None else None)
