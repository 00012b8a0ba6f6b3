"""Checkpoints keep every feature's state: over scenarios drawn from the features (people posting from a pool,
each recommender and a user's own stateful one, each results.events mode, interventions, multi-author batches,
the feed policies, two behavior backends), a run saved at step k and restored into a freshly built model finishes
with the same event-log bytes and tables as a run never saved. And state that cannot be saved ends in one line:
refused before the first step with --checkpoint-every, or, after a signal, an exit 130 that says no checkpoint
was written."""

import os
import signal
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, small_scenario
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lsbm_sim.engine import checkpoint, recommend

from lsbm_sim.analysis import results
from lsbm_sim.cli import main
from lsbm_sim.engine.model import SocialModel

POOL = ROOT / "scenarios" / "data" / "posts.jsonl"
STEPS = 8

# A recommender with memory: each post it has scored before scores lower. A resumed run that lost this memory
# recommends other posts than the run it continues.
RECOMMENDERS_PY = '''
import threading

import numpy as np


class Fatigue:
    temperature = 0.2

    def __init__(self):
        self.times_scored = {}

    def score(self, candidates):
        before = np.array([self.times_scored.get(i, 0) for i in candidates.item.tolist()], dtype=float)
        for i in candidates.item.tolist():
            self.times_scored[i] = self.times_scored.get(i, 0) + 1
        return candidates.similarity - 0.2 * before


class FatigueWithALock(Fatigue):
    """Fatigue that also holds a lock, and says what a checkpoint keeps: its memory, not the lock."""

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()

    def __getstate__(self):
        return {"times_scored": self.times_scored}

    def __setstate__(self, state):
        self.times_scored = state["times_scored"]
        self.lock = threading.Lock()


class Locked:
    """Holds a lock from the start: it cannot be saved in a checkpoint."""

    def __init__(self):
        self.lock = threading.Lock()

    def score(self, candidates):
        return np.zeros(len(candidates))


class LocksLater:
    """Takes a lock on its first score(): saveable before the run, not at its first checkpoint."""

    def score(self, candidates):
        self.lock = threading.Lock()
        return np.zeros(len(candidates))
'''

INTERVENTIONS = {
    "label": {"step": 2, "kind": "label", "item": "a", "text": "Rated false by fact-checkers."},
    "promote": {"step": 3, "kind": "promote", "item": "b", "k": 25},
    "remove": {"step": 5, "kind": "remove", "item": "a"},
    "inject": {"step": 4, "kind": "inject", "post": {"id": "late", "text": "A late post about city bikes.",
                                                       "author": {"strategy": "random", "count": 2}}},
}  # fmt: skip

features = st.fixed_dictionaries({
    "posting": st.sampled_from([None, 0.0, 25.0]),  # off, or on with uniform or interest-driven texts
    "recommender": st.sampled_from(["none", "interest", "popularity", "random", "recommenders.py:Fatigue",
                                    "recommenders.py:FatigueWithALock"]),
    "events": st.sampled_from(["all", "engaged", "none"]),
    "interventions": st.sets(st.sampled_from(sorted(INTERVENTIONS))),
    "batch": st.booleans(),  # a batch of posts, each by several authors
    "policy": st.sampled_from(["chronological", "random", "popularity"]),
    "backend": st.sampled_from(["constant", "surrogate"]),
    "saved_at": st.integers(1, STEPS - 1),
})  # fmt: skip


def scenario_doc(f: dict) -> dict:
    doc = small_scenario(steps=STEPS, population={"size": 150, "activity": 0.6})
    doc["content"][1]["author"] = {"strategy": "random", "count": 3}
    if f["batch"]:
        doc["content"].append({"posts": 6, "id": "batch-{i}", "texts": ["Rain all weekend.", "New bike lanes open."],
                               "author": {"strategy": "random", "count": 3}, "step": 1})  # fmt: skip
    if f["posting"] is not None:
        doc["posting"] = {"rate": 0.1, "pool": str(POOL), "interest": f["posting"]}
    doc["feed"] = {"policy": f["policy"], "size": 5, "max_age": 4, "recommender": f["recommender"],
                   "out_of_network": 0.4, "candidate_age": 3}  # fmt: skip
    if f["backend"] == "surrogate":
        doc["behavior"] = {"backend": "surrogate"}
    doc["interventions"] = [INTERVENTIONS[k] for k in sorted(f["interventions"])]
    doc["results"] = {"events": f["events"]}
    return doc


def write_scenario(folder: Path, doc: dict) -> Path:
    (folder / "recommenders.py").write_text(RECOMMENDERS_PY)
    path = folder / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def finish(model: SocialModel):
    model.run()
    return model.result()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(f=features)
@example(f={"posting": 25.0, "recommender": "recommenders.py:FatigueWithALock", "events": "engaged",
            "interventions": {"label", "promote"}, "batch": True, "policy": "chronological", "backend": "surrogate",
            "saved_at": 4})  # fmt: skip
def test_a_run_restored_from_a_checkpoint_finishes_as_if_never_stopped(f):
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        patch.setattr(results, "FLUSH_ROWS", 40)  # several row groups, some written after the checkpoint
        # Short candidate lists: in this small world, as in a full-size one, the recent posts outnumber the newest
        # and the most popular, and the running top lists by similarity decide which the others are.
        patch.setattr(recommend, "CANDIDATES", 5)
        folder = Path(tmp)
        path = write_scenario(folder, scenario_doc(f))
        for name in ("never", "saved", "restored"):
            (folder / name).mkdir()
        kept = folder / "saved.checkpoint"

        never = finish(SocialModel(path, events_path=folder / "never" / "events.parquet"))

        saved = SocialModel(path, events_path=folder / "saved" / "events.parquet", checkpoint_dir=kept)
        while saved.steps_completed < f["saved_at"]:
            saved.step()
        checkpoint.save(saved, kept)
        finish(saved)  # goes on past the checkpoint, writing row groups the restored run must drop

        restored = SocialModel(path, events_path=folder / "restored" / "events.parquet", checkpoint_dir=kept)
        checkpoint.restore(restored, kept)
        result = finish(restored)

        assert (folder / "restored" / "events.parquet").read_bytes() == (folder / "never" / "events.parquet").read_bytes()
        for table in ("steps", "items", "agents", "cascades"):
            pd.testing.assert_frame_equal(getattr(result, table), getattr(never, table), obj=table)
        assert result.manifest["exposures"] == never.manifest["exposures"]
        assert result.manifest["event_rows"] == never.manifest["event_rows"]


# ------------------------------------------------------------------------------- state that cannot be saved


def unsaveable(tmp_path: Path, recommender: str) -> Path:
    doc = small_scenario(steps=STEPS, population={"size": 150, "activity": 0.6})
    doc["feed"] = {"policy": "chronological", "size": 5, "recommender": recommender, "out_of_network": 0.4}
    return write_scenario(tmp_path, doc)


def run_cli(capsys, *argv) -> tuple[int, list[str]]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err.splitlines()


def test_checkpoint_every_refuses_a_recommender_that_cannot_be_saved_before_the_first_step(tmp_path, capsys):
    path = unsaveable(tmp_path, "recommenders.py:Locked")
    code, err = run_cli(capsys, "run", path, "--out", tmp_path / "res", "-q", "--checkpoint-every", 2)
    assert code == 2
    assert err == ["error: --checkpoint-every: the recommender 'recommenders.py:Locked' (class Locked) cannot be "
                   "saved in a checkpoint (TypeError: cannot pickle '_thread.lock' object); give it picklable "
                   "attributes, or __getstate__ and __setstate__ that say what to keep"]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recommenders.py", "s.yaml"]  # nothing started


def test_a_periodic_checkpoint_that_cannot_be_saved_ends_the_run_with_one_line(tmp_path, capsys):
    path = unsaveable(tmp_path, "recommenders.py:LocksLater")
    code, err = run_cli(capsys, "run", path, "--out", tmp_path / "res", "-q", "--checkpoint-every", 3)
    assert code == 2
    assert err == [f"error: the checkpoint of step 3 could not be saved to {tmp_path / 'res.checkpoint'}/ (TypeError: "
                   f"cannot pickle '_thread.lock' object); the finished steps are kept in {tmp_path / 'res.partial'}/"]  # fmt: skip
    partial = results.load_results(tmp_path / "res.partial", allow_incomplete=True)
    assert partial.manifest["steps_run"] == 3 and not partial.complete
    assert not (tmp_path / "res").exists() and not (tmp_path / "res.checkpoint").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="signals as on Linux")
def test_a_signal_whose_checkpoint_cannot_be_saved_still_stops_with_its_exit_code(tmp_path, capsys, monkeypatch):
    path = unsaveable(tmp_path, "recommenders.py:Locked")
    step = SocialModel.step

    def step_signalled_at_step_4(self):
        if self.steps - 1 == 4:
            os.kill(os.getpid(), signal.SIGINT)  # mid-step, like a Ctrl-C at any moment
        step(self)

    monkeypatch.setattr(SocialModel, "step", step_signalled_at_step_4)
    code, err = run_cli(capsys, "run", path, "--out", tmp_path / "res", "-q")
    assert code == 130
    assert err == [f"interrupted by SIGINT: kept the finished steps in {tmp_path / 'res.partial'}/ (load_results(path, "
                   f"allow_incomplete=True) reads it); the checkpoint of step 5 could not be saved to "
                   f"{tmp_path / 'res.checkpoint'}/ (TypeError: cannot pickle '_thread.lock' object); --resume cannot "
                   "continue this run"]  # fmt: skip
    assert results.load_results(tmp_path / "res.partial", allow_incomplete=True).manifest["steps_run"] == 5
    assert not (tmp_path / "res.checkpoint").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="signals as on Linux")
def test_a_signal_that_arrives_while_progress_is_reported_still_saves_the_checkpoint_of_its_step(tmp_path):
    from lsbm_sim.engine import interrupts
    from lsbm_sim.engine.runner import run

    doc = scenario_doc({"posting": 0.0, "recommender": "recommenders.py:Fatigue", "events": "all", "interventions": (),
                        "batch": True, "policy": "random", "backend": "constant"})  # fmt: skip
    path = write_scenario(tmp_path, doc)
    whole = run(path, out=tmp_path / "whole")

    def progress(done: int, total: int) -> None:
        if done == 3:
            os.kill(os.getpid(), signal.SIGINT)

    with interrupts.handle_signals(), pytest.raises(interrupts.Interrupted) as stopped:
        run(path, out=tmp_path / "res", progress=progress)
    assert stopped.value.kept.endswith(f"continues from the checkpoint in {tmp_path / 'res.checkpoint'}/")
    resumed = run(path, out=tmp_path / "res", resume=True)
    assert (tmp_path / "res" / "events.parquet").read_bytes() == (tmp_path / "whole" / "events.parquet").read_bytes()
    pd.testing.assert_frame_equal(resumed.items, whole.items)
