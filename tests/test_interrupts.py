"""Ctrl-C, SIGTERM and SIGKILL of real `lsbm-sim run` and `lsbm-sim sweep` processes: the exit code says what
happened, what finished is kept, and running the same command again finishes the work with nothing lost or
counted twice. Small worlds and bounded waits keep each test to seconds."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, small_scenario

from lsbm_sim import load_results

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="signals and /proc as on Linux")

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


STARTED: list[subprocess.Popen] = []
WORKERS: list[int] = []


@pytest.fixture(autouse=True)
def no_process_outlives_its_test():
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    while WORKERS:  # a sweep's workers, should a failing test leave them orphaned
        pid = WORKERS.pop()
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def lsbm(*args, cwd: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "lsbm_sim.cli", *map(str, args)], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    STARTED.append(proc)
    return proc


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()  # a command that does not stop must not outlive its test
        proc.communicate()
        raise
    return proc.returncode, err


def wait_for(condition, timeout: float = 90, what: str = "condition", proc: subprocess.Popen | None = None):
    """Poll `condition` until it holds; with `proc`, a command that ended first fails at once with its stderr
    (a command that ended cannot be interrupted, and waiting out the timeout would hide why)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the command ended (code {proc.returncode}) before {what}: {proc.stderr.read()}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def long_run(tmp_path: Path) -> Path:
    """A run of many quick steps: it is always mid-run when the signal comes."""
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(small_scenario(steps=100_000, population={"size": 200, "activity": 0.6})))
    return path


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_a_run_at_the_end_of_a_step_and_keeps_what_it_did(tmp_path, sig, code):
    proc = lsbm("run", long_run(tmp_path), "--out", "res", "-q", cwd=tmp_path)
    wait_for(lambda: list(tmp_path.glob(".res.staging-*")), what="the run to start")
    time.sleep(1.0)  # some steps
    proc.send_signal(sig)
    returncode, err = finish(proc, timeout=30)
    assert returncode == code, err
    assert f"interrupted by {sig.name}: kept the finished steps in res.partial/" in err and "Traceback" not in err
    partial = load_results(tmp_path / "res.partial", allow_incomplete=True)
    done = partial.manifest["steps_run"]
    assert not partial.complete and 0 < done < 100_000 and sig.name in partial.manifest["error"]
    assert len(partial.steps) == done and partial.steps["step"].tolist() == list(range(done))  # whole steps only
    assert len(partial.events) == partial.manifest["exposures"] and partial.events["step"].max() < done
    assert not (tmp_path / "res").exists() and not list(tmp_path.glob(".res.*"))  # no staging folder left


def test_a_killed_runs_staging_folder_is_removed_by_the_next_run(tmp_path):
    scenario = long_run(tmp_path)
    proc = lsbm("run", scenario, "--out", "res", "-q", cwd=tmp_path)
    wait_for(lambda: list(tmp_path.glob(".res.staging-*")), what="the run to start")
    time.sleep(0.5)
    proc.kill()
    assert proc.wait(timeout=10) == -signal.SIGKILL
    left = list(tmp_path.glob(".res.staging-*"))
    assert len(left) == 1 and not (tmp_path / "res").exists()

    returncode, err = finish(lsbm("run", scenario, "--out", "res", "-q", "--steps", 3, cwd=tmp_path))
    assert returncode == 0, err
    assert f"removed {left[0].name}, left by a run that was killed (process {proc.pid})" in err
    assert not list(tmp_path.glob(".res.*")) and load_results(tmp_path / "res").complete


SWEEP_RUNS = 6  # 3 grid points x 2 replications


def sweep_command(tmp_path: Path) -> list:
    # About a second a run (many cheap steps), so that runs are still unfinished when the test stops the sweep
    # after the first one is written; runs of a tenth of a second could all finish before the signal.
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(small_scenario(steps=4000, population={"size": 500, "activity": 0.6})))
    return ["sweep", path, "--grid", "behavior.probabilities.share=0.05,0.1,0.2", "--replications", 2,
            "--workers", 2, "--out", "sw"]  # fmt: skip


def finished_runs(tmp_path: Path) -> list[Path]:
    # (pathlib's * also matches the hidden staging folders of runs being written)
    return sorted(p.parent for p in (tmp_path / "sw" / "runs").glob("*/rows.parquet") if not p.parent.name.startswith("."))


def assert_whole_sweep(tmp_path: Path, first: dict[Path, int]) -> None:
    """Every run once, the runs finished before the interruption not run again, no stale table beside it."""
    table = pd.read_parquet(tmp_path / "sw" / "sweep.parquet")
    assert sorted(table["run"].unique()) == list(range(SWEEP_RUNS))
    assert (table.groupby("run").size() == 2).all()  # two posts per run, none doubled
    assert len(finished_runs(tmp_path)) == SWEEP_RUNS and "error" not in table.columns
    assert {p: p.stat().st_mtime_ns for p in first} == first
    assert not (tmp_path / "sw" / "sweep.partial.parquet").exists()
    assert not list((tmp_path / "sw" / "runs").glob(".*"))


def start_sweep_and_wait_for_a_run(tmp_path: Path) -> tuple[list, subprocess.Popen, list[int]]:
    """The sweep command, its process once a run has finished, and its workers."""
    command = sweep_command(tmp_path)
    proc = lsbm(*command, cwd=tmp_path)
    wait_for(lambda: finished_runs(tmp_path), what="a finished run")
    workers = children(proc.pid)
    WORKERS.extend(workers)
    assert workers
    return command, proc, workers


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_a_sweep_and_the_same_command_finishes_it(tmp_path, sig, code):
    command, proc, workers = start_sweep_and_wait_for_a_run(tmp_path)
    proc.send_signal(sig)
    returncode, err = finish(proc, timeout=60)
    assert returncode == code, err
    assert f"interrupted by {sig.name}: kept" in err and "run the same command again" in err and "Traceback" not in err
    wait_for(lambda: not any(alive(w) for w in workers), timeout=10, what="the workers to stop")
    kept = pd.read_parquet(tmp_path / "sw" / "sweep.partial.parquet")
    first = {p: p.stat().st_mtime_ns for p in finished_runs(tmp_path)}
    assert 0 < kept["run"].nunique() == len(first) < SWEEP_RUNS
    assert not (tmp_path / "sw" / "sweep.parquet").exists()
    if sig == signal.SIGTERM:
        return  # finishing by a rerun is the same after either signal (and after SIGKILL, below): once is enough

    returncode, err = finish(lsbm(*command, cwd=tmp_path))
    assert returncode == 0, err
    assert_whole_sweep(tmp_path, first)


def test_a_killed_sweeps_workers_stop_and_the_same_command_finishes_it(tmp_path):
    command, proc, workers = start_sweep_and_wait_for_a_run(tmp_path)
    proc.kill()
    proc.wait(timeout=10)  # (not communicate: orphaned workers would hold its pipes open)
    wait_for(lambda: not any(alive(w) for w in workers), timeout=10, what="the orphaned workers to exit")
    first = {p: p.stat().st_mtime_ns for p in finished_runs(tmp_path)}
    assert 0 < len(first) < SWEEP_RUNS

    returncode, err = finish(lsbm(*command, cwd=tmp_path))
    assert returncode == 0, err
    assert_whole_sweep(tmp_path, first)


def descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        kids = [k for parent in frontier for k in children(parent)]
        found += kids
        frontier = kids
    return found


def test_ctrl_c_stops_a_ray_sweep_its_local_cluster_exits_and_the_same_command_finishes_it(tmp_path):
    pytest.importorskip("ray")
    Path(os.environ["RAY_TMPDIR"]).mkdir(parents=True, exist_ok=True)
    command = [*sweep_command(tmp_path), "--executor", "ray"]
    proc = lsbm(*command, cwd=tmp_path)
    wait_for(lambda: finished_runs(tmp_path), timeout=120, what="a finished run")
    cluster = descendants(proc.pid)  # the local Ray cluster the command started: raylet, GCS, workers
    WORKERS.extend(cluster)
    assert cluster
    proc.send_signal(signal.SIGINT)
    returncode, err = finish(proc, timeout=90)
    assert returncode == 130, err
    assert "interrupted by SIGINT: kept" in err and "Traceback" not in err
    wait_for(lambda: not any(alive(p) for p in cluster), timeout=60, what="the Ray cluster's processes to exit")
    first = {p: p.stat().st_mtime_ns for p in finished_runs(tmp_path)}
    assert 0 < len(first) < SWEEP_RUNS and (tmp_path / "sw" / "sweep.partial.parquet").is_file()

    returncode, err = finish(lsbm(*command, cwd=tmp_path), timeout=180)
    assert returncode == 0, err
    assert_whole_sweep(tmp_path, first)


def living_platform_sweep(tmp_path: Path) -> tuple[Path, dict, list]:
    """A sweep whose runs are small living platforms: people post from the pool and an interest recommender fills
    feed slots (most of a second a run: two workers run the last two after the first two, so those two at least are
    unfinished when the test stops the sweep on seeing the first)."""
    path = tmp_path / "living.yaml"
    doc = small_scenario(steps=20, population={"size": 500, "activity": 0.4})
    doc["posting"] = {"rate": 0.03, "pool": str(ROOT / "scenarios" / "data" / "posts.jsonl")}
    doc["feed"] = {"policy": "chronological", "size": 6, "recommender": "interest", "out_of_network": 0.3}
    path.write_text(yaml.safe_dump(doc))
    grid = {"feed.out_of_network": [0.2, 0.4]}
    command = ["sweep", path, "--grid", "feed.out_of_network=0.2,0.4", "--replications", 2, "--workers", 2, "--out", "sw"]
    return path, grid, command


def test_a_sweep_of_runs_that_post_and_recommend_is_stopped_and_the_same_command_finishes_it(tmp_path):
    from lsbm_sim.studies.sweep import sweep

    path, grid, command = living_platform_sweep(tmp_path)
    proc = lsbm(*command, cwd=tmp_path)
    wait_for(lambda: finished_runs(tmp_path), what="a finished run")
    WORKERS.extend(children(proc.pid))
    proc.send_signal(signal.SIGINT)
    returncode, err = finish(proc, timeout=60)
    assert returncode == 130, err
    assert "interrupted by SIGINT: kept" in err and "run the same command again" in err and "Traceback" not in err
    first = {p.name: pd.read_parquet(p / "rows.parquet")["seconds"] for p in finished_runs(tmp_path)}
    assert 0 < len(first) < 4

    returncode, err = finish(lsbm(*command, cwd=tmp_path))
    assert returncode == 0, err
    table = pd.read_parquet(tmp_path / "sw" / "sweep.parquet")
    for rid, seconds in first.items():  # the runs finished before the signal were not run again (a run's time differs)
        assert table.loc[table["run_id"] == rid, "seconds"].tolist() == seconds.tolist()
    assert len(finished_runs(tmp_path)) == 4 and not list((tmp_path / "sw" / "runs").glob(".*"))
    # Every run once, and each as an uninterrupted sweep (in this process, one run at a time) has it.
    whole = sweep(path, grid, replications=2, workers=1)
    assert sorted(table["run"].unique()) == [0, 1, 2, 3] and len(table) == len(whole) > 4 * 2
    pd.testing.assert_frame_equal(table.drop(columns="seconds"), whole.drop(columns="seconds"))


def test_a_calibration_whose_runs_post_and_recommend_is_stopped_and_finished_by_running_it_again(tmp_path, monkeypatch):
    import optuna

    from lsbm_sim.studies.calibrate import calibrate
    from lsbm_sim.engine.runner import run

    path = tmp_path / "living.yaml"
    # Steps enough that a trial lasts a second or two: the window in which the test must catch one running.
    doc = small_scenario(steps=24, population={"size": 400, "activity": 0.5})
    doc["posting"] = {"rate": 0.03, "pool": str(ROOT / "scenarios" / "data" / "posts.jsonl")}
    doc["feed"] = {"policy": "chronological", "size": 6, "recommender": "interest", "out_of_network": 0.3}
    path.write_text(yaml.safe_dump(doc))
    run(path, seed=99, out=tmp_path / "truth")  # the "real" cascades
    command = ["calibrate", path, "--real", "truth", "--param", "behavior.probabilities.share=0.05..0.4",
               "--trials", 4, "--workers", 1, "--out", "cal"]  # fmt: skip

    def trials() -> list:
        return optuna.load_study(study_name="calibration", storage=f"sqlite:///{tmp_path / 'cal' / 'study.db'}").get_trials()

    def mid_trial() -> bool:  # a trial finished, and the next one has drawn its value and is running
        try:
            now = trials()
        except Exception:  # the study is being created
            return False
        done = [t for t in now if t.state == optuna.trial.TrialState.COMPLETE]
        return len(done) >= 1 and now[-1].state == optuna.trial.TrialState.RUNNING and bool(now[-1].params)

    proc = lsbm(*command, cwd=tmp_path)
    # A loaded machine (a fresh clone embeds the posts once, then runs the trials) can take a minute to get there.
    wait_for(lambda: (tmp_path / "cal" / "study.db").exists() and mid_trial(), timeout=240,
             what="a trial running after one finished", proc=proc)  # fmt: skip
    proc.send_signal(signal.SIGINT)
    returncode, err = finish(proc, timeout=60)
    assert returncode == 130 and "interrupted by SIGINT" in err and "Traceback" not in err, err
    stopped = trials()
    finished = [(t.number, t.params, t.value) for t in stopped if t.state == optuna.trial.TrialState.COMPLETE]
    interrupted = [t for t in stopped if t.state == optuna.trial.TrialState.FAIL]
    assert 1 <= len(finished) < 4 and len(interrupted) == 1 and interrupted[0].params

    # The same calibration (the study refuses other settings), finished here: the command would add a bootstrap
    # of the final comparison, seconds that this test does not need.
    monkeypatch.chdir(tmp_path)  # "truth" names the real data as the command did
    calibrate(path, "truth", ["behavior.probabilities.share=0.05..0.4"], trials=4, workers=1, out="cal", bootstrap=0)
    complete = [t for t in trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert [(t.number, t.params, t.value) for t in complete[: len(finished)]] == finished  # none lost or rerun
    assert len(complete) == 4  # none counted twice
    retry = [t for t in complete if t.user_attrs.get("retry_of") == interrupted[0].number]
    assert len(retry) == 1 and retry[0].params == interrupted[0].params  # the stopped trial ran again, once
    assert (tmp_path / "cal" / "calibration.json").is_file()
