"""Who sees what: the pending shares waiting in feeds, and the policies that pick from them.

When u shares a post, each follower v gets a pending entry (v, post, sharer u). In a step, each online person's
feed policy orders their pending entries and shows up to `feed.size` of them, at most one per post (a second
friend's share of the same post waits for a later step, where it is a new chance, as in the independent cascade
model). Shown entries leave the inbox; the rest wait, unless they are older than `feed.max_age`. Entries for a
post the person already engaged with, or for a removed post, are dropped.

Everything is done on arrays sorted once per step; no Python runs per person.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

PROMOTED = -1
"""The sharer of an entry the platform put into a feed (a promoted post)."""

_HOLDOUT_TAG = 0x6C73626D686964  # any fixed number: it keeps the holdout's hash apart from other uses of the seed


def held_out(seed: int, agent: np.ndarray, item: np.ndarray, share: float) -> np.ndarray:
    """Which (person, post) pairs are held out of in-network feeds (`feed.hidden_shares`): `share` of all pairs,
    chosen by a hash of the run's seed, the person and the post's item number. A pure function, so the engine
    draws nothing for it (with `share` 0 every run is what it was) and an analysis recomputes each pair's
    condition from the event log.

    >>> held_out(0, np.arange(4), np.zeros(4, dtype=int), 0.0).tolist()
    [False, False, False, False]
    >>> round(float(held_out(7, np.arange(100_000), np.full(100_000, 3), 0.25).mean()), 2)
    0.25
    """
    agent = np.asarray(agent, dtype=np.uint64)
    if share <= 0:
        return np.zeros(len(agent), dtype=bool)
    salt = np.random.SeedSequence([int(seed), _HOLDOUT_TAG]).generate_state(1, dtype=np.uint64)[0]
    x = (np.asarray(item, dtype=np.uint64) << np.uint64(32)) | agent
    x ^= salt
    # splitmix64's finaliser: every bit of (seed, person, post) moves every bit of the result.
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53 < share


@dataclass
class Exposures:
    """The step's exposures, one row each: who saw which post through whom (sharer -1: promoted), and the
    position in that person's feed (0 = top)."""

    agent: np.ndarray
    item: np.ndarray
    sharer: np.ndarray
    rank: np.ndarray

    def __len__(self) -> int:
        return len(self.agent)


class Inbox:
    """Pending feed entries as parallel arrays (struct of arrays)."""

    def __init__(self) -> None:
        self.agent = np.zeros(0, dtype=np.int32)
        self.item = np.zeros(0, dtype=np.int32)
        self.sharer = np.zeros(0, dtype=np.int32)
        self.created = np.zeros(0, dtype=np.int32)
        self.sequence = np.zeros(0, dtype=np.int64)  # arrival order, to break ties reproducibly
        self._next = 0

    def __len__(self) -> int:
        return len(self.agent)

    def add(self, agent: np.ndarray, item: np.ndarray | int, sharer: np.ndarray | int, step: int) -> None:
        n = len(agent)
        if n == 0:
            return
        self.agent = np.concatenate([self.agent, agent.astype(np.int32)])
        self.item = np.concatenate([self.item, np.broadcast_to(np.asarray(item, dtype=np.int32), n)])
        self.sharer = np.concatenate([self.sharer, np.broadcast_to(np.asarray(sharer, dtype=np.int32), n)])
        self.created = np.concatenate([self.created, np.full(n, step, dtype=np.int32)])
        self.sequence = np.concatenate([self.sequence, np.arange(self._next, self._next + n, dtype=np.int64)])
        self._next += n

    def _keep(self, mask: np.ndarray) -> None:
        for name in ("agent", "item", "sharer", "created", "sequence"):
            setattr(self, name, getattr(self, name)[mask])

    def select(
        self,
        online: np.ndarray | None,
        engaged: Callable[[np.ndarray, np.ndarray], np.ndarray],
        removed: np.ndarray,
        policy: str,
        size: int | None,
        step: int,
        max_age: int | None,
        popularity: np.ndarray,
        rng: np.random.Generator,
    ) -> Exposures:
        """Take this step's exposures out of the inbox.

        `online[agent]`: who looks at their feed this step (None: everyone). Entries where `engaged(item,
        agent)` (the person already liked, shared or commented) or `removed[item]` are dropped.
        `popularity[item]`: engagement so far, for the popularity policy.
        """
        valid = ~(engaged(self.item, self.agent) | removed[self.item])
        if max_age is not None:
            valid &= step - self.created <= max_age
        candidates = np.flatnonzero(valid if online is None else valid & online[self.agent])
        if len(candidates) == 0:
            if not valid.all():
                self._keep(valid)
            return Exposures(*(np.zeros(0, dtype=np.int32) for _ in range(4)))

        agent = self.agent[candidates]
        item = self.item[candidates]
        # Feed order: by person, promoted posts on top, then the policy's order. Entries sit in the inbox in
        # arrival order (`sequence` grows with the position; dropping entries keeps the order), so for the
        # common policies the order is one sort of a combined key with ties in arrival order.
        head = agent.astype(np.int64) * 2 + (self.sharer[candidates] != PROMOTED)  # promoted (0) first
        if policy == "all":  # ties: oldest first
            order = stable_order(head)
        elif policy == "chronological":  # newest step first; ties: latest arrival first
            created = self.created[candidates]
            key = head * (int(created.max()) - int(created.min()) + 1) + (created.max() - created)
            order = len(key) - 1 - stable_order(key[::-1])
        elif policy == "popularity":
            promoted = (self.sharer[candidates] == PROMOTED).astype(np.int8)
            created, sequence = self.created[candidates], self.sequence[candidates]
            order = np.lexsort((-sequence, -created, -popularity[item], -promoted, agent))
        elif policy == "random":
            promoted = (self.sharer[candidates] == PROMOTED).astype(np.int8)
            order = np.lexsort((rng.random(len(candidates)), -promoted, agent))
        else:
            raise ValueError(f"unknown feed policy {policy!r}")

        # One entry per (person, post) per step: the first in feed order.
        n_items = int(removed.shape[0])
        if n_items == 1:  # the first of each person's run of entries
            sorted_agent = agent[order]
            first = np.flatnonzero(np.r_[True, sorted_agent[1:] != sorted_agent[:-1]])
        else:
            pair = agent[order].astype(np.int64) * n_items + item[order]
            by_pair = stable_order(pair)
            paired = pair[by_pair]
            first = np.sort(by_pair[np.r_[True, paired[1:] != paired[:-1]]])
        order = order[first]

        # Position in the person's feed, then the attention budget.
        sorted_agent = agent[order]
        starts = np.r_[0, np.flatnonzero(np.diff(sorted_agent)) + 1]
        group_start = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        rank = np.arange(len(order)) - group_start
        if size is not None and policy != "all":
            within = rank < size
            order, rank = order[within], rank[within]

        chosen = candidates[order]
        exposures = Exposures(  # fancy indexing copies: the inbox's arrays are not shared
            agent=self.agent[chosen],
            item=self.item[chosen],
            sharer=self.sharer[chosen],
            rank=rank.astype(np.int32),
        )
        valid[chosen] = False  # what was shown, and what may not be shown, leaves the inbox
        self._keep(valid)
        return exposures


def stable_order(key: np.ndarray) -> np.ndarray:
    """The positions of `key` (non-negative int64) in ascending order, ties in position order: what
    `np.argsort(key, kind="stable")` gives, computed as a plain sort of the distinct numbers (key, position)
    packed into one int64, several times faster (a stable sort of int64 is a merge sort)."""
    n = len(key)
    bits = max(n - 1, 1).bit_length()
    if n == 0 or int(key.max()) >= 1 << (62 - bits):
        return np.argsort(key, kind="stable")
    return np.sort((key << bits) | np.arange(n)) & ((1 << bits) - 1)
