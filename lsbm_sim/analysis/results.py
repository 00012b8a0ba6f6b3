"""What a run leaves behind: the event log, per-step and per-post tables, and the manifest.

A results folder holds
    events.parquet   one row per exposure: step, agent_id, item_id, parent_id, position, reaction, p_<reaction>...
    steps.parquet    one row per step (Mesa's DataCollector)
    items.parquet    one row per post: reach, reactions, cascade size, depth, max breadth, structural virality,
                     half time (over the post's trees: one per author; see lsbm_sim.analysis.metrics)
    cascades.parquet one row per cascade tree (post, author): size, depth, max breadth, virality, half time
    agents.parquet   one row per agent: node label, persona archetype, traits, counters
    manifest.json    scenario, seed, versions, backend, timings, broker statistics; `complete: true` last

A folder is written under a staging name and renamed into place only when complete, so a run that fails leaves
no folder looking complete: what it had gathered goes to `<out>.partial/` with `complete: false` and the error.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lsbm_sim.errors import LsbmError

EVENTS, STEPS, ITEMS, AGENTS, MANIFEST = "events.parquet", "steps.parquet", "items.parquet", "agents.parquet", "manifest.json"
CASCADES = "cascades.parquet"
logger = logging.getLogger(__name__)

FLUSH_ROWS = int(os.environ.get("LSBM_FLUSH_ROWS", 1_000_000))
"""Event rows buffered before a row group is written (depends only on the data, so output is reproducible).
LSBM_FLUSH_ROWS sets it (tests use small row groups to exercise many of them in a small run)."""


EVENT_KINDS = ("all", "engaged", "none")
"""What the event log keeps (`results.events`): every exposure, only those not ignored, or nothing."""


class EventLog:
    """The exposure log, buffered in memory and, when a path is given, streamed to Parquet in row groups as it
    grows (so a run of tens of millions of exposures holds at most FLUSH_ROWS of them in memory).

    `keep`: "all" exposures, the "engaged" ones (any reaction but ignore), or "none" (the file then holds the
    schema and no rows). `exposures` counts every exposure; `rows` the rows kept.
    """

    def __init__(self, reactions: tuple[str, ...], item_ids: list[str], path: Path | None = None, keep: str = "all",
                 segments: Path | None = None):  # fmt: skip
        if keep not in EVENT_KINDS:
            raise LsbmError(f"results.events: {keep!r} is not one of {', '.join(EVENT_KINDS)}")
        self.reactions = reactions
        self.item_ids = item_ids  # the model's list: it grows as people post
        self.path = path
        self.keep = keep
        self._dictionary: pa.Array | None = None  # the item ids as an Arrow array, rebuilt when posts were added
        self.schema = pa.schema(
            [
                ("step", pa.int32()),
                ("agent_id", pa.int32()),
                ("item_id", pa.dictionary(pa.int32(), pa.string())),
                ("parent_id", pa.int32()),
                ("position", pa.int32()),
                ("reaction", pa.dictionary(pa.int8(), pa.string())),
                *[(f"p_{r}", pa.float32()) for r in reactions],
            ]
        )
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self._flushed: list[pa.RecordBatch] = []  # kept in memory only when there is no file
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0
        self.exposures = 0
        # With a checkpoint folder, each row group is also kept there as a finished file: a Parquet file being
        # written is unreadable until closed, so a killed run's events.parquet is lost, but these are not.
        self.segments = segments
        self.flushes = 0

    def append(self, step: int, agent: np.ndarray, item: np.ndarray, parent: np.ndarray, position: np.ndarray,
               reaction: np.ndarray, probs: np.ndarray) -> None:  # fmt: skip
        self.exposures += len(agent)
        if self.keep != "all":
            rows = np.zeros(0, dtype=np.int64)
            if self.keep == "engaged":
                rows = np.flatnonzero(reaction != self.reactions.index("ignore"))
            agent, item, parent, position, reaction, probs = (a[rows] for a in (agent, item, parent, position, reaction, probs))
        n = len(agent)
        if n == 0:
            return
        if self._dictionary is None or len(self._dictionary) != len(self.item_ids):
            self._dictionary = pa.array(self.item_ids, pa.string())
        columns = [
            pa.array(np.full(n, step, dtype=np.int32)),
            pa.array(agent.astype(np.int32)),
            pa.DictionaryArray.from_arrays(pa.array(item.astype(np.int32)), self._dictionary),
            pa.array(parent.astype(np.int32)),
            pa.array(position.astype(np.int32)),
            pa.DictionaryArray.from_arrays(pa.array(reaction.astype(np.int8)), pa.array(list(self.reactions))),
            *[pa.array(np.ascontiguousarray(probs[:, k], dtype=np.float32)) for k in range(probs.shape[1])],
        ]
        self._buffer.append(pa.RecordBatch.from_arrays(columns, schema=self.schema))
        self._buffered += n
        self.rows += n
        if self._buffered >= FLUSH_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self.path is None:
            # Kept as they are: joining them into one batch would copy the whole log (and unify its
            # dictionaries) every million rows, a fifth of a fast run's time, for nothing `table()` needs.
            self._flushed.extend(self._buffer)
        else:
            self.write_row_group(self._buffer)
        self._buffer, self._buffered = [], 0

    def write_row_group(self, batches: list[pa.RecordBatch], keep_segment: bool = True) -> None:
        """Write flushed batches to the file (and, with `segments`, keep a copy there; a resume copies them back)."""
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
        self._writer.write_table(pa.Table.from_batches(batches, schema=self.schema), row_group_size=FLUSH_ROWS * 2)
        if self.segments is not None and keep_segment:
            write_segment(batches, self.schema, self.segments, self.flushes)
        self.flushes += 1

    def close(self) -> None:
        """Write what is buffered and finish the file (an empty log still gets a file with the schema)."""
        self._flush()
        if self.path is not None:
            if self._writer is None:
                self._writer = pq.ParquetWriter(self.path, self.schema, compression="zstd")
            self._writer.close()
            self._writer = None

    def table(self) -> pa.Table:
        """Everything logged so far. While a streamed log is being written, the part already in the file
        cannot be read (a Parquet file is readable once finished): read the results folder after the run."""
        parts: list[pa.Table] = []
        if self.path is not None and self.path.exists():
            if self._writer is not None:
                raise LsbmError("the event log is being streamed to disk; load the results folder after the run")
            parts.append(pq.read_table(self.path))
        batches = self._flushed + self._buffer
        if batches:
            parts.append(pa.Table.from_batches(batches, schema=self.schema))
        if not parts:
            return self.schema.empty_table()
        return pa.concat_tables(parts).unify_dictionaries()

    def frame(self) -> pd.DataFrame:
        return self.table().to_pandas()



def write_segment(batches: list[pa.RecordBatch], schema: pa.Schema, folder: Path, index: int) -> None:
    """One row group's batches as their own finished file, renamed into place once written."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{index:06d}.arrows"
    tmp = folder / f".{target.name}.tmp"
    with open(tmp, "wb") as f:
        with pa.ipc.new_stream(f, schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
            for batch in batches:
                writer.write_batch(batch)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)


@dataclass
class SimulationResult:
    """A run's tables and manifest. `events` is read from disk on first use when the run wrote a folder.

    >>> res = run("scenarios/eco_product_launch.yaml", seed=7)  # doctest: +SKIP
    >>> res.items[["item_id", "reach", "share", "cascade_size"]]  # doctest: +SKIP
    """

    steps: pd.DataFrame
    items: pd.DataFrame
    agents: pd.DataFrame
    manifest: dict[str, Any]
    path: Path | None = None
    cascades: pd.DataFrame | None = None
    """One row per cascade tree (post, author); None for folders written before it existed."""
    _events: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def events(self) -> pd.DataFrame:
        if self._events is None:
            if self.path is None:
                raise LsbmError("this result has no event log")
            self._events = pd.read_parquet(self.path / EVENTS)
        return self._events

    @property
    def complete(self) -> bool:
        return bool(self.manifest.get("complete"))

    @property
    def reactions(self) -> list[str]:
        return list(self.manifest.get("reactions", []))

    def timeline(self, reaction: str = "share", cumulative: bool = True) -> pd.DataFrame:
        """Reactions of one kind per step and post (rows: steps, columns: post ids); `reach` counts first
        exposures instead."""
        events = self.events
        steps = pd.RangeIndex(len(self.steps), name="step")
        if reaction == "reach":
            first = events.drop_duplicates(["item_id", "agent_id"])
            table = first.groupby(["step", "item_id"], observed=True).size().unstack(fill_value=0)
        else:
            if reaction not in self.reactions:
                raise LsbmError(f"unknown reaction {reaction!r}; this run's reactions are {self.reactions}")
            chosen = events[events["reaction"] == reaction]
            table = chosen.groupby(["step", "item_id"], observed=True).size().unstack(fill_value=0)
        table = table.reindex(steps, fill_value=0)
        table.columns = table.columns.astype(str)
        table = table.reindex(columns=list(self.items["item_id"]), fill_value=0)
        return table.cumsum() if cumulative else table

    def plot(self, reactions: tuple[str, ...] = ("reach", "share"), ax=None):
        """Cumulative reach and shares of each post over the steps (matplotlib)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, axes = plt.subplots(1, len(reactions), figsize=(5 * len(reactions), 3.5), squeeze=False)
            axes = axes[0]
        else:
            axes = np.atleast_1d(ax)
        for axis, reaction in zip(axes, reactions):
            self.timeline(reaction).plot(ax=axis)
            axis.set_title(f"cumulative {reaction}")
            axis.set_xlabel("step")
        return axes

    def summary(self, top: int | None = None) -> pd.DataFrame:
        """The per-post figures a reader looks at first; with `top`, only the `top` posts of widest reach (a
        platform run has tens of thousands of posts). Cascade columns are over the post's trees, one per
        author: `cascade_size` their nodes (authors + sharers), `depth` and `max_breadth` those of the deepest
        and widest tree, `structural_virality` the mean distance within a tree, `half_time` minutes to half its size."""
        cols = ["item_id", "reach", *[r for r in self.reactions if r != "ignore"], "authors", "cascade_size",
                "depth", "max_breadth", "structural_virality", "half_time"]  # fmt: skip
        table = self.items[[c for c in cols if c in self.items.columns]]
        if top is not None and len(table) > top:
            table = table.sort_values(["reach", "item_id"], ascending=[False, True], kind="stable").head(top)
        return table

    def totals(self) -> dict[str, int]:
        """The run in a few numbers: posts, exposures, and each reaction other than ignore."""
        reactions = [r for r in self.reactions if r != "ignore" and r in self.items.columns]
        return {
            "posts": len(self.items),
            "exposures": int(self.manifest.get("exposures", int(self.steps["exposures"].sum()))),
            **{r: int(self.items[r].sum()) for r in reactions},
        }

    # -------------------------------------------------------------------------------------- writing

    def save(self, out: Path | str) -> Path:
        """Write the results folder (the event log must be in memory; `run(out=...)` streams it instead)."""
        out = Path(out)
        staging = staging_dir(out)
        try:
            pq.write_table(pa.Table.from_pandas(self.events, preserve_index=False), staging / EVENTS, compression="zstd")
            write_tables(staging, self.steps, self.items, self.agents, self.manifest, self.cascades)
            publish(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.path = out
        return out


def write_tables(folder: Path, steps: pd.DataFrame, items: pd.DataFrame, agents: pd.DataFrame,
                 manifest: dict[str, Any], cascades: pd.DataFrame | None = None) -> None:  # fmt: skip
    """Everything but the event log; the manifest goes last."""
    tables = ((STEPS, steps), (ITEMS, items), (AGENTS, agents), (CASCADES, cascades))
    for name, frame in ((name, frame) for name, frame in tables if frame is not None):
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / name, compression="zstd")
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def check_output_folder(out: Path) -> None:
    """Refuse, before a run starts, a folder that cannot hold results: one that exists and is not a previous
    results folder, one under a file, or one in a kernel file system (/proc, /sys, /dev)."""
    resolved = out.resolve()
    if resolved.parts[1:2] and resolved.parts[1] in ("proc", "sys", "dev"):
        raise LsbmError(f"--out {out}: /{resolved.parts[1]} is not a place for results; choose another folder")
    for parent in resolved.parents:
        if parent.exists():
            if not parent.is_dir():
                raise LsbmError(f"--out {out}: {parent} is a file, not a folder")
            break
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).exists())):
        raise LsbmError(f"--out {out}: exists and is not a results folder; choose another folder")


def staging_dir(out: Path) -> Path:
    """A fresh folder beside `out` to write into before renaming it into place. Staging folders that a killed
    run left beside `out` (their process is gone) are removed first."""
    check_output_folder(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(out)
        staging = out.parent / f".{out.name}.staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    except OSError as exc:
        raise LsbmError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
    return staging


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove `.<name>.staging-<pid>` and `.<name>.old-<pid>` folders beside `out` whose process is gone (a run
    killed with SIGKILL cannot clean up after itself). Returns what was removed."""
    removed = []
    for kind in ("staging", "old"):
        for folder in out.parent.glob(f".{out.name}.{kind}-*"):
            pid = folder.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _process_alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
                logger.warning("removed %s, left by a run that was killed (process %s)", folder, pid)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def publish(staging: Path, out: Path) -> None:
    """Move a complete staging folder to `out`, replacing a previous results folder there, and remove a
    `<out>.partial/` an earlier, interrupted run left (it would otherwise sit beside results it does not match)."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(partial_dir(out), ignore_errors=True)


def partial_dir(out: Path) -> Path:
    """Where a run that failed part-way keeps what it had gathered: `<out>.partial` beside `out`."""
    return out.parent / f"{out.name}.partial"


def load_results(path: Path | str, allow_incomplete: bool = False) -> SimulationResult:
    """Read a results folder back. A folder without `complete: true` is refused unless `allow_incomplete`."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise LsbmError(f"{path}: not a results folder (no {MANIFEST})")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise LsbmError(f"{manifest_path}: unreadable ({exc})") from None
    if not manifest.get("complete") and not allow_incomplete:
        raise LsbmError(f"{path}: the run did not complete ({manifest.get('error', 'no reason recorded')})")
    return SimulationResult(
        steps=pd.read_parquet(path / STEPS),
        items=pd.read_parquet(path / ITEMS),
        agents=pd.read_parquet(path / AGENTS),
        manifest=manifest,
        path=path,
        cascades=pd.read_parquet(path / CASCADES) if (path / CASCADES).is_file() else None,
    )
