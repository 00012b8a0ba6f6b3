"""Fit scenario parameters to real cascades and real rates per impression: simulation-based calibration with
Optuna.

Each trial proposes values for the chosen scenario fields, runs the scenario (a sweep of `replications` runs,
on the sweep executors: local processes or Ray) and scores it against the *fit* half of the real data:

- cascades (`real`): `lsbm_sim.analysis.compare.compare` on both sides cut at the same smallest size; by default the
  mean of the matched-size KS distances on depth and structural virality and the KS distance on size, over
  those the real data has (sizes-only data scores size alone);
- rates (`impressions`): `lsbm_sim.analysis.impressions.compare_rates` on the runs' posts: the mean |log(sim / real)|
  of the pooled shares, likes and comments per impression, plus the mean KS distance of their per-post
  distributions;
- both: the sum of the two scores.

Replication r of every trial uses the same seed (common random numbers), so two trials differ by their
parameters, not by their luck. At the end a warning (one line each, on the `lsbm_sim` logger) says when a
best value lies at the edge of its range (within 5% of it: the truth may lie outside) and when the best score
is far above what two halves of the real data reach against each other (more than 3 times that floor: the
model cannot match the data with these parameters).

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
import logging
import re
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel

from lsbm_sim.engine import interrupts
from lsbm_sim.analysis.cascades import in_minutes, load_cascades
from lsbm_sim.analysis.compare import compare
from lsbm_sim.errors import LsbmError
from lsbm_sim.analysis.impressions import compare_rates, load_impressions
from lsbm_sim.scenario import Scenario
from lsbm_sim.studies.sweep import kept_workers, stop_kept_workers

OBJECTIVE = ("depth", "structural_virality", "cascade_size")
STUDY = "calibration"
EDGE = 0.05
"""A best value within this share of its range from an end is said to lie at the edge."""
FAR_ABOVE_FLOOR = 3.0
"""A best score above this multiple of the real-vs-real floor is said to be far from the data."""

log = logging.getLogger(__name__)


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
    warnings: list[str] = field(default_factory=list)


def split_real(real: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit and check halves of the real cascades (or posts), drawn at random with `seed` (the check half is
    never used to choose anything)."""
    order = np.random.default_rng(seed).permutation(len(real))
    half = len(real) // 2
    fit, check = real.iloc[np.sort(order[:half])], real.iloc[np.sort(order[half:])]
    for part, name in ((fit, "fit"), (check, "check")):
        part.attrs = {**real.attrs, "source": f"{real.attrs.get('source', 'real cascades')} ({name} half)"}
    return fit, check


def simulate(spec: Scenario, values: dict[str, Any], replications: int, executor: str, workers: int | None,
             ray_address: str | None, rows: str = "cascades") -> pd.DataFrame:  # fmt: skip
    """The cascade trees (`rows="items"`: the posts) of `replications` runs at these values (seeds: the
    scenario's seed + r), time to half size in minutes."""
    from lsbm_sim.studies.sweep import sweep

    grid = {path: [value] for path, value in values.items()}
    table = sweep(spec, grid, replications=replications, executor=executor, workers=workers,
                  ray_address=ray_address, rows=rows)  # fmt: skip
    table, notes = in_minutes(table, spec.model_dump(mode="json"))
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    table.attrs = {"source": f"{spec.name} simulated at {shown or 'its own values'}", "time_unit": "minutes", "notes": notes}
    return table


@dataclass
class Target:
    """What a calibration is scored against: the fit halves of the real cascades and of the real posts
    (either may be None), and how."""

    cascades: pd.DataFrame | None
    posts: pd.DataFrame | None
    objective: tuple[str, ...]
    min_size: int | None

    def simulate(self, spec, values, replications, executor, workers, ray_address) -> dict[str, pd.DataFrame]:
        runs = {}
        if self.cascades is not None:
            runs["cascades"] = simulate(spec, values, replications, executor, workers, ray_address, "cascades")
        if self.posts is not None:
            runs["items"] = simulate(spec, values, replications, executor, workers, ray_address, "items")
        return runs

    def compare(self, runs: dict[str, pd.DataFrame], cascades=None, posts=None, bootstrap: int = 0,
                floor_splits: int = 0, seed: int = 0) -> dict[str, Any]:  # fmt: skip
        """The comparisons against these halves (the fit halves unless others are given)."""
        cascades = self.cascades if cascades is None else cascades
        posts = self.posts if posts is None else posts
        found: dict[str, Any] = {}
        if cascades is not None:
            found["cascades"] = compare(runs["cascades"], cascades, metrics=self.objective, bootstrap=bootstrap,
                                        floor_splits=floor_splits, seed=seed, min_size=self.min_size)  # fmt: skip
        if posts is not None:
            found["rates"] = compare_rates(runs["items"], posts, floor_splits=floor_splits, seed=seed)
        return found

    def score(self, found: dict[str, Any]) -> float:
        """Cascade score + rates score (see the module docstring)."""
        total = 0.0
        if "cascades" in found:
            total += found["cascades"].score(self.objective)
        if "rates" in found:
            total += found["rates"].score()
        return total

    def floor(self, found: dict[str, Any]) -> float | None:
        """The score two halves of the real data reach against each other (None when unknown)."""
        parts = []
        if "cascades" in found:
            parts.append(found["cascades"].floor(self.objective))
        if "rates" in found:
            parts.append(found["rates"].floor())
        return None if not parts or None in parts else float(sum(parts))

    def describe(self, found: dict[str, Any]) -> str:
        """What the score adds up, naming only the figures that were scored."""
        parts = []
        if "cascades" in found:
            scored = found["cascades"].scored(self.objective)
            shape = [m for m in scored if m != "cascade_size"]
            text = f"mean of matched-size KS on {', '.join(shape)}" if shape else ""
            if "cascade_size" in scored:
                text = f"{text} and KS on size" if text else "KS on size"
            parts.append(f"cascades: {text}")
        if "rates" in found:
            parts.append("rates: mean |log(sim/real)| of pooled rates per impression + mean per-post KS")
        return " + ".join(parts)


def calibrate(
    scenario: Scenario | str | Path,
    real: pd.DataFrame | str | Path | None,
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
    impressions: pd.DataFrame | str | Path | None = None,
    min_size: int | None = None,
) -> CalibrationResult:
    """Calibrate `params` of `scenario` to the `real` cascades, the real per-post `impressions`, or both,
    with `trials` finished Optuna trials; see the module docstring. `min_size`: the size cut of the cascade
    comparison (default: the real data's smallest cascade). Runs again on the same `out` resume the study."""
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
    if real is None and impressions is None:
        raise LsbmError("give real cascades (--real), real per-post impressions (--impressions) or both to calibrate to")
    for p in params:  # a path that is not a field, or a value it cannot take, fails now, not in a trial
        for end in (p.low, p.high):
            try:
                spec.with_overrides([f"{p.path}={json.dumps(int(end) if p.integer else end)}"])
            except LsbmError as exc:
                raise LsbmError(f"--param {p.path}: {str(exc).removeprefix(f'--set {p.path}: ')}") from None
    halves: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    config: dict[str, Any] = {
        "scenario": spec.model_dump(mode="json"), "params": [vars(p) for p in params], "replications": replications,
        "seed": seed, "objective": list(objective),
    }  # fmt: skip
    if real is not None:
        real_table = real if isinstance(real, pd.DataFrame) else load_cascades(real)
        if len(real_table) < 4:
            raise LsbmError(f"{real_table.attrs.get('source', 'the real cascades')}: at least 4 cascades are needed")
        halves["cascades"] = split_real(real_table, seed)
        config.update({"real": real_table.attrs.get("source", "a table"), "real_cascades": len(real_table),
                       "min_size": min_size})  # fmt: skip
    if impressions is not None:
        posts = impressions if isinstance(impressions, pd.DataFrame) else load_impressions(impressions)
        if len(posts) < 4:
            raise LsbmError(f"{posts.attrs.get('source', 'the real impressions')}: at least 4 posts are needed")
        halves["posts"] = split_real(posts, seed)
        config.update({"impressions": posts.attrs.get("source", "a table"), "real_posts": len(posts)})
    fit = Target(halves["cascades"][0] if "cascades" in halves else None,
                 halves["posts"][0] if "posts" in halves else None, tuple(objective), min_size)  # fmt: skip
    check = {"cascades": halves["cascades"][1] if "cascades" in halves else None,
             "posts": halves["posts"][1] if "posts" in halves else None}  # fmt: skip

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lock = open(out / ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise LsbmError(f"{out}: another calibration is running in this folder") from None
    # The worker processes are started before the study is opened, so that they start (and import the simulator)
    # while Optuna opens its database; they are stopped when the trials end.
    workers_kept = ExitStack()
    workers_kept.enter_context(kept_workers(workers if executor == "local" else 1))
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

        def attributes(runs: dict[str, pd.DataFrame], found: dict[str, Any]) -> dict[str, Any]:
            """What a trial records beside its score: the KS distances it was scored on, how many trees."""
            attrs: dict[str, Any] = {}
            cascades = found.get("cascades")
            if cascades is not None:
                for row in cascades.table.itertuples(index=False):
                    attrs[f"ks:{row.metric}"] = None if pd.isna(row.ks_overall) else float(row.ks_overall)
                    attrs[f"matched:{row.metric}"] = None if pd.isna(row.ks_matched) else float(row.ks_matched)
                attrs["simulated_cascades"] = len(runs["cascades"])
            if "rates" in found:
                attrs["rates_score"] = found["rates"].score()
            return attrs

        def simulate_values(values: dict[str, Any]) -> dict[str, pd.DataFrame]:
            return fit.simulate(spec, values, replications, executor, workers, ray_address)

        # Trials in flight at once: enough that their runs fill the workers (a trial of 1 run leaves the other
        # workers idle). The sampler proposes that many before it hears back, so a study is the same for the
        # same number in flight, whatever else differs.
        in_flight = trials_in_flight(workers if executor == "local" else 1, replications)
        # The best trial of this session and its runs: the report compares them again, with bootstrap intervals,
        # and running them a second time (same seeds, same runs) would cost a whole trial after all the others.
        best_here: tuple[int, float, dict[str, pd.DataFrame]] | None = None
        with workers_kept:
            while (done := _finished(study, TrialState)) < trials:
                # The study's records are written whole: a signal that comes while they are written waits for
                # the end of the block (a commit cut short would leave the study unreadable).
                batch: list = []
                told = 0
                try:
                    with interrupts.deferred():
                        batch = [study.ask() for _ in range(min(in_flight, trials - done))]
                        values = [{p.path: p.suggest(trial) for p in params} for trial in batch]
                        interrupts.raise_if_requested()
                    results = run_together(simulate_values, values)
                    found = [fit.compare(runs) for runs in results]
                    with interrupts.deferred():
                        for trial, runs, comparison in zip(batch, results, found):
                            for key, attr in attributes(runs, comparison).items():
                                trial.set_user_attr(key, attr)
                            value = fit.score(comparison)
                            study.tell(trial, value)
                            told += 1
                            if best_here is None or value < best_here[1]:
                                best_here = (trial.number, value, runs)
                            if progress:
                                progress(done + told, trials, value)
                        interrupts.raise_if_requested()
                except BaseException:
                    with interrupts.deferred():
                        for trial in batch[told:]:  # proposed again, once each, by the next run
                            study.tell(trial, state=TrialState.FAIL)
                    raise
            best = study.best_trial
            if best_here is not None and best_here[0] == best.number:
                runs = best_here[2]
            else:  # the best trial ran in an earlier session of this study: its runs again (same seeds, same runs)
                runs = fit.simulate(spec, best.params, replications, executor, workers, ray_address)
        fit_found = fit.compare(runs, bootstrap=bootstrap, floor_splits=20, seed=seed)
        check_found = fit.compare(runs, check["cascades"], check["posts"], bootstrap=bootstrap, floor_splits=20, seed=seed)
        report = out / "report"
        if "cascades" in check_found:
            report = check_found["cascades"].report(report)
        if "rates" in check_found:
            (out / "report").mkdir(parents=True, exist_ok=True)
            _write_atomic(out / "report" / "rates.json", json.dumps(check_found["rates"].to_dict(), indent=2, default=str))
            report = report if "cascades" in check_found else out / "report" / "rates.json"
        fit_score, check_score = fit.score(fit_found), fit.score(check_found)
        description = fit.describe(fit_found)
        warnings = edge_warnings(params, best.params) + floor_warnings(fit_score, fit.floor(fit_found))
        for line in warnings:
            log.warning(line)
        scenario_path = write_calibrated(spec, best.params, out / "calibrated.yaml", config, fit_score, check_score,
                                         description)  # fmt: skip
        table = study.trials_dataframe(attrs=("number", "value", "params", "state", "user_attrs"))
        summary = {
            "best": best.params, "best_trial": best.number, "fit_score": fit_score, "check_score": check_score,
            "floor": fit.floor(fit_found), "objective": description, "warnings": warnings,
            "fit": {k: v.to_dict() for k, v in fit_found.items()}, "check": {k: v.to_dict() for k, v in check_found.items()},
            "trials_finished": _finished(study, TrialState), "real": config.get("real"),
            "impressions": config.get("impressions"),
            "real_cascades": {"fit": len(halves["cascades"][0]), "check": len(halves["cascades"][1])} if "cascades" in halves else None,
            "real_posts": {"fit": len(halves["posts"][0]), "check": len(halves["posts"][1])} if "posts" in halves else None,
            "seconds_this_session": time.perf_counter() - started,
            "trials": json.loads(table.to_json(orient="records")),
        }  # fmt: skip
        _write_atomic(out / "calibration.json", json.dumps(summary, indent=2, default=str))
        return CalibrationResult(best.params, fit_score, check_score, table, scenario_path, report, out, warnings)
    finally:
        workers_kept.close()  # (already closed when the trials ended)
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def trials_in_flight(workers: int | None, replications: int) -> int:
    """How many trials run at once: as many as it takes for their runs to fill the workers.

    >>> trials_in_flight(2, 2), trials_in_flight(2, 1), trials_in_flight(16, 3)
    (1, 2, 6)
    """
    import os

    workers = workers or os.cpu_count() or 1
    return max(1, -(-workers // replications))


def run_together(simulate: Callable[[Any], Any], values: Sequence[Any]) -> list[Any]:
    """`simulate` for each of `values`, at the same time (threads that hand their runs to the one pool of
    worker processes, `kept_workers`), in the order given. On an interruption or a failure the workers are
    stopped, so no thread is left running its trial."""
    if len(values) == 1:
        return [simulate(values[0])]
    from concurrent.futures import ThreadPoolExecutor

    threads = ThreadPoolExecutor(max_workers=len(values), thread_name_prefix="lsbm-trial")
    futures = [threads.submit(simulate, v) for v in values]
    try:
        return [f.result() for f in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        stop_kept_workers()  # the other trials' runs end with the pool instead of running to the end
        raise
    finally:
        threads.shutdown(wait=True, cancel_futures=True)


def edge_warnings(params: Sequence[Param], best: dict[str, Any]) -> list[str]:
    """One line for each best value within `EDGE` of its range's width from an end (on a log scale for a
    :log range): the best may lie outside the range.

    >>> edge_warnings([Param.parse("behavior.p=0.01..0.3")], {"behavior.p": 0.299})[0].split(";")[0]
    'behavior.p: the best value 0.299 lies at the high end of its range 0.01..0.3'
    """
    lines = []
    for p in params:
        value = float(best[p.path])
        scale = np.log if p.log else (lambda v: v)
        low, high, at = scale(p.low), scale(p.high), scale(value)
        where = (at - low) / (high - low)
        if where <= EDGE or where >= 1 - EDGE:
            end = "low" if where <= EDGE else "high"
            lines.append(f"{p.path}: the best value {value:.4g} lies at the {end} end of its range {p.low:g}..{p.high:g}; "
                         f"the best fit may lie beyond it: widen the range")  # fmt: skip
    return lines


def floor_warnings(score: float, floor: float | None) -> list[str]:
    """One line when the best score is more than `FAR_ABOVE_FLOOR` times the real-vs-real floor."""
    if floor is None or floor <= 0 or score <= FAR_ABOVE_FLOOR * floor:
        return []
    line = (f"the best score {score:.3f} is {score / floor:.1f} times what two halves of the real data reach "
            f"against each other ({floor:.3f}): with these parameters the model does not match the data")  # fmt: skip
    return [line]


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


def write_calibrated(spec: Scenario, values: dict[str, Any], path: Path, config: dict[str, Any], fit_score: float,
                     check_score: float, objective: str) -> Path:  # fmt: skip
    """The scenario with the calibrated values, its file paths made absolute (it lives in another folder),
    and a description that says what it was fit to and how well."""
    calibrated = spec.with_overrides([f"{k}={json.dumps(v)}" for k, v in values.items()])
    data = _absolute_paths(calibrated, calibrated.model_dump(mode="json"))
    shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    targets = " and ".join(str(config[k]) for k in ("real", "impressions") if config.get(k))
    note = (f"Calibrated with lsbm-sim calibrate ({shown}) to {targets}: score {fit_score:.3f} on the fit half, "
            f"{check_score:.3f} on the held-out check half ({objective}).")  # fmt: skip
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


