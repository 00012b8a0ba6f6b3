"""Checkpoint and resume of a real `lsbm-sim run` process: SIGKILLed after a checkpoint, or stopped by Ctrl-C or
SIGTERM (which save one), and resumed, it writes the same events.parquet, byte for byte, as a run that was never
interrupted; a checkpoint of another scenario is refused with one line and exit 2."""

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

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="signals as on Linux")

# Small row groups, so that the killed run has written several before and after its checkpoint.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
       "LSBM_FLUSH_ROWS": "10000"}  # fmt: skip


def lsbm(*args, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lsbm_sim.cli", *map(str, args)], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return proc.returncode, err


def scenario(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "s.yaml"
    # People keep posting (new posts, growing per-post arrays) and a recommender fills feed slots, so that the
    # run is busy at every step; a random feed draws on its stream at every step too.
    doc = small_scenario(steps=150, population={"size": 1000, "activity": 0.5}, **changes)
    doc["posting"] = {"rate": 0.004, "pool": str(ROOT / "scenarios" / "data" / "posts.jsonl"), "interest": 0}
    doc["feed"] = {"policy": "random", "size": 6, "max_age": 10, "recommender": "random", "out_of_network": 0.3}
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> tuple[Path, Path]:
    """The scenario file and the results of its uninterrupted run (one run serves every test here)."""
    folder = tmp_path_factory.mktemp("whole")
    path = scenario(folder)
    returncode, err = finish(lsbm("run", path, "--out", "whole", "-q", cwd=folder))
    assert returncode == 0, err
    return path, folder / "whole"


def test_a_run_killed_after_a_checkpoint_and_resumed_writes_the_same_events_file(tmp_path, whole):
    path, whole_dir = whole

    proc = lsbm("run", path, "--out", "res", "-q", "--checkpoint-every", 25, cwd=tmp_path)
    state = tmp_path / "res.checkpoint" / "state.pkl"
    deadline = time.monotonic() + 90
    while not state.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # some steps past the checkpoint, whose rows the resumed run must drop and write again
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL, "the run ended before it could be killed: make it longer"
    assert state.exists() and not (tmp_path / "res").exists()

    returncode, err = finish(lsbm("run", path, "--out", "res", "-q", "--resume", cwd=tmp_path))
    assert returncode == 0, err
    assert (tmp_path / "res" / "events.parquet").read_bytes() == (whole_dir / "events.parquet").read_bytes()
    for table in ("steps", "items", "agents"):
        a, b = (pd.read_parquet(d / f"{table}.parquet") for d in (whole_dir, tmp_path / "res"))
        assert a.equals(b), table
    assert not (tmp_path / "res.checkpoint").exists()  # removed once the results are published


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_saves_a_checkpoint_that_resumes_to_the_same_events_file(tmp_path, whole, sig, code):
    path, whole_dir = whole

    proc = lsbm("run", path, "--out", "res", "-q", cwd=tmp_path)  # no --checkpoint-every: the signal saves one
    deadline = time.monotonic() + 90
    while not list(tmp_path.glob(".res.staging-*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.5)  # some steps
    proc.send_signal(sig)
    returncode, err = finish(proc, timeout=60)
    assert returncode == code, "the run ended before the signal: make it longer\n" + err
    assert "--resume continues from the checkpoint in res.checkpoint/" in err and "Traceback" not in err
    assert (tmp_path / "res.checkpoint" / "state.pkl").is_file() and (tmp_path / "res.partial").is_dir()

    returncode, err = finish(lsbm("run", path, "--out", "res", "-q", "--resume", cwd=tmp_path))
    assert returncode == 0, err
    assert (tmp_path / "res" / "events.parquet").read_bytes() == (whole_dir / "events.parquet").read_bytes()
    assert not (tmp_path / "res.checkpoint").exists()


def test_a_checkpoint_of_another_scenario_is_refused(tmp_path):
    path = scenario(tmp_path)
    proc = lsbm("run", path, "--out", "res2", "-q", "--checkpoint-every", 5, cwd=tmp_path)
    state = tmp_path / "res2.checkpoint" / "state.pkl"
    deadline = time.monotonic() + 90
    while not state.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL and state.exists()

    returncode, err = finish(lsbm("run", path, "--out", "res2", "-q", "--resume", "--set", "feed.size=4", cwd=tmp_path))
    assert returncode == 2 and "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: --resume: {Path('res2.checkpoint', 'state.pkl')} is of another scenario (or other --set "
                      "values) than this run's"], err  # fmt: skip
    returncode, err = finish(lsbm("run", path, "--out", "res2", "-q", "--resume", "--seed", 6, cwd=tmp_path))
    assert returncode == 2 and "is of seed 5, not 6" in err, err
    returncode, err = finish(lsbm("run", path, "--out", "res3", "-q", "--resume", cwd=tmp_path))
    assert returncode == 2 and "no checkpoint in res3.checkpoint" in err, err


def test_a_run_that_fails_part_way_keeps_its_partial_results_and_no_checkpoint_folder(tmp_path, monkeypatch):
    """The checkpoint folder holds the event log's row groups as they are written; a run that fails with no
    checkpoint saved has nothing to resume from, so the folder goes (the partial results stay)."""
    from lsbm_sim import UserAgent, run
    from lsbm_sim.analysis import results

    monkeypatch.setattr(results, "FLUSH_ROWS", 50)  # row groups are written before the failure

    class FailsAtStepFive(UserAgent):
        steps_seen = 0

        def step(self):
            if self.agent_id == 0:
                type(self).steps_seen += 1
                if type(self).steps_seen == 5:
                    raise RuntimeError("boom at step 5")

    with pytest.raises(RuntimeError, match="boom"):
        run(scenario(tmp_path), out=tmp_path / "res", agent_class=FailsAtStepFive)
    assert (tmp_path / "res.partial" / "events.parquet").is_file()
    assert not (tmp_path / "res.checkpoint").exists() and not (tmp_path / "res").exists()
