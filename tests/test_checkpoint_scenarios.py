"""Every shipped scenario, at a small size, stopped by SIGKILL after a checkpoint or by SIGINT, then resumed: the
resumed run's events.parquet is byte-identical to an uninterrupted run's, and its other tables are equal.

The stopped runs are real `lsbm-sim run` processes. Each signals itself at the start of a chosen step (through a
wrapper of `SocialModel.step`), so the signal lands mid-step at the same step on every machine, however loaded:
no test waits for a file and races the run's end. The uninterrupted runs and the resumes run in this process (one
uninterrupted run per scenario serves both of its tests)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import ROOT

from lsbm_sim.analysis import results
from lsbm_sim.engine.runner import run

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="signals as on Linux")

# Small, and long enough that each scenario's later posts, batches and interventions come after the checkpoint.
SCENARIOS = {
    "eco_product_launch": ["population.size=400", "steps=12"],
    "headline_ab_test": ["population.size=400", "steps=10"],
    "independent_cascade": ["population.size=500", "steps=10"],
    "influencer_vs_random": ["population.size=400", "steps=10"],
    "misinformation_correction": ["population.size=400", "steps=14"],  # the label at step 2, the correction at 4
    # Posting, the interest recommender, engaged events; people post as often as at full size (hundreds of recent
    # posts), so the recommender's running top lists, not only its newest and popular posts, pick the candidates.
    "platform_day": ["population.size=1000", "steps=10", "posting.rate=0.05"],
    "twitter_cascades": ["population.size=1000", "steps=10"],  # batches of 100 posts at steps 0 to 9
}
CHECKPOINT_EVERY, KILLED_AT, SIGNALLED_AT = 3, 8, 5  # killed two steps after the checkpoint of step 6
FLUSH_ROWS = 150  # small row groups: the killed run has written some after its checkpoint, which the resume drops
TABLES = ("steps", "items", "agents", "cascades")

# The command line, signalling itself at the start of step AT (Mesa's step counter runs one ahead of ours).
SIGNALLING_CLI = """
import os, sys
from lsbm_sim.cli import main
from lsbm_sim.engine.model import SocialModel
signum, at = int(sys.argv[1]), int(sys.argv[2])
step = SocialModel.step
def signalling_step(self):
    if self.steps - 1 == at:
        os.kill(os.getpid(), signum)
    step(self)
SocialModel.step = signalling_step
sys.exit(main(sys.argv[3:]))
"""
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
       "LSBM_FLUSH_ROWS": str(FLUSH_ROWS)}  # fmt: skip


def test_every_shipped_scenario_is_in_the_matrix():
    assert sorted(p.stem for p in (ROOT / "scenarios").glob("*.yaml")) == sorted(SCENARIOS)


@pytest.fixture(autouse=True)
def small_row_groups(monkeypatch):
    """The runs in this process write row groups of the same size as the commands' (the file's bytes depend on it)."""
    monkeypatch.setattr(results, "FLUSH_ROWS", FLUSH_ROWS)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """name -> the results folder of the scenario's uninterrupted run, made when first asked for."""
    folder, made = tmp_path_factory.mktemp("uninterrupted"), {}

    def get(name: str) -> Path:
        if name not in made:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(results, "FLUSH_ROWS", FLUSH_ROWS)
                run(ROOT / "scenarios" / f"{name}.yaml", out=folder / name, overrides=SCENARIOS[name])
            made[name] = folder / name
        return made[name]

    return get


def signalled_run(tmp_path: Path, name: str, sig: int, at: int, *options) -> tuple[int, str]:
    sets = [arg for value in SCENARIOS[name] for arg in ("--set", value)]
    command = [sys.executable, "-c", SIGNALLING_CLI, str(int(sig)), str(at),
               "run", str(ROOT / "scenarios" / f"{name}.yaml"), "--out", "res", "-q", *sets, *map(str, options)]  # fmt: skip
    # A generous limit: a small run takes seconds alone and many times that on a machine busy with other jobs.
    proc = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=400)
    return proc.returncode, proc.stderr


def assert_same_results(resumed: Path, whole: Path) -> None:
    assert (resumed / "events.parquet").read_bytes() == (whole / "events.parquet").read_bytes()
    for table in TABLES:
        a, b = (pd.read_parquet(folder / f"{table}.parquet") for folder in (whole, resumed))
        pd.testing.assert_frame_equal(a, b, obj=table)
    a, b = (json.loads((folder / "manifest.json").read_text()) for folder in (whole, resumed))
    for manifest in (a, b):
        del manifest["timings"]
        manifest["broker"] = {k: v for k, v in manifest["broker"].items() if "second" not in k}
    assert a == b


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_killed_after_a_checkpoint_and_resumed(tmp_path, uninterrupted, name):
    whole = uninterrupted(name)  # first: the command then finds the sentence embeddings in the shared cache
    code, err = signalled_run(tmp_path, name, signal.SIGKILL, KILLED_AT, "--checkpoint-every", CHECKPOINT_EVERY)
    assert code == -signal.SIGKILL, err
    assert (tmp_path / "res.checkpoint" / "state.pkl").is_file() and not (tmp_path / "res").exists()

    run(ROOT / "scenarios" / f"{name}.yaml", out=tmp_path / "res", overrides=SCENARIOS[name], resume=True)
    assert_same_results(tmp_path / "res", whole)
    assert not (tmp_path / "res.checkpoint").exists()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_stopped_by_sigint_and_resumed(tmp_path, uninterrupted, name):
    whole = uninterrupted(name)
    code, err = signalled_run(tmp_path, name, signal.SIGINT, SIGNALLED_AT)
    assert code == 130, err
    assert err.splitlines() == [
        "interrupted by SIGINT: kept the finished steps in res.partial/ (load_results(path, allow_incomplete=True) "
        "reads it); the same command with --resume continues from the checkpoint in res.checkpoint/"
    ], err  # fmt: skip
    partial = results.load_results(tmp_path / "res.partial", allow_incomplete=True)
    assert partial.manifest["steps_run"] == SIGNALLED_AT + 1  # the step the signal came in was finished

    run(ROOT / "scenarios" / f"{name}.yaml", out=tmp_path / "res", overrides=SCENARIOS[name], resume=True)
    assert_same_results(tmp_path / "res", whole)
