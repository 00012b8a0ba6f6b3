"""The world search of benchmarks/fit_rates.py: the grid it runs and the rule that picks a world on the fit half."""

from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture()
def fit_rates(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the script imports its sibling `common`
    import fit_rates

    return fit_rates


def test_grid_runs_every_combination_and_reads_semicolons_as_commas(fit_rates):
    combos = fit_rates.grid(["feed.size=10,20", "content.*.author={strategy: quantile; quantiles: [0.9; 1.0]},{strategy: followers}"])
    assert combos == [
        ["feed.size=10", "content.*.author={strategy: quantile, quantiles: [0.9, 1.0]}"],
        ["feed.size=10", "content.*.author={strategy: followers}"],
        ["feed.size=20", "content.*.author={strategy: quantile, quantiles: [0.9, 1.0]}"],
        ["feed.size=20", "content.*.author={strategy: followers}"],
    ]
    assert fit_rates.grid([]) == [[]]
    with pytest.raises(SystemExit, match="PATH=V1,V2"):
        fit_rates.grid(["feed.size"])


def test_a_change_to_every_batch_is_made_in_each_content_entry(fit_rates):
    assert fit_rates.every_batch(["content.*.author={strategy: followers}", "feed.size=20"], 3) == [
        "content.0.author={strategy: followers}",
        "content.1.author={strategy: followers}",
        "content.2.author={strategy: followers}",
        "feed.size=20",
    ]


def report(name, per_follower, unshared):
    return {"changes": [name], "shares per follower, pooled": per_follower, "real, pooled": 1e-4,
            "unshared": unshared, "real unshared": 0.49}  # fmt: skip


def test_the_world_chosen_meets_both_reach_aims_with_the_largest_margin(fit_rates):
    worlds = [
        report("rates off, unshared exact", 2.5e-4, 0.49),
        report("within 2x at the edge, unshared exact", 1.95e-4, 0.49),
        report("within 1.4x, unshared 0.01 off", 1.4e-4, 0.50),
        report("within 2x, unshared 0.1 off", 1.5e-4, 0.59),
    ]
    assert fit_rates.choose(worlds)["changes"] == ["within 1.4x, unshared 0.01 off"]
    # None meets both: within 2x, the nearest unshared share (not the nearest shares per follower).
    assert fit_rates.choose([worlds[0], worlds[3], report("within 2x, unshared 0.2 off", 1e-4, 0.69)])["changes"] == [
        "within 2x, unshared 0.1 off"
    ]
    # None within 2x: the nearest in shares per follower, whatever its unshared share.
    assert fit_rates.choose([report("3x", 3e-4, 0.49), report("2.5x", 2.5e-4, 0.9)])["changes"] == ["2.5x"]
