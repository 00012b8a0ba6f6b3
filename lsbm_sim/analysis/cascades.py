"""Real cascades in: the formats real diffusion data comes in, read into one per-cascade table.

Every loader returns the same per-cascade table as a run's `cascades.parquet`: one row per tree with
`cascade_id`, `cascade_size`, `depth`, `max_breadth`, `structural_virality` and `half_time` (the figures of
`lsbm_sim.analysis.metrics`, Goel et al. 2016; a column the source cannot give, such as depth for a sequence without
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

`lsbm_sim.analysis.compare` holds such a table against a run's.

>>> real = load_cascades("../shared/data/twitter16_cascades")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lsbm_sim.errors import DataError
from lsbm_sim.analysis.metrics import CycleError, half_times, roots_and_depths, tree_table

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
    raise DataError(f"{path}:1: not a cascade file (header {header}); see lsbm_sim.analysis.cascades for the layouts")


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
        from lsbm_sim.analysis.results import load_results

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
