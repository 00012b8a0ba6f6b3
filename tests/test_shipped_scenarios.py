"""Every scenario in scenarios/ validates and runs (at a small size), from its file."""

from pathlib import Path

import pytest

from lsbm_sim import Scenario, run
from lsbm_sim.model import check_scenario

SCENARIOS = sorted((Path(__file__).resolve().parents[1] / "scenarios").glob("*.yaml"))


def test_there_are_scenarios_for_the_documented_questions():
    names = {p.stem for p in SCENARIOS}
    assert {"eco_product_launch", "misinformation_correction", "influencer_vs_random", "headline_ab_test",
            "independent_cascade"} <= names  # fmt: skip


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_validates_and_runs_small(path: Path, tmp_path: Path):
    scenario = Scenario.from_yaml(path)
    assert scenario.description.strip(), "a shipped scenario says what question it answers"
    summary = check_scenario(path)
    assert summary["posts"] >= 1 or scenario.posting is not None  # hand-listed posts, or people posting
    size = 400
    result = run(path, out=tmp_path / "res", overrides=[f"population.size={size}"])
    assert result.complete and (tmp_path / "res" / "manifest.json").exists()
    assert len(result.steps) == scenario.steps and result.manifest["agents"] == size
    listed = {p.id for p in scenario.content} | {iv.post.id for iv in scenario.interventions if iv.kind == "inject"}
    if scenario.posting is None:
        assert set(result.items["item_id"]) == listed
    else:  # the hand-listed posts and the ones people wrote
        assert listed <= set(result.items["item_id"]) and len(result.items) > len(listed)
    assert len(result.events) > 0
