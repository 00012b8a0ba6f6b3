"""What a behavior model is asked and what it answers.

A behavior model answers "how would this person react to this post, seen in this context?" with a probability
for every reaction. One question is a `BehaviorQuery`; the engine asks many at once as a `QueryBatch`, a table of
integer codes (which persona, which post, which label, binned social context) plus the texts the codes point to,
so that a million exposures cost array operations and identical questions can be found by comparing integers.

Social-context numbers are binned before they reach a model (`bin_value`): a prompt says "10+ likes", not
"12 likes", so that the number of distinct prompts stays bounded and a cache can answer repeats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from lsbm_sim.errors import LsbmError
from lsbm_sim.vocabulary import DEFAULT_REACTIONS


# Lower bounds of the bins; a value is replaced by the largest bound not above it.
PROOF_BINS = np.array([0, 1, 3, 10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000], dtype=np.int64)
SHARER_BINS = np.array([0, 1, 2, 3, 5, 10, 20, 50], dtype=np.int64)
# A post's age in minutes: quarter hours, then doubling hours (60, 120, ... 3840 are 1, 2, ... 64 hours).
AGE_BINS = np.array([0, 15, 30, 60, 120, 240, 480, 960, 1920, 3840], dtype=np.int64)
SEEN_BINS = np.array([0, 1, 2, 3, 5, 10], dtype=np.int64)


def bin_value(values: Any, bins: np.ndarray) -> np.ndarray:
    """Replace each value by the lower bound of its bin (values below 0 count as 0).

    >>> bin_value([0, 2, 12, 5000], PROOF_BINS).tolist()
    [0, 1, 10, 3000]
    """
    values = np.maximum(np.asarray(values, dtype=np.int64), 0)
    return bins[np.searchsorted(bins, values, side="right") - 1].astype(np.int32)


@dataclass(frozen=True)
class SocialContext:
    """What a person sees around a post besides its text.

    `sharers`: people this person follows who shared it (0 when it arrived another way, e.g. promoted);
    `proof`: likes and comments the post has; `age`: minutes since it was posted; `seen`: how often this person
    was shown it before; `label`: a note the platform attached (a fact-check warning, say), or None.
    """

    sharers: int = 1
    proof: int = 0
    age: int = 0
    seen: int = 0
    label: str | None = None
    promoted: bool = False


@dataclass(frozen=True)
class BehaviorQuery:
    """One question for a behavior model: this persona, this post, in this context.

    `disposition` says in a number what the persona text says in words about how readily this person reacts
    (-1 rarely, 0 sometimes, 1 often); language models read the text, the embedded surrogate reads the number.
    """

    persona: str
    content: str
    context: SocialContext = field(default_factory=SocialContext)
    disposition: float = 0.0


# The columns of a QueryBatch that describe the question (everything a prompt can show).
PROMPT_FIELDS: tuple[str, ...] = ("persona_id", "item_id", "label_id", "sharers", "proof", "age", "seen", "promoted")


@dataclass
class QueryBatch:
    """Many queries as columns. Row i asks: persona `personas[persona_id[i]]` sees post `contents[item_id[i]]`.

    `labels[0]` is always the empty label (no label). `dispositions[k]` is persona k's disposition (see
    BehaviorQuery). `agent_id` is the simulated person asking (-1 outside a simulation); only models that depend
    on the individual (e.g. linear threshold) read it, and `n_sharers` (the exact, unbinned number of followees
    who shared) is kept for the same reason.
    """

    personas: Sequence[str]
    contents: Sequence[str]
    labels: Sequence[str]
    persona_id: np.ndarray
    item_id: np.ndarray
    label_id: np.ndarray
    sharers: np.ndarray
    proof: np.ndarray
    age: np.ndarray
    seen: np.ndarray
    promoted: np.ndarray
    agent_id: np.ndarray
    n_sharers: np.ndarray
    dispositions: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.dispositions is None:
            self.dispositions = np.zeros(len(self.personas))
        if len(self.dispositions) != len(self.personas):
            raise ValueError(f"QueryBatch has {len(self.dispositions)} dispositions for {len(self.personas)} personas")
        n = len(self.persona_id)
        for name in ("item_id", "label_id", "sharers", "proof", "age", "seen", "promoted", "agent_id", "n_sharers"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"QueryBatch column {name!r} has {len(getattr(self, name))} rows, expected {n}")
        if len(self.labels) == 0 or self.labels[0] != "":
            raise ValueError("QueryBatch.labels[0] must be '' (the 'no label' entry)")

    def __len__(self) -> int:
        return len(self.persona_id)

    @classmethod
    def from_queries(cls, queries: Sequence[BehaviorQuery]) -> QueryBatch:
        """Build a batch from query objects; context numbers are binned as the engine bins them."""
        personas: dict[str, int] = {}
        dispositions: dict[str, float] = {}
        contents: dict[str, int] = {}
        labels: dict[str, int] = {"": 0}
        pid, iid, lid = [], [], []
        for q in queries:
            pid.append(personas.setdefault(q.persona, len(personas)))
            dispositions.setdefault(q.persona, q.disposition)
            iid.append(contents.setdefault(q.content, len(contents)))
            lid.append(labels.setdefault(q.context.label or "", len(labels)))
        ctx = [q.context for q in queries]
        n_sharers = np.array([c.sharers for c in ctx], dtype=np.int32)
        return cls(
            personas=list(personas),
            contents=list(contents),
            labels=list(labels),
            persona_id=np.array(pid, dtype=np.int32),
            item_id=np.array(iid, dtype=np.int32),
            label_id=np.array(lid, dtype=np.int32),
            sharers=bin_value(n_sharers, SHARER_BINS),
            proof=bin_value([c.proof for c in ctx], PROOF_BINS),
            age=bin_value([c.age for c in ctx], AGE_BINS),
            seen=bin_value([c.seen for c in ctx], SEEN_BINS),
            promoted=np.array([c.promoted for c in ctx], dtype=bool),
            agent_id=np.full(len(queries), -1, dtype=np.int32),
            n_sharers=n_sharers,
            dispositions=np.array(list(dispositions.values()), dtype=np.float64),
        )

    def take(self, rows: np.ndarray) -> QueryBatch:
        """The batch of the given rows (the text tables are shared, not copied)."""
        return QueryBatch(
            personas=self.personas,
            contents=self.contents,
            labels=self.labels,
            dispositions=self.dispositions,
            **{name: getattr(self, name)[rows] for name in _COLUMNS},
        )

    def query(self, i: int) -> BehaviorQuery:
        """Row i as a query object (with binned context values)."""
        label = self.labels[int(self.label_id[i])]
        persona = int(self.persona_id[i])
        return BehaviorQuery(
            persona=self.personas[persona],
            disposition=float(self.dispositions[persona]),
            content=self.contents[int(self.item_id[i])],
            context=SocialContext(
                sharers=int(self.sharers[i]),
                proof=int(self.proof[i]),
                age=int(self.age[i]),
                seen=int(self.seen[i]),
                label=label or None,
                promoted=bool(self.promoted[i]),
            ),
        )

    def __iter__(self):
        return (self.query(i) for i in range(len(self)))

    def key_columns(self, fields: Sequence[str]) -> np.ndarray:
        """The named columns stacked as an int64 matrix (rows x fields): equal rows are the same question."""
        if not fields:
            return np.zeros((len(self), 0), dtype=np.int64)
        return np.stack([np.asarray(getattr(self, f), dtype=np.int64) for f in fields], axis=1)


_COLUMNS = ("persona_id", "item_id", "label_id", "sharers", "proof", "age", "seen", "promoted", "agent_id", "n_sharers")


def as_batch(queries: QueryBatch | Sequence[BehaviorQuery]) -> QueryBatch:
    """Accept a QueryBatch or a sequence of BehaviorQuery objects."""
    return queries if isinstance(queries, QueryBatch) else QueryBatch.from_queries(list(queries))


@runtime_checkable
class BehaviorModel(Protocol):
    """Anything with a reaction set and `predict_proba` is a behavior model.

    `predict_proba(queries)` takes a QueryBatch (or a list of BehaviorQuery) and returns an array of shape
    (len(queries), len(reactions)) whose rows are probabilities summing to 1.

    Optional attributes the broker reads (see `BehaviorModelBase` for defaults):
    - `depends_on`: the QueryBatch columns that determine the answer; the broker asks once per distinct
      combination. A model whose answer depends on the individual lists "agent_id".
    - `fingerprint`: a string naming the model's weights and prompt exactly; with it the broker may keep answers
      in a persistent cache shared across runs. None: never cached across runs.
    - `bind(simulation)`: called once by the simulation before the first step (e.g. to draw per-agent thresholds).
    """

    reactions: tuple[str, ...]

    def predict_proba(self, queries: QueryBatch | Sequence[BehaviorQuery]) -> np.ndarray: ...


class BehaviorModelBase:
    """Defaults for the optional parts of the BehaviorModel protocol."""

    reactions: tuple[str, ...] = DEFAULT_REACTIONS
    depends_on: tuple[str, ...] = PROMPT_FIELDS
    fingerprint: str | None = None

    def bind(self, simulation: Any) -> None:
        """Called once before the first step; the default needs nothing from the simulation."""

    def cache_key(self, query: BehaviorQuery) -> str:
        """The text that identifies a query in a persistent cache; LLM scorers return the rendered prompt."""
        c = query.context
        return (
            f"{query.persona}\x1f{query.content}\x1f{c.sharers}\x1f{c.proof}\x1f{c.age}\x1f{c.seen}"
            f"\x1f{c.label or ''}\x1f{int(c.promoted)}"
        )

    def close(self) -> None:
        """Release what the model holds (GPU memory, connections)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class BehaviorModelError(LsbmError, RuntimeError):
    """A behavior model could not answer (bad output, unreachable server, ...). The message says what and where."""


def check_probabilities(probs: np.ndarray, n_rows: int, reactions: Sequence[str], source: str) -> np.ndarray:
    """Validate a model's answer and return it as float64: right shape, finite, non-negative, rows summing to 1."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (n_rows, len(reactions)):
        raise BehaviorModelError(
            f"{source} returned probabilities of shape {probs.shape}, expected ({n_rows}, {len(reactions)})"
        )
    bad = ~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1)
    if bad.any():
        raise BehaviorModelError(f"{source} returned invalid probabilities in row {int(np.flatnonzero(bad)[0])}")
    sums = probs.sum(axis=1)
    off = np.abs(sums - 1.0) > 1e-4
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise BehaviorModelError(f"{source} returned probabilities summing to {sums[i]:.6f} in row {i}")
    return probs / sums[:, None]
