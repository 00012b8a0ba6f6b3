"""Behavior instructions: content paired with the behavior it caused, as prompt -> answer text (LCBM's BFT).

Two tasks, both "behavior simulation" (content in, behavior out):

    level  Text: 'Just launched our new eco-friendly product line!' Predict the like level (low/medium/high): high
    bin    Text: '...' Predict the like rate bin (1/2/3/4/5; 1 is lowest): 4

The level task comes in two forms: plain words (the seed model card's prompt, answer " high") and behavior
tokens (options and answer spelled `<|low|>/<|medium|>/<|high|>`, answer "<|high|>", tokens that training adds
to the tokenizer), so a tuned checkpoint answers both. Answers in words start with a space, because that is how
the word follows the colon in running text and so how a byte-level BPE tokenizer makes it one token.

`prepare_dataset` turns a checked table into a folder: train/val/test JSONL of instructions plus `bft.json`
(columns, split, level thresholds and mean rates, rate bins: everything training and evaluation need).

>>> render_level_prompt("Just launched our new eco-friendly product line!", "like")
"Text: 'Just launched our new eco-friendly product line!' Predict the like level (low/medium/high):"
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lsbm_sim.behavior.prompts import behavior_token
from lsbm_sim.bft.data import (
    LEVELS,
    SPLITS,
    EngagementColumns,
    EngagementRows,
    LevelScheme,
    RateBins,
    RelativeTarget,
    SplitSpec,
    engagement_rows,
    in_time_range,
    multi_row_groups,
    select_rows,
    split_rows,
)
from lsbm_sim.errors import DataError, LsbmError
from lsbm_sim.readers import load_table, read_jsonl

LEVEL_PROMPT = "Text: '{content}' Predict the {behavior} level ({options}):"
"""The seed model card's prompt; `{options}` is 'low/medium/high' or the behavior tokens joined by '/'."""
BIN_PROMPT = "Text: '{content}' Predict the {behavior} rate bin ({options}; 1 is lowest):"
TASKS: tuple[str, ...] = ("level", "bin")
FORMS: tuple[str, ...] = ("words", "tokens")
META_FILE = "bft.json"
META_FORMAT = "lsbm-sim bft data"
RATE_TARGET = "rate"
RELATIVE_TARGET = "relative log rate"


# --------------------------------------------------------------------------------------------------- prompts


def level_answers(levels: Sequence[str] = LEVELS, behavior_tokens: bool = False) -> list[str]:
    """The answer text of each level: ' low' (words) or '<|low|>' (behavior tokens)."""
    return [behavior_token(level) if behavior_tokens else f" {level}" for level in levels]


def render_level_prompt(
    content: str, behavior: str, levels: Sequence[str] = LEVELS, behavior_tokens: bool = False
) -> str:
    """The level question, ending where the answer starts."""
    options = "/".join(behavior_token(level) if behavior_tokens else level for level in levels)
    return LEVEL_PROMPT.format(content=content, behavior=behavior, options=options)


def render_bin_prompt(content: str, behavior: str, labels: Sequence[str]) -> str:
    """The rate-bin question for one text, with the bins' labels as the answer options."""
    return BIN_PROMPT.format(content=content, behavior=behavior, options="/".join(labels))


# ------------------------------------------------------------------------------------------------ the folder


@dataclass
class PreparedData:
    """What `bft.json` records about a prepared folder (see `prepare_dataset`).

    `target`: what the levels and bins are quantiles of, "rate" or "relative log rate" (see
    `lsbm_sim.bft.data.RelativeTarget`); `level_rates` are then each level's mean of that target. `dropped`:
    rows left out before splitting, by reason.
    """

    source: str
    columns: dict[str, str]
    behavior: str
    reaction: str
    split: str
    counts: dict[str, int]
    levels: list[str]
    level_thresholds: list[float]
    level_rates: dict[str, float]
    bin_edges: list[float]
    bin_rates: list[float]
    tasks: list[str]
    forms: list[str]
    seed: int = 0
    target: str = RATE_TARGET
    relative_to: str | None = None
    test_file: str | None = None
    drop_time: list[float] | None = None
    dropped: dict[str, int] = field(default_factory=dict)
    level_prompt: str = LEVEL_PROMPT
    bin_prompt: str = BIN_PROMPT
    folder: Path | None = field(default=None, compare=False)

    @property
    def behavior_tokens(self) -> list[str]:
        return [behavior_token(level) for level in self.levels] if "tokens" in self.forms else []

    @property
    def bin_labels(self) -> list[str]:
        return [str(i + 1) for i in range(len(self.bin_rates))]

    def to_json(self) -> dict[str, Any]:
        document = {"format": META_FORMAT, "version": 1}
        document.update({k: v for k, v in vars(self).items() if k != "folder"})
        document["behavior_tokens"] = self.behavior_tokens
        return document

    def instructions(self, split: str) -> list[dict[str, Any]]:
        """The instruction records of one split ('train', 'val', 'test')."""
        if self.folder is None:
            raise LsbmError("this PreparedData was not read from a folder")
        return read_jsonl(self.folder / f"{split}.jsonl")

    def rows(self, split: str) -> list[dict[str, Any]]:
        """One record per content row of a split (the first instruction of each row; they share the row fields)."""
        seen: dict[int, dict[str, Any]] = {}
        for record in self.instructions(split):
            seen.setdefault(record["row"], record)
        return list(seen.values())

    @classmethod
    def read(cls, folder: Path | str) -> PreparedData:
        folder = Path(folder)
        path = folder / META_FILE
        if not path.is_file():
            raise LsbmError(f"{folder}: not a prepared bft data folder (no {META_FILE}; make one with `bft prepare`)")
        try:
            document = json.loads(path.read_text())
            if document.get("format") != META_FORMAT:
                raise ValueError(f"format is {document.get('format')!r}")
            fields = {k: document[k] for k in cls.__dataclass_fields__ if k in document and k != "folder"}
            data = cls(**fields)
        except (ValueError, TypeError, KeyError) as exc:
            raise LsbmError(f"{path}: not a valid bft data description ({exc})") from None
        data.folder = folder
        return data


def prepare_dataset(
    source: Path | str,
    columns: EngagementColumns,
    out: Path | str,
    split: SplitSpec,
    behavior_name: str | None = None,
    reaction: str = "share",
    tasks: Sequence[str] = TASKS,
    forms: Sequence[str] = FORMS,
    bins: int = 5,
    overwrite: bool = False,
    relative_to: str | None = None,
    test_file: Path | str | None = None,
    drop_time: tuple[float, float] | None = None,
) -> PreparedData:
    """Read `source`, check it, split it, label it and write train/val/test JSONL and `bft.json` into `out`.

    Levels and rate bins are fitted on the training split only. The folder appears complete or not at all.

    `relative_to`: a group column (an A/B test id); levels then come from each row's log rate minus its group's
    mean, not from the rate (`RelativeTarget`), and groups of one row are dropped. `test_file`: a held-out file
    with the same columns that is the test split; `source` is then split into train and val only, and its rows
    whose group also appears in the test file are dropped. `drop_time` (low, high), inclusive: rows whose time
    lies in it are dropped from every split (training included), before anything is fitted.

    >>> prepare_dataset("ab_tests.csv", EngagementColumns("headline", "clicks", "impressions", group="test_id",
    ...                 time="week"), "data/bft", SplitSpec.parse("time:week"))  # doctest: +SKIP
    """
    unknown = sorted(set(tasks) - set(TASKS)) + sorted(set(forms) - set(FORMS))
    if unknown or not tasks or not forms:
        raise LsbmError(f"unknown or no tasks/forms {unknown}; tasks are {list(TASKS)}, forms {list(FORMS)}")
    if relative_to is not None:
        if columns.group not in (None, relative_to):
            raise LsbmError(f"--relative-to {relative_to!r} and --group {columns.group!r} differ: the within-group "
                            "target and the split must use the same groups")  # fmt: skip
        columns = EngagementColumns(columns.text, columns.behavior, columns.exposure, relative_to, columns.time)
    if split.kind == "time":
        columns = EngagementColumns(columns.text, columns.behavior, columns.exposure, columns.group, split.column)
    source = Path(source)
    rows = engagement_rows(load_table(source), columns, str(source))
    held_out = None
    if test_file is not None:
        test_file = Path(test_file)
        held_out = engagement_rows(load_table(test_file), columns, str(test_file))

    dropped: dict[str, int] = {}

    def drop(which: EngagementRows, remove: np.ndarray, reason: str) -> EngagementRows:
        if remove.any():
            dropped[reason] = dropped.get(reason, 0) + int(remove.sum())
        return select_rows(which, ~remove)

    if drop_time is not None:
        rows = drop(rows, in_time_range(rows, drop_time, str(source)), "time in --drop-time")
        if held_out is not None:
            held_out = drop(held_out, in_time_range(held_out, drop_time, str(test_file)), "time in --drop-time")
    if relative_to is not None:
        rows = drop(rows, ~multi_row_groups(rows), "group of one row")
        if held_out is not None:
            held_out = drop(held_out, ~multi_row_groups(held_out), "group of one row")
    if held_out is not None and rows.group is not None:
        rows = drop(rows, np.isin(rows.group, held_out.group), "group also in --test-file")
    for which, name in ((rows, source), (held_out, test_file)):
        if which is not None and len(which) == 0:
            raise DataError(f"{name}: no rows are left after dropping {dropped}")

    side = split_rows(rows, split, str(source), with_test=held_out is None)
    targets, weights = row_targets(rows, relative_to is not None)
    train = side == "train"
    what = f"{source}: the {'relative log rate' if relative_to else 'rate'} of {columns.behavior!r}"
    levels = LevelScheme.fit(targets[train], what=what)
    rate_bins = RateBins.fit(targets[train], bins)
    behavior_name = behavior_name or columns.behavior

    records = instruction_records(rows, side, levels, rate_bins, behavior_name, tasks, forms, targets, weights)
    if held_out is not None:
        held_targets, held_weights = row_targets(held_out, relative_to is not None)
        records += instruction_records(held_out, np.full(len(held_out), "test"), levels, rate_bins, behavior_name,
                                       tasks, forms, held_targets, held_weights)  # fmt: skip
    counts = {s: len({r["row"] for r in records if r["split"] == s}) for s in SPLITS}
    data = PreparedData(
        source=str(source),
        columns=columns.named(),
        behavior=behavior_name,
        reaction=reaction,
        split=str(split),
        counts=counts,
        levels=list(levels.levels),
        level_thresholds=list(levels.thresholds),
        level_rates=levels.level_rates(),
        bin_edges=list(rate_bins.edges),
        bin_rates=list(rate_bins.rates),
        tasks=list(tasks),
        forms=list(forms),
        seed=split.seed,
        target=RELATIVE_TARGET if relative_to is not None else RATE_TARGET,
        relative_to=relative_to,
        test_file=str(test_file) if test_file is not None else None,
        drop_time=list(drop_time) if drop_time is not None else None,
        dropped=dropped,
    )
    with staged_folder(out, overwrite) as staging:
        for s in SPLITS:
            write_jsonl(staging / f"{s}.jsonl", (r for r in records if r["split"] == s))
        (staging / META_FILE).write_text(json.dumps(data.to_json(), indent=2))
    data.folder = Path(out)
    return data


def row_targets(rows: EngagementRows, relative: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """What the levels are quantiles of, and each row's weight: the rate and no weight, or the within-group
    relative log rate and its inverse-variance weight."""
    if not relative:
        return rows.rate, None
    target = RelativeTarget.of(rows)
    return target.value, target.weight


def instruction_records(
    rows: EngagementRows,
    side: np.ndarray,
    levels: LevelScheme,
    rate_bins: RateBins,
    behavior: str,
    tasks: Sequence[str] = TASKS,
    forms: Sequence[str] = FORMS,
    targets: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """One record per (row, task, form): the prompt, its completion, and the row's own fields for evaluation.

    `targets`: what the levels and bins are read from (default: the rate); `weights`: each row's weight (none
    by default), written as `weight`.
    """
    targets = rows.rate if targets is None else targets
    level_of = levels.assign(targets)
    bin_of = rate_bins.assign(targets)
    labels = list(rate_bins.labels)
    records = []
    for i in range(len(rows)):
        common = {
            "row": int(rows.row[i]),
            "split": str(side[i]),
            "text": rows.text[i],
            "rate": float(rows.rate[i]),
            "target": float(targets[i]),
            "weight": None if weights is None else float(weights[i]),
            "level": str(level_of[i]),
            "bin": int(bin_of[i]),
            "behavior": float(rows.behavior[i]),
            "exposure": None if rows.exposure is None else float(rows.exposure[i]),
            "group": None if rows.group is None else str(rows.group[i]),
            "time": None if rows.time is None else float(rows.time[i]),
        }
        if "level" in tasks:
            for form in forms:
                tokens = form == "tokens"
                answer = level_answers([common["level"]], behavior_tokens=tokens)[0]
                prompt = render_level_prompt(rows.text[i], behavior, levels.levels, behavior_tokens=tokens)
                records.append({"task": "level", "form": form, "prompt": prompt, "completion": answer, **common})
        if "bin" in tasks:
            prompt = render_bin_prompt(rows.text[i], behavior, labels)
            records.append({"task": "bin", "form": "words", "prompt": prompt, "completion": f" {common['bin']}",
                            **common})  # fmt: skip
    return records


# -------------------------------------------------------------------------------------------- files on disk


def write_jsonl(path: Path | str, records: Iterable[dict[str, Any]]) -> int:
    """Write one JSON object per line (to a temporary name, renamed when complete); return how many."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(path)
    return n


@contextlib.contextmanager
def staged_folder(final: Path | str, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty folder beside `final`; when the block succeeds it becomes `final`, else it is removed.

    So a folder that exists under its final name is complete: an interrupted run leaves only a hidden
    `.NAME.staging-*` folder, which the next run does not mistake for a result.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise LsbmError(f"{final} already exists; choose another --out or pass --overwrite")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.staging-", dir=final.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(final)
