"""Sweeps: every combination and replication, the same table whatever the executor or number of workers."""

import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import small_scenario

from lsbm_sim import Scenario
from lsbm_sim.errors import LsbmError
from lsbm_sim.sweep import _kept_pools, kept_workers, make_jobs, summarize, sweep


def scenario() -> Scenario:
    return Scenario.from_dict(small_scenario(steps=5, population={"size": 150, "activity": 0.7}))


def test_jobs_cover_the_grid_with_common_seeds():
    jobs = make_jobs({"feed.size": [2, 5], "feed.policy": ["random", "all"]}, replications=3, base_seed=10)
    assert len(jobs) == 12
    assert {tuple(sorted(j.params.items())) for j in jobs} == {
        (("feed.policy", p), ("feed.size", s)) for s in (2, 5) for p in ("random", "all")
    }
    assert sorted({j.seed for j in jobs}) == [10, 11, 12]  # replication r uses seed base + r in every combination
    with pytest.raises(LsbmError, match="non-empty list"):
        make_jobs({"feed.size": 5}, 1, 0)


def test_local_sweep_is_the_same_with_one_or_two_workers(tmp_path: Path):
    grid = {"behavior.probabilities.share": [0.05, 0.3]}
    one = sweep(scenario(), grid, replications=2, workers=1)
    two = sweep(scenario(), grid, replications=2, workers=2, out=tmp_path / "sw")
    columns = [c for c in one.columns if c != "seconds"]
    pd.testing.assert_frame_equal(one[columns], two[columns])
    assert pd.read_parquet(tmp_path / "sw" / "sweep.parquet").shape == two.shape
    assert len(one) == 2 * 2 * 2  # combinations x replications x posts
    means = summarize(one, "share").set_index(["param:behavior.probabilities.share", "item_id"])["mean"]
    assert means.loc[(0.3, "a")] > means.loc[(0.05, "a")]  # a higher share probability spreads further


def test_bad_grid_paths_fail_before_any_run(tmp_path: Path):
    with pytest.raises(LsbmError, match="'feed.colour' is not a scenario field"):
        sweep(scenario(), {"feed.colour": ["red"]}, out=tmp_path / "sw")
    assert not (tmp_path / "sw").exists()


def test_ray_executor_gives_the_local_table(tmp_path: Path):
    ray = pytest.importorskip("ray")
    os.environ["RAY_TMPDIR"] = str(Path(os.environ.get("RAY_TMPDIR", tmp_path)))
    Path(os.environ["RAY_TMPDIR"]).mkdir(parents=True, exist_ok=True)
    grid = {"feed.policy": ["chronological", "random"]}
    local = sweep(scenario(), grid, replications=2, workers=1)
    try:
        distributed = sweep(scenario(), grid, replications=2, executor="ray", workers=2)
    finally:
        ray.shutdown()
    columns = [c for c in local.columns if c != "seconds"]
    pd.testing.assert_frame_equal(local[columns], distributed[columns])


def test_kept_workers_serve_several_sweeps_with_the_same_tables():
    grid = {"behavior.probabilities.share": [0.05, 0.3]}
    alone = sweep(scenario(), grid, replications=2, workers=1, rows="cascades")
    with kept_workers(2):
        pool = _kept_pools[2]
        first = sweep(scenario(), grid, replications=2, workers=2, rows="cascades")
        second = sweep(scenario(), grid, replications=1, workers=2)
        assert _kept_pools[2] is pool  # the same processes served both sweeps
    assert 2 not in _kept_pools
    columns = [c for c in alone.columns if c != "seconds"]
    pd.testing.assert_frame_equal(alone[columns], first[columns])
    assert "author" in first.columns and len(second) == 2 * 2  # combinations x posts, one row per post
