"""Fit scenario parameters to real cascades: simulation-based calibration with Optuna.

Each trial proposes values for the chosen scenario fields, runs the scenario (a sweep of `replications` runs,
on the sweep executors: local processes or Ray) and scores the simulated cascades against the *fit* half of
the real ones with `lsbm_sim.cascades.compare`: by default the mean of the matched-size KS distances on depth
and structural virality and the KS distance on size. Replication r of every trial uses the same seed (common
random numbers), so two trials differ by their parameters, not by their luck.

Why Optuna: its TPE sampler is seeded, handles a handful of bounded (log-)continuous or integer parameters with
noisy, non-differentiable objectives such as KS distances in a few dozen trials, and its SQLite storage keeps
every trial on disk as it finishes, so a calibration that is interrupted goes on where it stopped. (ABC with
pyabc or neural posterior estimation with sbi give posteriors but need thousands of simulations, too many at
seconds to minutes per simulated world.)

Resuming: the study lives in `OUT/study.db`. Run the same command again and it continues: finished trials are
kept and never rerun; a trial that was running when the process died (or failed when interrupted) is proposed
again with the same values, once, so no trial is lost or repeated, and the study stops at `trials` finished.

Out: `calibrated.yaml` (the scenario with the best values; `lsbm-sim validate` accepts it), `study.db`,
`calibration.json` (best values; the score on the fit half and on the held-out check half; every trial),
`report/` (the compare report of the best point against the check half).

>>> result = calibrate("scenarios/independent_cascade.yaml", "data/trees.csv",
...                    [Param.parse("behavior.p=0.01..0.3")], trials=20, out="results/cal")  # doctest: +SKIP
"""

from __future__ import annotations

import fcntl
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel

from lsbm_sim.cascades import compare, load_cascades
from lsbm_sim.errors import LsbmError
from lsbm_sim.scenario import Scenario
from lsbm_sim.sweep import kept_workers

OBJECTIVE = ("depth", "structural_virality", "cascade_size")
STUDY = "calibration"


@dataclass(frozen=True)
class Param:
    """A scenario field to fit and its range: `PATH=LOW..HIGH`, `:log` for a log-uniform prior; integers
    when both ends are written as integers (`feed.size=2..20`)."""

    path: str
    low: float
    high: float
    log: bool = False
    integer: bool = False

    @classmethod
    def parse(cls, text: str) -> Param:
        """Read `PATH=LOW..HIGH[:log]`.

        >>> Param.parse("behavior.p=0.01..0.3:log")
        Param(path='behavior.p', low=0.01, high=0.3, log=True, integer=False)
        """
        path, _, bounds = text.partition("=")
        bounds, _, scale = bounds.partition(":")
        low_text, dots, high_text = bounds.partition("..")
        if not path.strip() or not dots or scale.strip() not in ("", "log"):
            raise LsbmError(f"--param {text!r}: expected PATH=LOW..HIGH (optionally :log), e.g. behavior.p=0.01..0.3")
        path, log = path.strip(), scale.strip() == "log"
        try:
            low, high = float(low_text), float(high_text)
        except ValueError:
            raise LsbmError(f"--param {text!r}: LOW and HIGH must be numbers") from None
        if not low < high:
            raise LsbmError(f"--param {text!r}: LOW must be below HIGH")
        if log and low <= 0:
            raise LsbmError(f"--param {text!r}: a :log range must be positive")
        integer = all(re.fullmatch(r"-?\d+", t.strip()) for t in (low_text, high_text))
        return cls(path, low, high, bool(log), integer)

    def suggest(self, trial) -> float | int:
        if self.integer:
            return trial.suggest_int(self.path, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.path, self.low, self.high, log=self.log)


@dataclass
class CalibrationResult:
    """The best values, their scores on the fit and check halves, and where everything was written."""

    best: dict[str, Any]
    fit_score: float
    check_score: float
    trials: pd.DataFrame
    scenario_path: Path
    report_path: Path
    out: Path


def split_real(real: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit and check halves of the real cascades, drawn at random with `seed` (the check half is never used
    to choose anything)."""
    order = np.random.default_rng(seed).permutation(len(real))
    half = len(real) // 2
    fit, check = real.iloc[np.sort(order[:half])], real.iloc[np.sort(order[half:])]
    for part, name in ((fit, "fit"), (check, "check")):
        part.attrs = {**real.attrs, "source": f"{real.attrs.get('source', 'real cascades')} ({name} half)"}
    return fit, check


def simulate(spec: Scenario, values: dict[str, Any], replications: int, executor: str, workers: int | None,
             ray_address: str | None) -> pd.DataFrame:  # fmt: skip
    """The cascade trees of `replications` runs at these values (seeds: the scenario's seed + r)."""
    from lsbm_sim.sweep import sweep

    grid = {path: [value] for path, value in values.items()}
    table = sweep(spec, grid, replications=replications, executor=executor, workers=workers,
                  ray_address=ray_address, rows="cascades")  # fmt: skip
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    table.attrs = {"source": f"{spec.name} simulated at {shown or 'its own values'}", "time_unit": "steps"}
    return table


def calibrate(
    scenario: Scenario | str | Path,
    real: pd.DataFrame | str | Path,
    params: Sequence[Param | str],
    trials: int = 30,
    replications: int = 2,
    out: str | Path = "results/calibration",
    executor: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
    seed: int = 0,
    objective: Sequence[str] = OBJECTIVE,
    overrides: Sequence[str] = (),
    bootstrap: int = 200,
    progress: Callable[[int, int, float | None], None] | None = None,
) -> CalibrationResult:
    """Calibrate `params` of `scenario` to the `real` cascades with `trials` finished Optuna trials; see the
    module docstring. Runs again on the same `out` resume the study."""
    import optuna
    from optuna.trial import TrialState

    from lsbm_sim.scenario import load_scenario

    started = time.perf_counter()
    spec = load_scenario(scenario, overrides)
    params = [p if isinstance(p, Param) else Param.parse(p) for p in params]
    if not params:
        raise LsbmError("give at least one --param PATH=LOW..HIGH to calibrate")
    if trials < 1 or replications < 1:
        raise LsbmError("trials and replications must be at least 1")
    for p in params:  # a path that is not a field, or a value it cannot take, fails now, not in a trial
        for end in (p.low, p.high):
            try:
                spec.with_overrides([f"{p.path}={json.dumps(int(end) if p.integer else end)}"])
            except LsbmError as exc:
                raise LsbmError(f"--param {p.path}: {str(exc).removeprefix(f'--set {p.path}: ')}") from None
    real_table = real if isinstance(real, pd.DataFrame) else load_cascades(real)
    if len(real_table) < 4:
        raise LsbmError(f"{real_table.attrs.get('source', 'the real cascades')}: at least 4 cascades are needed")
    fit, check = split_real(real_table, seed)
    config = {
        "scenario": spec.model_dump(mode="json"), "real": real_table.attrs.get("source", "a table"),
        "real_cascades": len(real_table), "params": [vars(p) for p in params], "replications": replications,
        "seed": seed, "objective": list(objective),
    }  # fmt: skip

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lock = open(out / ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise LsbmError(f"{out}: another calibration is running in this folder") from None
    try:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(3, min(10, trials // 3)))
        study = optuna.create_study(
            study_name=STUDY, storage=f"sqlite:///{out / 'study.db'}", sampler=sampler, direction="minimize",
            load_if_exists=True,
        )  # fmt: skip
        previous = study.user_attrs.get("config")
        if previous is None:
            study.set_user_attr("config", json.loads(json.dumps(config, default=str)))
        elif previous != json.loads(json.dumps(config, default=str)):
            raise LsbmError(f"{out}: holds a calibration with other settings (scenario, real data, parameters, "
                            "replications, seed or objective); choose another --out")  # fmt: skip
        _retry_unfinished(study, TrialState)

        def score(trial) -> float:
            values = {p.path: p.suggest(trial) for p in params}
            sim = simulate(spec, values, replications, executor, workers, ray_address)
            comparison = compare(sim, fit, metrics=tuple(objective), bootstrap=0, floor_splits=0)
            for row in comparison.table.itertuples(index=False):
                trial.set_user_attr(f"ks:{row.metric}", None if pd.isna(row.ks_overall) else float(row.ks_overall))
                trial.set_user_attr(f"matched:{row.metric}", None if pd.isna(row.ks_matched) else float(row.ks_matched))
            trial.set_user_attr("simulated_cascades", len(sim))
            return comparison.score(tuple(objective))

        with kept_workers(workers if executor == "local" else 1):
            while (done := _finished(study, TrialState)) < trials:
                trial = study.ask()
                try:
                    value = score(trial)
                except BaseException:
                    study.tell(trial, state=TrialState.FAIL)  # proposed again, once, by the next run
                    raise
                study.tell(trial, value)
                if progress:
                    progress(done + 1, trials, value)
            best = study.best_trial
            sim = simulate(spec, best.params, replications, executor, workers, ray_address)  # same seeds: same runs
        fit_comparison = compare(sim, fit, seed=seed, bootstrap=bootstrap)
        check_comparison = compare(sim, check, seed=seed, bootstrap=bootstrap)
        report = check_comparison.report(out / "report")
        scenario_path = write_calibrated(spec, best.params, out / "calibrated.yaml", real_table, fit_comparison,
                                         check_comparison, objective)  # fmt: skip
        table = study.trials_dataframe(attrs=("number", "value", "params", "state", "user_attrs"))
        summary = {
            "best": best.params, "best_trial": best.number,
            "fit_score": fit_comparison.score(tuple(objective)), "check_score": check_comparison.score(tuple(objective)),
            "objective": objective_text(fit_comparison.scored(tuple(objective))),
            "fit": fit_comparison.to_dict(), "check": check_comparison.to_dict(),
            "trials_finished": _finished(study, TrialState), "real": config["real"],
            "real_cascades": {"fit": len(fit), "check": len(check)}, "seconds_this_session": time.perf_counter() - started,
            "trials": json.loads(table.to_json(orient="records")),
        }  # fmt: skip
        _write_atomic(out / "calibration.json", json.dumps(summary, indent=2, default=str))
        return CalibrationResult(best.params, summary["fit_score"], summary["check_score"], table, scenario_path,
                                 report, out)  # fmt: skip
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _finished(study, TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))


def _retry_unfinished(study, TrialState) -> None:
    """A trial left running by a process that died, or failed by an interruption, is proposed again with
    the same values (once: a retry records which trial it retries, and a retried trial is not retried again).
    One killed before it drew its values had not started anything: the sampler proposes afresh."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:
        if t.state == TrialState.RUNNING:  # its process is gone: the lock says no other one runs here
            study.tell(t.number, state=TrialState.FAIL)
        if t.state in (TrialState.RUNNING, TrialState.FAIL) and t.number not in retried and t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            retried.add(t.number)


def objective_text(scored: Sequence[str]) -> str:
    """What the score averaged, naming only the metrics it counted (real event sequences have no depth or
    virality, so against them only size is scored)."""
    shapes = [m for m in scored if m != "cascade_size"]
    if not shapes:
        return "KS on size"
    return f"mean of matched-size KS on {', '.join(shapes)}" + (" and KS on size" if "cascade_size" in scored else "")


def write_calibrated(spec: Scenario, values: dict[str, Any], path: Path, real: pd.DataFrame, fit, check,
                     objective: Sequence[str]) -> Path:  # fmt: skip
    """The scenario with the calibrated values, its file paths made absolute (it lives in another folder),
    and a description that says what it was fit to and how well."""
    calibrated = spec.with_overrides([f"{k}={json.dumps(v)}" for k, v in values.items()])
    data = _absolute_paths(calibrated, calibrated.model_dump(mode="json"))
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    note = (f"Calibrated with lsbm-sim calibrate ({shown}) to {real.attrs.get('source', 'real cascades')}: "
            f"score {fit.score(tuple(objective)):.3f} on the fit half, {check.score(tuple(objective)):.3f} on the "
            f"held-out check half ({objective_text(fit.scored(tuple(objective)))}).")  # fmt: skip
    data["description"] = ((data.get("description") or "").strip() + "\n" + note).strip()
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    Scenario.from_dict(yaml.safe_load(text), base_dir=path.parent)  # what is written must load
    _write_atomic(path, text)
    return path


def _absolute_paths(model: BaseModel, data: dict[str, Any]) -> dict[str, Any]:
    """Every Path field of the scenario, resolved against the scenario's own folder."""
    root = model

    def walk(node: Any, dumped: Any) -> None:
        if isinstance(node, BaseModel):
            for name in type(node).model_fields:
                value = getattr(node, name)
                if isinstance(value, Path):
                    dumped[name] = str(root.resolve(value))
                else:
                    walk(value, dumped.get(name) if isinstance(dumped, dict) else None)
        elif isinstance(node, list) and isinstance(dumped, list):
            for item, item_dumped in zip(node, dumped):
                walk(item, item_dumped)
        elif isinstance(node, dict) and isinstance(dumped, dict):
            for key, value in node.items():
                walk(value, dumped.get(key))

    walk(model, data)
    return data


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


