"""bft prepare: loading, checking, rates, splits, levels and behavior instructions (no model involved)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lsbm_sim.bft.cli import run_bft_cli
from lsbm_sim.bft.data import EngagementColumns, LevelScheme, SplitSpec
from lsbm_sim.bft.instructions import PreparedData, prepare_dataset, render_level_prompt
from lsbm_sim.readers import read_jsonl

from bft_fixtures import planted_corpus, write_planted_csv

COLUMNS = EngagementColumns(text="headline", behavior="clicks", exposure="impressions", group="test_id")
PREPARE = ["prepare", "--text", "headline", "--behavior", "clicks", "--exposure", "impressions",
           "--group", "test_id", "--split", "time:week"]  # fmt: skip


def all_rows(data: PreparedData) -> dict[str, list[dict]]:
    return {split: data.rows(split) for split in ("train", "val", "test")}


def test_seed_card_prompt_is_the_level_prompt():
    prompt = render_level_prompt("Just launched our new eco-friendly product line!", "like")
    seed_card = "Text: 'Just launched our new eco-friendly product line!' Predict the like level (low/medium/high):"
    assert prompt == seed_card
    tokens = render_level_prompt("Hi", "like", behavior_tokens=True)
    assert tokens == "Text: 'Hi' Predict the like level (<|low|>/<|medium|>/<|high|>):"


def test_time_split_keeps_groups_whole_and_orders_by_time(tmp_path):
    csv = write_planted_csv(tmp_path)
    data = prepare_dataset(csv, COLUMNS, tmp_path / "bft", SplitSpec.parse("time:week"), behavior_name="like")
    rows = all_rows(data)
    assert sum(data.counts.values()) == len(pd.read_csv(csv))
    assert all(len(rows[s]) == data.counts[s] for s in rows)
    groups = {s: {r["group"] for r in rows[s]} for s in rows}
    assert not (groups["train"] & groups["val"]) and not (groups["train"] & groups["test"])
    assert not (groups["val"] & groups["test"])
    times = {s: [r["time"] for r in rows[s]] for s in rows}
    assert max(times["train"]) < min(times["val"]) and max(times["val"]) < min(times["test"])
    assert 0.05 < data.counts["test"] / len(pd.read_csv(csv)) < 0.25


def test_random_split_keeps_groups_whole(tmp_path):
    csv = write_planted_csv(tmp_path)
    data = prepare_dataset(csv, COLUMNS, tmp_path / "bft", SplitSpec.parse("random", seed=3))
    groups = {s: {r["group"] for r in rows} for s, rows in all_rows(data).items()}
    assert all(groups[s] for s in groups)
    assert not (groups["train"] & groups["val"] or groups["train"] & groups["test"] or groups["val"] & groups["test"])


def test_levels_are_training_quantiles_and_ignore_test_rows(tmp_path):
    corpus = planted_corpus()
    first = tmp_path / "a.csv"
    corpus.to_csv(first, index=False)
    data = prepare_dataset(first, COLUMNS, tmp_path / "a", SplitSpec.parse("time:week"))
    train_rates = np.array([r["rate"] for r in data.rows("train")])
    assert np.allclose(data.level_thresholds, np.quantile(train_rates, [1 / 3, 2 / 3]))
    # Each level holds a third of the training rows and its mean rate is what the checkpoint will carry.
    levels = np.array([r["level"] for r in data.rows("train")])
    for level in ("low", "medium", "high"):
        assert abs((levels == level).mean() - 1 / 3) < 0.02
        assert data.level_rates[level] == pytest.approx(train_rates[levels == level].mean())
    # Change every test-split row's clicks: the levels (fitted on training rows only) do not move.
    test_weeks = {r["time"] for r in data.rows("test")}
    changed = corpus.copy()
    changed.loc[changed["week"].isin(test_weeks), "clicks"] = 0
    second = tmp_path / "b.csv"
    changed.to_csv(second, index=False)
    again = prepare_dataset(second, COLUMNS, tmp_path / "b", SplitSpec.parse("time:week"))
    assert again.level_thresholds == data.level_thresholds and again.level_rates == data.level_rates
    assert {r["level"] for r in again.rows("test")} == {"low"}


def test_time_split_reads_dates(tmp_path):
    corpus = planted_corpus(n_tests=60)
    corpus["posted"] = (pd.Timestamp("2014-01-06") + pd.to_timedelta(corpus["week"] * 7, unit="D")).astype(str)
    path = tmp_path / "dated.csv"
    corpus.drop(columns=["week"]).to_csv(path, index=False)
    data = prepare_dataset(path, COLUMNS, tmp_path / "bft", SplitSpec.parse("time:posted"))
    by_week = prepare_dataset(write_planted_csv(tmp_path / "w", n_tests=60), COLUMNS, tmp_path / "w" / "bft",
                              SplitSpec.parse("time:week"))  # fmt: skip
    assert data.counts == by_week.counts
    assert [r["row"] for r in data.rows("test")] == [r["row"] for r in by_week.rows("test")]


def test_instructions_in_both_level_forms_and_the_rate_bin_form(tmp_path):
    csv = write_planted_csv(tmp_path, n_tests=60)
    data = prepare_dataset(csv, COLUMNS, tmp_path / "bft", SplitSpec.parse("time:week"), behavior_name="like")
    records = data.instructions("train")
    row = records[0]["row"]
    of_row = {(r["task"], r["form"]): r for r in records if r["row"] == row}
    assert set(of_row) == {("level", "words"), ("level", "tokens"), ("bin", "words")}
    words, tokens, rate_bin = of_row["level", "words"], of_row["level", "tokens"], of_row["bin", "words"]
    text, level = words["text"], words["level"]
    assert words["prompt"] == f"Text: '{text}' Predict the like level (low/medium/high):"
    assert words["completion"] == f" {level}"
    assert tokens["completion"] == f"<|{level}|>" and "(<|low|>/<|medium|>/<|high|>):" in tokens["prompt"]
    assert rate_bin["prompt"] == f"Text: '{text}' Predict the like rate bin (1/2/3/4/5; 1 is lowest):"
    assert rate_bin["completion"] == f" {rate_bin['bin']}"
    # Bins are ordered like rates: a higher bin never has a lower rate than a lower bin's highest rate.
    by_bin = {}
    for r in records:
        by_bin.setdefault(r["bin"], []).append(r["rate"])
    assert sorted(by_bin) == [1, 2, 3, 4, 5]
    assert all(max(by_bin[b]) <= min(by_bin[b + 1]) for b in range(1, 5))
    meta = json.loads((tmp_path / "bft" / "bft.json").read_text())
    assert meta["behavior_tokens"] == ["<|low|>", "<|medium|>", "<|high|>"] and meta["reaction"] == "share"


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_parquet_and_jsonl_give_the_same_instructions_as_csv(tmp_path, suffix):
    corpus = planted_corpus(n_tests=60)
    csv = tmp_path / "d.csv"
    corpus.to_csv(csv, index=False)
    other = tmp_path / f"d{suffix}"
    corpus.to_parquet(other) if suffix == ".parquet" else corpus.to_json(other, orient="records", lines=True)
    a = prepare_dataset(csv, COLUMNS, tmp_path / "a", SplitSpec.parse("time:week"))
    b = prepare_dataset(other, COLUMNS, tmp_path / "b", SplitSpec.parse("time:week"))
    assert read_jsonl(tmp_path / "a" / "test.jsonl") == read_jsonl(tmp_path / "b" / "test.jsonl")
    assert a.level_rates == b.level_rates


def test_counts_without_exposure_are_levelled_as_counts(tmp_path):
    corpus = planted_corpus(n_tests=60).drop(columns=["impressions"])
    path = tmp_path / "likes.csv"
    corpus.to_csv(path, index=False)
    columns = EngagementColumns(text="headline", behavior="clicks")
    data = prepare_dataset(path, columns, tmp_path / "bft", SplitSpec.parse("random"))
    train = data.rows("train")
    assert all(r["rate"] == r["behavior"] and r["exposure"] is None for r in train)
    assert data.level_rates["high"] > data.level_rates["low"] > 1  # counts, not probabilities


def test_level_scheme_refuses_levels_that_ties_leave_empty():
    with pytest.raises(ValueError, match="empty"):
        LevelScheme.fit(np.zeros(30))


# --------------------------------------------------------------------------------------- bad data, exit 2


def damaged_csv(tmp_path, column: str, rows: list[int] | None, value) -> str:
    """The planted corpus with `column` set to `value` in the 0-based `rows` (or dropped when rows is None)."""
    corpus = planted_corpus(n_tests=30).astype({"impressions": object, "clicks": object, "headline": object,
                                                 "week": object})
    if rows is None:
        corpus = corpus.drop(columns=[column])
    else:
        corpus.loc[rows, column] = value
    path = tmp_path / "bad.csv"
    corpus.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    ("column", "rows", "value", "expected"),
    [
        ("impressions", None, None, ["no column 'impressions'"]),
        ("headline", [2, 6], "  ", ["column 'headline'", "empty", "rows 3, 7"]),
        ("headline", [4], None, ["column 'headline'", "empty", "row 5"]),
        ("impressions", [4, 9, 11], 0, ["column 'impressions'", "zero", "rows 5, 10, 12"]),
        ("clicks", [0, 7], "many", ["column 'clicks'", "not a number", "rows 1, 8"]),
        ("clicks", [3], 10**6, ["column 'clicks' exceeds column 'impressions'", "row 4"]),
        ("clicks", [8], -1, ["column 'clicks'", "negative", "row 9"]),
        ("test_id", [5], None, ["column 'test_id'", "row 6"]),
        ("week", [5, 6], "someday", ["column 'week' (the time)", "rows 6, 7"]),
        ("clicks", list(range(10, 20)), "x", ["rows 11, 12, 13, 14, 15 and 5 more"]),
    ],
    ids=["missing-column", "blank-text", "missing-text", "zero-exposure", "non-numeric-count", "count-above-exposure",
         "negative-count", "no-group", "bad-time", "many-rows"],
)
def test_bad_data_exits_2_naming_file_column_and_rows(tmp_path, capsys, column, rows, value, expected):
    path = damaged_csv(tmp_path, column, rows, value)
    out = tmp_path / "out"
    code = run_bft_cli([*PREPARE[:1], path, *PREPARE[1:], "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert path in err
    for part in expected:
        assert part in err
    assert not out.exists() and not list(tmp_path.glob(".out*"))  # nothing half-written


def test_bad_jsonl_line_and_missing_file_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"headline": "a", "clicks": 1, "impressions": 10}\n{not json\n')
    out = str(tmp_path / "o")
    assert run_bft_cli(["prepare", str(path), "--text", "headline", "--behavior", "clicks", "--out", out]) == 2
    assert str(path) in capsys.readouterr().err
    assert run_bft_cli(["prepare", str(tmp_path / "nope.csv"), "--text", "h", "--behavior", "c", "--out", "o"]) == 2
    assert "not found" in capsys.readouterr().err


def test_existing_output_is_not_overwritten_without_asking(tmp_path, capsys):
    csv = write_planted_csv(tmp_path, n_tests=30)
    out = tmp_path / "bft"
    assert run_bft_cli([*PREPARE[:1], str(csv), *PREPARE[1:], "--out", str(out)]) == 0
    before = (out / "train.jsonl").read_text()
    assert run_bft_cli([*PREPARE[:1], str(csv), *PREPARE[1:], "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "train.jsonl").read_text() == before
    again = [*PREPARE[:1], str(csv), *PREPARE[1:], "--out", str(out), "--overwrite", "--tasks", "level"]
    assert run_bft_cli(again) == 0
    assert {r["task"] for r in read_jsonl(out / "train.jsonl")} == {"level"}
