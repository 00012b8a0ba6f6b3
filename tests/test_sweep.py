"""Sweeps: every combination and replication, the same table whatever the executor or number of workers."""

import os
from pathlib import Path

import pandas as pd
import pytest
from conftest import small_scenario

from lsbm_sim import Scenario
from lsbm_sim.errors import LsbmError
from lsbm_sim.studies import sweep as sweep_module
from lsbm_sim.studies.sweep import (
    SweepFailed,
    _kept_pools,
    kept_workers,
    make_jobs,
    run_job,
    summarize,
    sweep,
    unchanged_parameters,
)


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


def run_job_noting_pid(*args, **kwargs) -> pd.DataFrame:
    """A real run, its rows marked with the process that ran it (importable by name in a spawned worker)."""
    rows = run_job(*args, **kwargs)
    rows["pid"] = os.getpid()
    return rows


def test_with_two_workers_this_process_runs_jobs_beside_the_spawned_one(monkeypatch):
    # Starting a process and importing the simulator there costs more than a short run: the calling process is
    # one of the workers, taking jobs from the same queue as the spawned one (which takes them once it has
    # started: with runs this short, maybe none), and the table stays the same.
    grid = {"behavior.probabilities.share": [0.05, 0.3]}
    one = sweep(scenario(), grid, replications=3, workers=1)
    monkeypatch.setattr(sweep_module, "run_job", run_job_noting_pid)
    two = sweep(scenario(), grid, replications=3, workers=2)
    assert os.getpid() in set(two["pid"])
    columns = [c for c in one.columns if c != "seconds"]
    pd.testing.assert_frame_equal(one[columns], two[columns])


def test_kept_workers_let_this_process_run_jobs_for_sweeps_running_at_once(monkeypatch):
    # A calibration's trials in flight: sweeps in threads sharing kept workers, this process among them.
    from lsbm_sim.studies.calibrate import run_together

    grids = [{"behavior.probabilities.share": [0.05]}, {"behavior.probabilities.share": [0.3]}]
    alone = [sweep(scenario(), grid, replications=2, workers=1) for grid in grids]
    monkeypatch.setattr(sweep_module, "run_job", run_job_noting_pid)
    with kept_workers(2):
        together = run_together(lambda grid: sweep(scenario(), grid, replications=2, workers=2), grids)
    assert os.getpid() in set(pd.concat(together)["pid"])
    for one, two in zip(alone, together):
        columns = [c for c in one.columns if c != "seconds"]
        pd.testing.assert_frame_equal(one[columns], two[columns])


def run_job_noting_native_threads(*args, **kwargs) -> pd.DataFrame:
    """A real run, its rows marked with the most threads any loaded native pool (BLAS, OpenMP) had during it."""
    from threadpoolctl import threadpool_info

    rows = run_job(*args, **kwargs)
    rows["native_threads"] = max(pool["num_threads"] for pool in threadpool_info())
    return rows


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: every runner's share is the one thread it has anyway")
def test_two_local_workers_each_hold_native_threads_to_their_share_of_the_cores(monkeypatch):
    # Left alone, each run's BLAS takes every core: two runs side by side on 2 cores took 1.4x as long each as one
    # alone, where held to one thread each they took as long as one alone (benchmarks/RESULTS.md).
    from threadpoolctl import threadpool_info

    for variable in sweep_module.THREAD_VARIABLES:  # the user has not chosen: the sweep shares the cores out
        monkeypatch.delenv(variable, raising=False)
    import lsbm_sim.engine.runner  # noqa: F401 (the native libraries a run loads are loaded: `before` lists them)

    share = sweep_module.threads_per_runner(2)
    assert share == os.cpu_count() // 2
    before = threadpool_info()
    assert max(pool["num_threads"] for pool in before) > share  # (else this test could not tell)
    local = sweep_module.LocalWorkers(2)
    try:
        in_spawned = local.pool.submit(threadpool_info).result(timeout=300)  # after the engine's import there
        variable = local.pool.submit(os.getenv, "OPENBLAS_NUM_THREADS").result(timeout=60)
    finally:
        local.shutdown()
    assert in_spawned and {pool["num_threads"] for pool in in_spawned} == {share}
    assert variable == str(share)  # a BLAS or torch loaded later in the worker reads it

    monkeypatch.setattr(sweep_module, "run_job", run_job_noting_native_threads)
    rows = sweep(scenario(), {"behavior.probabilities.share": [0.05, 0.3]}, replications=2, workers=2)
    assert set(rows["native_threads"]) == {share}  # the jobs this process ran, beside the spawned one
    assert threadpool_info() == before  # and this process's pools are put back after

    monkeypatch.setenv("OMP_NUM_THREADS", str(os.cpu_count()))  # a user's own choice is kept, here and there
    rows = sweep(scenario(), {"behavior.probabilities.share": [0.05, 0.3]}, replications=3, workers=2)
    assert set(rows["native_threads"]) == {os.cpu_count()}


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


def test_a_failing_run_is_recorded_and_the_others_finish(tmp_path: Path):
    # The second author setting names a node the network does not have: that run fails when it starts.
    grid = {"content.0.author": [{"strategy": "influencer"}, {"strategy": "node", "node": 10**6}]}
    with pytest.raises(SweepFailed, match=r"1 of 2 sweep runs failed: run 1 \(content.0.author=.*no node 1000000"):
        sweep(scenario(), grid, out=tmp_path / "sw", workers=1)
    table = pd.read_parquet(tmp_path / "sw" / "sweep.parquet")
    assert table.loc[table["run"] == 0, "error"].isna().all() and len(table[table["run"] == 0]) == 2
    assert "no node 1000000" in table.loc[table["run"] == 1, "error"].item()
    assert len(summarize(table, "share")) == 2  # the failed run is left out of the figures


def test_summarize_gives_intervals_paired_differences_and_names_a_parameter_that_changed_nothing():
    # feed.size above what any feed holds (two posts) changes nothing; the share probability changes a lot.
    grid = {"feed.size": [20, 40], "behavior.probabilities.share": [0.05, 0.3]}
    table = sweep(scenario(), grid, replications=4, workers=1)
    summary = summarize(table, "reach")
    assert summary.attrs["unchanged"] == ["feed.size"]
    assert summary.attrs["baseline"] == {"feed.size": 20, "behavior.probabilities.share": 0.05}
    assert ((summary["ci_low"] <= summary["mean"]) & (summary["mean"] <= summary["ci_high"])).all()
    row = summary.set_index(["param:feed.size", "param:behavior.probabilities.share", "item_id"])
    assert row.loc[(40, 0.05, "a"), ["diff", "diff_ci_low", "diff_ci_high"]].tolist() == [0, 0, 0]
    high = row.loc[(20, 0.3, "a")]
    by_hand = table.pivot_table(index=["item_id", "replication"], columns="combination", values="reach")
    assert high["diff"] == pytest.approx((by_hand[1] - by_hand[0]).loc["a"].mean())
    assert high["diff_ci_low"] > 0  # more shares reach more people
    assert unchanged_parameters(table[table["param:feed.size"] == 20]) == []


def test_the_summary_lists_the_grid_in_its_order_baseline_first():
    # Values given against their sort order: the baseline (the first given) must still come first.
    table = sweep(scenario(), {"feed.policy": ["random", "popularity", "chronological"]}, replications=2, workers=1)
    summary = summarize(table, "reach")
    assert summary.attrs["baseline"] == {"feed.policy": "random"}
    assert summary["param:feed.policy"].drop_duplicates().tolist() == ["random", "popularity", "chronological"]
    assert (summary.loc[summary["param:feed.policy"] == "random", "diff"] == 0).all()
    assert summary.groupby("param:feed.policy", sort=False)["item_id"].apply(list).map(sorted).tolist() == [["a", "b"]] * 3


def test_the_same_run_in_two_grid_points_runs_once_and_a_rerun_runs_nothing(tmp_path: Path):
    grid = {"feed.size": [5, 5]}  # both points resolve to the same scenario
    first = sweep(scenario(), grid, replications=2, workers=1, out=tmp_path / "sw")
    assert first["run_id"].nunique() == 2 and len(list((tmp_path / "sw" / "runs").iterdir())) == 2
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "sw" / "runs").iterdir()}
    calls = []
    again = sweep(scenario(), grid, replications=2, workers=1, out=tmp_path / "sw", progress=lambda d, t: calls.append((d, t)))
    assert calls == [(2, 2)]  # everything was already there
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "sw" / "runs").iterdir()} == stamps
    columns = [c for c in first.columns if c != "seconds"]
    pd.testing.assert_frame_equal(first[columns], again[columns])
