"""A/B tests: which variants of one test differ significantly in their rates.

Both the default behavior model's appeal read-out (fitted on the Upworthy headline tests) and the fine-tuning
pipeline's evaluation score a predictor by how often it picks the winner of a significant pair; they share this
one definition of a pair, so their figures mean the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SIGNIFICANCE = 0.05
"""The level at which two variants' rates count as different."""


@dataclass
class Pairs:
    """Pairs of rows in the same group, with different texts, whose rates differ significantly; `first_wins[k]`:
    row first[k]'s rate is the higher. `tested`: pairs tested; `excluded`: pairs left out because a row's time
    was in the excluded range; `same_text`: pairs left out because both rows have the same text."""

    first: np.ndarray
    second: np.ndarray
    first_wins: np.ndarray
    tested: int = 0
    excluded: int = 0
    same_text: int = 0
    reason: str = ""

    def __len__(self) -> int:
        return len(self.first)


def significant_pairs(text: Sequence[str], behavior: np.ndarray | None, exposure: np.ndarray | None,
                      group: np.ndarray | None, time: np.ndarray | None = None, alpha: float = SIGNIFICANCE,
                      exclude_time: tuple[float, float] | None = None) -> Pairs:  # fmt: skip
    """Every within-group pair of different texts whose rates (`behavior / exposure`) differ at level `alpha`
    (pooled two-proportion z-test, two-sided). Rows are variants; `group` says which test each belongs to.

    >>> pairs = significant_pairs(["a", "b", "c"], np.array([10, 40, 12]), np.array([1000, 1000, 1000]),
    ...                           np.array(["t1", "t1", "t1"]))
    >>> [(int(f), int(s), bool(w)) for f, s, w in zip(pairs.first, pairs.second, pairs.first_wins)]
    [(0, 1, False), (1, 2, True)]

    `exclude_time` (low, high), inclusive: pairs with a row whose time lies in it are not compared (Upworthy's
    tests with flagged randomisation problems, say).
    """
    empty = np.zeros(0, dtype=int)
    if group is None or exposure is None:
        why = "no group column" if group is None else "no exposure column (counts cannot be tested)"
        return Pairs(empty, empty, empty.astype(bool), reason=why)
    first, second = [], []
    _, group_index = np.unique(np.asarray(group).astype(str), return_inverse=True)
    order = np.argsort(group_index, kind="stable")
    boundaries = np.flatnonzero(np.diff(group_index[order])) + 1
    for members in np.split(order, boundaries):
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                first.append(members[a])
                second.append(members[b])
    first, second = np.array(first, dtype=int), np.array(second, dtype=int)
    # Variants that differ only in something a text model does not see (Upworthy tested images too) are no
    # question for it: compare different texts only.
    text = np.array(text, dtype=object)
    different = text[first] != text[second] if len(first) else np.zeros(0, dtype=bool)
    same_text = int((~different).sum())
    first, second = first[different], second[different]
    excluded = 0
    if exclude_time is not None and time is not None and len(first):
        low, high = exclude_time
        flagged = (time >= low) & (time <= high)
        keep = ~(flagged[first] | flagged[second])
        excluded = int((~keep).sum())
        first, second = first[keep], second[keep]
    tested = len(first)
    c1, c2 = behavior[first], behavior[second]
    n1, n2 = exposure[first], exposure[second]
    pooled = (c1 + c2) / (n1 + n2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (c1 / n1 - c2 / n2) / se, 0.0)
    significant = two_sided_p(z) < alpha
    return Pairs(first[significant], second[significant], (z > 0)[significant], tested, excluded, same_text=same_text)


def two_sided_p(z: np.ndarray) -> np.ndarray:
    """Two-sided p-values of standard normal z scores: erfc(|z| / sqrt 2) (scipy's 2 * norm.sf(|z|)).

    >>> two_sided_p(np.array([1.959964])).round(4).tolist()
    [0.05]
    """
    return np.array([math.erfc(abs(v) / math.sqrt(2)) for v in np.ravel(z)]).reshape(np.shape(z))
