"""Cascade metrics against values worked out by hand and against networkx."""

import networkx as nx
import numpy as np
import pytest

from lsbm_sim.metrics import cascade_metrics, tree_depths


def test_chain_star_and_single_node():
    chain = cascade_metrics(np.array([-1, 0, 1, 2, 3]))  # mean distance in a path of n nodes is (n + 1) / 3
    assert chain == {"cascade_size": 5, "depth": 4, "max_breadth": 1, "structural_virality": pytest.approx(2.0)}
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


def test_several_roots_are_joined_by_a_virtual_root():
    metrics = cascade_metrics(np.array([-1, -1, 0]))  # two authors, one share under the first
    # distances: root0-root1 = 2 (via the virtual root), root0-child = 1, root1-child = 3
    assert metrics["structural_virality"] == pytest.approx(2.0)
    assert metrics["depth"] == 1 and metrics["max_breadth"] == 2
    assert tree_depths(np.array([-1, -1, 0, 2])).tolist() == [0, 0, 1, 2]
