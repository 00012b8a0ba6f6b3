"""Per-(post, person) facts, kept only for the pairs that happened.

A pair enters when something happens between a post and a person: someone they follow shares it (it lands in
their feed), it is shown to them, or they react to it. For each such pair the table keeps

    status    bits EXPOSED (was shown it), ENGAGED (liked, shared or commented), SHARED
    seen      how often it was shown to them, capped at 255
    sharers   how many of the accounts they follow shared it

so memory grows with deliveries and exposures, never with posts x people (the dense arrays this replaces took
about 0.6 GB per 1,000 posts at 100,000 people whatever happened).

Why an open-addressing hash table in numpy arrays (linear probing, one int64 key = post * people + person):
a step reads the facts of every pending feed entry and of every exposure (millions of pairs) and writes those of
every exposure and delivery, all as whole arrays. Measured on this machine (`benchmarks/bench_state.py`, figures
in benchmarks/RESULTS.md): a million look-ups among 10 million stored pairs take 0.54 s in the hash table and
6.7 s as binary searches in one sorted key array (12x; a binary search makes some 23 scattered reads per
key); a sorted array would also need a merge of the whole table, or a growing list of sorted runs to search, to
take a step's new pairs, and scipy.sparse matrices rebuild their index on every insertion. The price is room:
12 bytes per slot (int64 key, uint8 status, uint8 seen, uint16 sharers), between 22% and 60% of slots in use
(20 to 53 bytes per pair). The sharers count widens to int32 the first time a pair would pass 65,535 (someone
following that many accounts that shared one post), so it is exact whatever the graph: most graphs never pay for it.

Entries of retired posts (no one can be shown them again) are dropped when the table fills up, before it grows.
The new table is filled from the old one a slice at a time, so that a rebuild holds the two tables and one
slice's copies, not a copy of every pair besides.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

EXPOSED, ENGAGED, SHARED = 1, 2, 4
"""Bits of a pair's status: was shown it; liked, shared or commented; shared."""

EMPTY = np.int64(-1)
MAX_LOAD = 0.6
"""Largest share of slots in use: linear probing stays at a few probes per look-up below it."""
_MIX = np.uint64(0x9E3779B97F4A7C15)
REBUILD_SLICE = 1 << 22
"""Slots of the old table moved per pass of a rebuild: its copies cost about 60 MB, whatever the table's size."""


class PairState:
    """The facts of the (post, person) pairs that happened, for `n_people` people.

    >>> state = PairState(n_people=10)
    >>> state.add_sharers(np.array([3, 3]), np.array([7, 7]))  # two followees of person 7 shared post 3
    >>> state.sharers(np.array([3, 3]), np.array([7, 8])).tolist()
    [2, 0]
    """

    def __init__(self, n_people: int, capacity: int = 1024):
        self.n_people = int(n_people)
        capacity = 1 << max(int(capacity) - 1, 1).bit_length()
        self._allocate(capacity)
        self._retired = np.zeros(0, dtype=bool)  # by post index: no one can be shown it any more

    def _allocate(self, capacity: int) -> None:
        self.keys = np.full(capacity, EMPTY, dtype=np.int64)
        self._status = np.zeros(capacity, dtype=np.uint8)
        self._seen = np.zeros(capacity, dtype=np.uint8)
        self._sharers = np.zeros(capacity, dtype=np.uint16)  # widened by `add_sharers` when a count needs it
        self.size = 0

    def __len__(self) -> int:
        return self.size

    @property
    def nbytes(self) -> int:
        return self.keys.nbytes + self._status.nbytes + self._seen.nbytes + self._sharers.nbytes

    def key(self, item: np.ndarray, agent: np.ndarray) -> np.ndarray:
        return np.asarray(item, dtype=np.int64) * self.n_people + np.asarray(agent, dtype=np.int64)

    # ------------------------------------------------------------------------------------------- reading

    def status(self, item: np.ndarray, agent: np.ndarray) -> np.ndarray:
        """The status bits of each pair (0 for pairs that never happened)."""
        slot = self._find(self.key(item, agent))
        return np.where(slot >= 0, self._status[slot], 0).astype(np.uint8)

    def engaged(self, item: np.ndarray, agent: np.ndarray) -> np.ndarray:
        """Whether each person already liked, shared or commented the post."""
        return (self.status(item, agent) & ENGAGED) != 0

    def sharers(self, item: np.ndarray, agent: np.ndarray) -> np.ndarray:
        """How many accounts each person follows shared the post."""
        slot = self._find(self.key(item, agent))
        return np.where(slot >= 0, self._sharers[slot], 0).astype(np.int32)

    def facts(self, item: np.ndarray, agent: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(status, seen, sharers) of each pair, zeros for pairs that never happened."""
        slot = self._find(self.key(item, agent))
        present = slot >= 0
        return (
            np.where(present, self._status[slot], 0).astype(np.uint8),
            np.where(present, self._seen[slot], 0).astype(np.uint8),
            np.where(present, self._sharers[slot], 0).astype(np.int32),
        )

    def row(self, item: int) -> np.ndarray:
        """The status bits of one post for every person (a dense row of n_people)."""
        used = np.flatnonzero(self.keys != EMPTY)
        mine = used[self.keys[used] // self.n_people == item]
        out = np.zeros(self.n_people, dtype=np.uint8)
        out[self.keys[mine] % self.n_people] = self._status[mine]
        return out

    def matrix(self, n_items: int, bits: int = 0xFF) -> sp.csr_array:
        """The status bits (masked with `bits`) as a sparse posts x people array."""
        used = np.flatnonzero(self.keys != EMPTY)
        values = self._status[used] & bits
        keep = values != 0
        used, values = used[keep], values[keep]
        item, agent = np.divmod(self.keys[used], self.n_people)
        return sp.csr_array((values, (item, agent)), shape=(n_items, self.n_people))

    # ------------------------------------------------------------------------------------------- writing

    def add_sharers(self, item: np.ndarray, agent: np.ndarray) -> None:
        """One more followee shared the post, for each (post, person) given (pairs may repeat)."""
        unique_key, times = np.unique(self.key(item, agent), return_counts=True)
        slot = self._insert(unique_key)
        counts = self._sharers[slot].astype(np.int64) + times
        if len(counts) and counts.max() > np.iinfo(self._sharers.dtype).max:
            self._sharers = self._sharers.astype(np.int32)
        self._sharers[slot] = counts

    def expose(self, item: np.ndarray, agent: np.ndarray, engaged: np.ndarray) -> np.ndarray:
        """Record a step's exposures (each pair at most once) and whether each person engaged; returns whether
        each was the person's first sight of the post."""
        slot = self._insert(self.key(item, agent))
        before = self._status[slot]
        self._status[slot] = before | EXPOSED | (engaged.astype(np.uint8) * ENGAGED)
        self._seen[slot] = np.minimum(self._seen[slot], 254) + 1  # capped at 255
        return (before & EXPOSED) == 0

    def mark_shared(self, item: np.ndarray, agent: np.ndarray) -> None:
        slot = self._insert(sorted_unique(self.key(item, agent)))
        self._status[slot] |= SHARED | ENGAGED

    def retire(self, items: np.ndarray) -> None:
        """Posts no one can be shown again: their entries are dropped the next time the table fills up."""
        items = np.asarray(items, dtype=np.int64)
        if len(items) == 0:
            return
        top = int(items.max()) + 1
        if top > len(self._retired):
            self._retired = np.concatenate([self._retired, np.zeros(top - len(self._retired), dtype=bool)])
        self._retired[items] = True

    # ---------------------------------------------------------------------------------------- the table

    def _home(self, keys: np.ndarray) -> np.ndarray:
        """The slot where probing for each key starts (a multiplicative hash: nearby keys spread out)."""
        h = keys.astype(np.uint64) * _MIX
        h ^= h >> np.uint64(29)
        return (h & np.uint64(len(self.keys) - 1)).astype(np.int64)

    def _find(self, keys: np.ndarray) -> np.ndarray:
        """The slot of each key, or -1 where it is absent."""
        slot = np.full(len(keys), -1, dtype=np.int64)
        todo = np.arange(len(keys))
        pos = self._home(keys)
        mask = len(self.keys) - 1
        while len(todo):
            there = self.keys[pos]
            wanted = keys[todo]
            hit = there == wanted
            slot[todo[hit]] = pos[hit]
            going = ~hit & (there != EMPTY)
            todo, pos = todo[going], (pos[going] + 1) & mask
        return slot

    def _insert(self, keys: np.ndarray) -> np.ndarray:
        """The slot of each key (distinct keys), made for those absent."""
        self._make_room(len(keys))
        slot = np.full(len(keys), -1, dtype=np.int64)
        todo = np.arange(len(keys))
        pos = self._home(keys)
        mask = len(self.keys) - 1
        while len(todo):
            wanted = keys[todo]
            there = self.keys[pos]
            hit = there == wanted
            empty = there == EMPTY
            # Keys that reach the same empty slot race for it: every one writes, one write stays, and the
            # losers probe on (the slot now holds another key, as if it had been there before).
            self.keys[pos[empty]] = wanted[empty]
            won = empty & (self.keys[pos] == wanted)
            placed = hit | won
            slot[todo[placed]] = pos[placed]
            self.size += int(won.sum())
            todo, pos = todo[~placed], (pos[~placed] + 1) & mask
        return slot

    def _make_room(self, incoming: int) -> None:
        if self.size + incoming <= MAX_LOAD * len(self.keys):
            return
        old = (self.keys, self._status, self._seen, self._sharers)
        kept = sum(int(np.count_nonzero(self._alive(start))) for start in range(0, len(self.keys), REBUILD_SLICE))
        # The smallest table that leaves a quarter of the allowed load free, so that the next rebuild is some
        # steps away (a table fills to between 22% and 60% of its slots: 20 to 53 bytes per pair).
        capacity = 1024
        while kept + incoming > 0.75 * MAX_LOAD * capacity:
            capacity *= 2
        sharers_dtype = self._sharers.dtype
        self._allocate(capacity)
        self._sharers = self._sharers.astype(sharers_dtype, copy=False)
        for start in range(0, len(old[0]), REBUILD_SLICE):
            used = self._alive(start, old[0]) + start
            slot = self._insert(old[0][used])  # room is made: the new table takes them all
            self._status[slot], self._seen[slot], self._sharers[slot] = old[1][used], old[2][used], old[3][used]

    def _alive(self, start: int, keys: np.ndarray | None = None) -> np.ndarray:
        """The used slots, less those of retired posts, among `keys[start:start + REBUILD_SLICE]`, counted
        from `start`."""
        keys = (self.keys if keys is None else keys)[start : start + REBUILD_SLICE]
        used = np.flatnonzero(keys != EMPTY)
        if len(self._retired):
            item = keys[used] // self.n_people
            alive = item >= len(self._retired)
            alive[~alive] = ~self._retired[item[~alive]]
            used = used[alive]
        return used


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """`np.unique(values)` by one sort: numpy 2.4's `np.unique` finds distinct integers with a hash table first,
    several times slower on the millions of keys a step handles."""
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


class StatusView:
    """`model.status`: the pairs' status bits read like the dense posts x people array they replace.

    `status[item]` is one post's dense row; `status & SHARED` is a sparse posts x people array (so
    `((status & SHARED) != 0).sum(axis=1)` counts each post's sharers) -- neither builds posts x people.
    """

    def __init__(self, state: PairState, n_items):
        self._state = state
        self._n_items = n_items  # a callable: posts grow during a run

    @property
    def shape(self) -> tuple[int, int]:
        return (self._n_items(), self._state.n_people)

    def __getitem__(self, item: int) -> np.ndarray:
        return self._state.row(int(item))

    def __and__(self, bits: int) -> sp.csr_array:
        return self._state.matrix(self._n_items(), bits)
