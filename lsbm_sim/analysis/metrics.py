"""Cascade metrics (Goel, Anderson, Hofman & Watts 2016, "The structural virality of online diffusion").

**A cascade is one tree with one root.** In a simulation, each author of a post roots its own tree: the agents
who shared the post, each attached to the agent whose share exposed them first (a promoted share hangs off the
post's first author). Real cascades (`lsbm_sim.analysis.cascades`) are one tree per source post. For one tree:

- size: its nodes, the root included (a post nobody shared has size 1);
- depth: the longest path from the root (0 for a lone root);
- max breadth: the most nodes at one depth (the root's level counts, so a lone root has breadth 1);
- structural virality: the mean distance between all pairs of nodes (Goel et al.'s Wiener index over pairs;
  2 (n - 1) / n for a star of n nodes, (n + 1) / 3 for a chain; 0 for a lone root, which has no pairs);
- half time: how long after the root the tree first held at least half of its final nodes.

**A post with several authors has several trees.** Its row in `items.parquet` sums or takes the largest of
its trees' figures, never joins them: `cascade_size` counts the nodes of all its trees (authors plus sharers),
`depth` and `max_breadth` are those of its deepest and widest tree, and `structural_virality` is the mean
distance over the pairs of nodes *within* a tree (pairs in different trees have no path between them). So 20
authors whom nobody shared score 0, not 2, and a one-author post's figures are exactly its tree's.
`cascades.parquet` has one row per tree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TREE_COLUMNS = ("cascade_size", "depth", "max_breadth", "structural_virality", "half_time")


class CycleError(ValueError):
    """Some nodes never reach a root (their parent links form a cycle); `nodes` holds their indices."""

    def __init__(self, nodes: np.ndarray):
        self.nodes = nodes
        super().__init__(f"{len(nodes)} nodes do not lead to a root (a cycle in the parent links)")


def roots_and_depths(parent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The root and depth of every node; `parent[k]` is node k's parent index (-1 for a root), in any order.

    Pointer jumping: each pass doubles how far every node has looked up its path, so a tree of depth d takes
    log2(d) vectorised passes whatever the number of trees. Raises CycleError for nodes that reach no root.

    >>> roots_and_depths(np.array([-1, 0, 1, -1]))
    (array([0, 0, 0, 3]), array([0, 1, 2, 0]))
    """
    parent = np.asarray(parent, dtype=np.int64)
    n = len(parent)
    if n and (parent.max() >= n or parent.min() < -1):
        raise ValueError("parent indices must lie in -1..n-1")
    # anc[k]: an ancestor of k found so far (k itself for a root), dist[k]: how many edges up it lies.
    anc = np.where(parent >= 0, parent, np.arange(n))
    dist = (parent >= 0).astype(np.int64)
    for _ in range(int(np.ceil(np.log2(max(n, 2)))) + 1):
        active = np.flatnonzero(parent[anc] >= 0)  # not yet at a root
        if len(active) == 0:
            break
        via = anc[active]
        dist[active] += dist[via]
        anc[active] = anc[via]
    stuck = np.flatnonzero(parent[anc] >= 0) if n else np.zeros(0, dtype=np.int64)
    if len(stuck):
        raise CycleError(stuck)
    top, depth = anc, dist
    return top, depth


def tree_depths(parent: np.ndarray) -> np.ndarray:
    """Depth of each node; `parent[k]` is the index of node k's parent (-1 for a root)."""
    return roots_and_depths(parent)[1]


def tree_table(parent: np.ndarray, time: np.ndarray | None = None) -> pd.DataFrame:
    """One row per tree of a forest given as a parent array: root (node index), size, depth, max breadth,
    structural virality and, with node times, half time (NaN without). Vectorised over all trees at once.

    >>> tree_table(np.array([-1, 0, 0, -1]), time=np.array([0.0, 1.0, 5.0, 2.0]))
       root  cascade_size  depth  max_breadth  structural_virality  half_time
    0     0             3      1            2             1.333333        1.0
    1     3             1      0            1             0.000000        0.0
    """
    parent = np.asarray(parent, dtype=np.int64)
    n = len(parent)
    root, depth = roots_and_depths(parent)
    roots = np.flatnonzero(parent < 0)
    tree_of = np.searchsorted(roots, root)  # 0..n_trees-1 for every node
    size = np.bincount(tree_of, minlength=len(roots))

    # Subtree sizes, deepest level first. Every edge separates a subtree of s nodes from the other m - s
    # nodes of its tree, so it lies on s (m - s) of the paths between pairs: summing gives the Wiener index.
    subtree = np.ones(n, dtype=np.int64)
    order = np.argsort(-depth, kind="stable")
    bounds = np.flatnonzero(np.diff(depth[order])) + 1
    for level in np.split(order, bounds):
        if len(level) == 0 or depth[level[0]] == 0:
            continue
        np.add.at(subtree, parent[level], subtree[level])
    child = parent >= 0
    wiener = np.bincount(tree_of[child], weights=(subtree * (size[tree_of] - subtree))[child], minlength=len(roots))
    pairs = size * (size - 1) / 2
    virality = np.divide(wiener, pairs, out=np.zeros(len(roots)), where=pairs > 0)

    max_depth = np.zeros(len(roots), dtype=np.int64)
    np.maximum.at(max_depth, tree_of, depth)
    level_key = tree_of * (int(depth.max(initial=0)) + 1) + depth
    keys, counts = np.unique(level_key, return_counts=True)
    breadth = np.zeros(len(roots), dtype=np.int64)
    np.maximum.at(breadth, keys // (int(depth.max(initial=0)) + 1), counts)

    half = half_times(tree_of, time, origin=None if time is None else np.asarray(time, float)[roots])
    return pd.DataFrame(
        {"root": roots, "cascade_size": size, "depth": max_depth, "max_breadth": breadth,
         "structural_virality": virality, "half_time": half}  # fmt: skip
    )


def half_times(group: np.ndarray, time: np.ndarray | None, origin: np.ndarray | None = None) -> np.ndarray:
    """For each group 0..G-1 of nodes, the time at which it first held at least half of its final nodes,
    measured from `origin[g]` (default: the group's earliest time). NaN everywhere without times."""
    group = np.asarray(group, dtype=np.int64)
    n_groups = int(group.max(initial=-1)) + 1
    if time is None:
        return np.full(n_groups, np.nan)
    time = np.asarray(time, dtype=float)
    order = np.lexsort((time, group))
    counts = np.bincount(group, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    halfway = time[order][starts + (counts + 1) // 2 - 1]  # the ceil(n / 2)-th earliest node
    first = time[order][starts] if origin is None else origin
    return halfway - first


def cascade_metrics(parent: np.ndarray, time: np.ndarray | None = None) -> dict[str, float]:
    """A post's figures from the parent array of its nodes (one root per author; see the module docstring).

    >>> cascade_metrics(np.array([-1, 0, 0, 1]))  # a root with two children, one of which has a child
    {'cascade_size': 4, 'depth': 2, 'max_breadth': 2, 'structural_virality': 1.6666666666666667, 'half_time': nan}
    >>> cascade_metrics(np.array([-1, -1, -1]))["structural_virality"]  # three authors nobody shared: no pairs
    0.0
    """
    parent = np.asarray(parent, dtype=np.int64)
    if len(parent) == 0:
        return {"cascade_size": 0, "depth": 0, "max_breadth": 0, "structural_virality": 0.0, "half_time": np.nan}
    trees = tree_table(parent)
    tree_pairs = trees["cascade_size"] * (trees["cascade_size"] - 1) / 2
    pairs, wiener = float(tree_pairs.sum()), float((trees["structural_virality"] * tree_pairs).sum())
    half = half_times(np.zeros(len(parent), dtype=np.int64), time)[0] if time is not None else np.nan
    return {
        "cascade_size": int(trees["cascade_size"].sum()),
        "depth": int(trees["depth"].max()),
        "max_breadth": int(trees["max_breadth"].max()),
        "structural_virality": wiener / pairs if pairs > 0 else 0.0,
        "half_time": float(half),
    }
