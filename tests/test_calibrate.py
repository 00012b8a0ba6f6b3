"""Calibration finds a known truth, and an interrupted calibration resumes with no trial lost or repeated."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from lsbm_sim.studies.calibrate import Param, calibrate
from lsbm_sim.cli import main
from lsbm_sim.errors import LsbmError
from lsbm_sim.engine.runner import run

ROOT = Path(__file__).resolve().parents[1]
TRUE_P = 0.12


def ic_scenario(folder: Path) -> Path:
    """800 independent cascades (one per author) on an Erdos-Renyi graph, below the threshold (<k> p = 0.6)."""
    path = folder / "ic.yaml"
    path.write_text(yaml.safe_dump({
        "name": "ic_small", "seed": 1, "steps": 15,
        "population": {"size": 5000, "activity": 1.0},
        "network": {"kind": "erdos_renyi", "params": {"mean_degree": 5}},
        "content": [{"id": "seeds", "text": "Independent cascade seeds", "author": {"strategy": "random", "count": 800}}],
        "feed": {"policy": "all", "size": None},
        "behavior": {"backend": "independent_cascade", "reactions": ["ignore", "share"], "p": TRUE_P},
    }))  # fmt: skip
    return path


def trials_of(out: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="calibration", storage=f"sqlite:///{out / 'study.db'}").get_trials()


def test_calibrate_recovers_a_known_p_and_resumes_after_stopping(tmp_path: Path):
    scenario = ic_scenario(tmp_path)
    run(scenario, seed=99, out=tmp_path / "truth")  # the "real" cascades: another seed than the trials'
    out = tmp_path / "cal"
    param = [Param.parse("behavior.p=0.03..0.3:log")]
    first = calibrate(scenario, tmp_path / "truth", param, trials=6, out=out, workers=1, bootstrap=20)
    before = [(t.number, t.params, t.value) for t in trials_of(out)]
    assert len(before) == 6
    result = calibrate(scenario, tmp_path / "truth", param, trials=14, out=out, workers=1, bootstrap=20)
    after = trials_of(out)
    assert [(t.number, t.params, t.value) for t in after[:6]] == before  # kept, not rerun
    assert len(after) == 14 and all(t.state == optuna.trial.TrialState.COMPLETE for t in after)
    assert abs(result.best["behavior.p"] - TRUE_P) / TRUE_P < 0.25, result.best
    # and the objective saw the difference: every trial far from the truth scored clearly worse than the best
    far = [t.value for t in after if not 0.6 < t.params["behavior.p"] / TRUE_P < 1.6]
    best = min(t.value for t in after)
    assert len(far) >= 3 and min(far) > best + 0.02, (far, best)
    assert result.fit_score <= first.fit_score
    summary = json.loads((out / "calibration.json").read_text())
    assert summary["real_cascades"] == {"fit": 400, "check": 400} and summary["check_score"] < 0.2
    # the calibrated scenario is valid where it lies, and says what it was fit to
    assert main(["validate", str(out / "calibrated.yaml")]) == 0
    written = yaml.safe_load((out / "calibrated.yaml").read_text())
    assert written["behavior"]["p"] == result.best["behavior.p"] and "check half" in written["description"]
    assert (out / "report" / "report.html").is_file()
    with pytest.raises(LsbmError, match="other settings"):  # a different calibration cannot reuse the study
        calibrate(scenario, tmp_path / "truth", [Param.parse("behavior.p=0.01..0.5")], trials=1, out=out, workers=1)


def test_the_report_reuses_the_best_trials_runs_and_a_resumed_study_runs_them_again_to_the_same_figures(
    tmp_path: Path, monkeypatch
):
    # The report compares the best trial's runs again: they are kept from the trial, not run a second time (a
    # whole trial's time after all the others, serial). A study resumed in a new session, whose best trial ran in
    # an earlier one, runs them again, and the report's figures are the same either way.
    from lsbm_sim.studies import sweep as sweep_module

    scenario = ic_scenario(tmp_path)
    run(scenario, seed=99, out=tmp_path / "truth")
    runs = []
    real_run_job = sweep_module.run_job
    monkeypatch.setattr(sweep_module, "run_job", lambda *a, **k: runs.append(a[2]) or real_run_job(*a, **k))
    param = ["behavior.p=0.03..0.3:log"]
    calibrate(scenario, tmp_path / "truth", param, trials=4, replications=1, out=tmp_path / "cal", workers=1, bootstrap=20)
    assert len(runs) == 4  # one run per trial, none again for the report
    first = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    calibrate(scenario, tmp_path / "truth", param, trials=4, replications=1, out=tmp_path / "cal", workers=1, bootstrap=20)
    assert len(runs) == 5  # the resumed session ran no trial, so it ran the best one's runs again
    again = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    for key in ("best", "fit_score", "check_score", "fit", "check"):
        assert again[key] == first[key], key


def test_against_event_sequences_the_objective_names_only_size(tmp_path: Path):
    """Event sequences have no parents, so no depth or virality: the score is KS on size alone, and the
    calibration's texts say so rather than naming the metrics the real side lacks."""
    from conftest import small_scenario

    scenario = tmp_path / "s.yaml"
    spec = small_scenario(steps=5)
    spec["content"][0]["author"] = {"strategy": "random", "count": 30}
    scenario.write_text(yaml.safe_dump(spec))
    real = tmp_path / "sequences.csv"
    real.write_text("cascade_id,time\n" + "".join(f"{c},{k}\n" for c in range(60) for k in range(1 + c % 3)))
    out = tmp_path / "cal"
    calibrate(scenario, real, [Param.parse("behavior.probabilities.share=0.05..0.3")], trials=2, replications=1,
              out=out, workers=1, bootstrap=0)  # fmt: skip
    summary = json.loads((out / "calibration.json").read_text())
    assert summary["objective"] == "cascades: KS on size"
    note = yaml.safe_load((out / "calibrated.yaml").read_text())["description"]
    assert "KS on size)" in note and "depth" not in note and "virality" not in note


def test_a_killed_calibration_resumes_with_no_trial_lost_or_repeated(tmp_path: Path):
    scenario = ic_scenario(tmp_path)
    run(scenario, seed=99, out=tmp_path / "truth")
    out = tmp_path / "cal"
    command = [sys.executable, "-m", "lsbm_sim.cli", "calibrate", str(scenario), "--real", str(tmp_path / "truth"),
               "--param", "behavior.p=0.03..0.3:log", "--trials", "40", "--workers", "1", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until some trials finished and one is running
            time.sleep(0.2)
            if not (out / "study.db").exists():
                continue
            try:
                with sqlite3.connect(out / "study.db") as db:
                    rows = db.execute("SELECT t.state, (SELECT COUNT(*) FROM trial_params p WHERE p.trial_id = "
                                      "t.trial_id) FROM trials t ORDER BY t.number").fetchall()  # fmt: skip
            except sqlite3.OperationalError:
                continue  # the tables are being created
            states = [state for state, _ in rows]
            # killed mid-trial: it has drawn its value (a trial killed before that had not started)
            if states.count("COMPLETE") >= 2 and rows[-1] == ("RUNNING", 1):
                break
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    killed = trials_of(out)
    finished = [(t.number, t.params, t.value) for t in killed if t.state == optuna.trial.TrialState.COMPLETE]
    running = [t for t in killed if t.state == optuna.trial.TrialState.RUNNING]
    assert len(finished) >= 2 and len(running) == 1 and running[0].params

    calibrate(scenario, tmp_path / "truth", ["behavior.p=0.03..0.3:log"], trials=len(finished) + 2, out=out,
              workers=1, bootstrap=0)  # fmt: skip
    resumed = trials_of(out)
    complete = [t for t in resumed if t.state == optuna.trial.TrialState.COMPLETE]
    assert [(t.number, t.params, t.value) for t in complete[: len(finished)]] == finished  # none lost or rerun
    assert len(complete) == len(finished) + 2
    retry = [t for t in complete if t.user_attrs.get("retry_of") == running[0].number]
    assert len(retry) == 1 and retry[0].params == running[0].params  # the killed trial ran again, once
    assert resumed[running[0].number].state == optuna.trial.TrialState.FAIL
    assert len({json.dumps(t.params) for t in complete}) == len(complete)  # no finished trial repeated


TRUE_SHARE, TRUE_LIKE = -2.2, -1.3


def rates_scenario(folder: Path, share: float, like: float) -> Path:
    """120 posts among 400 people under the embedded default, with the share and like intercepts given (no herding)."""
    path = folder / f"rates_{share}_{like}.yaml"
    path.write_text(yaml.safe_dump({
        "name": "rates_small", "seed": 1, "steps": 6,
        "population": {"size": 400, "activity": 0.7},
        "network": {"kind": "barabasi_albert", "params": {"m": 4}},
        "content": [{"id": f"p{i}", "text": f"Post number {i} about topic {i % 3}", "author": {"strategy": "random"}}
                    for i in range(120)],
        "feed": {"policy": "chronological", "size": 5},
        # Intercepts alone: with herding (`proof`) on, which of 120 posts catch early likes decides much of a small
        # world's per-post rates, so one seed's truth is not what another seed's trial should reproduce.
        "behavior": {"backend": "surrogate", "coefficients": {"share": {"intercept": share, "proof": 0.0},
                                                              "like": {"intercept": like, "proof": 0.0}}},
    }))  # fmt: skip
    return path


def test_a_rates_target_recovers_known_intercepts(tmp_path: Path):
    truth = run(rates_scenario(tmp_path, TRUE_SHARE, TRUE_LIKE), seed=99)  # another seed than the trials'
    real = truth.items.rename(columns={"like": "likes", "share": "shares", "comment": "comments", "item_id": "post_id"})
    real.attrs["source"] = "the simulated truth"
    assert real["shares"].sum() > 100 and real["likes"].sum() > 300  # rates with enough counts to pin down
    params = [Param.parse("behavior.coefficients.share.intercept=-6.0..-1.0"),
              Param.parse("behavior.coefficients.like.intercept=-5.0..0.0")]  # fmt: skip
    result = calibrate(rates_scenario(tmp_path, -5.0, -4.0), None, params, impressions=real, trials=40, replications=1,
                       out=tmp_path / "cal", workers=1, bootstrap=0)  # fmt: skip
    share, like = result.best["behavior.coefficients.share.intercept"], result.best["behavior.coefficients.like.intercept"]
    assert abs(share - TRUE_SHARE) / abs(TRUE_SHARE) < 0.25 and abs(like - TRUE_LIKE) / abs(TRUE_LIKE) < 0.25, result.best
    summary = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert summary["objective"].startswith("rates:") and "depth" not in summary["objective"]
    assert summary["real_posts"] == {"fit": 60, "check": 60} and summary["real_cascades"] is None
    # the objective saw the difference: trials far from the truth scored clearly worse than the best
    trials = [t for t in trials_of(tmp_path / "cal") if t.value is not None]
    far = [t.value for t in trials if abs(t.params["behavior.coefficients.share.intercept"] - TRUE_SHARE) > 1.5]
    assert far and min(far) > result.fit_score + 0.2, (far, result.fit_score)
    assert (tmp_path / "cal" / "report" / "rates.json").is_file() and result.warnings == []


def test_warnings_at_the_range_edge_and_far_above_the_floor(tmp_path: Path, capsys):
    """The truth (p = 0.12) outside the range 0.01..0.04: the best value lies at the edge, and no value in the
    range matches the data. Real data with sizes only: the objective names size alone."""
    scenario = ic_scenario(tmp_path)
    truth = run(scenario, seed=99, overrides=["population.size=2000", "content.0.author.count=300"])
    sizes = tmp_path / "sizes.csv"
    sizes.write_text("cascade_id,size\n" + "".join(f"{i},{s}\n" for i, s in enumerate(truth.cascades["cascade_size"])))
    code = main(["calibrate", str(scenario), "--real", str(sizes), "--param", "behavior.p=0.01..0.04", "--trials", "6",
                 "--replications", "1", "--workers", "1", "--out", str(tmp_path / "cal"), "--set", "population.size=2000",
                 "--set", "content.0.author.count=300"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    summary = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert summary["best"]["behavior.p"] > 0.038
    assert "behavior.p: the best value" in err and "lies at the high end of its range 0.01..0.04" in err
    assert "times what two halves of the real data reach" in err
    assert summary["objective"] == "cascades: KS on size"  # sizes only: depth and virality were not scored
    assert "depth" not in yaml.safe_load((tmp_path / "cal" / "calibrated.yaml").read_text())["description"]
    assert len(summary["warnings"]) == 2
    # inside a range that holds the truth, neither warning
    code = main(["calibrate", str(scenario), "--real", str(sizes), "--param", "behavior.p=0.06..0.24", "--trials", "8",
                 "--replications", "1", "--workers", "1", "--out", str(tmp_path / "cal2"), "--set", "population.size=2000",
                 "--set", "content.0.author.count=300"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0 and "WARNING" not in err, err


def test_trials_of_one_run_each_fill_the_workers_and_an_interrupt_stops_them_all(tmp_path: Path):
    # With 2 workers and 1 run a trial, two trials run at once: the second is proposed before the first is
    # scored. Ctrl-C in the middle stops both (no thread left running a trial), and the next run retries both.
    # The trials are large enough to last longer than the polling below takes to see them running and signal.
    scenario = ic_scenario(tmp_path)
    run(scenario, seed=99, out=tmp_path / "truth")
    out = tmp_path / "cal"
    command = [sys.executable, "-m", "lsbm_sim.cli", "calibrate", str(scenario), "--real", str(tmp_path / "truth"),
               "--param", "behavior.p=0.03..0.3:log", "--trials", "40", "--replications", "1", "--workers", "2",
               "--out", str(out), "--set", "population.size=300000"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                with sqlite3.connect(out / "study.db") as db:
                    states = [s for (s,) in db.execute("SELECT state FROM trials ORDER BY number").fetchall()]
            except sqlite3.OperationalError:
                continue
            if states.count("COMPLETE") >= 2 and states[-2:] == ["RUNNING", "RUNNING"]:
                break
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, err
    trials = trials_of(out)
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    stopped = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(done) >= 2 and len(stopped) == 2, [t.state for t in trials]
    first, second = done[0], done[1]
    assert second.datetime_start < first.datetime_complete  # proposed while the first was still running

    calibrate(scenario, tmp_path / "truth", ["behavior.p=0.03..0.3:log"], trials=len(done) + 2, out=out,
              workers=2, replications=1, overrides=["population.size=300000"], bootstrap=0)  # fmt: skip
    retries = {t.user_attrs.get("retry_of") for t in trials_of(out) if t.state == optuna.trial.TrialState.COMPLETE}
    assert {t.number for t in stopped} <= retries
