"""The engine's fast paths give what the plain versions they replaced give.

The step loop was made several times faster at a million agents (benchmarks/RESULTS.md) without changing a
single event: feeds are ordered by one packed sort instead of a lexsort, reactions are sampled column by
column, per-agent counters are folded in batches, Mesa agents are registered in bulk. Each test here checks one
of them against the straightforward computation, on random inputs, so that a later change cannot make them
drift apart unnoticed.
"""

from __future__ import annotations

import mesa
import numpy as np
import pytest
from conftest import small_scenario

from lsbm_sim import Scenario, SocialModel, UserAgent
from lsbm_sim.behavior.base import SEEN_BINS, SHARER_BINS, bin_value
from lsbm_sim.engine.feed import PROMOTED, Inbox, stable_order
from lsbm_sim.engine.model import SEEN_TABLE, SHARER_TABLE, Tally, binned, sample_reactions
from lsbm_sim.world.network import Network


def reference_select(agent, item, sharer, created, sequence, online, engaged, removed, policy, size, step, max_age,
                     popularity, rng):  # fmt: skip
    """Inbox.select as first written: filter, lexsort by the policy's keys, first entry per (person, post)."""
    valid = ~(engaged[item, agent] | removed[item])
    if max_age is not None:
        valid &= step - created <= max_age
    idx = np.flatnonzero(valid & online[agent])
    a, i, promoted = agent[idx], item[idx], (sharer[idx] == PROMOTED).astype(np.int8)
    c, s = created[idx], sequence[idx]
    keys = {
        "all": (s, -promoted, a),
        "chronological": (-s, -c, -promoted, a),
        "popularity": (-s, -c, -popularity[i], -promoted, a),
        "random": (rng.random(len(idx)), -promoted, a),
    }[policy]
    order = np.lexsort(keys)
    _, first = np.unique(a[order].astype(np.int64) * len(removed) + i[order], return_index=True)
    order = order[np.sort(first)]
    starts = np.r_[0, np.flatnonzero(np.diff(a[order])) + 1]
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    if size is not None and policy != "all":
        order, rank = order[rank < size], rank[rank < size]
    chosen = idx[order]
    return agent[chosen].tolist(), item[chosen].tolist(), sharer[chosen].tolist(), rank.tolist()


@pytest.mark.parametrize("policy", ["all", "chronological", "popularity", "random"])
def test_feed_selection_matches_the_lexsort_it_replaced(policy: str):
    rng = np.random.default_rng(7)
    for _ in range(150):
        n_agents, n_items = int(rng.integers(1, 25)), int(rng.integers(1, 4))
        inbox = Inbox()
        for step in range(int(rng.integers(1, 6))):
            m = int(rng.integers(0, 40))
            sharer = np.where(rng.random(m) < 0.15, PROMOTED, rng.integers(0, n_agents, m))
            inbox.add(rng.integers(0, n_agents, m), rng.integers(0, n_items, m), sharer, step)
        everyone = rng.random() < 0.3
        online = np.ones(n_agents, bool) if everyone else rng.random(n_agents) < 0.7
        engaged = rng.random((n_items, n_agents)) < 0.1
        removed = rng.random(n_items) < 0.1
        popularity = rng.integers(0, 4, n_items)
        size, max_age = [None, 1, 3][int(rng.integers(0, 3))], [None, 2][int(rng.integers(0, 2))]
        seed = int(rng.integers(1 << 30))
        state = (inbox.agent, inbox.item, inbox.sharer, inbox.created, inbox.sequence)
        expected = reference_select(*state, online, engaged, removed, policy, size, 6, max_age, popularity,
                                    np.random.default_rng(seed))  # fmt: skip
        shown = inbox.select(
            online=None if everyone else online, engaged=lambda i, a: engaged[i, a], removed=removed, policy=policy,
            size=size, step=6, max_age=max_age, popularity=popularity, rng=np.random.default_rng(seed),
        )  # fmt: skip
        assert (shown.agent.tolist(), shown.item.tolist(), shown.sharer.tolist(), shown.rank.tolist()) == expected
        # What was shown, and what may not be shown, left the inbox; the rest waits in arrival order.
        assert len(inbox) + len(shown) <= len(state[0]) and (np.diff(inbox.sequence) > 0).all()


def test_stable_order_is_a_stable_argsort():
    rng = np.random.default_rng(1)
    for high in (1, 3, 1000, 1 << 45, 1 << 62):  # the last ones cannot be packed and fall back to argsort
        for n in (0, 1, 2, 17, 500):
            key = rng.integers(0, high, n).astype(np.int64)
            assert stable_order(key).tolist() == np.argsort(key, kind="stable").tolist()


def test_sampling_matches_the_cumulative_sum_rule():
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(4), size=5000).astype(np.float32)
    probs[:50] *= np.float32(0.9999)  # rows whose total falls short of 1: the last reaction takes the rest
    uniform = rng.random(5000)
    uniform[:50] = 0.99995
    cumulative = np.cumsum(probs.astype(np.float64), axis=1)
    expected = np.minimum((uniform[:, None] >= cumulative).sum(axis=1), 3)
    assert sample_reactions(probs, uniform).tolist() == expected.tolist()


def test_binned_counts_equal_bin_value():
    counts = np.arange(0, 400)
    assert binned(counts, SHARER_TABLE).tolist() == bin_value(counts, SHARER_BINS).tolist()
    seen = np.arange(256, dtype=np.uint8)
    assert binned(seen, SEEN_TABLE).tolist() == bin_value(seen, SEEN_BINS).tolist()


def test_tally_folds_to_the_bincount():
    rng = np.random.default_rng(3)
    tally, expected = Tally(50), np.zeros(50, dtype=np.int64)
    for _ in range(40):
        agents = rng.integers(0, 50, int(rng.integers(0, 30)))
        tally.add(agents)
        expected += np.bincount(agents, minlength=50)
        if rng.random() < 0.2:  # reading in the middle folds what is pending
            assert tally.values().tolist() == expected.tolist()
    assert tally.values().tolist() == expected.tolist()


def test_csr_lists_edges_by_source_then_target():
    rng = np.random.default_rng(4)
    source, target = rng.integers(0, 30, 300), rng.integers(0, 30, 300)
    net = Network(30, source, target, directed=True)
    order = np.lexsort((target, source))
    assert net.source.tolist() == source[order].tolist() and net.target.tolist() == target[order].tolist()
    assert net.indptr.tolist() == np.r_[0, np.cumsum(np.bincount(source, minlength=30))].tolist()


class Tagged(UserAgent):
    def __init__(self, model, agent_id):
        super().__init__(model, agent_id)
        self.tag = f"agent-{agent_id}"


def test_agents_are_registered_as_mesa_registers_them():
    model = SocialModel(Scenario.from_dict(small_scenario()), agent_class=Tagged)
    plain = mesa.Model(seed=1)
    Tagged.create_agents(plain, 300, agent_id=list(range(300)))  # Mesa's own way, one registration per agent
    ours, theirs = list(model.agents), list(plain.agents)
    assert [(a.unique_id, a.agent_id, a.tag) for a in ours] == [(a.unique_id, a.agent_id, a.tag) for a in theirs]
    assert list(model.agents_by_type) == [Tagged] and list(model.agents_by_type[Tagged]) == ours
    assert list(model._agents) == ours and ours == model._agent_list
    # The registry is Mesa's: removing an agent and making a new one later work as usual.
    ours[3].remove()
    late = Tagged(model, 300)
    assert len(model.agents) == 300 and late in model.agents and ours[3] not in model.agents_by_type[Tagged]


def test_plain_agents_are_made_when_first_asked_for_and_are_the_agents_setup_would_have_made():
    spec = Scenario.from_dict(small_scenario())
    eager = SocialModel(spec, agent_class=Tagged)  # a class with its own __init__ gets its agents at setup
    assert eager._pending_agents is None and len(eager._agent_list) == 300
    lazy = SocialModel(spec, seed=3)
    assert lazy._pending_agents is not None and len(lazy._agents) == 0  # none made by setup
    lazy.step()
    lazy.step()
    assert len(lazy._agents) == 0  # nor by the steps: they read arrays
    agents = list(lazy.agents)
    assert [(a.unique_id, a.agent_id) for a in agents] == [(i + 1, i) for i in range(300)]
    assert list(lazy.agents_by_type) == [UserAgent] and list(lazy.agents_by_type[UserAgent]) == agents
    assert lazy._agent_list == agents and agents[5].counts == {"exposures": int(lazy.agent_exposures[5]),
                                                               **{r: int(c[5]) for r, c in lazy.agent_reaction_counts.items()}}  # fmt: skip
    # An agent added by hand before anyone asked comes after the model's own, as it would have.
    other = SocialModel(spec, seed=3)
    late = UserAgent(other, 300)
    assert list(other.agents)[-1] is late and len(other.agents) == 301 and late.unique_id == 301
    # The run is the same whichever way its agents were made.
    assert lazy.result().events.equals(_run_two_steps(SocialModel(spec, seed=3, agent_class=Tagged)).result().events)


def _run_two_steps(model: SocialModel) -> SocialModel:
    model.step()
    model.step()
    return model


def test_a_finished_model_is_freed_so_runs_in_one_process_do_not_pile_up():
    """Mesa keeps a per-model counter of agent numbers in a class-level dict keyed by the model; unless that key is
    weak, every model built in a process (a sweep's or a calibration's runs one after another) stays in memory."""
    import gc
    import weakref

    from lsbm_sim import run

    model = SocialModel(Scenario.from_dict(small_scenario()))
    model.run()
    model.result()
    built = weakref.ref(model)
    numbers = [a.unique_id for a in model.agents][:3]
    del model
    run(Scenario.from_dict(small_scenario()))  # and through run(), as a sweep worker calls it
    gc.collect()
    assert built() is None, "a finished model is still referenced"
    assert numbers == [1, 2, 3]  # Mesa's numbering of each model's agents is unchanged
