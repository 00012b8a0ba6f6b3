"""Which variant of a post a simulated audience engages with most.

`optimize(scenario, post, variants)` runs the scenario once per variant of one post (the original text first)
with common random numbers, through the sweep machinery: replication r of every variant uses seed base + r, so
the variants meet the same world, the same online people and the same random draws, and the paired difference
between a variant and the original over replications measures the text's effect with little noise. A winner is
named only when a paired t-test, Holm-corrected over the variants, finds it significantly better.

>>> opt = optimize("scenarios/headline_ab_test.yaml", "headline_a", ["Walk 20 minutes a day, live longer"],
...                replications=20)  # doctest: +SKIP
>>> opt.winner, opt.verdict  # doctest: +SKIP

Also `lsbm_sim.optimize` and the command `lsbm-sim optimize`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lsbm_sim.errors import DataError, LsbmError

if TYPE_CHECKING:  # annotations only: the schema (pydantic) is imported where a scenario is read
    from lsbm_sim.scenario import Scenario



METRICS: tuple[str, ...] = ("reach", "like", "share", "cascade_size", "engagement")
"""What `optimize` reports per variant; "engagement" is the post's likes + shares + comments (every reaction but
ignore), the default figure a winner is named by."""


@dataclass(frozen=True)
class Variant:
    """One wording of the post: its label in the tables ('original', 'v1', ...) and its text."""

    label: str
    text: str


def read_variants(path: Path | str) -> list[Variant]:
    """Variants of a post from a file: .txt (one per line; blank lines skipped), .csv or .jsonl (a `text` field,
    and an optional `id` used as the label). Errors name the file and the line or row."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--variants: file not found: {path}")
    suffix = path.suffix.lower()
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None
    rows: list[tuple[str | None, Any, str]] = []  # (id, text, where)
    if suffix == ".txt":
        rows = [(None, line.strip(), f"line {n}") for n, line in enumerate(raw.splitlines(), 1) if line.strip()]
    elif suffix == ".jsonl":
        from lsbm_sim.readers import read_jsonl

        for n, record in enumerate(read_jsonl(path), 1):
            if "text" not in record:
                raise DataError(f"{path}: record {n} has no 'text' field")
            rows.append((record.get("id"), record["text"], f"record {n}"))
    elif suffix == ".csv":
        import io

        try:
            frame = pd.read_csv(io.StringIO(raw), dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataError(f"{path}: not a readable CSV ({exc})") from None
        if "text" not in frame.columns:
            raise DataError(f"{path}: needs a 'text' column (has {list(frame.columns)})")
        ids = frame["id"] if "id" in frame.columns else [None] * len(frame)
        rows = [(i or None, t, f"line {n + 2}") for n, (i, t) in enumerate(zip(ids, frame["text"]))]
    else:
        raise DataError(f"{path}: variants are read from .txt, .csv or .jsonl, not {suffix or 'a file without suffix'!r}")
    variants = []
    for k, (label, text, where) in enumerate(rows, 1):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}: {where}: the variant's text is empty or not a string")
        variants.append(Variant(str(label) if label is not None else f"v{k}", text.strip()))
    if not variants:
        raise DataError(f"{path}: no variants in the file")
    labels = [v.label for v in variants]
    duplicate = next((x for x in labels if labels.count(x) > 1 or x == "original"), None)
    if duplicate is not None:
        raise DataError(f"{path}: variant id {duplicate!r} is used twice (or is 'original', the post's own label)")
    return variants


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of p-values for testing several variants against one original (controls the
    family-wise error rate; scipy has no Holm, and it is four lines).

    >>> holm([0.01, 0.04, 0.03]).round(2).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p)
    adjusted = np.maximum.accumulate(np.minimum((len(p) - np.arange(len(p))) * p[order], 1.0))
    out = np.empty_like(p)
    out[order] = adjusted
    return out


def mean_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and its t interval."""
    from scipy import stats

    values = np.asarray(values, dtype=np.float64)
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def paired_difference(variant: np.ndarray, original: np.ndarray, level: float = 0.95) -> tuple[float, float, float, float]:
    """Mean paired difference (variant - original over replications), its t interval and the two-sided paired
    t-test's p-value. Differences that are all equal (a model that cannot tell the texts apart gives all zeros)
    have no spread: p is 1 when they are 0, else 0."""
    from scipy import stats

    diff = np.asarray(variant, dtype=np.float64) - np.asarray(original, dtype=np.float64)
    mean, low, high = mean_interval(diff, level)
    if np.all(diff == diff[0]):
        return mean, mean, mean, 1.0 if diff[0] == 0 else 0.0
    return mean, low, high, float(stats.ttest_rel(variant, original).pvalue)


@dataclass
class Optimization:
    """The answer of `optimize`.

    `summary`: one row per variant and metric (mean with its 95% interval; paired difference from the original
    with its interval, paired t-test p-value and Holm-adjusted p-value over the variants). `runs`: the post's
    row of every run. `winner`: the label of the variant named best, or None.
    """

    scenario: str
    post: str
    variants: list[Variant]
    metric: str
    alpha: float
    replications: int
    summary: pd.DataFrame
    runs: pd.DataFrame
    winner: str | None
    verdict: str

    @property
    def test(self) -> str:
        return (f"two-sided paired t-test over {self.replications} common-random-number replications, p-values "
                f"Holm-adjusted over {len(self.variants) - 1} variant(s), alpha {self.alpha}")  # fmt: skip

    def wide(self) -> pd.DataFrame:
        """One row per variant: each metric's mean, and the decision metric's difference and adjusted p-value."""
        s = self.summary
        frame = s.pivot(index="variant", columns="metric", values="mean").reindex([v.label for v in self.variants])
        decision = s[s.metric == self.metric].set_index("variant")
        for column in ("diff", "diff_low", "diff_high", "p_value", "p_holm"):
            frame[f"{self.metric} {column}"] = decision[column]
        return frame

    def plot(self, axes: Any = None) -> Any:
        """The paired difference from the original of every metric, one panel per metric (matplotlib)."""
        metrics = list(dict.fromkeys(self.summary.metric))
        if axes is None:
            from matplotlib.figure import Figure

            figure = Figure(figsize=(3.2 * len(metrics), 0.5 * len(self.variants) + 1.8), layout="constrained")
            axes = figure.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
        labels = [v.label for v in self.variants]
        for axis, metric in zip(axes, metrics):
            rows = self.summary[self.summary.metric == metric].set_index("variant").reindex(labels)
            y = np.arange(len(labels))[::-1]
            error = np.vstack([rows["diff"] - rows["diff_low"], rows["diff_high"] - rows["diff"]])
            colours = ["tab:green" if w else "tab:gray" for w in (rows.index == self.winner)]
            axis.errorbar(rows["diff"], y, xerr=np.nan_to_num(error), fmt="none", ecolor="0.4", capsize=3)
            axis.scatter(rows["diff"], y, c=colours, zorder=3)
            axis.axvline(0, color="0.6", lw=1, ls="--")
            axis.set_yticks(y, labels)
            axis.set_title(metric)
            axis.set_xlabel("difference from original")
        axes[0].figure.suptitle(f"{self.scenario}: variants of {self.post!r} (95% intervals, paired)")
        return axes

    def save(self, out: Path | str) -> Path:
        """Write optimize.csv, optimize.parquet (the summary), runs.parquet, optimize.png and optimize.json (the
        verdict, written last) into `out`; each file appears whole or not at all."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        _write(out / "optimize.csv", lambda p: self.summary.to_csv(p, index=False))
        _write(out / "optimize.parquet", lambda p: self.summary.to_parquet(p, index=False))
        _write(out / "runs.parquet", lambda p: self.runs.to_parquet(p, index=False))
        axes = self.plot()
        _write(out / "optimize.png", lambda p: axes[0].figure.savefig(p, format="png", dpi=110))
        document = {
            "scenario": self.scenario, "post": self.post, "metric": self.metric, "replications": self.replications,
            "test": self.test, "winner": self.winner, "verdict": self.verdict,
            "variants": [{"label": v.label, "text": v.text} for v in self.variants],
        }  # fmt: skip
        _write(out / "optimize.json", lambda p: Path(p).write_text(json.dumps(document, indent=2)))
        return out


def _write(path: Path, writer: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    writer(tmp)
    tmp.replace(path)


def find_post(scenario: Scenario, post: str) -> tuple[str, str]:
    """The override path of a post's text and the text itself, for a post of `content` or an injected one."""
    for k, p in enumerate(scenario.content):
        if p.id == post:
            return f"content.{k}.text", p.text
    for k, iv in enumerate(scenario.interventions):
        if iv.kind == "inject" and iv.post.id == post:
            return f"interventions.{k}.post.text", iv.post.text
    known = [p.id for p in scenario.content] + [iv.post.id for iv in scenario.interventions if iv.kind == "inject"]
    raise LsbmError(f"--post {post!r}: no post with that id in scenario {scenario.name!r} (posts: {', '.join(known)})")


def optimize(
    scenario: Scenario | str | Path,
    post: str,
    variants: Sequence[str | Variant] | Path | str,
    replications: int = 20,
    metric: str = "engagement",
    alpha: float = 0.05,
    seed: int | None = None,
    workers: int | None = None,
    executor: str = "local",
    out: Path | str | None = None,
    overrides: Sequence[str] = (),
    progress: Any = None,
) -> Optimization:
    """Simulate the scenario once per variant of `post` (its own text first, labelled "original"), each
    `replications` times with common random numbers, and compare each variant with the original.

    `variants`: texts (or Variant objects), or a file (see `read_variants`). Reported per variant: reach, likes,
    shares, cascade size and engagement (likes + shares + comments), each with its 95% t interval, and the
    paired difference from the original over replications with its interval and p-value (two-sided paired
    t-test; Holm-adjusted over the variants). The winner is the variant with the largest mean difference in
    `metric` among those significantly better than the original after adjustment; when instead every variant is
    significantly worse, the original; otherwise none. With `out`, the sweep table and the results (see
    `Optimization.save`) are written there.
    """
    from lsbm_sim.scenario import load_scenario
    from lsbm_sim.studies.sweep import sweep

    spec = load_scenario(scenario, overrides)
    path, original = find_post(spec, post)
    if isinstance(variants, (str, Path)):
        variants = read_variants(variants)
    variants = [v if isinstance(v, Variant) else Variant(f"v{k}", str(v)) for k, v in enumerate(variants, 1)]
    if not variants:
        raise LsbmError("optimize needs at least one variant besides the original")
    for v in variants:
        if not v.text.strip():
            raise LsbmError(f"variant {v.label!r}: the text is empty")
    if replications < 2:
        raise LsbmError(f"--replications must be at least 2 for paired intervals, got {replications}")
    if not 0 < alpha < 1:
        raise LsbmError(f"alpha must be between 0 and 1, got {alpha}")
    reactions = [r for r in spec.behavior.reactions if r != "ignore"]
    metrics = [m for m in METRICS if m in ("reach", "cascade_size", "engagement") or m in reactions]
    if metric not in metrics:
        raise LsbmError(f"--metric {metric!r}: choose one of {metrics}")
    every = [Variant("original", original), *variants]

    table = sweep(spec, {path: [v.text for v in every]}, replications=replications, seed=seed, executor=executor,
                  workers=workers, out=out, progress=progress)  # fmt: skip
    runs = table[table["item_id"] == post].copy()
    runs.insert(0, "variant", [every[c].label for c in runs["combination"]])
    runs["engagement"] = runs[reactions].sum(axis=1)
    runs = runs.sort_values(["combination", "replication"]).reset_index(drop=True)

    summary = compare(runs, [v.label for v in every], metrics, alpha)
    summary.insert(1, "text", summary["variant"].map({v.label: v.text for v in every}))
    winner, verdict = decide(summary, metric, alpha)
    result = Optimization(
        scenario=spec.name, post=post, variants=every, metric=metric, alpha=alpha, replications=replications,
        summary=summary, runs=runs, winner=winner, verdict=verdict,
    )  # fmt: skip
    if out is not None:
        result.save(out)
    return result


def compare(runs: pd.DataFrame, labels: Sequence[str], metrics: Sequence[str], alpha: float = 0.05) -> pd.DataFrame:
    """Each variant's mean of each metric with its 95% interval, and its paired difference from `labels[0]` (the
    original) over replications: interval, paired t-test p-value and Holm-adjusted p-value over the variants.

    `runs` has one row per variant and replication: columns `variant`, `replication` and the metrics.
    """
    by_variant = {label: runs[runs.variant == label].set_index("replication").sort_index() for label in labels}
    original = labels[0]
    rows = []
    for m in metrics:
        base = by_variant[original][m]
        for label in labels:
            values = by_variant[label][m]
            if not values.index.equals(base.index):
                raise LsbmError(f"variant {label!r} lacks replications {sorted(set(base.index) - set(values.index))}")
            mean, low, high = mean_interval(values.to_numpy())
            diff = (0.0, 0.0, 0.0, math.nan) if label == original else paired_difference(values.to_numpy(), base.to_numpy())
            rows.append({"variant": label, "metric": m, "mean": mean, "ci_low": low, "ci_high": high,
                         "diff": diff[0], "diff_low": diff[1], "diff_high": diff[2], "p_value": diff[3]})  # fmt: skip
    summary = pd.DataFrame(rows)
    summary["p_holm"] = math.nan
    for m in metrics:
        others = (summary.metric == m) & (summary.variant != original)
        summary.loc[others, "p_holm"] = holm(summary.loc[others, "p_value"].to_numpy())
    summary["significant"] = summary["p_holm"] < alpha
    return summary


def decide(summary: pd.DataFrame, metric: str, alpha: float = 0.05) -> tuple[str | None, str]:
    """The winner by `metric` and a sentence saying why: the variant with the largest mean difference among
    those significantly better than the original (Holm-adjusted); the original when every variant is
    significantly worse; else None."""
    rows = summary[summary.metric == metric]
    decision = rows[rows.variant != rows.variant.iloc[0]]
    better = decision[decision.significant & (decision["diff"] > 0)]
    if len(better):
        best = better.loc[better["diff"].idxmax()]
        return str(best.variant), (
            f"{best.variant} wins: {metric} {best['diff']:+.3g} per run over the original "
            f"(95% CI {best.diff_low:+.3g} to {best.diff_high:+.3g}, Holm-adjusted p = {best.p_holm:.3g})"
        )
    if decision.significant.all() and (decision["diff"] < 0).all():
        return "original", f"the original wins: every variant has significantly less {metric} (Holm-adjusted p < {alpha})"
    return None, f"no winner: no variant's {metric} is significantly above the original's (Holm-adjusted p >= {alpha})"


def render_optimization(result: Optimization, console: Any) -> None:
    """Print an optimization with rich: each variant's metrics (mean and 95% interval), the paired difference in
    the decision metric with its adjusted p-value, and the verdict."""
    from rich.table import Table

    table = Table(title=f"{result.scenario}: variants of {result.post!r} ({result.replications} replications, "
                        f"common random numbers)")  # fmt: skip
    metrics = list(dict.fromkeys(result.summary.metric))
    table.add_column("variant")
    for m in metrics:
        table.add_column(f"{m}\nmean [95% CI]", justify="right")
    table.add_column(f"{result.metric} - original\n[95% CI]", justify="right")
    table.add_column("p (Holm)", justify="right")
    s = result.summary.set_index(["variant", "metric"])
    for v in result.variants:
        cells = [f"{s.loc[(v.label, m), 'mean']:.4g} [{s.loc[(v.label, m), 'ci_low']:.4g}, "
                 f"{s.loc[(v.label, m), 'ci_high']:.4g}]" for m in metrics]  # fmt: skip
        d = s.loc[(v.label, result.metric)]
        if v.label == "original":
            cells += ["", ""]
        else:
            cells += [f"{d['diff']:+.4g} [{d.diff_low:+.4g}, {d.diff_high:+.4g}]", f"{d.p_holm:.3g}"]
        style = "bold green" if v.label == result.winner else None
        table.add_row(v.label, *cells, style=style)
    console.print(table)
    for v in result.variants:
        console.print(f"  {v.label}: {v.text}", highlight=False)
    console.print(f"test: {result.test}")
    console.print(f"[bold]{result.verdict}[/]")
