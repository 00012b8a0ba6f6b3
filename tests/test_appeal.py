"""Content appeal: the within-test target, the read-out, the shipped file and its rebuild from the real data."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lsbm_sim.behavior.appeal import (
    SHIPPED,
    SUBSET_CHECK,
    AppealReadout,
    default_appeal,
    significant_pairs,
    within_test_target,
)
from lsbm_sim.cli import main
from lsbm_sim.errors import LsbmError


def test_within_test_target_centres_each_test_weights_by_clicks_and_drops_flagged_and_single_tests():
    frame = pd.DataFrame({
        "test": ["a", "a", "a", "b", "b", "flagged", "flagged", "alone"],
        "week": [201410, 201410, 201411, 201305, 201305, 201330, 201330, 201420],
        "clicks": [10, 20, 40, 0, 99, 50, 5, 7],
        "impressions": [1000, 1000, 1000, 500, 1000, 900, 900, 100],
    })  # fmt: skip
    rows = within_test_target(frame, group="test", time="week", exclude=(201326, 201402))
    assert rows["test"].tolist() == ["a", "a", "a", "b", "b"]  # the flagged test and the one-variant test are out
    log_rate = np.log((frame.clicks + 0.5) / (frame.impressions + 1))[:5]
    expected = np.r_[log_rate[:3] - log_rate[:3].mean(), log_rate[3:5] - log_rate[3:5].mean()]
    assert np.allclose(rows["target"], expected)
    assert np.allclose(rows.groupby("test")["target"].sum(), 0)  # a plain mean: each test's targets sum to zero
    # Inverse-variance weights: about the clicks, so the zero-click row says almost nothing.
    assert np.allclose(rows["weight"], 1 / (1 / (frame.clicks[:5] + 0.5) - 1 / (frame.impressions[:5] + 1)))
    assert rows["weight"].iloc[3] < 1 and 105 < rows["weight"].iloc[4] < 115  # 99.5 / (1 - 0.1)
    # Without the exclusion the flagged test is back.
    assert "flagged" in set(within_test_target(frame, group="test")["test"])


def test_within_test_target_names_the_bad_column_and_rows():
    frame = pd.DataFrame({"clickability_test_id": ["t", "t", "t"], "clicks": [1, 50, 2], "impressions": [10, 20, 0]})
    with pytest.raises(LsbmError, match=r"data.csv: rows 3, 4 have no impressions or more clicks than impressions"):
        within_test_target(frame, source="data.csv")
    with pytest.raises(LsbmError, match=r"no column 'clicks'"):
        within_test_target(frame.drop(columns="clicks"))
    with pytest.raises(LsbmError, match=r"column 'impressions' must hold counts >= 0; rows 2"):
        within_test_target(frame.assign(impressions=["x", 20, 30]))


def test_the_read_out_recovers_a_planted_direction_and_ignores_what_tests_share():
    rng = np.random.default_rng(0)
    tests, variants, dim = 400, 4, 32
    planted = np.zeros(dim)
    planted[3] = 1.0
    topic = np.zeros(dim)
    topic[7] = 1.0
    group = np.repeat(np.arange(tests), variants)
    x = rng.normal(size=(tests * variants, dim)) * 0.3
    x[:, 7] = 0.0
    # Every variant of a test shares an offset along the planted direction and the topic alike (what a story is
    # about moves both). Only the within-test differences along the planted direction change clicks; a read-out
    # fitted without centring each test would use the topic to cancel the shared part (and learn "topic is bad").
    level = rng.normal(size=tests)
    x += np.outer(level[group], planted + topic) * 3
    wording = x @ planted - 3 * level[group]  # the part that differs between a test's variants
    clicks = rng.poisson(40 * np.exp(0.5 * wording + 0.3 * level[group]))
    frame = pd.DataFrame({"clickability_test_id": group, "clicks": clicks, "impressions": 4000})
    rows = within_test_target(frame)
    readout = AppealReadout.fit_embeddings(x, rows["target"], rows["weight"], rows["clickability_test_id"], penalty=1.0)
    direction = readout.coef / np.linalg.norm(readout.coef)
    assert direction @ planted > 0.9 and abs(direction @ topic) < 0.1
    # Scores are standardised over the fitted rows.
    scores = readout.score_embeddings(x)
    assert abs(scores.mean()) < 1e-9 and abs(scores.std() - 1) < 1e-9


def test_save_load_round_trip_and_bad_files_are_named(tmp_path: Path):
    readout = AppealReadout(coef=np.array([0.5, -0.25, 0.0]), intercept=0.0, mean=0.1, scale=2.0, meta={"penalty": 3})
    loaded = AppealReadout.load(readout.save(tmp_path / "r.json"))
    x = np.eye(3)
    assert np.allclose(loaded.score_embeddings(x), readout.score_embeddings(x)) and loaded.meta == {"penalty": 3}
    assert loaded.fingerprint == readout.fingerprint
    (tmp_path / "bad.json").write_text(json.dumps({"format": "lsbm-sim appeal read-out", "coef": [1, "x"]}))
    with pytest.raises(LsbmError, match="bad.json: not a valid appeal read-out"):
        AppealReadout.load(tmp_path / "bad.json")
    with pytest.raises(LsbmError, match="expects 3-dimensional embeddings"):
        readout.score_embeddings(np.ones((2, 4)))


def test_the_shipped_read_out_loads_records_its_data_and_ranks_a_planted_pair():
    readout = default_appeal()
    assert readout.meta["data"] == "upworthy_packages_dev.csv" and readout.meta["subset"] is None
    assert readout.meta["weeks"]["excluded"] == "201326..201402"
    assert readout.meta["test_pairwise_accuracy"] > 0.6  # its held-out figure, recorded when it was fitted
    card = SHIPPED.with_suffix(".md").read_text()
    assert "CC BY 4.0" in card and "Matias" in card and f"{readout.meta['test_pairwise_accuracy']:.3f}" in card
    # The same story told flatly and as Upworthy told its winners.
    dull, vivid = readout.score([
        "City council publishes annual report on public library budget",
        "This Teacher Did Something Amazing For Her Students. What Happened Next Made Me Cry.",
    ])  # fmt: skip
    assert vivid > dull + 1.0


@pytest.mark.slow
def test_rebuilding_from_the_data_scores_as_the_shipped_file_recorded(shared_data: Path, tmp_path: Path):
    """The quick documented rebuild (`--subset 60`, about 60 tests per split) must reproduce the scores the full
    build recorded for it: same data, same recipe, same encoder. (The full rebuild embeds 7,300 headlines, minutes
    on two cores; the command is in the card.)"""
    data = shared_data / "upworthy" / "upworthy_packages_dev.csv"
    out = tmp_path / "rebuilt.json"
    assert main(["appeal", "fit", str(data), "--out", str(out), "--subset", str(SUBSET_CHECK)]) == 0
    rebuilt = AppealReadout.load(out)
    recorded = default_appeal().meta["subset_check"]
    assert rebuilt.meta["penalty"] == recorded["penalty"]
    assert rebuilt.meta["test_pairwise_accuracy"] == pytest.approx(recorded["test_pairwise_accuracy"], abs=0.005)
    assert rebuilt.meta["test_spearman"] == pytest.approx(recorded["test_spearman"], abs=0.005)


def test_the_fit_command_names_a_missing_file_and_column(tmp_path: Path, capsys):
    assert main(["appeal", "fit", str(tmp_path / "none.csv"), "--out", str(tmp_path / "r.json")]) == 2
    assert "data file not found" in capsys.readouterr().err
    (tmp_path / "d.csv").write_text("headline,clicks\nhello,3\n")
    assert main(["appeal", "fit", str(tmp_path / "d.csv"), "--out", str(tmp_path / "r.json")]) == 2
    assert "no column 'clickability_test_id'" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_significant_pairs_are_the_within_test_pairs_that_differ_at_5_percent():
    frame = pd.DataFrame({
        "clickability_test_id": ["a", "a", "a", "b", "b"],
        "headline": ["x", "y", "z", "u", "u"],
        "clicks": [100, 50, 98, 100, 10],
        "impressions": [5000, 5000, 5000, 5000, 5000],
    })  # fmt: skip
    pairs = significant_pairs(frame, "clickability_test_id", "clicks", "impressions", "headline")
    # x-y and z-y differ; x-z do not; u-u is the same headline (an image test), no question for a text model.
    assert sorted(zip(pairs["first"], pairs["second"], pairs["first_wins"])) == [(0, 1, True), (1, 2, False)]
