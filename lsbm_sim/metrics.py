"""Cascade metrics (Goel, Anderson, Hofman & Watts 2016, "The structural virality of online diffusion").

A post's cascade is the tree rooted at its author whose nodes are the agents who shared it, each attached to
the agent whose share exposed them first. Size = nodes; depth = longest root path; max breadth = most nodes at
one depth; structural virality = mean distance between all pairs of nodes (the Wiener index over pairs).

A post seeded by several authors has several roots; they are joined by a virtual root, not itself a node, so
two authors are at distance 2 and depth is counted from the authors.
"""

from __future__ import annotations

import numpy as np


def tree_depths(parent: np.ndarray) -> np.ndarray:
    """Depth of each node; `parent[k]` is the index of node k's parent (-1 for a root), parents listed first."""
    n = len(parent)
    depth = np.zeros(n, dtype=np.int64)
    if n == 0:
        return depth
    resolved = parent < 0
    # Level by level: a node's depth is known once its parent's is; at most depth-many vectorised passes.
    while not resolved.all():
        ready = ~resolved & resolved[np.maximum(parent, 0)]
        depth[ready] = depth[parent[ready]] + 1
        resolved |= ready
    return depth


def cascade_metrics(parent: np.ndarray) -> dict[str, float]:
    """Size, depth, max breadth and structural virality of one cascade given as a parent array.

    >>> cascade_metrics(np.array([-1, 0, 0, 1]))  # a root with two children, one of which has a child
    {'cascade_size': 4, 'depth': 2, 'max_breadth': 2, 'structural_virality': 1.6666666666666667}
    """
    parent = np.asarray(parent, dtype=np.int64)
    m = len(parent)
    if m == 0:
        return {"cascade_size": 0, "depth": 0, "max_breadth": 0, "structural_virality": 0.0}
    depth = tree_depths(parent)
    # Subtree sizes, deepest level first; every edge (to a parent or to the virtual root) separates s nodes
    # from the other m - s, and so lies on s * (m - s) of the paths between pairs.
    subtree = np.ones(m, dtype=np.int64)
    for level in range(int(depth.max()), 0, -1):
        at = np.flatnonzero(depth == level)
        np.add.at(subtree, parent[at], subtree[at])
    wiener = float((subtree * (m - subtree)).sum())
    virality = wiener / (m * (m - 1) / 2) if m > 1 else 0.0
    return {
        "cascade_size": int(m),
        "depth": int(depth.max()),
        "max_breadth": int(np.bincount(depth).max()),
        "structural_virality": virality,
    }
