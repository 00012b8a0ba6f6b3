"""Landmark experiments reproduced in silico: `lsbm-sim replicate` and `lsbm_sim.replicate(...)`.

A replication is data: `scenarios/replications/NAME.yaml` holds a base scenario (a shipped scenario's name, a path
beside the file, or the scenario itself inline), the changes that shrink it to a world that runs in minutes
(`set`), the experiment's arms (each a list of `--set` overrides, the same dotted paths sweeps use), the outcome
and how it is computed from each run's tables, how the effect is formed (a ratio or a difference of two arms, or
of two conditions within one arm), the published effect with its interval, the paper, and its role: `fit` (the
experiment a coefficient of the default head was fitted to; `fits` names it) or `check` (fitted to nothing).

    >>> table = replicate(["muchnik2013_first_vote"], replications=4)  # doctest: +SKIP
    >>> table[["experiment", "published", "simulated", "simulated_low", "simulated_high", "agree"]]  # doctest: +SKIP

Every arm runs through the sweep machinery with the same seeds (base seed, base + 1, ...): replication r of
every arm is the same world, the same people and the same random numbers, and differs only by the arm's
overrides (common random numbers). An arm's figure is the mean of its runs' outcomes; the effect is the ratio or
difference of two such means; its 95% interval is a percentile bootstrap over replications that resamples whole
pairs (replication r of both arms together, `paired_interval`), so it is the interval of the paired design, much
tighter than that of two independent samples.

Outcomes (`outcome.metric`), each computed from one run's results folder:

    expected_rate       mean probability of `reaction` over the exposures of the posts `posts` matches (the
                        model's recorded p_<reaction>: the rate a survey of sharing intentions measures)
    first_viewer_rate   mean probability of `reaction` over exposures a post gets while it shows no like or
                        comment from people yet (its first viewers: the ones a planted like alone can sway)
    mean_count          mean over posts of their `reaction` count (`engagement`: likes + shares + comments)
    gini                Gini coefficient of the posts' `reaction` counts (inequality of success)
    holdout_share_rate  per (person, post) pair that a followee shared, the expected number of times the person
                        shares it afterwards, for pairs whose feed showed those shares (`exposed`) and pairs held
                        out of the feed (`held_out`; `feed.hidden_shares`)
    amplification       people reached by the posts of the `top` share of accounts by followers

Agreement: the simulated 95% interval overlaps the published interval (a 95% confidence interval, or the range
the paper reports across groups); with no published interval it contains the published point; with only a
published direction it lies wholly on that side of no effect.
"""

from __future__ import annotations

import fnmatch
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, ValidationError, model_validator

from lsbm_sim.catalog import SHIPPED_DIR, find_scenario
from lsbm_sim.errors import LsbmError, ScenarioError
from lsbm_sim.scenario import Scenario, Strict, format_validation_error, load_scenario, read_yaml

REPLICATIONS_DIR = SHIPPED_DIR / "replications"
RESAMPLES = 2000
"""Bootstrap resamples of an effect's interval (seeded: the same runs give the same interval)."""
TABLE = "replications.parquet"
OUTCOMES = "outcomes.parquet"


# ------------------------------------------------------------------------------------------------- the schema


class PaperSpec(Strict):
    """The experiment's paper: its full citation, and where to read it."""

    citation: Annotated[str, Field(min_length=10)]
    url: str | None = None


class PublishedSpec(Strict):
    """The published effect. `effect`: the point estimate (a ratio or a difference, as `effect.kind` says);
    `low`/`high`: its interval, a 95% confidence interval (`interval: ci95`) or the range the paper reports across
    groups (`interval: range`); `direction`: the sign the paper reports, when it gives no number. `checked`: the
    figures were read here from the paper, its abstract or a quotation of its text (`source` says which); false:
    recalled and not re-checked against the paper. `note`: anything a reader should know about the figures."""

    effect: float | None = None
    low: float | None = None
    high: float | None = None
    interval: Literal["ci95", "range", "none"] = "none"
    direction: Literal["increase", "decrease"] | None = None
    checked: bool
    source: Annotated[str, Field(min_length=3)]
    note: str = ""

    @model_validator(mode="after")
    def _complete(self):
        bounds = (self.low is not None, self.high is not None)
        if bounds[0] != bounds[1]:
            raise ValueError("give both low and high, or neither")
        if all(bounds):
            if self.low > self.high:
                raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
            if self.interval == "none":
                raise ValueError("low and high need interval: ci95 (a confidence interval) or range")
        elif self.interval != "none":
            raise ValueError(f"interval {self.interval!r} needs low and high")
        if self.effect is None and not all(bounds) and self.direction is None:
            raise ValueError("give the published effect, its interval (low, high) or at least its direction")
        return self


class OutcomeSpec(Strict):
    """What each run yields (see the module docstring for the metrics)."""

    metric: Literal["expected_rate", "first_viewer_rate", "mean_count", "gini", "holdout_share_rate", "amplification"]
    reaction: str = "share"
    posts: str | None = None  # an fnmatch pattern on post ids ("claim-*"); default: every post
    top: Annotated[float, Field(gt=0, le=1)] = 0.01  # amplification: the most-followed share of accounts

    @property
    def conditions(self) -> tuple[str, ...]:
        """The figures one run yields: one, unnamed, or one per condition of a within-run design."""
        return ("exposed", "held_out") if self.metric == "holdout_share_rate" else ("",)

    @property
    def needs_events(self) -> bool:
        return self.metric in ("expected_rate", "first_viewer_rate", "holdout_share_rate")


class EffectSpec(Strict):
    """The effect: `kind` ratio (treatment / control) or difference (treatment - control); `treatment` and
    `control` each name an arm, or an arm and a condition of a within-run design ("ARM:CONDITION")."""

    kind: Literal["ratio", "difference"]
    treatment: Annotated[str, Field(min_length=1)]
    control: Annotated[str, Field(min_length=1)]


class FitsSpec(Strict):
    """The coefficient of the default head this experiment was used to fit, and the reaction it measures.
    `others`: what the same feature's coefficients for the reactions the experiment did not measure did in the
    fit: `scale` (by the same factor as the measured one, keeping the head's proportions) or `keep` (their
    values; `reason` says why)."""

    reaction: Literal["like", "share", "comment"]
    coefficient: str
    others: Literal["scale", "keep"] = "scale"
    reason: str = ""


class Replication(Strict):
    """A landmark experiment and its in-silico analogue (one `scenarios/replications/*.yaml` file)."""

    name: Annotated[str, Field(min_length=1)]
    title: Annotated[str, Field(min_length=1)]
    paper: PaperSpec
    role: Literal["fit", "check"]
    fits: FitsSpec | None = None
    design: Annotated[str, Field(min_length=20)]
    scenario: str | dict[str, Any]
    set: list[str] = Field(default_factory=list)
    arms: dict[str, list[str]]
    outcome: OutcomeSpec
    effect: EffectSpec
    published: PublishedSpec
    replications: Annotated[int, Field(ge=2)] = 30
    seed: Annotated[int, Field(ge=0)] | None = None

    _path: Path | None = None

    @model_validator(mode="after")
    def _consistent(self):
        from lsbm_sim.behavior.surrogate import FEATURES

        if self.role == "fit" and self.fits is None:
            raise ValueError("fits: a replication with role 'fit' names the coefficient it fitted (fits.reaction, fits.coefficient)")
        if self.role == "check" and self.fits is not None:
            raise ValueError("fits: a check is fitted to nothing; give fits only with role 'fit'")
        if self.fits is not None and self.fits.coefficient not in ("intercept", *FEATURES):
            raise ValueError(f"fits.coefficient: {self.fits.coefficient!r} is not a coefficient (intercept, {', '.join(FEATURES)})")
        if not self.arms:
            raise ValueError("arms: give at least one arm (a name and its list of overrides)")
        for side in ("treatment", "control"):
            arm, _, condition = getattr(self.effect, side).partition(":")
            if arm not in self.arms:
                raise ValueError(f"effect.{side}: no arm {arm!r} (arms: {', '.join(self.arms)})")
            if condition not in self.outcome.conditions:
                known = ", ".join(f"{arm}:{c}" if c else arm for c in self.outcome.conditions)
                raise ValueError(f"effect.{side}: {getattr(self.effect, side)!r} is not a figure this outcome gives (give {known})")
        if self.effect.treatment == self.effect.control:
            raise ValueError("effect: treatment and control are the same figure")
        return self

    @property
    def path(self) -> Path | None:
        return self._path

    def base_scenario(self, overrides: Sequence[str] = ()) -> Scenario:
        """The base scenario with the replication's own changes (`set`) and then `overrides` applied."""
        where = f"{self.path}: scenario" if self.path else "scenario"
        if isinstance(self.scenario, dict):
            base_dir = self.path.parent if self.path is not None else Path.cwd()
            spec = Scenario.from_dict(self.scenario, base_dir=base_dir, source=where)
        else:
            beside = self.path.parent / self.scenario if self.path is not None else None
            source = beside if beside is not None and beside.is_file() else find_scenario(self.scenario)
            spec = load_scenario(source)
        try:
            return spec.with_overrides([*self.set, *overrides])
        except ScenarioError as exc:
            raise ScenarioError(f"{self.path or self.name}: set: {exc}") from None

    def arm_scenarios(self, overrides: Sequence[str] = ()) -> dict[str, Scenario]:
        """Each arm's scenario: base, `set`, `overrides`, then the arm's own overrides (and the full event log
        when the outcome reads it)."""
        base = self.base_scenario(overrides)
        logging = ["results.events=all"] if self.outcome.needs_events else []
        arms = {}
        for arm, changes in self.arms.items():
            try:
                arms[arm] = base.with_overrides([*changes, *logging])
            except ScenarioError as exc:
                raise ScenarioError(f"{self.path or self.name}: arms.{arm}: {exc}") from None
            reactions = arms[arm].behavior.reactions
            if self.outcome.reaction != "engagement" and self.outcome.reaction not in reactions:
                raise ScenarioError(f"{self.path or self.name}: outcome.reaction: {self.outcome.reaction!r} is not a "
                                    f"reaction of arm {arm!r} ({', '.join(reactions)})")  # fmt: skip
        return arms


def shipped_replications() -> dict[str, Path]:
    """Every shipped replication by name (its file name without .yaml), in name order."""
    return {path.stem: path for path in sorted(REPLICATIONS_DIR.glob("*.yaml"))}


def find_replication(name: str | Path) -> Path:
    """A replication file: the path given when it exists, else the shipped replication of that name."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = shipped_replications()
    if path.name.removesuffix(".yaml") in shipped and path.parent == Path("."):
        return shipped[path.name.removesuffix(".yaml")]
    raise LsbmError(f"{name}: no replication file there, and no shipped replication has that name "
                    f"(shipped: {', '.join(shipped)}; `lsbm-sim replicate --list` describes them)")  # fmt: skip


def load_replication(name: str | Path) -> Replication:
    """Read and validate a replication file (or a shipped one by name); every bad field is named."""
    path = find_replication(name)
    data = read_yaml(path, "replication", "name, paper, scenario, arms, ...")
    try:
        replication = Replication.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(format_validation_error(exc, str(path))) from None
    replication._path = path.resolve()
    return replication


# --------------------------------------------------------------------------------------------- the outcomes


@dataclass
class RunTables:
    """One finished run of an arm: its results folder, read table by table as an outcome asks for them."""

    folder: Path
    scenario: Scenario
    seed: int

    @cached_property
    def items(self) -> pd.DataFrame:
        return pd.read_parquet(self.folder / "items.parquet")

    @cached_property
    def events(self) -> pd.DataFrame:
        frame = pd.read_parquet(self.folder / "events.parquet")
        frame["item_id"] = frame["item_id"].astype(str)
        frame["reaction"] = frame["reaction"].astype(str)
        return frame

    @cached_property
    def cascades(self) -> pd.DataFrame:
        return pd.read_parquet(self.folder / "cascades.parquet")

    @cached_property
    def agents(self) -> pd.DataFrame:
        return pd.read_parquet(self.folder / "agents.parquet", columns=["agent_id", "followers"])


def _selected(ids: pd.Series, pattern: str | None) -> pd.Series:
    if pattern is None:
        return pd.Series(True, index=ids.index)
    return ids.astype(str).map(lambda i: fnmatch.fnmatchcase(i, pattern))


def _counts(items: pd.DataFrame, reaction: str) -> np.ndarray:
    if reaction == "engagement":
        columns = [c for c in ("like", "share", "comment") if c in items.columns]
        return items[columns].sum(axis=1).to_numpy(dtype=np.float64)
    return items[reaction].to_numpy(dtype=np.float64)


def expected_rate(run: RunTables, outcome: OutcomeSpec) -> dict[str, float]:
    """Mean recorded probability of the reaction over the exposures of the matching posts (a sharing intention)."""
    events = run.events
    shown = events[_selected(events["item_id"], outcome.posts)]
    return {"": float(shown[f"p_{outcome.reaction}"].mean()) if len(shown) else math.nan}


def first_viewer_rate(run: RunTables, outcome: OutcomeSpec) -> dict[str, float]:
    """Mean probability of the reaction over exposures a post got while it showed no like or comment from people."""
    events = run.events
    events = events[_selected(events["item_id"], outcome.posts)]
    # A like or comment made in step t is shown from step t + 1: the post's viewers up to and including the step
    # of its first one saw no proof from people.
    proof = events[events["reaction"].isin(["like", "comment"])].groupby("item_id")["step"].min()
    first = events["item_id"].map(proof).fillna(np.inf)
    viewers = events[events["step"] <= first]
    return {"": float(viewers[f"p_{outcome.reaction}"].mean()) if len(viewers) else math.nan}


def mean_count(run: RunTables, outcome: OutcomeSpec) -> dict[str, float]:
    """Mean count of the reaction per matching post that entered the run."""
    items = run.items[(run.items["entered"] >= 0) & _selected(run.items["item_id"], outcome.posts)]
    return {"": float(_counts(items, outcome.reaction).mean()) if len(items) else math.nan}


def gini(values: np.ndarray) -> float:
    """The Gini coefficient of non-negative values (0: all equal; near 1: one takes everything).

    >>> gini(np.array([1.0, 1.0, 1.0]))
    0.0
    >>> round(gini(np.array([0.0, 0.0, 0.0, 4.0])), 2)
    0.75
    """
    x = np.sort(np.asarray(values, dtype=np.float64))
    if len(x) == 0 or x.sum() == 0:
        return math.nan
    n = len(x)
    return float(2 * np.sum(np.arange(1, n + 1) * x) / (n * x.sum()) - (n + 1) / n)


def gini_of_posts(run: RunTables, outcome: OutcomeSpec) -> dict[str, float]:
    """Gini coefficient of the matching posts' reaction counts: how unequal success is."""
    items = run.items[(run.items["entered"] >= 0) & _selected(run.items["item_id"], outcome.posts)]
    return {"": gini(_counts(items, outcome.reaction))}


def holdout_share_rate(run: RunTables, outcome: OutcomeSpec) -> dict[str, float]:
    """Bakshy et al.'s comparison in one run: among (person, post) pairs where someone the person follows shared
    the post, the expected number of times the person then `reaction`s it (the sum of their exposures' recorded
    probabilities after the first followee's share), for feed pairs and for held-out pairs. Who follows whom is
    rebuilt from the scenario and seed (the same world the run had); a pair's condition is `feed.held_out`."""
    from lsbm_sim.engine.feed import held_out
    from lsbm_sim.world.build import stream_seeds
    from lsbm_sim.world.build import build_world

    seeds = stream_seeds(run.seed)
    _, network = build_world(run.scenario, lambda name: np.random.default_rng(seeds[name]))
    items = run.items
    index = pd.Series(np.arange(len(items)), index=items["item_id"].astype(str))
    events = run.events
    events = events[_selected(events["item_id"], outcome.posts)]
    # Every share, the authors' own posting included: who, which post, when.
    shared = events[events["reaction"] == "share"]
    authors = run.cascades.merge(items[["item_id", "entered"]], on="item_id")
    authors = authors[_selected(authors["item_id"], outcome.posts)]
    sharer = np.concatenate([shared["agent_id"].to_numpy(np.int64), authors["author"].to_numpy(np.int64)])
    item = np.concatenate([index[shared["item_id"]].to_numpy(), index[authors["item_id"].astype(str)].to_numpy()])
    step = np.concatenate([shared["step"].to_numpy(np.int64), authors["entered"].to_numpy(np.int64)])
    if len(sharer) == 0:
        return {"exposed": math.nan, "held_out": math.nan}
    owner, follower = network.followers_of_many(sharer.astype(np.int32))
    pairs = pd.DataFrame({"agent_id": follower.astype(np.int64), "item": item[owner], "since": step[owner]})
    pairs = pairs.groupby(["agent_id", "item"], as_index=False)["since"].min()
    # A person who shared the post before any followee did was not a subject (their share came first).
    own = pd.DataFrame({"agent_id": sharer, "item": item, "own": step}).groupby(["agent_id", "item"], as_index=False)["own"].min()
    pairs = pairs.merge(own, on=["agent_id", "item"], how="left")
    pairs = pairs[~(pairs["own"] <= pairs["since"])]
    pairs["held_out"] = held_out(run.seed, pairs["agent_id"].to_numpy(), pairs["item"].to_numpy(),
                                 run.scenario.feed.hidden_shares)  # fmt: skip
    seen = events.assign(item=index[events["item_id"]].to_numpy())[["agent_id", "item", "step", f"p_{outcome.reaction}"]]
    seen = seen.merge(pairs[["agent_id", "item", "since"]], on=["agent_id", "item"])
    seen = seen[seen["step"] > seen["since"]]
    expected = seen.groupby(["agent_id", "item"])[f"p_{outcome.reaction}"].sum()
    pairs = pairs.join(expected.rename("expected"), on=["agent_id", "item"])
    pairs["expected"] = pairs["expected"].fillna(0.0)
    rates = pairs.groupby("held_out")["expected"].mean()
    return {"exposed": float(rates.get(False, math.nan)), "held_out": float(rates.get(True, math.nan))}


def amplification(run: RunTables, outcome: OutcomeSpec) -> dict[str, float]:
    """People reached by the posts of the `outcome.top` share of accounts with most followers."""
    agents = run.agents
    ranked = np.lexsort((agents["agent_id"].to_numpy(), -agents["followers"].to_numpy()))
    top = set(agents["agent_id"].to_numpy()[ranked[: max(1, int(round(outcome.top * len(agents))))]].tolist())
    authored = run.cascades.loc[run.cascades["author"].isin(top), "item_id"].astype(str).unique()
    items = run.items[run.items["item_id"].astype(str).isin(authored) & _selected(run.items["item_id"], outcome.posts)]
    return {"": float(items["reach"].sum())}


METRICS: dict[str, Callable[[RunTables, OutcomeSpec], dict[str, float]]] = {
    "expected_rate": expected_rate,
    "first_viewer_rate": first_viewer_rate,
    "mean_count": mean_count,
    "gini": gini_of_posts,
    "holdout_share_rate": holdout_share_rate,
    "amplification": amplification,
}


# ------------------------------------------------------------------------------------------- the statistics


def paired_interval(treatment: np.ndarray, control: np.ndarray, kind: str, paired: bool = True,
                    resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float, float]:  # fmt: skip
    """The effect (ratio or difference of the two means) and its 95% percentile-bootstrap interval.

    `treatment[r]` and `control[r]` come from replication r, the same seed: resampling draws whole replications,
    both arms together, so the interval is that of the paired design. `paired=False` resamples the arms
    independently (as if the runs were unrelated), for comparison.

    >>> t, c = np.array([2.0, 4.1, 6.0, 8.2]), np.array([1.0, 2.0, 3.1, 4.0])
    >>> effect, low, high = paired_interval(t, c, "ratio")
    >>> round(effect, 3), low < effect < high
    (2.016, True)
    """
    treatment, control = np.asarray(treatment, dtype=np.float64), np.asarray(control, dtype=np.float64)
    if treatment.shape != control.shape or treatment.ndim != 1:
        raise ValueError("treatment and control need one figure per replication each, the same replications")
    keep = np.isfinite(treatment) & np.isfinite(control)
    treatment, control = treatment[keep], control[keep]
    if len(treatment) < 2:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    n = len(treatment)
    rows = rng.integers(0, n, size=(resamples, n))
    other = rows if paired else rng.integers(0, n, size=(resamples, n))

    def form(t: np.ndarray, c: np.ndarray) -> np.ndarray:
        if kind == "ratio":
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(c > 0, t / np.where(c > 0, c, 1.0), np.nan)
        return t - c

    effect = float(form(np.array([treatment.mean()]), np.array([control.mean()]))[0])
    draws = form(treatment[rows].mean(axis=1), control[other].mean(axis=1))
    draws = draws[np.isfinite(draws)]
    if len(draws) < resamples / 2:
        return effect, math.nan, math.nan
    low, high = np.percentile(draws, [2.5, 97.5])
    return effect, float(low), float(high)


def agrees(published: PublishedSpec, kind: str, low: float, high: float) -> bool:
    """Whether a simulated 95% interval agrees with the published effect (see the module docstring)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return False
    if published.low is not None:
        return low <= published.high and published.low <= high
    if published.effect is not None:
        return low <= published.effect <= high
    null = 1.0 if kind == "ratio" else 0.0
    return low > null if published.direction == "increase" else high < null


# ----------------------------------------------------------------------------------------------- running


@dataclass
class Replicated:
    """One replication's result: the per-run outcomes and the effect."""

    replication: Replication
    outcomes: pd.DataFrame  # arm, condition, replication, seed, value
    effect: float
    low: float
    high: float
    seconds: float
    runs: int = 0
    figures: dict[str, float] = field(default_factory=dict)  # treatment and control means

    def row(self) -> dict[str, Any]:
        rep, pub = self.replication, self.replication.published
        return {
            "experiment": rep.name,
            "title": rep.title,
            "role": rep.role,
            "fits": f"{rep.fits.coefficient} ({rep.fits.reaction})" if rep.fits else "",
            "kind": rep.effect.kind,
            "published": pub.effect if pub.effect is not None else math.nan,
            "published_low": pub.low if pub.low is not None else math.nan,
            "published_high": pub.high if pub.high is not None else math.nan,
            "published_interval": pub.interval,
            "published_direction": pub.direction or "",
            "checked": pub.checked,
            "simulated": self.effect,
            "simulated_low": self.low,
            "simulated_high": self.high,
            "agree": agrees(pub, rep.effect.kind, self.low, self.high),
            "treatment_mean": self.figures.get("treatment", math.nan),
            "control_mean": self.figures.get("control", math.nan),
            "replications": int(self.outcomes["replication"].nunique()) if len(self.outcomes) else 0,
            "runs": self.runs,
            "seconds": self.seconds,
            "citation": rep.paper.citation,
        }


def run_replication(replication: Replication | str | Path, replications: int | None = None,
                    out: Path | str | None = None, overrides: Sequence[str] = (), workers: int | None = None,
                    progress: Callable[[int, int], None] | None = None) -> Replicated:  # fmt: skip
    """Run one replication's arms (`replications` seeds each, default the file's) and form its effect.

    With `out`, each arm's runs are kept under `out/<arm>/runs/` (the sweep's folders: a second call reuses
    them) and the per-run outcomes go to `out/outcomes.parquet`; without, in a temporary folder removed after.
    """
    from lsbm_sim.studies.sweep import sweep

    rep = replication if isinstance(replication, Replication) else load_replication(replication)
    arms = rep.arm_scenarios(overrides)
    count = replications if replications is not None else rep.replications
    if count < 2:
        raise LsbmError(f"--replications {count}: an interval needs at least 2 replications")
    seed = rep.seed if rep.seed is not None else next(iter(arms.values())).seed
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lsbm-replicate-") as scratch:
        folder = Path(out) if out is not None else Path(scratch)
        rows = []
        done_before = 0
        for arm, spec in arms.items():
            def advance(done: int, total: int, before: int = done_before) -> None:
                if progress:
                    progress(before + done, count * len(arms))

            table = sweep(spec, {}, replications=count, seed=seed, workers=workers, out=folder / arm,
                          keep_runs=True, progress=advance)  # fmt: skip
            done_before += count
            runs = table.drop_duplicates("replication")[["replication", "seed", "run_id"]]
            for job in runs.itertuples(index=False):
                tables = RunTables(folder / arm / "runs" / job.run_id, spec, int(job.seed))
                for condition, value in METRICS[rep.outcome.metric](tables, rep.outcome).items():
                    rows.append({"arm": arm, "condition": condition, "replication": int(job.replication),
                                 "seed": int(job.seed), "value": value})  # fmt: skip
        outcomes = pd.DataFrame(rows, columns=["arm", "condition", "replication", "seed", "value"])
        if out is not None:
            outcomes.to_parquet(folder / OUTCOMES, index=False)
    treatment, control = (figure_of(outcomes, getattr(rep.effect, side)) for side in ("treatment", "control"))
    effect, low, high = paired_interval(treatment, control, rep.effect.kind)
    return Replicated(rep, outcomes, effect, low, high, time.perf_counter() - started, runs=count * len(arms),
                      figures={"treatment": float(np.nanmean(treatment)), "control": float(np.nanmean(control))})  # fmt: skip


def figure_of(outcomes: pd.DataFrame, which: str) -> np.ndarray:
    """One figure per replication, in replication order: "ARM" or "ARM:CONDITION"."""
    arm, _, condition = which.partition(":")
    chosen = outcomes[(outcomes["arm"] == arm) & (outcomes["condition"] == condition)]
    return chosen.sort_values("replication")["value"].to_numpy(dtype=np.float64)


def replicate(names: Sequence[str | Path] | str | None = None, replications: int | None = None,
              out: Path | str | None = None, overrides: Sequence[str] = (), workers: int | None = None,
              progress: Callable[[str, int, int], None] | None = None) -> pd.DataFrame:  # fmt: skip
    """Run landmark experiments in silico: every shipped replication, or those named (names or files).

    Returns one row per experiment: the published effect and interval, the simulated effect with its 95% interval
    (paired bootstrap over replications), whether they agree, and whether the experiment fitted a coefficient
    (`role` fit, `fits`) or only checks the model. With `out`, the runs are kept under `out/<name>/` (a rerun
    reuses them) and the table is written to `out/replications.parquet`. `overrides` (`--set`) change every
    experiment's world (its arms keep their own overrides); `workers`: parallel runs (default: CPU count).
    """
    from lsbm_sim.studies.sweep import kept_workers

    if isinstance(names, (str, Path)):
        names = [names]
    chosen = list(names) if names else list(shipped_replications())
    loaded = [load_replication(name) for name in chosen]  # every file is checked before anything runs
    for rep in loaded:
        rep.arm_scenarios(overrides)
    rows = []
    with kept_workers(workers):
        for rep in loaded:
            def advance(done: int, total: int, name: str = rep.name) -> None:
                if progress:
                    progress(name, done, total)

            target = Path(out) / rep.name if out is not None else None
            rows.append(run_replication(rep, replications, target, overrides, workers, advance).row())
    table = pd.DataFrame(rows)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        table.to_parquet(Path(out) / TABLE, index=False)
    return table


# ------------------------------------------------------------------------------------------------ showing


def describe_effect(effect: float, low: float, high: float) -> str:
    """'1.32 [1.20, 1.45]' (or the parts that exist)."""
    def number(x: float) -> str:
        return f"{x:.3g}" if np.isfinite(x) else "?"

    if not np.isfinite(effect):
        return f"[{number(low)}, {number(high)}]" if np.isfinite(low) else "n/a"
    return f"{number(effect)} [{number(low)}, {number(high)}]" if np.isfinite(low) else number(effect)


def published_text(row: pd.Series | dict) -> str:
    """The published effect as a line: point [interval], its kind, or its direction."""
    text = describe_effect(row["published"], row["published_low"], row["published_high"])
    if row["published_interval"] == "range":
        text += " (range)"
    if text == "n/a" and row["published_direction"]:
        text = f"{row['published_direction']} (direction only)"
    return text + ("" if row["checked"] else " *")


def plot_replications(table: pd.DataFrame, path: Path | str | None = None, ax=None):
    """Published against simulated effects with their intervals, one row per experiment (ratios on a log axis
    around 1, differences on their own axis around 0). Saved to `path` when given; returns the figure."""
    import matplotlib

    if ax is None and path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    groups = [(kind, table[table["kind"] == kind]) for kind in ("ratio", "difference") if (table["kind"] == kind).any()]
    if ax is None:
        fig, axes = plt.subplots(len(groups), 1, figsize=(8, 0.7 * len(table) + 1.6 * len(groups)), squeeze=False)
        axes = axes[:, 0]
    else:
        fig, axes = ax.figure, [ax]
    for axis, (kind, rows) in zip(axes, groups):
        y = np.arange(len(rows))[::-1]
        for k, (_, row) in enumerate(rows.iterrows()):
            if np.isfinite(row["published_low"]):
                axis.plot([row["published_low"], row["published_high"]], [y[k] + 0.15] * 2, color="0.4", lw=2)
            if np.isfinite(row["published"]):
                axis.plot(row["published"], y[k] + 0.15, "s", color="0.2", label="published" if k == 0 else None)
            if np.isfinite(row["simulated_low"]):
                axis.plot([row["simulated_low"], row["simulated_high"]], [y[k] - 0.15] * 2, color="tab:blue", lw=2)
            axis.plot(row["simulated"], y[k] - 0.15, "o", color="tab:blue", label="simulated (95% paired)" if k == 0 else None)
        labels = [f"{r.experiment} ({r.role})" for r in rows.itertuples()]
        axis.set_yticks(y, labels)
        axis.axvline(1.0 if kind == "ratio" else 0.0, color="0.7", ls=":")
        if kind == "ratio":
            axis.set_xscale("log")
        axis.set_xlabel("effect (treatment / control)" if kind == "ratio" else "effect (treatment - control)")
        axis.legend(loc="best", fontsize="small")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
