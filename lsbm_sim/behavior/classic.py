"""Classic diffusion models as behavior models: the validation baselines.

With activity 1 and the `all` feed, `IndependentCascadeModel` reproduces the independent cascade model exactly
(each share gives each follower one independent chance p to share in turn) and `LinearThresholdModel` the linear
threshold model (a person shares once the fraction of the accounts they follow that shared reaches their own
threshold, drawn uniformly in [0, 1] once per person).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lsbm_sim.behavior.base import DEFAULT_REACTIONS, BehaviorModelBase, BehaviorQuery, QueryBatch, as_batch


def _row(probabilities: Mapping[str, float], reactions: Sequence[str]) -> np.ndarray:
    """A probability row over `reactions`; `ignore` takes whatever the given probabilities leave."""
    unknown = set(probabilities) - set(reactions)
    if unknown:
        raise ValueError(f"probabilities name unknown reactions {sorted(unknown)}")
    row = np.array([float(probabilities.get(r, 0.0)) for r in reactions])
    if (row < 0).any() or (row > 1).any():
        raise ValueError("probabilities must lie in [0, 1]")
    rest = 1.0 - row.sum()
    if "ignore" not in probabilities:
        row[list(reactions).index("ignore")] = rest
    elif abs(rest) > 1e-9:
        raise ValueError(f"probabilities sum to {row.sum():.6f}, not 1")
    if rest < -1e-9:
        raise ValueError(f"probabilities sum to {1 - rest:.6f}, more than 1")
    return row


class ConstantModel(BehaviorModelBase):
    """Everyone reacts to everything with the same probabilities (ignore takes the remainder).

    >>> ConstantModel({"like": 0.2, "share": 0.1}).predict_proba([BehaviorQuery("p", "c")]).round(2).tolist()
    [[0.7, 0.2, 0.1, 0.0]]
    """

    depends_on: tuple[str, ...] = ()

    def __init__(self, probabilities: Mapping[str, float], reactions: Sequence[str] = DEFAULT_REACTIONS):
        self.reactions = tuple(reactions)
        self.row = _row(probabilities, self.reactions)

    @classmethod
    def from_spec(cls, spec: Any, resolve: Callable[[str], Path]) -> ConstantModel:
        return cls(spec.probabilities or {}, reactions=spec.reactions)

    def predict_proba(self, queries: QueryBatch | Sequence[BehaviorQuery]) -> np.ndarray:
        return np.tile(self.row, (len(queries), 1))


class IndependentCascadeModel(ConstantModel):
    """Each exposure is shared with probability p, else ignored. Inside a simulation a post with its own `p`
    (scenario `content[k].p`) is shared with that probability instead: spread heterogeneity across posts."""

    # The answer depends on the post once posts may have their own p; with one p for all, every row of a post
    # gets the same answer anyway, so keying on the post costs a little de-duplication and changes no number.
    depends_on: tuple[str, ...] = ("item_id",)

    def __init__(self, p: float, reactions: Sequence[str] = DEFAULT_REACTIONS):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must lie in [0, 1], got {p}")
        self.p = p
        self.item_p: np.ndarray | None = None
        super().__init__({"share": p}, reactions)

    @classmethod
    def from_spec(cls, spec: Any, resolve: Callable[[str], Path]) -> IndependentCascadeModel:
        return cls(spec.p, reactions=spec.reactions)

    def bind(self, simulation: Any) -> None:
        own = [(index, post.p) for index, post in simulation.posts.items() if getattr(post, "p", None) is not None]
        if own:
            self.item_p = np.full(len(simulation.posts), self.p)
            for index, p in own:
                self.item_p[index] = p

    def predict_proba(self, queries: QueryBatch | Sequence[BehaviorQuery]) -> np.ndarray:
        if self.item_p is None:
            return super().predict_proba(queries)
        batch = as_batch(queries)
        share = self.item_p[batch.item_id]
        probs = np.zeros((len(batch), len(self.reactions)))
        probs[:, self.reactions.index("share")] = share
        probs[:, self.reactions.index("ignore")] = 1.0 - share
        return probs


class LinearThresholdModel(BehaviorModelBase):
    """Share once the fraction of followed accounts that shared reaches the person's threshold.

    Thresholds are drawn uniformly in [0, 1] when the model is bound to a simulation (from the simulation's
    seeded generator) unless given. The answer is 0 or 1: the randomness of this model lies in the thresholds.
    """

    depends_on: tuple[str, ...] = ("agent_id", "n_sharers")

    def __init__(self, thresholds: np.ndarray | None = None, reactions: Sequence[str] = DEFAULT_REACTIONS):
        self.reactions = tuple(reactions)
        if "share" not in self.reactions:
            raise ValueError("the linear threshold model needs a 'share' reaction")
        self.thresholds = None if thresholds is None else np.asarray(thresholds, dtype=np.float64)
        self.n_followed: np.ndarray | None = None

    @classmethod
    def from_spec(cls, spec: Any, resolve: Callable[[str], Path]) -> LinearThresholdModel:
        return cls(reactions=spec.reactions)

    def bind(self, simulation: Any) -> None:
        self.n_followed = simulation.network.in_degree
        if self.thresholds is None:
            self.thresholds = simulation.stream("thresholds").random(simulation.num_agents)
        elif len(self.thresholds) != simulation.num_agents:
            raise ValueError(f"{len(self.thresholds)} thresholds for {simulation.num_agents} agents")

    def predict_proba(self, queries: QueryBatch | Sequence[BehaviorQuery]) -> np.ndarray:
        batch = as_batch(queries)
        if self.thresholds is None or self.n_followed is None or (batch.agent_id < 0).any():
            raise ValueError("the linear threshold model answers only inside a simulation (it needs the agent)")
        agents = batch.agent_id
        fraction = batch.n_sharers / np.maximum(self.n_followed[agents], 1)
        share = fraction >= self.thresholds[agents]
        probs = np.zeros((len(batch), len(self.reactions)))
        probs[:, self.reactions.index("share")] = share
        probs[:, self.reactions.index("ignore")] = ~share
        return probs
