"""Simulated cascades held against real ones.

`compare` puts a simulated table beside a real one: two-sample KS distances per metric, overall and at matched
size (within size bins, weighted by the real cascades in each, as Juul & Ugander 2021 advise, since depth and
virality grow with size), bootstrap intervals, and the floor two halves of the real data reach against each other.
Both sides are cut at the same smallest size (data that keeps only large trees is compared with the simulated
trees of those sizes), time to half size is compared in minutes, and where both sides know their audience,
shares per follower of author and sharers (`reach_per_follower`) are put side by side.

>>> real = load_cascades("../shared/data/twitter16_cascades")  # doctest: +SKIP
>>> compare(load_cascades("results/run"), real).table  # doctest: +SKIP
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lsbm_sim.errors import LsbmError

from lsbm_sim.analysis.cascades import LABELS, METRICS, MINUTES_PER, load_cascades


# ---------------------------------------------------------------------------------------------- comparing


def size_bins(size: np.ndarray) -> np.ndarray:
    """Size bins on a log2 scale: 1 | 2-3 | 4-7 | 8-15 | ... (bin k holds sizes 2^k .. 2^(k+1) - 1)."""
    return np.floor(np.log2(np.maximum(np.asarray(size, dtype=float), 1))).astype(np.int64)


def ks(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample KS distance: the largest gap between the two samples' empirical distribution functions
    (scipy.stats.ks_2samp's statistic, without importing scipy.stats: a third of a second at every calibration's
    start)."""
    a, b = np.sort(np.asarray(a, dtype=float)), np.sort(np.asarray(b, dtype=float))
    at = np.concatenate([a, b])  # the gap is largest at one of the values, just after it
    gap = np.searchsorted(a, at, side="right") / len(a) - np.searchsorted(b, at, side="right") / len(b)
    return float(np.abs(gap).max())


def matched_ks(sim_values, sim_bins, real_values, real_bins, min_per_bin: int = 5) -> tuple[float, float]:
    """KS within each size bin that holds at least `min_per_bin` cascades on both sides, averaged with the
    real cascades in each bin as weights. Returns (distance, share of real cascades in the bins used);
    (1.0, 0.0) when no bin is shared: the simulation makes no cascades of the real sizes at all."""
    total, weight = 0.0, 0
    for b in np.unique(real_bins):
        r = real_values[real_bins == b]
        s = sim_values[sim_bins == b]
        if len(r) >= min_per_bin and len(s) >= min_per_bin:
            total += len(r) * ks(s, r)
            weight += len(r)
    if weight == 0:
        return 1.0, 0.0
    return total / weight, weight / len(real_values)


def _normalised_time(values: np.ndarray) -> np.ndarray:
    """Times divided by their median (over positive times): simulated steps and real minutes then compare
    by shape, whatever a step stands for."""
    positive = values[values > 0]
    return values / np.median(positive) if len(positive) else values


@dataclass
class Comparison:
    """What `compare` found: `table` has one row per metric (KS overall and at matched size, intervals,
    floors, sample sizes); `sim` and `real` are the tables compared."""

    table: pd.DataFrame
    sim: pd.DataFrame
    real: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)
    reach: pd.DataFrame | None = None
    """Shares per follower of author and sharers, simulated beside real (`compare_reach`); None when one
    side does not know its audience."""

    def scored(self, metrics=("depth", "structural_virality", "cascade_size")) -> list[str]:
        """The metrics of `metrics` that `score` can use: those both sides have (depth of event sequences,
        say, is unknown)."""
        rows = self.table.set_index("metric")
        return [m for m in metrics if m in rows.index and not pd.isna(rows.loc[m, _score_column(m)])]

    def score(self, metrics=("depth", "structural_virality", "cascade_size")) -> float:
        """One number to minimise: the mean of matched-size KS for each metric (overall KS for size), over
        the metrics both sides have (`scored`)."""
        scored = self.scored(metrics)
        if not scored:
            raise LsbmError(f"none of {', '.join(metrics)} can be compared with these cascades")
        rows = self.table.set_index("metric")
        return float(np.mean([rows.loc[m, _score_column(m)] for m in scored]))

    def floor(self, metrics=("depth", "structural_virality", "cascade_size")) -> float | None:
        """The score two halves of the real cascades reach against each other (None without floor splits)."""
        rows = self.table.set_index("metric")
        values = [rows.loc[m, "floor_overall" if m == "cascade_size" else "floor_matched"] for m in self.scored(metrics)]
        values = [v for v in values if not pd.isna(v)]
        return float(np.mean(values)) if values else None

    def to_dict(self) -> dict[str, Any]:
        records = json.loads(self.table.to_json(orient="records"))
        reach = json.loads(self.reach.to_json(orient="records")) if self.reach is not None else None
        return {"metrics": records, "reach": reach, "settings": self.settings}

    def report(self, out: Path | str) -> Path:
        """Write comparison.json, ccdf.png, matched.png and report.html into `out`; returns the HTML path."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "comparison.json").write_text(json.dumps(self.to_dict(), indent=2))
        plot_ccdf(self, out / "ccdf.png")
        plot_matched(self, out / "matched.png")
        shown = self.table.copy()
        for column in shown.columns:
            if shown[column].dtype.kind == "f":
                shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
        settings = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in self.settings.items())
        reach = ("<h2>Shares per follower of author and sharers</h2>" + self.reach.to_html(index=False, float_format="{:.3g}".format)
                 if self.reach is not None else "")  # fmt: skip
        page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Simulated vs real cascades</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style></head><body>
<h1>Simulated vs real cascades</h1>
<p>Two-sample Kolmogorov-Smirnov distances (0 = the same distribution, 1 = no overlap). <i>matched</i>: within
log2 size bins, weighted by the real cascades in each bin (Juul &amp; Ugander 2021); <i>floor</i>: the distance
between two random halves of the real data (median over splits), the least a simulation can expect; intervals
are bootstrap 95% percentile intervals (a resampled KS distance is biased upward, so for near-identical samples
the interval lies above the estimate).</p>
{shown.to_html(index=False, escape=True)}
{reach}<h2>Distributions (CCDF)</h2><img src="ccdf.png" width="100%">
<h2>At matched size</h2><img src="matched.png" width="100%">
<h2>Settings</h2><ul>{settings}</ul></body></html>"""
        (out / "report.html").write_text(page)
        return out / "report.html"


def _score_column(metric: str) -> str:
    """Size is scored overall (matching on size would leave nothing to compare), the others at matched size."""
    return "ks_overall" if metric == "cascade_size" else "ks_matched"


def compare(sim: pd.DataFrame | Path | str, real: pd.DataFrame | Path | str, metrics=METRICS,
            bootstrap: int = 200, floor_splits: int = 20, min_per_bin: int = 5, seed: int = 0,
            min_size: int | None = None, min_shares: int = 50) -> Comparison:  # fmt: skip
    """KS distances between simulated and real cascades for each metric, overall and at matched size, with
    bootstrap intervals (`bootstrap` resamples; 0 for none) and the real-vs-real floor (`floor_splits`
    random halvings; 0 for none). The intervals are bootstrap percentiles, and a resampled KS distance is
    biased upward, so for near-identical samples the interval lies above the estimate (it reads "within
    sampling noise of this"); the floor says the same more directly. Tables, or paths `load_cascades` reads.

    Both sides keep only cascades of at least `min_size` nodes; by default the real data's smallest size
    (real data has many cascades of size 1, so a set without them was cut: twitter16 keeps only large
    trees), stated in `settings["size cut"]`; `min_size=1` compares everything. `half_time` is
    compared in minutes where both sides' units convert (`MINUTES_PER`), else after dividing each side by
    its median; it is left out, with a note, where a side has no spread in time. Where both sides have
    `shares` and `audience`, `reach` holds `compare_reach` (cascades with `min_shares` shares for the median).

    >>> rng = np.random.default_rng(0)
    >>> a = pd.DataFrame({"cascade_size": rng.integers(1, 50, 300), "depth": rng.integers(0, 5, 300)})
    >>> b = pd.DataFrame({"cascade_size": rng.integers(1, 50, 300), "depth": rng.integers(0, 5, 300)})
    >>> c = compare(a, b, metrics=("cascade_size", "depth"), bootstrap=0, floor_splits=0)
    >>> from scipy import stats
    >>> float(c.table.loc[0, "ks_overall"]) == float(stats.ks_2samp(a["cascade_size"], b["cascade_size"]).statistic)
    True
    """
    from scipy import stats  # (here, for the p-value: calibrations importing this module need only `ks`)

    sim = sim if isinstance(sim, pd.DataFrame) else load_cascades(sim)
    real = real if isinstance(real, pd.DataFrame) else load_cascades(real)
    for name, table in (("simulated", sim), ("real", real)):
        if len(table) == 0:
            raise LsbmError(f"the {name} cascades are empty")
        if "cascade_size" not in table.columns:
            raise LsbmError(f"the {name} cascades have no cascade_size column")
    sim, real, cut = _cut(sim, real, min_size)
    nothing = len(sim) == 0
    time_scale, time_note, sim, real = _time_scale(sim, real, metrics)
    sim_bins, real_bins = size_bins(sim["cascade_size"].to_numpy()), size_bins(real["cascade_size"].to_numpy())
    rows = []
    for k, metric in enumerate(metrics):
        rng = np.random.default_rng([seed, k])  # per metric, so adding a metric leaves the others' figures
        row: dict[str, Any] = {"metric": metric}
        s = sim[metric].to_numpy(dtype=float) if metric in sim.columns else np.full(len(sim), np.nan)
        r = real[metric].to_numpy(dtype=float) if metric in real.columns else np.full(len(real), np.nan)
        s_ok, r_ok = ~np.isnan(s), ~np.isnan(r)
        row["n_sim"], row["n_real"] = int(s_ok.sum()), int(r_ok.sum())
        matched = metric != "cascade_size"
        if nothing and metric != "half_time" and row["n_real"] >= 2:
            # No simulated cascade of the real sizes: as far apart as KS can say, whatever the shape.
            row.update({"ks_overall": 1.0, **({"ks_matched": 1.0, "matched_share": 0.0} if matched else {})})
            row.update(_floors(real_values=r[r_ok], real_bins=real_bins[r_ok], matched=matched, splits=floor_splits,
                               min_per_bin=min_per_bin, rng=rng))  # fmt: skip
            rows.append(row)
            continue
        if row["n_sim"] < 2 or row["n_real"] < 2 or (metric == "half_time" and time_scale is None):
            rows.append(row)  # not in one of the sources (e.g. depth of event sequences): left blank
            continue
        sb, rb = sim_bins[s_ok], real_bins[r_ok]
        s, r = s[s_ok], r[r_ok]
        if metric == "half_time" and time_scale == "median":
            s, r = _normalised_time(s), _normalised_time(r)
        result = stats.ks_2samp(s, r)
        row["ks_overall"], row["p_value"] = float(result.statistic), float(result.pvalue)
        if matched:
            row["ks_matched"], row["matched_share"] = matched_ks(s, sb, r, rb, min_per_bin)
        if bootstrap:
            overall, at_size = [], []
            for _ in range(bootstrap):
                si, ri = rng.integers(0, len(s), len(s)), rng.integers(0, len(r), len(r))
                overall.append(ks(s[si], r[ri]))
                if matched:
                    at_size.append(matched_ks(s[si], sb[si], r[ri], rb[ri], min_per_bin)[0])
            row["ks_overall_low"], row["ks_overall_high"] = np.percentile(overall, [2.5, 97.5]).tolist()
            if matched:
                row["ks_matched_low"], row["ks_matched_high"] = np.percentile(at_size, [2.5, 97.5]).tolist()
        row.update(_floors(r, rb, matched, floor_splits, min_per_bin, rng))
        rows.append(row)
    columns = ["metric", "ks_overall", "ks_overall_low", "ks_overall_high", "floor_overall", "ks_matched",
               "ks_matched_low", "ks_matched_high", "floor_matched", "matched_share", "p_value", "n_sim", "n_real"]  # fmt: skip
    table = pd.DataFrame(rows).reindex(columns=columns)
    reach = compare_reach(sim, real, min_shares) if all(_has_audience(t) for t in (sim, real)) else None
    settings = {
        "simulated": sim.attrs.get("source", "a table"), "real": real.attrs.get("source", "a table"),
        "size cut": cut, "half_time": time_note, "half_time scale": time_scale or "not compared",
        "size bins": "log2: 1 | 2-3 | 4-7 | ...", "min cascades per bin": min_per_bin, "bootstrap resamples": bootstrap,
        "floor splits": floor_splits, "seed": seed, "real notes": real.attrs.get("notes", {}),
        "simulated notes": sim.attrs.get("notes", {}),
    }  # fmt: skip
    if nothing:
        settings["no simulated cascade at the cut"] = "every distance is 1 (the simulation makes no cascade of the real sizes)"
    if reach is not None:
        settings["reach"] = f"shares per follower of author and sharers; median over cascades with >= {min_shares} shares"
    return Comparison(table=table, sim=sim, real=real, settings=settings, reach=reach)


def _floors(real_values: np.ndarray, real_bins: np.ndarray, matched: bool, splits: int, min_per_bin: int,
            rng: np.random.Generator) -> dict[str, float]:  # fmt: skip
    """The median KS distance between two random halves of the real values (`splits` halvings; none for 0),
    overall and, for a `matched` metric, at matched size."""
    if not splits:
        return {}
    r, rb = real_values, real_bins
    floor, floor_matched = [], []
    for _ in range(splits):
        perm = rng.permutation(len(r))
        a, b = perm[: len(perm) // 2], perm[len(perm) // 2:]
        floor.append(ks(r[a], r[b]))
        if matched:
            floor_matched.append(matched_ks(r[a], rb[a], r[b], rb[b], min_per_bin)[0])
    found = {"floor_overall": float(np.median(floor))}
    if matched:
        found["floor_matched"] = float(np.median(floor_matched))
    return found


def _cut(sim: pd.DataFrame, real: pd.DataFrame, min_size: int | None) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Both sides from the same smallest size, and a sentence saying which and why."""
    smallest = int(real["cascade_size"].min())
    if min_size is None:
        if smallest <= 1:
            return sim, real, "none (the real data has cascades of a single node: it was not cut)"
        min_size = smallest
        why = f"{min_size} nodes and more, read from the real data (its smallest cascade; pass min_size=1 to compare all)"
    elif min_size < 1:
        raise LsbmError(f"--min-size {min_size}: a cascade has at least 1 node")
    else:
        why = f"{min_size} nodes and more (as asked)"
    kept = []
    for name, table in (("simulated", sim), ("real", real)):
        part = table[table["cascade_size"].to_numpy() >= min_size]
        if len(part) == 0 and name == "real":
            raise LsbmError(f"--min-size {min_size}: no real cascade has {min_size} nodes or more "
                            f"(largest: {int(table['cascade_size'].max())})")  # fmt: skip
        part.attrs = dict(table.attrs)
        kept.append(part.reset_index(drop=True))
    return kept[0], kept[1], f"{why}: {len(kept[0])} of {len(sim)} simulated, {len(kept[1])} of {len(real)} real"


def _time_scale(sim: pd.DataFrame, real: pd.DataFrame, metrics) -> tuple[str | None, str, pd.DataFrame, pd.DataFrame]:
    """How half_time is compared: "minutes" (both sides converted), "median" (each divided by its median,
    when a unit is unknown) or None (a side has no spread in time), with a note that says so."""
    if "half_time" not in metrics:
        return None, "not asked", sim, real
    tables = {"simulated": sim, "real": real}
    for name, table in tables.items():
        values = table["half_time"].dropna().to_numpy(dtype=float) if "half_time" in table.columns else np.zeros(0)
        if len(np.unique(values)) < 2:
            shown = "no times" if not len(values) else f"every value {values[0]:g}"
            return None, f"not compared: the {name} cascades have no spread in time ({shown})", sim, real
    factors = {name: MINUTES_PER.get(str(t.attrs.get("time_unit"))) for name, t in tables.items()}
    if None in factors.values():
        units = ", ".join(f"{name} {t.attrs.get('time_unit', '?')}" for name, t in tables.items())
        return "median", f"divided by each side's median (units: {units}; not both convertible to minutes)", sim, real
    converted = []
    for name, table in tables.items():
        table = table.copy()
        table["half_time"] = table["half_time"] * factors[name]
        table.attrs = {**table.attrs, "time_unit": "minutes"}
        converted.append(table)
    units = ", ".join(f"{name} {t.attrs.get('time_unit')}" for name, t in tables.items())
    return "minutes", f"in minutes (from {units})", converted[0], converted[1]


def _has_audience(table: pd.DataFrame) -> bool:
    return {"shares", "audience"} <= set(table.columns) and table["audience"].notna().any()


def reach_per_follower(table: pd.DataFrame, min_shares: int = 50) -> dict[str, float]:
    """Shares per follower of a cascade's author and sharers (`shares` / `audience`): pooled over all
    cascades (sum of shares / sum of audience), the median over cascades with at least `min_shares` shares
    (NaN when there are none), and the share of cascades never shared. Rows without an audience are left out.

    >>> t = pd.DataFrame({"shares": [0, 0, 60, 100], "audience": [500, 100, 200_000, 100_000]})
    >>> round(reach_per_follower(t, min_shares=50)["pooled"], 6)  # 160 shares / 300,600 followers
    0.000532
    """
    table = table[table["audience"].notna() & (table["audience"] > 0)]
    shares, audience = table["shares"].to_numpy(dtype=float), table["audience"].to_numpy(dtype=float)
    large = shares >= min_shares
    return {
        "pooled": float(shares.sum() / audience.sum()) if len(table) else np.nan,
        "median_large": float(np.median(shares[large] / audience[large])) if large.any() else np.nan,
        "never_shared": float((shares == 0).mean()) if len(table) else np.nan,
        "cascades": float(len(table)), "large_cascades": float(large.sum()),
    }


def compare_reach(sim: pd.DataFrame, real: pd.DataFrame, min_shares: int = 50) -> pd.DataFrame:
    """`reach_per_follower` of both sides, one row per figure, with log(sim / real) for the rates."""
    s, r = reach_per_follower(sim, min_shares), reach_per_follower(real, min_shares)
    rows = []
    for figure in ("pooled", "median_large", "never_shared", "cascades", "large_cascades"):
        ratio = np.log(s[figure] / r[figure]) if figure in ("pooled", "median_large") and s[figure] > 0 and r[figure] > 0 else np.nan
        rows.append({"figure": figure, "sim": s[figure], "real": r[figure], "log_ratio": float(ratio)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ plots


def _ccdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.sort(values)
    return x, 1.0 - np.arange(len(x)) / len(x)  # P(X >= x)


def plot_ccdf(comparison: Comparison, path: Path) -> Path:
    """Complementary CDFs of every compared metric, simulated beside real, on log-log axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in comparison.table["metric"] if not pd.isna(comparison.table.set_index("metric").loc[m, "ks_overall"])]
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(4 * max(len(metrics), 1), 3.4), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        for name, table, style in (("simulated", comparison.sim, "-"), ("real", comparison.real, "--")):
            values = table[metric].dropna().to_numpy(dtype=float)
            if metric == "half_time" and comparison.settings.get("half_time scale") == "median":
                values = _normalised_time(values)
            x, y = _ccdf(values[values > 0])
            axis.step(x, y, style, where="post", label=name)
        axis.set_xscale("log")
        axis.set_yscale("log")
        unit = " / median" if comparison.settings.get("half_time scale") == "median" else " (minutes)"
        axis.set_title(LABELS.get(metric, metric) + (unit if metric == "half_time" else ""))
        axis.set_ylabel("P(X >= x)")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_matched(comparison: Comparison, path: Path) -> Path:
    """Median and interquartile range of depth, breadth and virality per size bin, simulated and real."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in ("depth", "max_breadth", "structural_virality")
               if m in comparison.real.columns and comparison.real[m].notna().any()]  # fmt: skip
    fig, axes = plt.subplots(1, max(len(metrics), 1), figsize=(4.5 * max(len(metrics), 1), 3.4), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        for name, table in (("simulated", comparison.sim), ("real", comparison.real)):
            frame = pd.DataFrame({"bin": size_bins(table["cascade_size"].to_numpy()), "v": table[metric]}).dropna()
            if frame.empty:  # no cascade of the compared sizes on this side
                continue
            q = frame.groupby("bin")["v"].quantile([0.25, 0.5, 0.75]).unstack()
            x = 2.0 ** q.index.to_numpy()
            axis.plot(x, q[0.5], marker="o", label=name)
            axis.fill_between(x, q[0.25], q[0.75], alpha=0.25)
        axis.set_xscale("log")
        axis.set_xlabel("cascade size (bin start)")
        axis.set_title(f"{LABELS[metric]} at matched size")
    if metrics:
        axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
