"""Engagement data for behavior fine-tuning: load a table, check it, compute rates, split it, assign levels.

A table has one row per piece of content (a headline, a post) with the behavior it caused: a count (`clicks`,
`likes`) and, optionally, the exposure it was counted over (`impressions`, `views`). The rate is
behavior / exposure, or the count itself when there is no exposure column. Rows can belong to a group (the
variants of one A/B test), which a split never separates, and can carry a time, which a time split orders by.

Levels (low/medium/high) and rate bins are quantiles of the rate computed on the TRAINING split only, so that
nothing about the validation and test rows leaks into the labels a model learns from.

Row numbers in error messages count data rows from 1 (the first row after a CSV header is row 1; in a JSONL
file row n is line n).

>>> table = load_table("posts.csv")  # doctest: +SKIP
>>> rows = engagement_rows(table, EngagementColumns(text="headline", behavior="clicks", exposure="impressions"),
...                        source="posts.csv")  # doctest: +SKIP
>>> split = split_rows(rows, SplitSpec.parse("time:week"))  # doctest: +SKIP
>>> levels = LevelScheme.fit(rows.rate[split == "train"])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lsbm_sim.errors import DataError
from lsbm_sim.readers import describe_rows

LEVELS: tuple[str, ...] = ("low", "medium", "high")
SPLITS: tuple[str, ...] = ("train", "val", "test")
# ------------------------------------------------------------------------------------------- checking rows


@dataclass(frozen=True)
class EngagementColumns:
    """Which columns of the user's table hold what.

    `text`: the content; `behavior`: the count (or rate) it caused; `exposure`: what the count is out of
    (None: the behavior column is used as it is); `group`: rows that must stay on one side of a split (the
    variants of an A/B test); `time`: the column a time split orders by.
    """

    text: str
    behavior: str
    exposure: str | None = None
    group: str | None = None
    time: str | None = None

    def named(self) -> dict[str, str]:
        return {role: column for role, column in vars(self).items() if column is not None}


@dataclass
class EngagementRows:
    """The checked rows: text, behavior, exposure, rate, and group/time where given (all the same length).

    `row` is each row's 1-based number in the user's file, kept so later messages can point back to it.
    """

    row: np.ndarray
    text: list[str]
    behavior: np.ndarray
    exposure: np.ndarray | None
    rate: np.ndarray
    group: np.ndarray | None
    time: np.ndarray | None

    def __len__(self) -> int:
        return len(self.row)


def _numeric(table: pd.DataFrame, column: str, source: str) -> np.ndarray:
    """The column as float64; missing or non-numeric cells are a DataError naming their rows."""
    values = pd.to_numeric(table[column], errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        raise DataError(
            f"{source}: column {column!r} is missing or not a number in {describe_rows(np.flatnonzero(bad) + 1)}"
        )
    values = values.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        bad = ~np.isfinite(values)
        raise DataError(f"{source}: column {column!r} is infinite in {describe_rows(np.flatnonzero(bad) + 1)}")
    return values


def engagement_rows(table: pd.DataFrame, columns: EngagementColumns, source: str) -> EngagementRows:
    """Check the table and compute each row's rate; every problem is a DataError naming the column and rows.

    Checked: the named columns exist; text is present and not blank; behavior (and exposure) are numbers, not
    negative; exposure is above zero; behavior does not exceed exposure; group and time are present.
    """
    missing = [column for column in columns.named().values() if column not in table.columns]
    if missing:
        available = ", ".join(map(repr, map(str, table.columns[:20])))
        raise DataError(f"{source}: no column {', '.join(map(repr, missing))} (columns: {available})")
    if len(table) == 0:
        raise DataError(f"{source}: the file has no data rows")

    text = table[columns.text]
    blank = (text.isna() | text.astype(str).str.strip().eq("")).to_numpy()
    if blank.any():
        raise DataError(
            f"{source}: column {columns.text!r} (the text) is empty in {describe_rows(np.flatnonzero(blank) + 1)}"
        )

    behavior = _numeric(table, columns.behavior, source)
    negative = behavior < 0
    if negative.any():
        raise DataError(
            f"{source}: column {columns.behavior!r} is negative in {describe_rows(np.flatnonzero(negative) + 1)}"
        )

    exposure = None
    if columns.exposure is not None:
        exposure = _numeric(table, columns.exposure, source)
        zero = exposure <= 0
        if zero.any():
            raise DataError(
                f"{source}: column {columns.exposure!r} (the exposure) is zero or negative in "
                f"{describe_rows(np.flatnonzero(zero) + 1)}; a rate needs an exposure above 0"
            )
        over = behavior > exposure
        if over.any():
            raise DataError(
                f"{source}: column {columns.behavior!r} exceeds column {columns.exposure!r} in "
                f"{describe_rows(np.flatnonzero(over) + 1)}; a rate cannot be above 1"
            )
        rate = behavior / exposure
    else:
        rate = behavior.copy()

    group = None
    if columns.group is not None:
        missing_group = table[columns.group].isna().to_numpy()
        if missing_group.any():
            raise DataError(
                f"{source}: column {columns.group!r} (the group) is empty in "
                f"{describe_rows(np.flatnonzero(missing_group) + 1)}"
            )
        group = table[columns.group].astype(str).to_numpy()

    time = None
    if columns.time is not None:
        raw = table[columns.time]
        time_values = pd.to_numeric(raw, errors="coerce")
        if (time_values.isna() & raw.notna()).any():
            # Some are not numbers (weeks like 201425 are): if more cells read as dates, take the column as dates,
            # ordered by their integer timestamps; either way the cells that fit neither are reported.
            parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
            if parsed.notna().sum() > time_values.notna().sum():
                time_values = pd.Series(np.nan, index=raw.index)
                time_values[parsed.notna()] = parsed[parsed.notna()].astype("int64")
        bad = time_values.isna().to_numpy()
        if bad.any():
            raise DataError(
                f"{source}: column {columns.time!r} (the time) is missing or neither a number nor a date in "
                f"{describe_rows(np.flatnonzero(bad) + 1)}"
            )
        time = time_values.to_numpy(dtype=np.float64)

    return EngagementRows(
        row=np.arange(1, len(table) + 1),
        text=[str(t).strip() for t in text],
        behavior=behavior,
        exposure=exposure,
        rate=rate,
        group=group,
        time=time,
    )


# --------------------------------------------------------------------------------------------------- splits


@dataclass(frozen=True)
class SplitSpec:
    """How rows are divided into train/val/test.

    `kind` "random": units (groups, or rows when there is no group column) shuffled with `seed`;
    "time": units ordered by `column` (a group's time is its earliest), the latest go to test, the ones before
    them to val. `val` and `test` are the fractions of rows each should get (at least; whole units and whole
    time values are never divided).

    >>> SplitSpec.parse("time:week")
    SplitSpec(kind='time', column='week', val=0.1, test=0.1, seed=0)
    """

    kind: str = "random"
    column: str | None = None
    val: float = 0.1
    test: float = 0.1
    seed: int = 0

    @classmethod
    def parse(cls, text: str, val: float = 0.1, test: float = 0.1, seed: int = 0) -> SplitSpec:
        kind, _, column = text.partition(":")
        if kind == "random" and not column:
            spec = cls("random", None, val, test, seed)
        elif kind == "time" and column:
            spec = cls("time", column, val, test, seed)
        else:
            raise DataError(f"--split {text!r}: use 'random' or 'time:COLUMN' (e.g. time:week)")
        if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
            raise DataError(f"split fractions val={val}, test={test}: each must be in (0, 1) and their sum below 1")
        return spec

    def __str__(self) -> str:
        return self.kind if self.column is None else f"{self.kind}:{self.column}"


def split_rows(rows: EngagementRows, spec: SplitSpec, source: str = "data", with_test: bool = True) -> np.ndarray:
    """'train', 'val' or 'test' for every row; all rows of a group land on the same side.

    `with_test` False: only train and val, val getting its fraction `spec.val` of the latest (or random) units;
    the test split then comes from a held-out file (`bft prepare --test-file`).

    >>> rows = EngagementRows(np.arange(1, 11), ["t"] * 10, np.ones(10), None, np.ones(10), None,
    ...                       np.arange(10.0))
    >>> split_rows(rows, SplitSpec("time", "t", 0.2, 0.2)).tolist()[-4:]
    ['val', 'val', 'test', 'test']
    """
    n = len(rows)
    test_fraction = spec.test if with_test else 0.0
    unit = rows.group if rows.group is not None else np.arange(n).astype(str)
    unit_codes, unit_of_row = np.unique(unit, return_inverse=True)
    unit_size = np.bincount(unit_of_row, minlength=len(unit_codes))

    if spec.kind == "time":
        if rows.time is None:
            raise DataError(f"{source}: a time split needs the time column {spec.column!r}")
        unit_time = np.full(len(unit_codes), np.inf)
        np.minimum.at(unit_time, unit_of_row, rows.time)
        # Whole time values go to one side: walk the distinct times from the latest back.
        times = np.unique(unit_time)[::-1]
        rows_at_time = np.array([unit_size[unit_time == t].sum() for t in times])
        after = np.cumsum(rows_at_time)
        test_times = times[: int(np.searchsorted(after, spec.test * n)) + 1] if with_test else times[:0]
        val_end = int(np.searchsorted(after, (test_fraction + spec.val) * n)) + 1
        val_times = times[len(test_times) : max(val_end, len(test_times) + 1)]
        unit_side = np.where(
            np.isin(unit_time, test_times), "test", np.where(np.isin(unit_time, val_times), "val", "train")
        )
    else:
        order = np.random.default_rng(spec.seed).permutation(len(unit_codes))
        filled = np.cumsum(unit_size[order]) / n
        side_in_order = np.where(filled <= test_fraction, "test",
                                 np.where(filled <= test_fraction + spec.val, "val", "train"))  # fmt: skip
        # Small data: make sure test and val get at least one unit each when there are three units or more.
        if with_test and len(order) >= 3:
            side_in_order[0], side_in_order[1] = "test", "val"
        elif not with_test and len(order) >= 2:
            side_in_order[0] = "val"
        unit_side = np.empty(len(unit_codes), dtype=object)
        unit_side[order] = side_in_order

    side = np.asarray(unit_side, dtype=object)[unit_of_row].astype(str)
    empty = [s for s in (SPLITS if with_test else SPLITS[:2]) if not (side == s).any()]
    if empty:
        what = f"distinct values of {spec.column!r}" if spec.kind == "time" else "groups or rows"
        raise DataError(
            f"{source}: the {spec} split leaves {', '.join(empty)} empty; it needs more {what} "
            f"({len(unit_codes)} units, {n} rows)"
        )
    return side


# ------------------------------------------------------------------------------- row filters and targets


def select_rows(rows: EngagementRows, keep: np.ndarray) -> EngagementRows:
    """The rows where `keep` is true (row numbers stay those of the user's file)."""
    def take(values):
        return None if values is None else values[keep]

    return EngagementRows(rows.row[keep], [t for t, k in zip(rows.text, keep) if k], rows.behavior[keep],
                          take(rows.exposure), rows.rate[keep], take(rows.group), take(rows.time))  # fmt: skip


def in_time_range(rows: EngagementRows, time_range: tuple[float, float], source: str = "data") -> np.ndarray:
    """True for rows whose time lies in the inclusive range (low, high)."""
    if rows.time is None:
        raise DataError(f"{source}: --drop-time needs a time column (give --time COLUMN or a time:COLUMN split)")
    low, high = time_range
    return (rows.time >= low) & (rows.time <= high)


@dataclass(frozen=True)
class RelativeTarget:
    """The within-group target `bft prepare --relative-to GROUP` levels: how a row did against its group's mean.

    For each row, with c its behavior count and n its exposure (n absent: the count is used as is):

        log rate    y = log((c + 0.5) / (n + 1))             (0.5 and 1 keep a row with no clicks finite)
        variance    v = 1 / (c + 0.5) - 1 / (n + 1)           (the delta-method variance of y; 1 / (c + 0.5)
                                                               when there is no exposure)
        weight      w = 1 / v                                (inverse variance: few-exposure rows count less)
        target      y - (the w-weighted mean of y over the row's group)

    So in an A/B test the target is each variant's log click rate minus the test's mean: drift between tests
    (weeks, audiences) cancels and what is left is what the wording did. `weight` goes into the JSONL with the
    target; groups with a single row say nothing about wording and are dropped before this is computed.
    """

    value: np.ndarray
    weight: np.ndarray

    @classmethod
    def of(cls, rows: EngagementRows) -> RelativeTarget:
        if rows.group is None:
            raise DataError("--relative-to needs a group column")
        c = rows.behavior
        if rows.exposure is not None:
            log_rate = np.log((c + 0.5) / (rows.exposure + 1.0))
            variance = 1.0 / (c + 0.5) - 1.0 / (rows.exposure + 1.0)
        else:
            log_rate = np.log(c + 0.5)
            variance = 1.0 / (c + 0.5)
        weight = 1.0 / variance
        _, group_of = np.unique(rows.group, return_inverse=True)
        group_mean = np.bincount(group_of, weight * log_rate) / np.bincount(group_of, weight)
        return cls(log_rate - group_mean[group_of], weight)


def multi_row_groups(rows: EngagementRows) -> np.ndarray:
    """True for rows whose group has at least two rows (a within-group comparison needs two)."""
    _, group_of, sizes = np.unique(rows.group, return_inverse=True, return_counts=True)
    return sizes[group_of] >= 2


# --------------------------------------------------------------------------------------------------- levels


@dataclass(frozen=True)
class LevelScheme:
    """Quantile levels of the rate: low up to the 1/3 quantile, medium up to 2/3, high above (training rows).

    `rates` is each level's mean training rate, what a simulation turns level probabilities back into.

    >>> scheme = LevelScheme.fit(np.array([1.0, 2, 3, 4, 5, 6]))
    >>> scheme.assign(np.array([0.5, 3.5, 9])).tolist()
    ['low', 'medium', 'high']
    """

    thresholds: tuple[float, ...]
    rates: tuple[float, ...]
    levels: tuple[str, ...] = LEVELS

    @classmethod
    def fit(cls, train_rates: np.ndarray, levels: Sequence[str] = LEVELS, what: str = "the rate") -> LevelScheme:
        train_rates = np.asarray(train_rates, dtype=np.float64)
        k = len(levels)
        thresholds = np.quantile(train_rates, np.arange(1, k) / k)
        index = np.searchsorted(thresholds, train_rates, side="left")
        counts = np.bincount(index, minlength=k)
        if (counts == 0).any():
            empty = [levels[i] for i in np.flatnonzero(counts == 0)]
            raise DataError(
                f"{what} has too many equal values on the training split for {k} quantile levels: "
                f"level(s) {empty} would be empty (thresholds {np.round(thresholds, 6).tolist()})"
            )
        rates = [float(train_rates[index == i].mean()) for i in range(k)]
        return cls(tuple(float(t) for t in thresholds), tuple(rates), tuple(levels))

    def index(self, rates: np.ndarray) -> np.ndarray:
        """Level index per rate (0 = lowest); a rate equal to a threshold belongs to the level below it."""
        return np.searchsorted(np.asarray(self.thresholds), np.asarray(rates, dtype=np.float64), side="left")

    def assign(self, rates: np.ndarray) -> np.ndarray:
        return np.asarray(self.levels, dtype=object)[self.index(rates)]

    def level_rates(self) -> dict[str, float]:
        return dict(zip(self.levels, self.rates))


@dataclass(frozen=True)
class RateBins:
    """Numeric rate bins, 1 (lowest) to k, at training-split quantiles; `rates` is each bin's mean training rate.

    Ties can merge quantiles, so there may be fewer bins than asked for.

    >>> RateBins.fit(np.arange(10.0), 5).assign(np.array([0.0, 9.0])).tolist()
    [1, 5]
    """

    edges: tuple[float, ...]
    rates: tuple[float, ...]

    @classmethod
    def fit(cls, train_rates: np.ndarray, bins: int = 5) -> RateBins:
        train_rates = np.asarray(train_rates, dtype=np.float64)
        edges = np.unique(np.quantile(train_rates, np.arange(1, bins) / bins))
        index = np.searchsorted(edges, train_rates, side="left")
        used = np.unique(index)
        edges = edges[used[:-1]] if len(used) > 1 else edges[:0]  # drop edges that left a bin empty
        index = np.searchsorted(edges, train_rates, side="left")
        rates = [float(train_rates[index == i].mean()) for i in range(len(edges) + 1)]
        return cls(tuple(float(e) for e in edges), tuple(rates))

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(str(i + 1) for i in range(len(self.rates)))

    def assign(self, rates: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(self.edges), np.asarray(rates, dtype=np.float64), side="left") + 1
