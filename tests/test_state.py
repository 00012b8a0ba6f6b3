"""The sparse per-(post, person) state against the dense arrays it replaced, operation by operation."""

from __future__ import annotations

import numpy as np
import pytest

from lsbm_sim.engine import state as state_module
from lsbm_sim.engine.state import ENGAGED, EXPOSED, SHARED, PairState, StatusView


@pytest.mark.parametrize("rebuild_slice", [state_module.REBUILD_SLICE, 7])  # one slice; many, not a power of two
def test_pair_state_matches_dense_arrays_through_growth_and_retirement(monkeypatch, rebuild_slice):
    monkeypatch.setattr(state_module, "REBUILD_SLICE", rebuild_slice)
    rng = np.random.default_rng(3)
    items, people = 40, 300
    state = PairState(people, capacity=8)  # tiny: the table is rebuilt many times on the way
    status = np.zeros((items, people), dtype=np.uint8)
    seen = np.zeros((items, people), dtype=np.uint8)
    sharers = np.zeros((items, people), dtype=np.int32)
    retired = np.zeros(items, dtype=bool)
    for step in range(60):
        live = np.flatnonzero(~retired)
        # deliveries (pairs repeat: several followees share the same post)
        item, agent = rng.choice(live, 400), rng.integers(0, people, 400)
        state.add_sharers(item, agent)
        np.add.at(sharers, (item, agent), 1)
        # exposures: distinct pairs, some of them seen many times (the count is capped at 255)
        pairs = np.unique(np.c_[rng.choice(live, 300), rng.integers(0, 20, 300)], axis=0)
        item, agent = pairs[:, 0], pairs[:, 1]
        engaged = rng.random(len(item)) < 0.2
        first = state.expose(item, agent, engaged)
        np.testing.assert_array_equal(first, (status[item, agent] & EXPOSED) == 0)
        status[item, agent] |= EXPOSED | (engaged.astype(np.uint8) * ENGAGED)
        seen[item, agent] = np.minimum(seen[item, agent], 254) + 1
        # shares
        item, agent = rng.choice(live, 50), rng.integers(0, people, 50)
        state.mark_shared(item, agent)
        status[item, agent] |= SHARED | ENGAGED
        if step % 15 == 14:  # retire a few posts: nothing reads them again
            gone = rng.choice(live, 3, replace=False)
            state.retire(gone)
            retired[gone] = True

        q_item, q_agent = np.repeat(np.arange(items), people), np.tile(np.arange(people), items)
        ask = ~retired[q_item]
        got_status, got_seen, got_sharers = state.facts(q_item[ask], q_agent[ask])
        np.testing.assert_array_equal(got_status, status[q_item[ask], q_agent[ask]])
        np.testing.assert_array_equal(got_seen, seen[q_item[ask], q_agent[ask]])
        np.testing.assert_array_equal(got_sharers, sharers[q_item[ask], q_agent[ask]])
        np.testing.assert_array_equal(state.engaged(q_item[ask], q_agent[ask]),
                                      (status[q_item[ask], q_agent[ask]] & ENGAGED) != 0)  # fmt: skip

    assert seen.max() > 20  # pairs shown many times were counted
    # Retired posts' entries were dropped when the table filled up: the table holds fewer pairs than happened.
    assert len(state) < np.count_nonzero(status | sharers)
    # Only pairs that happened are kept.
    assert len(state) <= np.count_nonzero(status | sharers.astype(bool))

    view = StatusView(state, lambda: items)
    keep = np.flatnonzero(~retired)
    np.testing.assert_array_equal(view[int(keep[0])], status[keep[0]])
    counted = ((view & SHARED) != 0).sum(axis=1)
    np.testing.assert_array_equal(counted[keep], ((status & SHARED) != 0).sum(axis=1)[keep])
    assert view.shape == (items, people)


def test_seen_is_capped_at_255():
    state = PairState(5)
    one = np.array([2]), np.array([4])
    for _ in range(300):
        state.expose(*one, engaged=np.array([False]))
    assert state.facts(*one)[1].tolist() == [255]


def test_sharers_count_widens_past_what_two_bytes_hold_and_stays_exact_through_rebuilds():
    state = PairState(n_people=100, capacity=8)
    state.add_sharers(np.array([1, 2]), np.array([5, 6]))
    assert state._sharers.dtype == np.uint16  # the narrow count while it suffices
    state.add_sharers(np.full(65_535, 1), np.full(65_535, 5))  # one past 65,535 for (1, 5)
    state.add_sharers(np.arange(3, 40), np.arange(3, 40))  # the table grows and is rebuilt
    assert state.sharers(np.array([1, 2, 3]), np.array([5, 6, 3])).tolist() == [65_536, 1, 1]
    state.add_sharers(np.full(3, 1), np.full(3, 5))
    assert state.facts(np.array([1]), np.array([5]))[2].tolist() == [65_539]
