"""Real cascades in, and simulated cascades held against them.

Every loader returns the same per-cascade table as a run's `cascades.parquet`: one row per tree with
`cascade_id`, `cascade_size`, `depth`, `max_breadth`, `structural_virality` and `half_time` (the figures of
`lsbm_sim.metrics`, Goel et al. 2016; a column the source cannot give, such as depth for a sequence without
parent links, is NaN). `table.attrs` says where it came from, the unit of `half_time` and, for messy sources,
what was cleaned.

- `read_tree_file`: parent -> child trees with times in the twitter15/16 layout (Ma et al. 2017), with each
  quirk that data has handled and counted (see its docstring);
- `read_event_sequences`: event sequences without parents (the #auspol retweet cascades of `evently`):
  size and time only, and each cascade's `shares` and `audience` (the followers of its author and sharers)
  where the file has follower counts;
- `read_sizes`: sizes only, a CSV `cascade_id,size`;
- `read_tree_csv`: a generic CSV `cascade_id,node,parent[,time]` (empty parent = root);
- `read_run`: a run's results folder or a sweep folder, so a calibration can be checked against a known truth;
- `load_cascades`: any of these, told apart by their layout.

`compare` puts a simulated table beside a real one: two-sample KS distances per metric, overall and at matched
size (within size bins, weighted by the real cascades in each, as Juul & Ugander 2021 advise, since depth and
virality grow with size), bootstrap intervals, and the floor two halves of the real data reach against each other.
Both sides are cut at the same smallest size (data that keeps only large trees is compared with the simulated
trees of those sizes), time to half size is compared in minutes, and where both sides know their audience,
shares per follower of author and sharers (`reach_per_follower`) are put side by side.

>>> real = load_cascades("../shared/data/twitter16_cascades")  # doctest: +SKIP
>>> compare(load_cascades("results/run"), real).table  # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from lsbm_sim.errors import DataError, LsbmError
from lsbm_sim.metrics import CycleError, half_times, roots_and_depths, tree_table

METRICS = ("cascade_size", "depth", "max_breadth", "structural_virality", "half_time")
COLUMNS = ("cascade_id", *METRICS)
TREE_FILE_COLUMNS = ["cascade_id", "parent_uid", "parent_tweet_id", "parent_delay_min",
                     "child_uid", "child_tweet_id", "child_delay_min"]  # fmt: skip
TIME_COLUMNS = ("time_s", "time", "timestamp")
FOLLOWER_COLUMNS = ("magnitude_followers", "followers", "follower_count")
MINUTES_PER = {"minutes": 1.0, "seconds": 1 / 60, "hours": 60.0}
"""Time units a cascade table may carry, in minutes; time to half size is compared in minutes."""
STEP_MINUTES_UNSTATED = 60.0
"""Minutes a step stands for when a run's scenario does not say (it has no `time` section)."""
LABELS = {"cascade_size": "size", "depth": "depth", "max_breadth": "max breadth",
          "structural_virality": "structural virality", "half_time": "time to half size"}  # fmt: skip


# ------------------------------------------------------------------------------------------------ loaders


def load_cascades(path: Path | str) -> pd.DataFrame:
    """Any source this module reads, told apart by its layout: a results folder (manifest.json), a sweep
    folder (sweep.parquet), a folder or file of twitter-layout trees (*_cascade_edges.tsv[.gz]), a CSV with
    `node` and `parent` columns (trees) or with a time column and no parents (event sequences)."""
    path = Path(path)
    if path.is_dir():
        if (path / "manifest.json").is_file() or (path / "sweep.parquet").is_file():
            return read_run(path)
        trees = sorted(path.glob("*_cascade_edges.tsv*"))
        if len(trees) == 1:
            return read_tree_file(trees[0])
        csvs = sorted(path.glob("*.csv"))
        if not trees and len(csvs) == 1:
            return load_cascades(csvs[0])
        raise DataError(f"{path}: expected a results or sweep folder, or one *_cascade_edges.tsv[.gz] or .csv file "
                        f"(found {len(trees)} tree files and {len(csvs)} CSV files)")  # fmt: skip
    if not path.is_file():
        raise DataError(f"{path}: no such file or folder")
    header = _header(path)
    if header[:1] == ["cascade_id"] and "child_uid" in header:
        return read_tree_file(path)
    if {"node", "parent"} <= set(header):
        return read_tree_csv(path)
    if "cascade_id" in header and set(header) & {"size", "cascade_size"} and not set(header) & set(TIME_COLUMNS):
        return read_sizes(path)
    if "cascade_id" in header:
        return read_event_sequences(path)
    raise DataError(f"{path}:1: not a cascade file (header {header}); see lsbm_sim.cascades for the layouts")


def _header(path: Path) -> list[str]:
    try:
        first = pd.read_csv(path, sep=None, engine="python", nrows=0, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{path}:1: unreadable header ({exc})") from None
    return [str(c).strip() for c in first.columns]


def _read_text_table(path: Path, sep: str) -> pd.DataFrame:
    """Every column as text (ids stay exact), with the parser's line number in any error."""
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, engine="c")
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: {exc}") from None  # pandas names the line ("Expected 7 fields in line 12")
    except (pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"{path}: unreadable ({exc})") from None


def _numbers(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """A column as floats; the first value that is not a number is named by its line (header = line 1)."""
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = np.flatnonzero(values.isna().to_numpy())
    if len(bad):
        row = int(bad[0])
        raise DataError(f"{path}:{frame.index[row] + 2}: {column} {frame[column].iloc[row]!r} is not a number")
    return values.to_numpy(dtype=float)


def _finish(table: pd.DataFrame, source: Path, time_unit: str, notes: dict[str, Any] | None = None) -> pd.DataFrame:
    table = table.reset_index(drop=True)
    table.attrs.update({"source": str(source), "time_unit": time_unit, "notes": notes or {}})
    return table


def read_tree_file(path: Path | str) -> pd.DataFrame:
    """Parent -> child trees in the twitter15/16 layout: a TSV (optionally gzipped) with columns cascade_id,
    parent_uid, parent_tweet_id, parent_delay_min, child_uid, child_tweet_id, child_delay_min; a node is a
    (uid, tweet_id, delay) triple; each cascade's first row has parent ROOT,ROOT,0.0 and its root as child.

    The quirks the data set's SOURCE.txt lists are handled, and counted in `table.attrs["notes"]`:
    duplicate lines are read once; self loops (a node its own parent) are dropped; a child listed under
    several parents keeps the first one listed (most lines with a child earlier than its parent are such
    later listings); a child still earlier than its parent keeps its structure and its own time (the parent links were reconstructed by the data's authors); a ROOT child that is not the
    source tweet is still the root; nodes that never reach the root (a parent never listed as a child, or a
    cycle) are dropped. A cascade with no ROOT row is an error naming its first line.
    """
    path = Path(path)
    frame = _read_text_table(path, "\t")
    if [c.strip() for c in frame.columns] != TREE_FILE_COLUMNS:
        raise DataError(f"{path}:1: expected the columns {', '.join(TREE_FILE_COLUMNS)}; got {', '.join(frame.columns)}")
    empty = (frame == "").to_numpy().any(axis=1)
    if empty.any():
        line = int(np.flatnonzero(empty)[0]) + 2
        raise DataError(f"{path}:{line}: an empty field")
    parent_time = _numbers(frame, "parent_delay_min", path)
    child_time = _numbers(frame, "child_delay_min", path)
    notes: dict[str, Any] = {"lines": len(frame)}

    # Nodes are (uid, tweet id, delay) triples within a cascade; the delay is compared as written, so "1.0"
    # and "1" would be two nodes, as they are two lines in the original files. Each text column is turned
    # into integer codes once, and a node into one integer, so the rest is integer work on arrays.
    n_rows = len(frame)
    cascade = frame["cascade_id"]
    cascade_code, cascade_names = pd.factorize(cascade)
    both = lambda a, b: pd.factorize(pd.concat([frame[a], frame[b]], ignore_index=True))[0]  # noqa: E731
    node = _joint(np.concatenate([cascade_code, cascade_code]), both("parent_uid", "child_uid"),
                  both("parent_tweet_id", "child_tweet_id"), both("parent_delay_min", "child_delay_min"))  # fmt: skip
    parent_node, child_node = node[:n_rows], node[n_rows:]
    duplicate = ~_first_occurrence(_joint(parent_node, child_node))
    self_loop = (parent_node == child_node) & ~duplicate
    is_root_row = (frame["parent_uid"] == "ROOT").to_numpy()
    notes["duplicate_lines"] = int(duplicate.sum())
    notes["lines_child_earlier_than_parent"] = int((~duplicate & (child_time < parent_time)).sum())
    notes["self_loops"] = int(self_loop.sum())
    keep = ~duplicate & ~self_loop
    # A child's first listed parent is its parent; later ones are dropped (a ROOT row counts as listed).
    kept = np.flatnonzero(keep)
    later = kept[~_first_occurrence(child_node[kept])]
    notes["extra_parents_dropped"] = len(later)
    keep[later] = False

    root_rows = np.flatnonzero(keep & is_root_row)
    has_root = np.zeros(len(cascade_names), dtype=bool)
    has_root[cascade_code[root_rows]] = True
    missing = np.flatnonzero(~has_root[cascade_code])
    if len(missing):
        line = int(missing[0]) + 2
        raise DataError(f"{path}:{line}: cascade {cascade.iloc[line - 2]} has no ROOT row (its root is unknown)")
    extra_roots = root_rows[~_first_occurrence(cascade_code[root_rows])]
    notes["extra_root_rows_dropped"] = len(extra_roots)
    keep[extra_roots] = False

    rows = np.flatnonzero(keep)
    from_root = is_root_row[rows]
    used, index = np.unique(np.concatenate([child_node[rows], parent_node[rows][~from_root]]), return_inverse=True)
    n = len(used)
    child_code = index[: len(rows)]
    parent_code = np.full(len(rows), -1, dtype=np.int64)
    parent_code[~from_root] = index[len(rows):]
    parent_of = np.full(n, -1, dtype=np.int64)
    parent_of[child_code] = parent_code
    time = np.zeros(n)
    non_root = parent_code >= 0
    time[parent_code[non_root]] = parent_time[rows][non_root]  # a node listed only as a parent keeps its time
    time[child_code] = child_time[rows]
    cascade_of = np.zeros(n, dtype=np.int64)
    cascade_of[parent_code[non_root]] = cascade_code[rows][non_root]
    cascade_of[child_code] = cascade_code[rows]
    is_true_root = np.zeros(n, dtype=bool)
    is_true_root[child_code[~non_root]] = True
    notes["kept_edges_child_earlier_than_parent"] = int((child_time[rows][non_root] < parent_time[rows][non_root]).sum())
    root_tweet = frame["child_tweet_id"].to_numpy()[rows][~non_root]
    notes["root_not_source_tweet"] = int((root_tweet != cascade.to_numpy()[rows][~non_root]).sum())

    # Nodes that reach no ROOT child: in a cycle, or under a parent never listed as a child. Drop them.
    reach = _reaching(parent_of, is_true_root)
    notes["nodes_not_reaching_root_dropped"] = int((~reach).sum())
    parent_of, time, cascade_of = _subset(parent_of, reach), time[reach], cascade_of[reach]
    trees = tree_table(parent_of, time)
    trees.insert(0, "cascade_id", np.asarray(cascade_names)[cascade_of[trees.pop("root").to_numpy()]].astype(str))
    notes["cascades"] = len(trees)
    return _finish(trees, path, "minutes", notes)


def _joint(*codes: np.ndarray) -> np.ndarray:
    """One integer code per distinct combination of several integer code arrays (0..k-1, any order)."""
    joint = np.asarray(codes[0], dtype=np.int64)
    for more in codes[1:]:
        more = np.asarray(more, dtype=np.int64)
        _, joint = np.unique(joint * (int(more.max(initial=0)) + 1) + more, return_inverse=True)
    return joint.astype(np.int64)


def _first_occurrence(keys: np.ndarray) -> np.ndarray:
    """True where a key appears for the first time (in array order)."""
    first = np.zeros(len(keys), dtype=bool)
    first[np.unique(keys, return_index=True)[1]] = True
    return first


def _reaching(parent: np.ndarray, allowed_root: np.ndarray) -> np.ndarray:
    """Which nodes lead up to an allowed root (not into a cycle, not to a root that is not allowed)."""
    parent = parent.copy()
    stuck = np.zeros(len(parent), dtype=bool)
    try:
        root, _ = roots_and_depths(parent)
    except CycleError as exc:
        stuck[exc.nodes] = True
        parent[exc.nodes] = -1  # cut them loose so the others can be resolved
        root, _ = roots_and_depths(parent)
    return ~stuck & allowed_root[root]


def _subset(parent: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The parent array of the kept nodes, renumbered (the kept set must contain every kept node's parent)."""
    new_index = np.cumsum(keep) - 1
    kept_parent = parent[keep]
    return np.where(kept_parent >= 0, new_index[np.maximum(kept_parent, 0)], -1)


def read_event_sequences(path: Path | str, time_column: str | None = None) -> pd.DataFrame:
    """Cascades given as event sequences without parent links (e.g. auspol: cascade_id, event_index, time_s,
    magnitude_followers, user): size and time to half size; depth, breadth and virality are unknown (NaN).
    Times are relative to the cascade's first event (event_index 0 where there is that column). Where each
    event has its account's follower count (`magnitude_followers`, `followers` or `follower_count`), each
    cascade gets `shares` (events after the first) and `audience` (the followers of all its accounts), for
    `reach_per_follower`."""
    path = Path(path)
    frame = _read_text_table(path, ",")
    frame.columns = [c.strip() for c in frame.columns]
    candidates = [time_column] if time_column else [c for c in TIME_COLUMNS if c in frame.columns]
    if "cascade_id" not in frame.columns or not candidates or candidates[0] not in frame.columns:
        raise DataError(f"{path}:1: event sequences need a cascade_id column and a time column (time_s or time)")
    column = candidates[0]
    time = _numbers(frame, column, path)
    ids, group = np.unique(frame["cascade_id"].to_numpy(), return_inverse=True)
    if "event_index" in frame.columns:
        index = _numbers(frame, "event_index", path)
        origin = np.full(len(ids), np.nan)
        first = index == 0
        origin[group[first]] = time[first]
        fallback = np.isnan(origin)
        origin[fallback] = pd.Series(time).groupby(group).min().to_numpy()[fallback]
    else:
        origin = None
    table = pd.DataFrame(
        {"cascade_id": ids.astype(str), "cascade_size": np.bincount(group), "depth": np.nan, "max_breadth": np.nan,
         "structural_virality": np.nan, "half_time": half_times(group, time, origin)}  # fmt: skip
    )
    followers = next((c for c in FOLLOWER_COLUMNS if c in frame.columns), None)
    notes: dict[str, Any] = {"events": len(frame), "no_parent_links": True}
    if followers is not None:
        table["shares"] = table["cascade_size"] - 1
        table["audience"] = np.bincount(group, weights=_numbers(frame, followers, path), minlength=len(ids))
        notes["audience"] = f"sum of {followers} over each cascade's events"
    unit = "seconds" if column == "time_s" else "time units of the file"
    return _finish(table, path, unit, notes)


def read_sizes(path: Path | str) -> pd.DataFrame:
    """Cascade sizes only: a CSV `cascade_id,size` (or `cascade_size`), one row per cascade; every other
    metric is unknown (NaN). A size that is not a whole number from 1 up is an error naming the line."""
    path = Path(path)
    frame = _read_text_table(path, ",")
    frame.columns = [c.strip() for c in frame.columns]
    column = "size" if "size" in frame.columns else "cascade_size"
    if "cascade_id" not in frame.columns or column not in frame.columns:
        raise DataError(f"{path}:1: a sizes CSV needs the columns cascade_id and size")
    size = _numbers(frame, column, path)
    bad = np.flatnonzero((size < 1) | (size != np.round(size)))
    if len(bad):
        row = int(bad[0])
        raise DataError(f"{path}:{row + 2}: {column} {frame[column].iloc[row]!r} is not a whole number from 1 up")
    table = pd.DataFrame({"cascade_id": frame["cascade_id"].str.strip(), "cascade_size": size.astype(np.int64)})
    for metric in METRICS[1:]:
        table[metric] = np.nan
    return _finish(table, path, "none", {"sizes_only": True})


def read_tree_csv(path: Path | str) -> pd.DataFrame:
    """A generic tree CSV: `cascade_id,node,parent[,time]`, one row per node; an empty parent marks a root
    (several roots in one cascade give several trees). Repeated identical rows are read once; a node given
    two parents, a parent that is not a node of its cascade, or a cycle is an error naming the line."""
    path = Path(path)
    frame = _read_text_table(path, ",")
    frame.columns = [c.strip() for c in frame.columns]
    if not {"cascade_id", "node", "parent"} <= set(frame.columns):
        raise DataError(f"{path}:1: a tree CSV needs the columns cascade_id, node, parent (and optionally time)")
    frame = frame.drop_duplicates()
    blank = (frame["node"].str.strip() == "") | (frame["cascade_id"].str.strip() == "")
    if blank.any():
        raise DataError(f"{path}:{frame.index[blank.to_numpy()][0] + 2}: empty cascade_id or node")
    node_key = frame["cascade_id"] + "\t" + frame["node"]
    twice = node_key.duplicated()
    if twice.any():
        line = frame.index[twice.to_numpy()][0] + 2
        raise DataError(f"{path}:{line}: node {frame['node'][twice].iloc[0]!r} of cascade "
                        f"{frame['cascade_id'][twice].iloc[0]!r} is listed twice with different parents")  # fmt: skip
    codes, _ = pd.factorize(node_key)
    has_parent = (frame["parent"].str.strip() != "").to_numpy()
    lookup = pd.Index(node_key.to_numpy())
    parent_index = lookup.get_indexer((frame["cascade_id"] + "\t" + frame["parent"])[has_parent])
    if (parent_index < 0).any():
        row = int(np.flatnonzero(has_parent)[np.flatnonzero(parent_index < 0)[0]])
        raise DataError(f"{path}:{frame.index[row] + 2}: parent {frame['parent'].iloc[row]!r} is not a node of "
                        f"cascade {frame['cascade_id'].iloc[row]!r}")  # fmt: skip
    parent = np.full(len(frame), -1, dtype=np.int64)
    parent[has_parent] = codes[parent_index]
    time = _numbers(frame, "time", path) if "time" in frame.columns else None
    try:
        trees = tree_table(parent, time)
    except CycleError as exc:
        raise DataError(f"{path}:{frame.index[int(exc.nodes.min())] + 2}: this node's parent links form a cycle "
                        f"and never reach a root") from None  # fmt: skip
    roots = trees.pop("root").to_numpy()
    trees.insert(0, "cascade_id", frame["cascade_id"].to_numpy()[roots])
    trees.insert(1, "root", frame["node"].to_numpy()[roots])
    return _finish(trees, path, "time units of the file" if time is not None else "none")


def read_run(path: Path | str) -> pd.DataFrame:
    """The cascades of a results folder (its cascades.parquet: one row per tree; an older folder's
    items.parquet: one row per post) or of a sweep folder (sweep.parquet, pooled over its runs).

    Time to half size is in minutes: as the run's tables give it when its scenario has a `time` section,
    else steps x `STEP_MINUTES_UNSTATED` (said in `attrs["notes"]`). Where the run's posts know their
    `audience`, each row gets `shares` and `audience` (a tree of a post with several authors: NaN, since a
    post's figures are not split between its trees)."""
    path = Path(path)
    if (path / "sweep.parquet").is_file() and not (path / "manifest.json").is_file():
        table = pd.read_parquet(path / "sweep.parquet")
        per = "tree" if "author" in table.columns else "post"
        scenario, items = None, (table if per == "post" else None)
    else:
        from lsbm_sim.results import load_results

        result = load_results(path)
        per = "tree" if result.cascades is not None else "post"
        items = result.items[result.items["entered"] >= 0]
        table = result.cascades if result.cascades is not None else items
        scenario = result.manifest.get("scenario")
    missing = [c for c in METRICS if c not in table.columns and c != "half_time"]
    if missing:
        raise DataError(f"{path}: no cascade columns {missing} (written by an older version?)")
    table = table.copy()
    if "half_time" not in table.columns:
        table["half_time"] = np.nan
    keys = [c for c in ("run", "item_id", "author") if c in table.columns]
    table.insert(0, "cascade_id", table[keys].astype(str).agg(":".join, axis=1) if keys else np.arange(len(table)).astype(str))
    reach = _reach_columns(table, items, per)
    table, notes = in_minutes(table[list(COLUMNS)], scenario)
    if reach is not None:
        table["shares"], table["audience"] = reach
    return _finish(table, path, "minutes", {"rows_per": per, **notes})


def in_minutes(table: pd.DataFrame, scenario: dict[str, Any] | None) -> tuple[pd.DataFrame, dict[str, str]]:
    """A run's cascade table with `half_time` in minutes, and a note saying how: a scenario with a `time`
    section has its tables in minutes already; without one a step counts as `STEP_MINUTES_UNSTATED` minutes."""
    if scenario is not None and scenario.get("time"):
        return table, {"half_time": "minutes, as the run's tables give them (its scenario's time section)"}
    table = table.copy()
    table["half_time"] = table["half_time"] * STEP_MINUTES_UNSTATED
    return table, {"half_time": f"steps x {STEP_MINUTES_UNSTATED:g} minutes (the scenario has no time section)"}


def _reach_columns(table: pd.DataFrame, items: pd.DataFrame | None, per: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Shares and audience for each row of a run's table, from its posts; None when the run has no audience."""
    if items is None or "audience" not in items.columns or "share" not in items.columns:
        return None
    if per == "post":
        return items["share"].to_numpy(dtype=float), items["audience"].to_numpy(dtype=float)
    single = items[items["authors"] == 1] if "authors" in items.columns else items
    single = single.set_index(single["item_id"].astype(str))
    post = table["item_id"].astype(str)
    return post.map(single["share"]).to_numpy(dtype=float), post.map(single["audience"]).to_numpy(dtype=float)


# ---------------------------------------------------------------------------------------------- comparing


def size_bins(size: np.ndarray) -> np.ndarray:
    """Size bins on a log2 scale: 1 | 2-3 | 4-7 | 8-15 | ... (bin k holds sizes 2^k .. 2^(k+1) - 1)."""
    return np.floor(np.log2(np.maximum(np.asarray(size, dtype=float), 1))).astype(np.int64)


def ks(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample KS distance (scipy.stats.ks_2samp's statistic)."""
    return float(stats.ks_2samp(a, b, method="asymp").statistic)


def matched_ks(sim_values, sim_bins, real_values, real_bins, min_per_bin: int = 5) -> tuple[float, float]:
    """KS within each size bin that holds at least `min_per_bin` cascades on both sides, averaged with the
    real cascades in each bin as weights. Returns (distance, share of real cascades in the bins used);
    (1.0, 0.0) when no bin is shared: the simulation makes no cascades of the real sizes at all."""
    total, weight = 0.0, 0
    for b in np.unique(real_bins):
        r = real_values[real_bins == b]
        s = sim_values[sim_bins == b]
        if len(r) >= min_per_bin and len(s) >= min_per_bin:
            total += len(r) * ks(s, r)
            weight += len(r)
    if weight == 0:
        return 1.0, 0.0
    return total / weight, weight / len(real_values)


def _normalised_time(values: np.ndarray) -> np.ndarray:
    """Times divided by their median (over positive times): simulated steps and real minutes then compare
    by shape, whatever a step stands for."""
    positive = values[values > 0]
    return values / np.median(positive) if len(positive) else values


@dataclass
class Comparison:
    """What `compare` found: `table` has one row per metric (KS overall and at matched size, intervals,
    floors, sample sizes); `sim` and `real` are the tables compared."""

    table: pd.DataFrame
    sim: pd.DataFrame
    real: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)
    reach: pd.DataFrame | None = None
    """Shares per follower of author and sharers, simulated beside real (`compare_reach`); None when one
    side does not know its audience."""

    def scored(self, metrics=("depth", "structural_virality", "cascade_size")) -> list[str]:
        """The metrics of `metrics` that `score` can use: those both sides have (depth of event sequences,
        say, is unknown)."""
        rows = self.table.set_index("metric")
        return [m for m in metrics if m in rows.index and not pd.isna(rows.loc[m, _score_column(m)])]

    def score(self, metrics=("depth", "structural_virality", "cascade_size")) -> float:
        """One number to minimise: the mean of matched-size KS for each metric (overall KS for size), over
        the metrics both sides have (`scored`)."""
        scored = self.scored(metrics)
        if not scored:
            raise LsbmError(f"none of {', '.join(metrics)} can be compared with these cascades")
        rows = self.table.set_index("metric")
        return float(np.mean([rows.loc[m, _score_column(m)] for m in scored]))

    def floor(self, metrics=("depth", "structural_virality", "cascade_size")) -> float | None:
        """The score two halves of the real cascades reach against each other (None without floor splits)."""
        rows = self.table.set_index("metric")
        values = [rows.loc[m, "floor_overall" if m == "cascade_size" else "floor_matched"] for m in self.scored(metrics)]
        values = [v for v in values if not pd.isna(v)]
        return float(np.mean(values)) if values else None

    def to_dict(self) -> dict[str, Any]:
        records = json.loads(self.table.to_json(orient="records"))
        reach = json.loads(self.reach.to_json(orient="records")) if self.reach is not None else None
        return {"metrics": records, "reach": reach, "settings": self.settings}

    def report(self, out: Path | str) -> Path:
        """Write comparison.json, ccdf.png, matched.png and report.html into `out`; returns the HTML path."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "comparison.json").write_text(json.dumps(self.to_dict(), indent=2))
        plot_ccdf(self, out / "ccdf.png")
        plot_matched(self, out / "matched.png")
        shown = self.table.copy()
        for column in shown.columns:
            if shown[column].dtype.kind == "f":
                shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
        settings = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in self.settings.items())
        reach = ("<h2>Shares per follower of author and sharers</h2>" + self.reach.to_html(index=False, float_format="{:.3g}".format)
                 if self.reach is not None else "")  # fmt: skip
        page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Simulated vs real cascades</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style></head><body>
<h1>Simulated vs real cascades</h1>
<p>Two-sample Kolmogorov-Smirnov distances (0 = the same distribution, 1 = no overlap). <i>matched</i>: within
log2 size bins, weighted by the real cascades in each bin (Juul &amp; Ugander 2021); <i>floor</i>: the distance
between two random halves of the real data (median over splits), the least a simulation can expect; intervals
are bootstrap 95% percentile intervals (a resampled KS distance is biased upward, so for near-identical samples
the interval lies above the estimate).</p>
{shown.to_html(index=False, escape=True)}
{reach}<h2>Distributions (CCDF)</h2><img src="ccdf.png" width="100%">
<h2>At matched size</h2><img src="matched.png" width="100%">
<h2>Settings</h2><ul>{settings}</ul></body></html>"""
        (out / "report.html").write_text(page)
        return out / "report.html"


def _score_column(metric: str) -> str:
    """Size is scored overall (matching on size would leave nothing to compare), the others at matched size."""
    return "ks_overall" if metric == "cascade_size" else "ks_matched"


def compare(sim: pd.DataFrame | Path | str, real: pd.DataFrame | Path | str, metrics=METRICS,
            bootstrap: int = 200, floor_splits: int = 20, min_per_bin: int = 5, seed: int = 0,
            min_size: int | None = None, min_shares: int = 50) -> Comparison:  # fmt: skip
    """KS distances between simulated and real cascades for each metric, overall and at matched size, with
    bootstrap intervals (`bootstrap` resamples; 0 for none) and the real-vs-real floor (`floor_splits`
    random halvings; 0 for none). The intervals are bootstrap percentiles, and a resampled KS distance is
    biased upward, so for near-identical samples the interval lies above the estimate (it reads "within
    sampling noise of this"); the floor says the same more directly. Tables, or paths `load_cascades` reads.

    Both sides keep only cascades of at least `min_size` nodes; by default the real data's smallest size
    (real data has many cascades of size 1, so a set without them was cut: twitter16 keeps only large
    trees), stated in `settings["size cut"]`; `min_size=1` compares everything. `half_time` is
    compared in minutes where both sides' units convert (`MINUTES_PER`), else after dividing each side by
    its median; it is left out, with a note, where a side has no spread in time. Where both sides have
    `shares` and `audience`, `reach` holds `compare_reach` (cascades with `min_shares` shares for the median).

    >>> rng = np.random.default_rng(0)
    >>> a = pd.DataFrame({"cascade_size": rng.integers(1, 50, 300), "depth": rng.integers(0, 5, 300)})
    >>> b = pd.DataFrame({"cascade_size": rng.integers(1, 50, 300), "depth": rng.integers(0, 5, 300)})
    >>> c = compare(a, b, metrics=("cascade_size", "depth"), bootstrap=0, floor_splits=0)
    >>> float(c.table.loc[0, "ks_overall"]) == float(stats.ks_2samp(a["cascade_size"], b["cascade_size"]).statistic)
    True
    """
    sim = sim if isinstance(sim, pd.DataFrame) else load_cascades(sim)
    real = real if isinstance(real, pd.DataFrame) else load_cascades(real)
    for name, table in (("simulated", sim), ("real", real)):
        if len(table) == 0:
            raise LsbmError(f"the {name} cascades are empty")
        if "cascade_size" not in table.columns:
            raise LsbmError(f"the {name} cascades have no cascade_size column")
    sim, real, cut = _cut(sim, real, min_size)
    nothing = len(sim) == 0
    time_scale, time_note, sim, real = _time_scale(sim, real, metrics)
    sim_bins, real_bins = size_bins(sim["cascade_size"].to_numpy()), size_bins(real["cascade_size"].to_numpy())
    rows = []
    for k, metric in enumerate(metrics):
        rng = np.random.default_rng([seed, k])  # per metric, so adding a metric leaves the others' figures
        row: dict[str, Any] = {"metric": metric}
        s = sim[metric].to_numpy(dtype=float) if metric in sim.columns else np.full(len(sim), np.nan)
        r = real[metric].to_numpy(dtype=float) if metric in real.columns else np.full(len(real), np.nan)
        s_ok, r_ok = ~np.isnan(s), ~np.isnan(r)
        row["n_sim"], row["n_real"] = int(s_ok.sum()), int(r_ok.sum())
        matched = metric != "cascade_size"
        if nothing and metric != "half_time" and row["n_real"] >= 2:
            # No simulated cascade of the real sizes: as far apart as KS can say, whatever the shape.
            row.update({"ks_overall": 1.0, **({"ks_matched": 1.0, "matched_share": 0.0} if matched else {})})
            row.update(_floors(real_values=r[r_ok], real_bins=real_bins[r_ok], matched=matched, splits=floor_splits,
                               min_per_bin=min_per_bin, rng=rng))  # fmt: skip
            rows.append(row)
            continue
        if row["n_sim"] < 2 or row["n_real"] < 2 or (metric == "half_time" and time_scale is None):
            rows.append(row)  # not in one of the sources (e.g. depth of event sequences): left blank
            continue
        sb, rb = sim_bins[s_ok], real_bins[r_ok]
        s, r = s[s_ok], r[r_ok]
        if metric == "half_time" and time_scale == "median":
            s, r = _normalised_time(s), _normalised_time(r)
        result = stats.ks_2samp(s, r)
        row["ks_overall"], row["p_value"] = float(result.statistic), float(result.pvalue)
        if matched:
            row["ks_matched"], row["matched_share"] = matched_ks(s, sb, r, rb, min_per_bin)
        if bootstrap:
            overall, at_size = [], []
            for _ in range(bootstrap):
                si, ri = rng.integers(0, len(s), len(s)), rng.integers(0, len(r), len(r))
                overall.append(ks(s[si], r[ri]))
                if matched:
                    at_size.append(matched_ks(s[si], sb[si], r[ri], rb[ri], min_per_bin)[0])
            row["ks_overall_low"], row["ks_overall_high"] = np.percentile(overall, [2.5, 97.5]).tolist()
            if matched:
                row["ks_matched_low"], row["ks_matched_high"] = np.percentile(at_size, [2.5, 97.5]).tolist()
        row.update(_floors(r, rb, matched, floor_splits, min_per_bin, rng))
        rows.append(row)
    columns = ["metric", "ks_overall", "ks_overall_low", "ks_overall_high", "floor_overall", "ks_matched",
               "ks_matched_low", "ks_matched_high", "floor_matched", "matched_share", "p_value", "n_sim", "n_real"]  # fmt: skip
    table = pd.DataFrame(rows).reindex(columns=columns)
    reach = compare_reach(sim, real, min_shares) if all(_has_audience(t) for t in (sim, real)) else None
    settings = {
        "simulated": sim.attrs.get("source", "a table"), "real": real.attrs.get("source", "a table"),
        "size cut": cut, "half_time": time_note, "half_time scale": time_scale or "not compared",
        "size bins": "log2: 1 | 2-3 | 4-7 | ...", "min cascades per bin": min_per_bin, "bootstrap resamples": bootstrap,
        "floor splits": floor_splits, "seed": seed, "real notes": real.attrs.get("notes", {}),
        "simulated notes": sim.attrs.get("notes", {}),
    }  # fmt: skip
    if nothing:
        settings["no simulated cascade at the cut"] = "every distance is 1 (the simulation makes no cascade of the real sizes)"
    if reach is not None:
        settings["reach"] = f"shares per follower of author and sharers; median over cascades with >= {min_shares} shares"
    return Comparison(table=table, sim=sim, real=real, settings=settings, reach=reach)


def _floors(real_values: np.ndarray, real_bins: np.ndarray, matched: bool, splits: int, min_per_bin: int,
            rng: np.random.Generator) -> dict[str, float]:  # fmt: skip
    """The median KS distance between two random halves of the real values (`splits` halvings; none for 0),
    overall and, for a `matched` metric, at matched size."""
    if not splits:
        return {}
    r, rb = real_values, real_bins
    floor, floor_matched = [], []
    for _ in range(splits):
        perm = rng.permutation(len(r))
        a, b = perm[: len(perm) // 2], perm[len(perm) // 2:]
        floor.append(ks(r[a], r[b]))
        if matched:
            floor_matched.append(matched_ks(r[a], rb[a], r[b], rb[b], min_per_bin)[0])
    found = {"floor_overall": float(np.median(floor))}
    if matched:
        found["floor_matched"] = float(np.median(floor_matched))
    return found


def _cut(sim: pd.DataFrame, real: pd.DataFrame, min_size: int | None) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Both sides from the same smallest size, and a sentence saying which and why."""
    smallest = int(real["cascade_size"].min())
    if min_size is None:
        if smallest <= 1:
            return sim, real, "none (the real data has cascades of a single node: it was not cut)"
        min_size = smallest
        why = f"{min_size} nodes and more, read from the real data (its smallest cascade; pass min_size=1 to compare all)"
    elif min_size < 1:
        raise LsbmError(f"--min-size {min_size}: a cascade has at least 1 node")
    else:
        why = f"{min_size} nodes and more (as asked)"
    kept = []
    for name, table in (("simulated", sim), ("real", real)):
        part = table[table["cascade_size"].to_numpy() >= min_size]
        if len(part) == 0 and name == "real":
            raise LsbmError(f"--min-size {min_size}: no real cascade has {min_size} nodes or more "
                            f"(largest: {int(table['cascade_size'].max())})")  # fmt: skip
        part.attrs = dict(table.attrs)
        kept.append(part.reset_index(drop=True))
    return kept[0], kept[1], f"{why}: {len(kept[0])} of {len(sim)} simulated, {len(kept[1])} of {len(real)} real"


def _time_scale(sim: pd.DataFrame, real: pd.DataFrame, metrics) -> tuple[str | None, str, pd.DataFrame, pd.DataFrame]:
    """How half_time is compared: "minutes" (both sides converted), "median" (each divided by its median,
    when a unit is unknown) or None (a side has no spread in time), with a note that says so."""
    if "half_time" not in metrics:
        return None, "not asked", sim, real
    tables = {"simulated": sim, "real": real}
    for name, table in tables.items():
        values = table["half_time"].dropna().to_numpy(dtype=float) if "half_time" in table.columns else np.zeros(0)
        if len(np.unique(values)) < 2:
            shown = "no times" if not len(values) else f"every value {values[0]:g}"
            return None, f"not compared: the {name} cascades have no spread in time ({shown})", sim, real
    factors = {name: MINUTES_PER.get(str(t.attrs.get("time_unit"))) for name, t in tables.items()}
    if None in factors.values():
        units = ", ".join(f"{name} {t.attrs.get('time_unit', '?')}" for name, t in tables.items())
        return "median", f"divided by each side's median (units: {units}; not both convertible to minutes)", sim, real
    converted = []
    for name, table in tables.items():
        table = table.copy()
        table["half_time"] = table["half_time"] * factors[name]
        table.attrs = {**table.attrs, "time_unit": "minutes"}
        converted.append(table)
    units = ", ".join(f"{name} {t.attrs.get('time_unit')}" for name, t in tables.items())
    return "minutes", f"in minutes (from {units})", converted[0], converted[1]


def _has_audience(table: pd.DataFrame) -> bool:
    return {"shares", "audience"} <= set(table.columns) and table["audience"].notna().any()


def reach_per_follower(table: pd.DataFrame, min_shares: int = 50) -> dict[str, float]:
    """Shares per follower of a cascade's author and sharers (`shares` / `audience`): pooled over all
    cascades (sum of shares / sum of audience), the median over cascades with at least `min_shares` shares
    (NaN when there are none), and the share of cascades never shared. Rows without an audience are left out.

    >>> t = pd.DataFrame({"shares": [0, 0, 60, 100], "audience": [500, 100, 200_000, 100_000]})
    >>> round(reach_per_follower(t, min_shares=50)["pooled"], 6)  # 160 shares / 300,600 followers
    0.000532
    """
    table = table[table["audience"].notna() & (table["audience"] > 0)]
    shares, audience = table["shares"].to_numpy(dtype=float), table["audience"].to_numpy(dtype=float)
    large = shares >= min_shares
    return {
        "pooled": float(shares.sum() / audience.sum()) if len(table) else np.nan,
        "median_large": float(np.median(shares[large] / audience[large])) if large.any() else np.nan,
        "never_shared": float((shares == 0).mean()) if len(table) else np.nan,
        "cascades": float(len(table)), "large_cascades": float(large.sum()),
    }


def compare_reach(sim: pd.DataFrame, real: pd.DataFrame, min_shares: int = 50) -> pd.DataFrame:
    """`reach_per_follower` of both sides, one row per figure, with log(sim / real) for the rates."""
    s, r = reach_per_follower(sim, min_shares), reach_per_follower(real, min_shares)
    rows = []
    for figure in ("pooled", "median_large", "never_shared", "cascades", "large_cascades"):
        ratio = np.log(s[figure] / r[figure]) if figure in ("pooled", "median_large") and s[figure] > 0 and r[figure] > 0 else np.nan
        rows.append({"figure": figure, "sim": s[figure], "real": r[figure], "log_ratio": float(ratio)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ plots


def _ccdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.sort(values)
    return x, 1.0 - np.arange(len(x)) / len(x)  # P(X >= x)


def plot_ccdf(comparison: Comparison, path: Path) -> Path:
    """Complementary CDFs of every compared metric, simulated beside real, on log-log axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in comparison.table["metric"] if not pd.isna(comparison.table.set_index("metric").loc[m, "ks_overall"])]
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(4 * max(len(metrics), 1), 3.4), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        for name, table, style in (("simulated", comparison.sim, "-"), ("real", comparison.real, "--")):
            values = table[metric].dropna().to_numpy(dtype=float)
            if metric == "half_time" and comparison.settings.get("half_time scale") == "median":
                values = _normalised_time(values)
            x, y = _ccdf(values[values > 0])
            axis.step(x, y, style, where="post", label=name)
        axis.set_xscale("log")
        axis.set_yscale("log")
        unit = " / median" if comparison.settings.get("half_time scale") == "median" else " (minutes)"
        axis.set_title(LABELS.get(metric, metric) + (unit if metric == "half_time" else ""))
        axis.set_ylabel("P(X >= x)")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_matched(comparison: Comparison, path: Path) -> Path:
    """Median and interquartile range of depth, breadth and virality per size bin, simulated and real."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in ("depth", "max_breadth", "structural_virality")
               if m in comparison.real.columns and comparison.real[m].notna().any()]  # fmt: skip
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(4.5 * max(len(metrics), 1), 3.4), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        for name, table in (("simulated", comparison.sim), ("real", comparison.real)):
            frame = pd.DataFrame({"bin": size_bins(table["cascade_size"].to_numpy()), "v": table[metric]}).dropna()
            if frame.empty:  # no cascade of the compared sizes on this side
                continue
            q = frame.groupby("bin")["v"].quantile([0.25, 0.5, 0.75]).unstack()
            x = 2.0 ** q.index.to_numpy()
            axis.plot(x, q[0.5], marker="o", label=name)
            axis.fill_between(x, q[0.25], q[0.75], alpha=0.25)
        axis.set_xscale("log")
        axis.set_xlabel("cascade size (bin start)")
        axis.set_title(f"{LABELS[metric]} at matched size")
    if metrics:
        axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
