"""Parameter sweeps with replications: local processes by default, Ray across machines.

A sweep runs a scenario once per combination of overridden fields and replication. Replication r of every
combination uses the same seed (base seed + r): comparisons between combinations then share their random
numbers (common random numbers), which makes differences between them less noisy. Each run's result depends
only on its scenario and seed, so the table is the same whatever the number of workers or the executor.

>>> table = sweep("scenarios/headline_ab_test.yaml", {"feed.size": [4, 8]}, replications=5)  # doctest: +SKIP
>>> summarize(table, "share")  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pandas as pd

from lsbm_sim.errors import LsbmError
from lsbm_sim.scenario import Scenario

PARAM_PREFIX = "param:"


@dataclass(frozen=True)
class Job:
    """One run of a sweep: which combination, which replication, with which overrides and seed."""

    run: int
    combination: int
    replication: int
    seed: int
    params: dict[str, Any] = field(hash=False)

    @property
    def overrides(self) -> list[str]:
        return [f"{path}={json.dumps(value)}" for path, value in self.params.items()]


def make_jobs(grid: Mapping[str, Sequence[Any]], replications: int, base_seed: int) -> list[Job]:
    """Every combination of the grid's values times every replication."""
    if replications < 1:
        raise LsbmError(f"replications must be at least 1, got {replications}")
    for path, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise LsbmError(f"grid {path!r}: give a non-empty list of values")
    combinations = [dict(zip(grid, values)) for values in itertools.product(*grid.values())] if grid else [{}]
    jobs = []
    for c, params in enumerate(combinations):
        for r in range(replications):
            jobs.append(Job(run=len(jobs), combination=c, replication=r, seed=base_seed + r, params=params))
    return jobs


def run_job(scenario: dict[str, Any], base_dir: str, job: Job, runs_dir: str | None = None,
            rows: str = "items") -> pd.DataFrame:  # fmt: skip
    """Run one job and return its per-post table (`rows="cascades"`: per cascade tree) with the job's
    parameters (runs in a worker process)."""
    from lsbm_sim.model import run

    spec = Scenario.from_dict(scenario, base_dir=base_dir)
    out = Path(runs_dir) / f"run-{job.run:05d}" if runs_dir else None
    result = run(spec, seed=job.seed, overrides=job.overrides, out=out)
    table = result.items.drop(columns=["text"]) if rows == "items" else result.cascades.copy()
    table.insert(0, "run", job.run)
    table.insert(1, "combination", job.combination)
    table.insert(2, "replication", job.replication)
    table.insert(3, "seed", job.seed)
    for k, (path, value) in enumerate(job.params.items()):
        table.insert(4 + k, f"{PARAM_PREFIX}{path}", json.dumps(value) if isinstance(value, (dict, list)) else value)
    table["decisions"] = result.manifest["broker"]["decisions"]
    table["seconds"] = result.manifest["timings"]["steps_seconds"] + result.manifest["timings"]["setup_seconds"]
    return table


def sweep(
    scenario: Scenario | str | Path,
    grid: Mapping[str, Sequence[Any]] | None = None,
    replications: int = 1,
    seed: int | None = None,
    executor: str = "local",
    workers: int | None = None,
    out: Path | str | None = None,
    keep_runs: bool = False,
    ray_address: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    rows: str = "items",
) -> pd.DataFrame:
    """Run every combination of `grid` (dotted scenario paths -> lists of values) `replications` times.

    Returns one row per run and post: the run's parameters (columns `param:<path>`), seed, and the post's
    reach, reactions and cascade metrics. With `out`, the table is written to `out/sweep.parquet` (and with
    `keep_runs`, every run's results folder under `out/runs/`). `executor`: "local" (processes on this
    machine; `workers` of them, default the CPU count) or "ray" (a Ray cluster at `ray_address`, or a local one).
    `rows="cascades"`: one row per run and cascade tree (post, author) instead of per post.
    """
    if rows not in ("items", "cascades"):
        raise LsbmError(f"rows must be 'items' or 'cascades', got {rows!r}")
    spec = scenario if isinstance(scenario, Scenario) else Scenario.from_yaml(scenario)
    grid = dict(grid or {})
    for path in grid:  # check every override path and value before starting anything
        for value in grid[path]:
            spec.with_overrides([f"{path}={json.dumps(value)}"])
    jobs = make_jobs(grid, replications, spec.seed if seed is None else seed)
    data, base_dir = spec.model_dump(mode="json"), str(spec.base_dir)
    out = Path(out) if out is not None else None
    runs_dir = str(out / "runs") if out is not None and keep_runs else None

    tables: dict[int, pd.DataFrame] = {}
    try:
        if executor == "local":
            _run_local(jobs, data, base_dir, runs_dir, workers, tables, progress, rows)
        elif executor == "ray":
            _run_ray(jobs, data, base_dir, runs_dir, workers, ray_address, tables, progress, rows)
        else:
            raise LsbmError(f"executor must be 'local' or 'ray', got {executor!r}")
    except BaseException:
        if out is not None and tables:  # keep what finished; the name says it is not the whole sweep
            out.mkdir(parents=True, exist_ok=True)
            _concat(tables).to_parquet(out / "sweep.partial.parquet", index=False)
        raise
    table = _concat(tables)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / "sweep.parquet.tmp"
        table.to_parquet(tmp, index=False)
        tmp.replace(out / "sweep.parquet")
    return table


def _concat(tables: dict[int, pd.DataFrame]) -> pd.DataFrame:
    return pd.concat([tables[k] for k in sorted(tables)], ignore_index=True)


def _failed(job: Job, exc: BaseException) -> LsbmError:
    return LsbmError(f"sweep run {job.run} (params {job.params}, seed {job.seed}) failed: {exc}")


def _run_local(jobs, data, base_dir, runs_dir, workers, tables, progress, rows="items") -> None:
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        for job in jobs:
            try:
                tables[job.run] = run_job(data, base_dir, job, runs_dir, rows)
            except LsbmError as exc:
                raise _failed(job, exc) from None
            if progress:
                progress(len(tables), len(jobs))
        return
    # Spawned (not forked) workers: torch and tokenizers are not fork-safe once they have started threads.
    kept = _kept_pools.get(workers)
    with nullcontext(kept) if kept is not None else ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run_job, data, base_dir, job, runs_dir, rows): job for job in jobs}
        try:
            for future in as_completed(futures):
                job = futures[future]
                try:
                    tables[job.run] = future.result()
                except LsbmError as exc:
                    raise _failed(job, exc) from None
                if progress:
                    progress(len(tables), len(jobs))
        finally:
            for other in futures:
                other.cancel()


_kept_pools: dict[int, ProcessPoolExecutor] = {}


@contextmanager
def kept_workers(workers: int | None) -> Iterator[None]:
    """Keep one pool of local worker processes for every sweep inside the block (a calibration's trials), so
    that each sweep does not pay for starting processes and importing the simulator again."""
    workers = workers or os.cpu_count() or 1
    if workers == 1 or workers in _kept_pools:
        yield
        return
    pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
    _kept_pools[workers] = pool
    try:
        yield
    finally:
        del _kept_pools[workers]
        pool.shutdown(wait=True, cancel_futures=True)


def _run_ray(jobs, data, base_dir, runs_dir, workers, address, tables, progress, rows="items") -> None:
    try:
        import ray
    except ImportError:
        raise LsbmError("the ray executor needs Ray: pip install 'lsbm-sim[ray]'") from None
    if not ray.is_initialized():
        options: dict[str, Any] = {"ignore_reinit_error": True, "include_dashboard": False, "log_to_driver": False}
        if address:
            options["address"] = address
        else:
            options["num_cpus"] = workers or os.cpu_count()
            if os.environ.get("RAY_TMPDIR"):
                options["_temp_dir"] = os.environ["RAY_TMPDIR"]
        ray.init(**options)
    remote = ray.remote(run_job)
    pending = {remote.remote(data, base_dir, job, runs_dir, rows): job for job in jobs}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        job = pending.pop(done[0])
        try:
            tables[job.run] = ray.get(done[0])
        except Exception as exc:  # Ray wraps the worker's exception; its message names the cause
            for ref in pending:
                ray.cancel(ref)
            cause = getattr(exc, "cause", exc)
            raise _failed(job, cause) from None
        if progress:
            progress(len(tables), len(jobs))


def summarize(table: pd.DataFrame, metric: str = "share", by: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean, standard deviation, standard error and count of a per-post metric for each parameter combination
    and post."""
    if metric not in table.columns:
        raise LsbmError(f"no column {metric!r} in the sweep table")
    by = list(by) if by is not None else [c for c in table.columns if c.startswith(PARAM_PREFIX)] + ["item_id"]
    grouped = table.groupby(by, observed=True, sort=True)[metric]
    summary = grouped.agg(["mean", "std", "count"])
    summary["sem"] = summary["std"] / summary["count"] ** 0.5
    return summary.reset_index()
