"""Parameter sweeps with replications: local processes by default, Ray across machines.

A sweep runs a scenario once per combination of overridden fields and replication. Replication r of every
combination uses the same seed (base seed + r): comparisons between combinations then share their random
numbers (common random numbers), which makes differences between them less noisy. Each run's result depends
only on its scenario and seed, so the table is the same whatever the number of workers or the executor.

With a folder (`out`), nothing finished is lost: every run writes its own folder `out/runs/<id>/` atomically
(the id is a hash of the run's resolved scenario and seed), and a sweep into a folder that already holds some
of its runs uses them instead of running them again. A sweep killed part-way (SIGKILL, a machine going down)
is finished by running the same command again; none of its runs is lost or counted twice. A run that fails is
recorded with its error and the others go on; `SweepFailed` then names it.

>>> table = sweep("scenarios/headline_ab_test.yaml", {"feed.size": [4, 8]}, replications=5)  # doctest: +SKIP
>>> summarize(table, "share")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any

import pandas as pd

from lsbm_sim.engine import interrupts
from lsbm_sim.errors import LsbmError
from lsbm_sim.analysis.results import remove_stale_staging
from lsbm_sim.scenario import Scenario, load_scenario

PARAM_PREFIX = "param:"
RUNS, ROWS, TABLE, PARTIAL_TABLE = "runs", "rows.parquet", "sweep.parquet", "sweep.partial.parquet"
JOB_COLUMNS = ("run", "combination", "replication", "seed", "run_id")
NOT_RESULTS = ("seconds", "error", "item_id")
"""Columns that are not a run's figures: when they differ between two runs, the runs still agree."""


class SweepFailed(LsbmError):
    """Some runs of a sweep failed; the others finished. `table` has every run, the failed ones with `error`."""

    def __init__(self, message: str, table: pd.DataFrame, failed: dict[int, str]):
        super().__init__(message)
        self.table = table
        self.failed = failed


@dataclass(frozen=True)
class Job:
    """One run of a sweep: which combination, which replication, with which overrides and seed; `run_id` names
    its folder under `runs/` (set by `sweep`, from the resolved scenario and seed)."""

    run: int
    combination: int
    replication: int
    seed: int
    params: dict[str, Any] = field(hash=False)
    run_id: str = ""

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


def run_id(spec: Scenario, seed: int) -> str:
    """A run's identity: its resolved scenario (every field, and the folder its paths resolve against) and seed.
    Two jobs with the same id are the same run and give the same result."""
    document = {"scenario": spec.model_dump(mode="json"), "base_dir": str(spec.base_dir), "seed": seed}
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


def run_job(scenario: dict[str, Any], base_dir: str, job: Job, runs_dir: str | None = None,
            keep_runs: bool = False, rows_of: str = "items") -> pd.DataFrame:  # fmt: skip
    """Run one job and return its per-post figures (`rows_of="cascades"`: per cascade tree; runs in a worker
    process). With `runs_dir`, the figures (and with `keep_runs` the whole results folder) are published to
    `runs_dir/<run_id>/` in one rename."""
    from lsbm_sim.engine.runner import run

    spec = Scenario.from_dict(scenario, base_dir=base_dir)
    # The sweep keeps per-post (or per-tree) figures; the event log, one row per exposure, is only needed when the
    # whole run is kept. Not logging it spares its memory, which a supercritical trial can make gigabytes.
    logging = [] if keep_runs else ["results.events=none"]
    result = run(spec, seed=job.seed, overrides=[*job.overrides, *logging])
    rows = result.items.drop(columns=["text"]) if rows_of == "items" else result.cascades.copy()
    rows["decisions"] = result.manifest["broker"]["decisions"]
    rows["seconds"] = result.manifest["timings"]["steps_seconds"] + result.manifest["timings"]["setup_seconds"]
    if runs_dir is not None:
        _publish_run(Path(runs_dir), job.run_id, rows, result if keep_runs else None)
    return rows


def _publish_run(runs_dir: Path, rid: str, rows: pd.DataFrame, result=None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lsbm_sim.analysis.results import EVENTS, write_tables

    staging = runs_dir / f".{rid}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        if result is not None:
            pq.write_table(pa.Table.from_pandas(result.events, preserve_index=False), staging / EVENTS, compression="zstd")
            write_tables(staging, result.steps, result.items, result.agents, result.manifest, result.cascades)
        rows.to_parquet(staging / ROWS, index=False)  # last: its presence in runs/<id>/ means finished
        try:
            staging.rename(runs_dir / rid)
        except OSError:  # another worker published the same run first: theirs is the same result
            pass
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def finished_runs(out: Path | str) -> dict[str, pd.DataFrame]:
    """The runs already finished in a sweep folder, by id."""
    runs_dir = Path(out) / RUNS
    if not runs_dir.is_dir():
        return {}
    # Hidden folders are runs still being written (pathlib's * matches them too).
    return {p.parent.name: pd.read_parquet(p) for p in sorted(runs_dir.glob(f"*/{ROWS}")) if not p.parent.name.startswith(".")}


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
    reach, reactions and cascade metrics. With `out`, every run is kept under `out/runs/<id>/` as it finishes
    (with `keep_runs`, its whole results folder), runs already there are not run again, and the table is
    written to `out/sweep.parquet` (`out/sweep.partial.parquet` if the sweep was interrupted; whichever is
    written, the other is removed, so the folder never holds tables of two different sweeps). `executor`:
    "local" (`workers` processes on this machine, this one among them; default the CPU count) or "ray" (a Ray cluster at
    `ray_address`, or a local one). A run that fails does not stop the others: SweepFailed is raised at the
    end, naming it, with the table (the failed run's rows carry its `error`). `rows="cascades"`: one row per
    run and cascade tree (post, author) instead of per post.
    """
    if rows not in ("items", "cascades"):
        raise LsbmError(f"rows must be 'items' or 'cascades', got {rows!r}")
    if executor not in ("local", "ray"):
        raise LsbmError(f"executor must be 'local' or 'ray', got {executor!r}")
    spec = load_scenario(scenario)
    grid = dict(grid or {})
    jobs = make_jobs(grid, replications, spec.seed if seed is None else seed)
    local = owned = None
    if executor == "local":
        runners = workers or os.cpu_count() or 1
        # The kept ones (a calibration's), or ones started now, so that their processes start while this one
        # checks the grid and reads finished runs.
        local = _kept_pools.get(runners) or (owned := LocalWorkers(min(runners, len(jobs))))
    try:
        return _sweep(spec, grid, jobs, executor, workers, out, keep_runs, ray_address, progress, rows, local)
    finally:
        if owned is not None:
            owned.shutdown()


def _sweep(spec, grid, jobs, executor, workers, out, keep_runs, ray_address, progress, rows, local) -> pd.DataFrame:
    resolved: dict[int, Scenario] = {}
    for job in jobs:  # every override path, value and file is checked before anything starts
        if job.combination not in resolved:
            resolved[job.combination] = spec.with_overrides(job.overrides)
            check_files(resolved[job.combination], job.params)
    kind = "" if rows == "items" else f"-{rows}"  # the same run kept per post and per cascade: two folders
    jobs = [Job(j.run, j.combination, j.replication, j.seed, j.params, run_id(resolved[j.combination], j.seed) + kind)
            for j in jobs]  # fmt: skip
    data, base_dir = spec.model_dump(mode="json"), str(spec.base_dir)
    out = Path(out) if out is not None else None
    runs_dir = None
    done: dict[str, pd.DataFrame] = {}
    if out is not None:
        if out.exists() and not out.is_dir():
            raise LsbmError(f"--out {out}: is a file, not a folder")
        runs_dir = out / RUNS
        try:
            runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LsbmError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None
        for stale in runs_dir.glob(".*.staging-*"):  # runs a killed sweep was in the middle of
            remove_stale_staging(runs_dir / stale.name.split(".staging-")[0][1:])
        wanted = {j.run_id for j in jobs}
        done = {rid: rows for rid, rows in finished_runs(out).items() if rid in wanted}

    todo = list({j.run_id: j for j in jobs if j.run_id not in done}.values())  # a run shared by two jobs runs once
    total = len({j.run_id for j in jobs})
    errors: dict[str, str] = {}
    if progress:
        progress(len(done), total)

    def finished(job: Job, rows: pd.DataFrame | None, error: str | None = None) -> None:
        if error is None:
            done[job.run_id] = rows
        else:
            errors[job.run_id] = error
        if progress:
            progress(len(done) + len(errors), total)

    try:
        if executor == "local":
            runs = str(runs_dir) if runs_dir is not None else None
            local.run(todo, (data, base_dir, runs, keep_runs, rows), finished)
        else:
            _run_ray(todo, data, base_dir, runs_dir, keep_runs, workers, ray_address, finished, rows)
    except BaseException as exc:
        if out is not None:
            # A worker may have published a run whose result had not reached us when the signal came.
            done.update({rid: rows for rid, rows in finished_runs(out).items() if rid in wanted})
            if done:
                _write_table(out, _assemble(jobs, done, {}), partial=True)
            exc.kept = (  # type: ignore[attr-defined]  (read by the command line)
                f"kept {len(done)} of {total} finished runs in {runs_dir}/; run the same command again to finish the sweep"
            )
        raise
    table = _assemble(jobs, done, errors)
    if out is not None:
        _write_table(out, table, partial=False)
    if errors:
        failed = {j.run: errors[j.run_id] for j in jobs if j.run_id in errors}
        named = "; ".join(f"run {r} ({_params_text(jobs[r].params)}, seed {jobs[r].seed}): {e}" for r, e in list(failed.items())[:3])
        more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
        raise SweepFailed(f"{len(failed)} of {len(jobs)} sweep runs failed: {named}{more}", table, failed)
    return table


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "no parameters"


def check_files(spec: Scenario, params: Mapping[str, Any]) -> None:
    """The files a combination's scenario names exist (checked before the first run, not when its run starts)."""
    for field_path, value in (("network.path", spec.network.path), ("population.path", spec.population.path),
                              ("behavior.head", spec.behavior.head)):  # fmt: skip
        if value is not None and not spec.resolve(value).is_file():
            where = f" (with {_params_text(dict(params))})" if params else ""
            raise LsbmError(f"{field_path}: file not found: {spec.resolve(value)}{where}")


def metric_names(spec: Scenario, grid: Mapping[str, Sequence[Any]] | None = None) -> list[str]:
    """The per-post figures a sweep of `spec` over `grid` reports (what `summarize` can take as `metric`)."""
    from lsbm_sim.analysis.metrics import cascade_metrics

    reactions: list[str] = []
    specs = [spec] + [spec.with_overrides(j.overrides) for j in make_jobs(dict(grid or {}), 1, 0)]
    for each in specs:
        reactions += [r for r in each.behavior.reactions if r != "ignore" and r not in reactions]
    import numpy as np

    return ["reach", *reactions, *cascade_metrics(np.array([-1])), "entered", "authors", "decisions", "seconds"]


def check_metric(spec: Scenario, grid: Mapping[str, Sequence[Any]] | None, metric: str) -> None:
    """Refuse, before any run, a --metric that is not a per-post figure of this sweep."""
    known = metric_names(spec, grid)
    if metric not in known:
        raise LsbmError(f"--metric {metric!r}: not a per-post figure of this sweep; choose one of {', '.join(known)}")


def _assemble(jobs: list[Job], done: dict[str, pd.DataFrame], errors: dict[str, str]) -> pd.DataFrame:
    """The sweep table in job order: each job's parameters beside its run's rows (or its error)."""
    parts = []
    for job in jobs:
        if job.run_id in done:
            rows = done[job.run_id].copy()
        elif job.run_id in errors:
            rows = pd.DataFrame({"error": [errors[job.run_id]]})
        else:
            continue
        head = {"run": job.run, "combination": job.combination, "replication": job.replication, "seed": job.seed}
        for k, (path, value) in enumerate(head.items()):
            rows.insert(k, path, value)
        for k, (path, value) in enumerate(job.params.items()):
            rows.insert(4 + k, f"{PARAM_PREFIX}{path}", json.dumps(value) if isinstance(value, (dict, list)) else value)
        rows["run_id"] = job.run_id
        parts.append(rows)
    if not parts:
        return pd.DataFrame(columns=["run", "combination", "replication", "seed", "run_id"])
    return pd.concat(parts, ignore_index=True)


def _write_table(out: Path, table: pd.DataFrame, partial: bool) -> None:
    name, other = (PARTIAL_TABLE, TABLE) if partial else (TABLE, PARTIAL_TABLE)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{name}.tmp-{os.getpid()}"
    table.to_parquet(tmp, index=False)
    tmp.replace(out / name)
    (out / other).unlink(missing_ok=True)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, LsbmError) else str(exc)


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")  # fmt: skip
"""What native libraries (BLAS, OpenMP and torch through it) read their thread count from when they load."""


def user_chose_threads() -> bool:
    """Whether the environment sets a native thread count: then the runners keep it."""
    return any(variable in os.environ for variable in THREAD_VARIABLES)


def threads_per_runner(runners: int) -> int:
    """Native threads each of `runners` concurrent runs may use: the cores shared out. Left alone, every run's
    BLAS takes every core, and two runs side by side on 2 cores each took 1.4x as long as one alone (threads
    waiting on each other), where held to one thread each they took as long as one alone (benchmarks/RESULTS.md)."""
    return max(1, (os.cpu_count() or 1) // max(1, runners))


@contextmanager
def native_threads(count: int) -> Iterator[None]:
    """Hold the native thread pools already loaded in this process (BLAS, OpenMP, torch's) to `count` threads
    inside the block, and put them back after."""
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=count):
        if torch is not None:
            torch.set_num_threads(count)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(before)


def _worker_init(parent: int, threads: int | None = None) -> None:
    """In each worker: Ctrl-C is the parent's to handle (it stops the workers), and a worker whose parent is
    gone (killed with SIGKILL, which it cannot pass on) exits within half a second instead of running on. Its
    native thread pools get `threads` threads (its share of the cores), those loaded already and those loaded
    later alike, unless the user has set any of THREAD_VARIABLES."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if threads is not None and not user_chose_threads():
        os.environ.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))  # for libraries loaded from now on
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)  # those loaded already (numpy's BLAS), for the process's life

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="lsbm-parent-watch", daemon=True).start()


class LocalWorkers:
    """`workers` runners on this machine: the calling process itself and `workers - 1` spawned processes, all
    taking jobs from one queue. The caller taking part spares one process's start and import of the simulator,
    which costs more than a short run; the spawned ones are started (and import the engine) at once, so that
    their start overlaps whatever the caller does before its first job."""

    def __init__(self, workers: int):
        self.processes = max(0, workers - 1)
        self.threads = threads_per_runner(self.processes + 1)
        self.pool = _worker_pool(self.processes, self.threads) if self.processes else None
        self._state = threading.Condition()
        self._caller_busy = False  # one job at a time in this process, whichever sweep's thread runs it
        # Processes busy (shared by concurrent sweeps): at first every one, starting. A job goes to a process only
        # once it is ready; until then this process takes them all, so a short sweep does not wait for a start.
        self._in_pool = self.processes
        self._stopped = False
        self._starting = [self.pool.submit(_import_engine) for _ in range(self.processes)]  # a pool starts a
        for started in self._starting:  # process only when a task needs one: these start them all now
            started.add_done_callback(lambda _: self._release())

    def _release(self) -> None:
        with self._state:
            self._in_pool -= 1
            self._state.notify_all()

    def run(self, jobs: Sequence[Job], args: tuple, finished: Callable[..., None]) -> None:
        """Run `jobs` (`run_job(data, base_dir, job, runs, keep_runs, rows_of)` with `args`), reporting each to
        `finished(job, rows)` or `finished(job, None, error)` as it ends. A job that fails does not stop the others.
        On an interruption (raised in the caller while it runs or waits) the spawned processes are stopped and
        nothing more is reported."""
        queue = deque(jobs)
        report, abandoned = threading.Lock(), threading.Event()
        trouble: list[BaseException] = []

        def report_end(job: Job, rows, error: str | None = None) -> None:
            with report:
                if not abandoned.is_set():
                    finished(job, rows, error)

        dispatcher = None
        if self.pool is not None:
            dispatcher = threading.Thread(target=self._dispatch, args=(queue, args, report_end, abandoned, trouble),
                                          name="lsbm-sweep-dispatch", daemon=True)  # fmt: skip
            dispatcher.start()
        try:
            while (job := self._take_for_caller(queue)) is not None:
                try:
                    if self.pool is None or user_chose_threads():
                        rows = run_job(args[0], args[1], job, *args[2:])
                    else:  # beside the spawned processes: this process's share of the cores, as theirs
                        _import_engine()  # first, so that the native libraries it loads are held too
                        with native_threads(self.threads):
                            rows = run_job(args[0], args[1], job, *args[2:])
                except Exception as exc:
                    report_end(job, None, _describe(exc))
                else:
                    report_end(job, rows)
                finally:
                    with self._state:
                        self._caller_busy = False
                        self._state.notify_all()
            if self._stopped:  # the processes were stopped (stop_kept_workers): the jobs left fail, as theirs did
                while queue:
                    report_end(queue.popleft(), None, "BrokenProcessPool: the worker processes were stopped")
            while dispatcher is not None and dispatcher.is_alive():
                dispatcher.join(0.1)  # (a join with no timeout would hold off Ctrl-C until it returns)
        except BaseException:
            # Interrupted: queued runs are dropped and running ones stopped (their half-written folders are
            # staging folders, removed by the next sweep into the same folder).
            abandoned.set()
            with self._state:
                queue.clear()
                self._state.notify_all()
            self.stop()
            raise
        if trouble:
            raise trouble[0]

    def _take_for_caller(self, queue: deque) -> Job | None:
        with self._state:
            while queue and self._caller_busy and not self._stopped:
                self._state.wait(0.1)
            if not queue or self._stopped:
                return None
            self._caller_busy = True
            return queue.popleft()

    def _dispatch(self, queue: deque, args: tuple, report_end, abandoned: threading.Event, trouble: list) -> None:
        """Keep every spawned process fed with one job at a time from `queue` and report their ends."""
        ended: SimpleQueue = SimpleQueue()
        outstanding = 0

        def release(future, job: Job) -> None:
            self._release()
            ended.put((future, job))

        try:
            while True:
                with self._state:
                    job = None
                    if queue and not self._stopped and not abandoned.is_set() and self._in_pool < self.processes:
                        job = queue.popleft()
                        self._in_pool += 1
                if job is not None:
                    try:
                        future = self.pool.submit(run_job, args[0], args[1], job, *args[2:])
                    except Exception as exc:  # a broken or shut-down pool takes no more jobs
                        with self._state:
                            self._in_pool -= 1
                        report_end(job, None, _describe(exc))
                        continue
                    outstanding += 1
                    future.add_done_callback(lambda f, job=job: release(f, job))
                    continue
                if abandoned.is_set() or (outstanding == 0 and (not queue or self._stopped)):
                    return
                try:
                    future, job = ended.get(timeout=0.05)
                except Empty:
                    continue
                outstanding -= 1
                try:
                    rows = future.result()
                except Exception as exc:
                    report_end(job, None, _describe(exc))
                else:
                    report_end(job, rows)
        except BaseException as exc:  # (reporting failed) the caller raises it
            trouble.append(exc)
            abandoned.set()

    def stop(self) -> None:
        """Stop the spawned processes now: their jobs fail with BrokenProcessPool, and no job is taken after."""
        with self._state:
            self._stopped = True
            self._state.notify_all()
        if self.pool is not None:
            _terminate(self.pool)

    def shutdown(self) -> None:
        """Stop the spawned processes (no job of ours runs there any more); one still starting is not waited for."""
        if self.pool is not None:
            if not all(started.done() for started in self._starting):
                _terminate(self.pool)
            self.pool.shutdown(wait=True, cancel_futures=True)


def _import_engine() -> None:
    import lsbm_sim.engine.runner  # noqa: F401


def _worker_pool(workers: int, threads: int | None = None) -> ProcessPoolExecutor:
    # Spawned (not forked) workers: torch and tokenizers are not fork-safe once they have started threads.
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_worker_init,
                               initargs=(os.getpid(), threads))  # fmt: skip


_kept_pools: dict[int, LocalWorkers] = {}


@contextmanager
def kept_workers(workers: int | None) -> Iterator[None]:
    """Keep one set of local workers (this process and `workers - 1` spawned ones) for every sweep inside the
    block (a calibration's trials), so that each sweep does not pay for starting processes and importing the
    simulator again. Concurrent sweeps (trials in flight) share them: one job at a time in this process, one
    in each spawned process."""
    workers = workers or os.cpu_count() or 1
    if workers == 1 or workers in _kept_pools:
        yield
        return
    local = LocalWorkers(workers)
    _kept_pools[workers] = local
    try:
        yield
    finally:
        del _kept_pools[workers]
        local.shutdown()


def stop_kept_workers() -> None:
    """Stop the processes of every kept set of workers (the sweeps using them fail with BrokenProcessPool; a job
    running in this process runs to its end); they are shut down when their `kept_workers` block ends."""
    for local in _kept_pools.values():
        local.stop()


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop a pool's worker processes now (ProcessPoolExecutor has no public way to stop running tasks)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


def _run_ray(jobs, data, base_dir, runs_dir, keep_runs, workers, address, finished, rows_of="items") -> None:
    try:
        import ray
    except ImportError:
        raise LsbmError("the ray executor needs Ray: pip install 'lsbm-sim[ray]'") from None
    started_here = not ray.is_initialized() and not address  # a local cluster this command owns
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
    runs = str(runs_dir) if runs_dir is not None else None
    pending = {remote.remote(data, base_dir, job, runs, keep_runs, rows_of): job for job in jobs}
    try:
        # Ray checks for signals inside its own C++ calls, and an exception raised there by our handler comes back
        # as a SystemError; so a signal only sets a flag while Ray waits, and is raised between waits.
        with interrupts.deferred():
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
                interrupts.raise_if_requested()
                if not done:
                    continue
                job = pending.pop(done[0])
                try:
                    rows = ray.get(done[0])
                except Exception as exc:  # Ray wraps the worker's exception; its cause names what went wrong
                    finished(job, None, _describe(getattr(exc, "cause", None) or exc))
                else:
                    finished(job, rows)
    except BaseException:
        if started_here:
            # Shutting the local cluster down stops its workers. Cancelling tasks instead can race with a task
            # that is just finishing and abort this process inside Ray (a known Ray bug, "Tried to complete task
            # that was not pending"), losing the exit code and the line saying what was kept.
            ray.shutdown()
        elif pending:  # someone else's cluster lives on: stop only our tasks, those not finished by now
            _, unfinished = ray.wait(list(pending), num_returns=len(pending), timeout=0)
            for ref in unfinished:
                ray.cancel(ref, force=True)
        raise


def summarize(table: pd.DataFrame, metric: str = "share", by: Sequence[str] | None = None) -> pd.DataFrame:
    """Per parameter combination and post: mean, standard deviation, count, standard error and a 95% interval
    of a per-post metric; and (with the default grouping) the paired difference from the first grid point with
    its 95% interval. Replication r of every combination shares seed base + r (common random numbers), so the
    difference is taken run by run, which makes its interval much tighter than the two means' intervals.

    `summary.attrs["baseline"]` names the first grid point; `summary.attrs["unchanged"]` lists the parameters
    that changed no result at all (see `unchanged_parameters`). Failed runs (an `error`) are left out.
    """
    from scipy.special import stdtrit  # Student's t quantiles (scipy.stats costs a third of a second to import)

    if metric not in table.columns:
        raise LsbmError(f"no column {metric!r} in the sweep table")
    if "error" in table.columns:
        table = table[table["error"].isna()]
    params = [c for c in table.columns if c.startswith(PARAM_PREFIX)]
    default = by is None
    by = list(by) if by is not None else params + ["item_id"]
    grouped = table.groupby(by, observed=True, sort=True)[metric]
    summary = grouped.agg(["mean", "std", "count"])
    summary["sem"] = summary["std"] / summary["count"] ** 0.5
    half = stdtrit((summary["count"] - 1).clip(lower=1), 0.975) * summary["sem"]
    summary["ci_low"], summary["ci_high"] = summary["mean"] - half, summary["mean"] + half
    summary = summary.reset_index()
    if default and params and "combination" in table.columns:
        # The grid's order, not the values' sort order: the first grid point (the baseline the diff columns are
        # taken from) comes first.
        order = table.drop_duplicates(params)[[*params, "combination"]]
        summary = summary.merge(order, on=params, how="left").sort_values(["combination", "item_id"], kind="stable")
        summary = summary.drop(columns="combination").reset_index(drop=True)
    if default and params and "combination" in table.columns and "replication" in table.columns:
        summary = _paired_differences(table, summary, params, metric)
    summary.attrs["unchanged"] = unchanged_parameters(table)
    return summary


def _paired_differences(table: pd.DataFrame, summary: pd.DataFrame, params: list[str], metric: str) -> pd.DataFrame:
    from scipy.special import stdtrit

    base = int(table["combination"].min())
    runs = table.pivot_table(index=["item_id", "replication"], columns="combination", values=metric, aggfunc="first")
    diffs = runs.sub(runs[base], axis=0).stack().rename("d").reset_index()  # item, replication, combination, d
    per = diffs.groupby(["combination", "item_id"])["d"].agg(["mean", "std", "count"])
    half = stdtrit((per["count"] - 1).clip(lower=1), 0.975) * per["std"] / per["count"] ** 0.5
    per = pd.DataFrame({"diff": per["mean"], "diff_ci_low": per["mean"] - half, "diff_ci_high": per["mean"] + half})
    keys = table.drop_duplicates("combination").set_index("combination")[params]
    per = per.reset_index().join(keys, on="combination").drop(columns="combination")
    merged = summary.merge(per, on=[*params, "item_id"], how="left")
    merged.attrs["baseline"] = {p.removeprefix(PARAM_PREFIX): keys.loc[base, p] for p in params}
    return merged


def unchanged_parameters(table: pd.DataFrame) -> list[str]:
    """The grid parameters whose values changed no result: every run agrees, figure for figure, with the run
    that differs from it only in that parameter (a feed size above what any feed ever holds, say)."""
    if "error" in table.columns:
        table = table[table["error"].isna()]
    params = [c for c in table.columns if c.startswith(PARAM_PREFIX)]
    figures = [c for c in table.columns if c not in (*JOB_COLUMNS, *NOT_RESULTS) and not c.startswith(PARAM_PREFIX)]
    unchanged = []
    for param in params:
        if table[param].nunique(dropna=False) < 2:
            continue
        others = [p for p in params if p != param] + ["replication", "item_id"]
        counts = table.groupby(others, dropna=False, observed=True)[figures].nunique(dropna=False)
        if (counts <= 1).all().all():
            unchanged.append(param.removeprefix(PARAM_PREFIX))
    return unchanged
