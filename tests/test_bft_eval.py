"""bft eval: the metrics on cases worked by hand, and the planted-signal comparison of a tuned tiny Llama with
its untuned self and the baselines."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from lsbm_sim.bft.data import EngagementColumns, SplitSpec
from lsbm_sim.bft.evaluate import (
    EvalRows,
    evaluate_lsbm,
    expected_calibration_error,
    pairwise_accuracy,
    significant_pairs,
)
from lsbm_sim.bft.instructions import prepare_dataset
from lsbm_sim.bft.train import TrainSettings, train_lsbm

from bft_fixtures import DATA_DIR, one_torch_thread, tiny_base_model, write_planted_csv  # noqa: F401 (a fixture)


def ab_rows(clicks, impressions, groups, times=None) -> EvalRows:
    clicks, impressions = np.array(clicks, float), np.array(impressions, float)
    return EvalRows(
        text=[f"h{i}" for i in range(len(clicks))],
        rate=clicks / impressions,
        level=np.zeros(len(clicks), dtype=int),
        behavior=clicks,
        exposure=impressions,
        group=np.array(groups, dtype=object),
        time=None if times is None else np.array(times, float),
    )


def test_expected_calibration_error_by_hand():
    # Two rows at confidence 0.9, one right: |0.5 - 0.9| = 0.4. Perfectly calibrated halves give 0.
    assert expected_calibration_error(np.array([[0.9, 0.1], [0.9, 0.1]]), np.array([0, 1])) == pytest.approx(0.4)
    probs = np.array([[0.5, 0.5]] * 4)
    assert expected_calibration_error(probs, np.array([0, 0, 1, 1])) == pytest.approx(0.0)
    # Bins: confidences 0.6 (right) and 0.95 (wrong) fall in different bins: (0.4 + 0.95) / 2.
    probs = np.array([[0.6, 0.4], [0.05, 0.95]])
    assert expected_calibration_error(probs, np.array([0, 0])) == pytest.approx((0.4 + 0.95) / 2)


def test_only_significant_within_group_pairs_are_compared():
    # Group a: 3% vs 1% of 5000 each is significant; 1.00% vs 1.05% is not. Group b: one clear pair.
    # Rows in different groups are never paired, however different.
    rows = ab_rows(
        clicks=[150, 50, 52, 10, 200],
        impressions=[5000, 5000, 5000, 5000, 5000],
        groups=["a", "a", "a", "b", "b"],
    )
    pairs = significant_pairs(rows)
    assert pairs.tested == 3 + 1
    assert sorted(zip(pairs.first.tolist(), pairs.second.tolist())) == [(0, 1), (0, 2), (3, 4)]
    assert dict(zip(zip(pairs.first.tolist(), pairs.second.tolist()), pairs.first_wins.tolist())) == {
        (0, 1): True, (0, 2): True, (3, 4): False,
    }  # fmt: skip
    right = np.array([0.03, 0.01, 0.01, 0.001, 0.04])
    assert pairwise_accuracy(right, pairs) == 1.0
    assert pairwise_accuracy(-right, pairs) == 0.0
    assert pairwise_accuracy(np.zeros(5), pairs) == 0.5  # ties count one half


def test_pairs_in_excluded_times_are_left_out():
    rows = ab_rows([150, 50, 10, 200], [5000] * 4, ["a", "a", "b", "b"], times=[201330, 201330, 201410, 201410])
    pairs = significant_pairs(rows, exclude_time=(201326, 201402))
    assert (pairs.tested, pairs.excluded, len(pairs)) == (1, 1, 1)
    assert (pairs.first.tolist(), pairs.second.tolist()) == ([2], [3])
    no_group = significant_pairs(EvalRows(rows.text, rows.rate, rows.level, rows.behavior, rows.exposure, None, None))
    assert len(no_group) == 0 and "group" in no_group.reason
    assert math.isnan(pairwise_accuracy(rows.rate, no_group))


def test_variants_with_the_same_text_are_not_a_question_for_a_text_model():
    rows = ab_rows([150, 50, 10], [5000] * 3, ["a", "a", "a"])
    rows.text = ["Same words", "Same words", "Other words"]  # Upworthy varied the image too
    pairs = significant_pairs(rows)
    assert (pairs.same_text, pairs.tested) == (1, 2)
    assert sorted(zip(pairs.first.tolist(), pairs.second.tolist())) == [(0, 2), (1, 2)]


@pytest.mark.usefixtures("one_torch_thread")
def test_fine_tuning_beats_the_untuned_model_on_a_planted_signal(tmp_path):
    csv = write_planted_csv(tmp_path, n_tests=240)
    columns = EngagementColumns("headline", "clicks", "impressions", group="test_id")
    split = SplitSpec.parse("time:week")
    prepare_dataset(csv, columns, tmp_path / "data", split, behavior_name="like", tasks=["level"])
    base = tiny_base_model(tmp_path / "base")
    settings = TrainSettings(steps=300, batch_size=16, learning_rate=3e-3, save_steps=1000, progress=False)
    train_lsbm(tmp_path / "data", str(base), tmp_path / "lsbm", settings)

    report = evaluate_lsbm(tmp_path / "lsbm", tmp_path / "data", baseline=str(base))
    report.write(tmp_path / "eval")
    tuned = report.result("LSBM tuned (words)")
    tokens = report.result("LSBM tuned (behavior tokens)")
    untuned = report.result("base, untuned (words)")
    # Three balanced levels: guessing gives about 1/3. The planted words decide the level up to noise.
    assert tuned["accuracy"] >= untuned["accuracy"] + 0.25
    assert tokens["accuracy"] >= untuned["accuracy"] + 0.25
    assert tuned["spearman"] > 0.6 and tuned["pairwise_accuracy"] > 0.75
    assert tuned["macro_f1"] > untuned["macro_f1"]
    for r in report.results:
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["ece"] <= 1
    assert report.result("bag-of-words logistic regression")["accuracy"] > 0.5

    # The written table says the same, in a row per predictor led by pairwise accuracy, and sentences.
    table = (tmp_path / "eval" / "eval.md").read_text()
    assert table.splitlines()[2].startswith("| model | pairwise accuracy | level accuracy |")
    row = next(line for line in table.splitlines() if line.startswith("| LSBM tuned (words) |"))
    assert float(row.split("|")[2]) == pytest.approx(tuned["pairwise_accuracy"], abs=5e-4)
    assert float(row.split("|")[3]) == pytest.approx(tuned["accuracy"], abs=5e-4)
    assert "beats its untuned base on pairwise accuracy" in table
    constant = report.result("training level frequencies (constant)")["accuracy"]
    assert f"beside the constant predictor's {constant:.3f}" in table and f"LSBM tuned (words) {tuned['accuracy']:.3f}" in table
    assert "Best" not in table
    written = json.loads((tmp_path / "eval" / "eval.json").read_text())
    assert [r["name"] for r in written["results"]] == [r["name"] for r in report.results]
    assert written["pairs"]["significant"] > 20


UPWORTHY = DATA_DIR / "upworthy" / "upworthy_packages_dev.csv"


@pytest.mark.skipif(not UPWORTHY.is_file(), reason=f"real data not here: {UPWORTHY} (../shared/data) is absent")
def test_upworthy_time_split_and_a_text_baseline_on_real_headlines(tmp_path):
    columns = EngagementColumns("headline", "clicks", "impressions", group="clickability_test_id")
    data = prepare_dataset(UPWORTHY, columns, tmp_path / "up", SplitSpec.parse("time:test_week"),
                           behavior_name="click", tasks=["level"], forms=["words"])  # fmt: skip
    assert sum(data.counts.values()) == 17249
    tests = {s: {r["group"] for r in data.rows(s)} for s in ("train", "val", "test")}
    assert not (tests["train"] & tests["test"] or tests["val"] & tests["test"] or tests["train"] & tests["val"])
    # Evaluate on the validation split with the flagged weeks (201326..201402) out of the pairwise comparisons.
    report = evaluate_lsbm(None, tmp_path / "up", split="val", exclude_time=(201326, 201402), sentence_encoder=False)
    words = report.result("bag-of-words logistic regression")
    assert report.pairs["significant"] > 100 and report.pairs["same_text"] > 0
    # Real headlines carry some signal about clicks: better than chance at telling A/B winners apart.
    assert words["pairwise_accuracy"] > 0.55 and words["spearman"] > 0.1
