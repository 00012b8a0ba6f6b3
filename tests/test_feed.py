"""Feed policies: order, attention budget, one exposure per post per step, dropping what may not be shown."""

import numpy as np

from lsbm_sim.engine.feed import PROMOTED, Inbox

N_ITEMS = 3


def select(inbox, policy, size=None, online=None, engaged=None, removed=None, step=5, max_age=None, popularity=None):
    n_agents = 10
    online = np.ones(n_agents, bool) if online is None else online
    engaged_table = np.zeros((N_ITEMS, n_agents), bool) if engaged is None else engaged
    return inbox.select(
        online=online,
        engaged=lambda item, agent: engaged_table[item, agent],
        removed=np.zeros(N_ITEMS, bool) if removed is None else removed,
        policy=policy,
        size=size,
        step=step,
        max_age=max_age,
        popularity=np.zeros(N_ITEMS, int) if popularity is None else popularity,
        rng=np.random.default_rng(0),
    )


def filled() -> Inbox:
    inbox = Inbox()
    inbox.add(np.array([1, 1, 1]), np.array([0, 1, 2]), np.array([7, 8, 9]), step=1)
    inbox.add(np.array([1, 1, 2]), np.array([0, 2, 0]), np.array([6, 5, 4]), step=3)
    return inbox


def test_chronological_shows_newest_first_one_per_post_within_budget():
    inbox = filled()
    shown = select(inbox, "chronological", size=2)
    assert shown.agent.tolist() == [1, 1, 2]
    assert shown.item.tolist() == [2, 0, 0]  # step-3 shares of posts 2 and 0 first
    assert shown.sharer.tolist() == [5, 6, 4]
    assert shown.rank.tolist() == [0, 1, 0]
    # What was not shown waits: post 1 (over budget) and the older shares of posts 0 and 2 (same post, later).
    assert sorted(zip(inbox.agent.tolist(), inbox.item.tolist())) == [(1, 0), (1, 1), (1, 2)]
    again = select(inbox, "chronological", size=2)
    assert again.item.tolist() == [2, 1] and again.sharer.tolist() == [9, 8]


def test_all_policy_has_no_budget_and_keeps_arrival_order():
    shown = select(filled(), "all", size=1)
    assert shown.agent.tolist() == [1, 1, 1, 2]
    assert shown.item.tolist() == [0, 1, 2, 0] and shown.sharer.tolist() == [7, 8, 9, 4]


def test_popularity_orders_by_engagement():
    shown = select(filled(), "popularity", size=3, popularity=np.array([0, 50, 10]))
    assert shown.item[shown.agent == 1].tolist() == [1, 2, 0]


def test_promoted_posts_come_first():
    inbox = filled()
    inbox.add(np.array([1]), 1, PROMOTED, step=4)
    shown = select(inbox, "chronological", size=1)
    assert shown.item[0] == 1 and shown.sharer[0] == PROMOTED


def test_offline_people_keep_their_entries_and_engaged_or_removed_are_dropped():
    inbox = filled()
    online = np.zeros(10, bool)
    online[2] = True
    engaged = np.zeros((N_ITEMS, 10), bool)
    engaged[2, 1] = True  # person 1 already engaged with post 2
    removed = np.array([True, False, False])  # post 0 was removed
    shown = select(inbox, "chronological", size=5, online=online, engaged=engaged, removed=removed)
    assert len(shown) == 0
    assert sorted(zip(inbox.agent.tolist(), inbox.item.tolist())) == [(1, 1)]


def test_max_age_expires_old_entries():
    inbox = filled()
    shown = select(inbox, "all", step=5, max_age=3)
    assert sorted(shown.sharer.tolist()) == [4, 5, 6]
    assert len(inbox) == 0


def test_random_policy_is_a_permutation_within_the_budget():
    inbox = Inbox()
    inbox.add(np.zeros(3, int), np.array([0, 1, 2]), np.array([1, 2, 3]), step=0)
    shown = select(inbox, "random", size=3)
    assert sorted(shown.item.tolist()) == [0, 1, 2]
