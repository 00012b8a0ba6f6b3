"""Cascade metrics against values worked out by hand and against networkx."""

import networkx as nx
import numpy as np
import pytest

from lsbm_sim.analysis.metrics import CycleError, cascade_metrics, roots_and_depths, tree_depths, tree_table


def test_chain_star_and_single_node():
    chain = cascade_metrics(np.array([-1, 0, 1, 2, 3]))  # mean distance in a path of n nodes is (n + 1) / 3
    assert {k: v for k, v in chain.items() if k != "half_time"} == {
        "cascade_size": 5, "depth": 4, "max_breadth": 1, "structural_virality": pytest.approx(2.0)}
    star = cascade_metrics(np.array([-1, 0, 0, 0, 0]))  # 2 (n - 1) / n
    assert star["structural_virality"] == pytest.approx(1.6) and star["max_breadth"] == 4
    assert cascade_metrics(np.array([-1]))["structural_virality"] == 0.0
    assert cascade_metrics(np.array([], dtype=int))["cascade_size"] == 0


def test_structural_virality_equals_mean_shortest_path_on_random_trees():
    rng = np.random.default_rng(0)
    for n in (2, 7, 60):
        parent = np.array([-1] + [int(rng.integers(0, k)) for k in range(1, n)])
        tree = nx.Graph([(k, int(p)) for k, p in enumerate(parent) if p >= 0])
        tree.add_nodes_from(range(n))
        expected = nx.average_shortest_path_length(tree) if n > 1 else 0.0
        assert cascade_metrics(parent)["structural_virality"] == pytest.approx(expected)
        assert cascade_metrics(parent)["depth"] == max(nx.shortest_path_length(tree, 0).values())


def test_several_roots_are_separate_trees_and_unshared_authors_have_no_virality():
    # 20 authors whom nobody shared: no pairs within a tree, so virality 0 (a virtual root gave 2.0)
    lonely = cascade_metrics(np.full(20, -1))
    assert lonely["structural_virality"] == 0.0 and lonely["max_breadth"] == 1 and lonely["cascade_size"] == 20
    star = cascade_metrics(np.array([-1] + [0] * 19))  # a real 19-share star: 2 (n - 1) / n = 1.9
    assert star["structural_virality"] == pytest.approx(1.9) and lonely["structural_virality"] < star["structural_virality"]
    two = cascade_metrics(np.array([-1, -1, 0]))  # two authors, one share under the first
    # the only pair within a tree is (root0, child) at distance 1; root1 is a tree of its own
    assert two["structural_virality"] == pytest.approx(1.0)
    assert two["depth"] == 1 and two["max_breadth"] == 1 and two["cascade_size"] == 3
    assert tree_depths(np.array([-1, -1, 0, 2])).tolist() == [0, 0, 1, 2]


def test_tree_table_matches_networkx_tree_by_tree():
    rng = np.random.default_rng(3)
    parents, offset = [], 0
    sizes = [1, 2, 9, 40]
    for n in sizes:  # several random trees in one parent array, nodes shuffled so children may come first
        parents.append(np.array([-1] + [offset + int(rng.integers(0, k)) for k in range(1, n)]))
        offset += n
    parent = np.concatenate(parents)
    perm = rng.permutation(len(parent))
    inverse = np.argsort(perm)
    shuffled = np.where(parent[perm] >= 0, inverse[np.maximum(parent[perm], 0)], -1)
    table = tree_table(shuffled).sort_values("cascade_size").reset_index(drop=True)
    assert table["cascade_size"].tolist() == sizes
    for (_, row), start, n in zip(table.iterrows(), np.cumsum([0] + sizes[:-1]), sizes):
        tree = nx.Graph([(k, int(p)) for k, p in enumerate(parent[start:start + n] - start) if p >= 0])
        tree.add_nodes_from(range(n))
        expected = nx.average_shortest_path_length(tree) if n > 1 else 0.0
        assert row["structural_virality"] == pytest.approx(expected)
        levels = np.bincount(list(nx.shortest_path_length(tree, 0).values()))
        assert row["depth"] == len(levels) - 1 and row["max_breadth"] == levels.max()


def test_half_time_and_cycles():
    # root at t=0, children at 4, 1, 9: half of 4 nodes is reached with the second earliest node (t=1)
    table = tree_table(np.array([-1, 0, 0, 1]), time=np.array([0.0, 4.0, 1.0, 9.0]))
    assert table.loc[0, "half_time"] == 1.0
    assert tree_table(np.array([-1, 0, 1, 2, 3]), time=np.arange(5.0)).loc[0, "half_time"] == 2.0  # 3rd of 5
    with pytest.raises(CycleError) as caught:
        roots_and_depths(np.array([-1, 2, 1, 0]))  # nodes 1 and 2 point at each other
    assert sorted(caught.value.nodes.tolist()) == [1, 2]
