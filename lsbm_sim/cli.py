"""The `lsbm-sim` command.

    lsbm-sim scenarios                          (the shipped scenarios, by name)
    lsbm-sim run SCENARIO --out DIR [--seed N] [--steps N] [--set PATH=VALUE ...]   (a file or a shipped name)
    lsbm-sim validate SCENARIO [--set PATH=VALUE ...]
    lsbm-sim compare RUN_OR_SWEEP [--real PATH] [--impressions PATH] [--min-size N] [--json] [--out DIR]
    lsbm-sim calibrate SCENARIO [--real PATH] [--impressions PATH] --param PATH=LOW..HIGH ... [--trials N] [--out DIR]
    lsbm-sim explain "TEXT" [--persona ...] [--scenario ...] [--json] [--edit OLD=>NEW]
    lsbm-sim optimize SCENARIO --post ID --variants FILE [--replications 20] [--out DIR]
    lsbm-sim replicate [NAME ...] [--replications N] [--out DIR] [--plot FILE] [--set PATH=VALUE ...] | --list
    lsbm-sim serve / distill / bft ...

Bad input (a scenario, a data file, a server's answer) ends with one line on stderr naming what is wrong and
where, and exit code 2; no traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lsbm_sim.engine import interrupts
from lsbm_sim.errors import LsbmError

app = typer.Typer(
    name="lsbm-sim",
    help="Agent-based social simulation driven by a Large Social Behavior Model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True, soft_wrap=True)

ScenarioArg = Annotated[Path, typer.Argument(help="Scenario YAML file, or a shipped scenario's name (lsbm-sim scenarios).")]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a scenario field by dotted path, e.g. --set feed.size=5 (repeatable)."),
]


def _overrides(set_: list[str] | None, seed: int | None = None, steps: int | None = None) -> list[str]:
    overrides = list(set_ or [])
    if steps is not None:
        overrides.append(f"steps={steps}")
    return overrides


@app.command()
def run(
    scenario: ScenarioArg,
    out: Annotated[Path | None, typer.Option(help="Results folder (default: results/<scenario name>).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: the scenario's).")] = None,
    steps: Annotated[int | None, typer.Option(help="Number of steps (default: the scenario's).")] = None,
    set_: SetOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace the results already in --out.")] = False,
    checkpoint_every: Annotated[
        int | None, typer.Option(help="Save the whole state to OUT.checkpoint/ every K steps (see --resume).")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from the checkpoint in OUT.checkpoint/ (same scenario, --set and seed).")
    ] = False,
) -> None:
    """Run a scenario and write its results folder."""
    from lsbm_sim.scenario import load_scenario
    from lsbm_sim.engine.runner import run as run_scenario
    from lsbm_sim.analysis.results import MANIFEST, check_output_folder

    from lsbm_sim.catalog import find_scenario

    check_seed(seed)
    spec = load_scenario(find_scenario(scenario), _overrides(set_, steps=steps))
    out = out if out is not None else Path("results") / spec.name
    check_output_folder(out)
    if (out / MANIFEST).is_file() and not overwrite:
        raise LsbmError(f"--out {out}: holds the results of an earlier run; pass --overwrite to replace them")
    # The bar starts with the first step, so that a setup error (a bad file, say) prints alone.
    bar: dict[str, Progress] = {}

    def advance(done: int, total: int) -> None:
        if quiet:
            return
        if not bar:
            bar["progress"] = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
                TimeElapsedColumn(), console=console,
            )  # fmt: skip
            bar["progress"].start()
            bar["task"] = bar["progress"].add_task(spec.name, total=total)
        bar["progress"].update(bar["task"], completed=done)

    try:
        result = run_scenario(spec, seed=seed, out=out, progress=advance, checkpoint_every=checkpoint_every,
                              resume=resume)  # fmt: skip
    except interrupts.Interrupted as exc:
        if exc.kept is None:  # stopped before the run began (the runner says what it kept once it has)
            exc.kept = "stopped before the first step ended; nothing was kept"
        raise
    finally:
        if bar:
            bar["progress"].stop()
    if not quiet:
        print_summary(result)
        print_story(result, scenario, out)
    console.print(f"results: {out}")


SUMMARY_POSTS = 20
"""Posts listed in the summary table; the totals line counts them all."""


def check_seed(seed: int | None) -> None:
    """Refuse a negative --seed with one message."""
    if seed is not None and seed < 0:
        raise LsbmError(f"--seed {seed}: a seed is a whole number from 0 up")


def print_summary(result) -> None:
    """The per-post figures and the broker's statistics, as tables."""
    # Wide enough for post ids when the output is a file or a CI log (rich assumes 80 columns there).
    out = Console(width=None if sys.stdout.isatty() else 160)
    table = Table(title=f"{result.manifest['name']} (seed {result.manifest['seed']}, {result.manifest['agents']:,} agents)")
    summary = result.summary(top=SUMMARY_POSTS)
    # Labels that say what they count (a post has one cascade tree per author; see lsbm_sim.analysis.metrics).
    short = {"item_id": "post", "cascade_size": "nodes", "max_breadth": "breadth", "structural_virality": "virality",
             "half_time": "half-time"}  # fmt: skip
    table.caption = ("nodes: authors + sharers over the post's cascade trees (one per author); depth, breadth: its deepest "
                     "and widest tree; virality: mean distance within a tree (Goel et al. 2016); half-time: minutes "
                     "to half the nodes")  # fmt: skip
    for column in summary.columns:
        table.add_column(short.get(column, column), justify="left" if column == "item_id" else "right")
    for row in summary.itertuples(index=False):
        table.add_row(*[f"{v:.2f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v) for v in row])
    out.print(table)
    totals = result.totals()
    shown = f" (the {len(summary)} of widest reach shown)" if len(summary) < totals["posts"] else ""
    out.print(" | ".join(f"{v:,} {k}" for k, v in totals.items()) + shown, soft_wrap=True)
    broker = result.manifest["broker"]
    stats = result.manifest.get("behavior_stats", {})
    line = (
        f"decisions {broker['decisions']:,} | distinct prompts {broker['unique_queries']:,} | "
        f"cache hits {broker['cache_hits']:,} | model rows {broker['model_rows']:,}"
    )
    if stats.get("prompt_tokens") is not None:
        line += f" | prompt tokens {stats['prompt_tokens']:,}"
    if broker.get("prompts_per_second"):
        line += f" | {broker['prompts_per_second']:,.0f} prompts/s"
    timings = result.manifest["timings"]
    line += f" | setup {timings['setup_seconds']:.1f}s, steps {timings['steps_seconds']:.1f}s"
    out.print(line, soft_wrap=True)


FEW_POSTS = 6
"""Up to this many posts, the story compares them one by one (the scenario pits them against each other); beyond,
it describes how reach is spread over them."""


def run_story(result) -> list[str]:
    """What this run says about the scenario's question, in a few plain sentences of its own figures."""
    agents = result.manifest["agents"]
    items = result.items[result.items["entered"] >= 0]
    shares = "share" in items.columns
    if items.empty:
        return ["No post entered in this run: nothing spread."]
    items = items.sort_values(["reach", "item_id"], ascending=[False, True], kind="stable")
    if len(items) <= FEW_POSTS:
        lines = []
        for row in items.itertuples(index=False):
            line = f"{row.item_id} reached {row.reach:,} of {agents:,} people ({row.reach / agents:.1%})"
            if shares:
                line += f", shared {_times(row.share, 'time')}"
            accounts = "account" if row.cascade_size == 1 else "accounts"
            lines.append(line + f"; its cascade: {row.cascade_size:,} {accounts}, {row.depth} deep.")
        if len(items) >= 2 and items["reach"].iloc[1] > 0:
            first, second = items.iloc[0], items.iloc[1]
            lines.append(f"{first.item_id} reached {first.reach / second.reach:.1f}x as many people as {second.item_id}.")
        return lines
    reach = items["reach"].to_numpy()
    top = max(1, len(items) // 100)
    widest = items.iloc[0]
    lines = [f"{len(items):,} posts; the {top:,} widest (1%) took {reach[:top].sum() / max(reach.sum(), 1):.0%} of all reach."]
    if shares:
        lines.append(f"{(items['share'] == 0).mean():.0%} were never shared.")
    lines.append(f"The widest, {widest.item_id}, reached {widest.reach:,} people ({widest.reach / agents:.1%}); "
                 f"the deepest cascade went {_times(int(items['depth'].max()), 'share')} deep.")  # fmt: skip
    return lines


def _times(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def print_story(result, scenario: Path, out: Path) -> None:
    """The scenario's question, what this run says about it, and the commands that take it further."""
    from lsbm_sim.catalog import question
    from lsbm_sim.scenario import Scenario

    spec = Scenario.model_validate(result.manifest["scenario"])
    console_out = Console(width=None if sys.stdout.isatty() else 160)
    asked = question(spec)
    if asked:
        console_out.print(f"\n[bold]The question:[/] {escape(asked)}", soft_wrap=True)
    console_out.print("[bold]This run says:[/] " + escape(" ".join(run_story(result))), soft_wrap=True)
    console_out.print(f"One run, one seed (seed {result.manifest['seed']}): a difference counts once it outlasts "
                      "the run-to-run spread.", soft_wrap=True)  # fmt: skip
    console_out.print("[bold]Next:[/]")
    next_steps = [
        (f"lsbm-sim sweep {scenario} --grid feed.policy=chronological,popularity --replications 5",
         "does it hold across seeds and feeds?"),
        (f"lsbm-sim compare {out} --real PATH", "do its cascades look like real ones (PATH: real cascade trees)?"),
        (f"lsbm-sim app {scenario}", "watch it step by step"),
    ]  # fmt: skip
    width = max(len(command) for command, _ in next_steps)
    for command, why in next_steps:
        console_out.print(f"  {escape(command.ljust(width))}   # {why}", soft_wrap=True, highlight=False)


@app.command()
def validate(scenario: ScenarioArg, set_: SetOption = None) -> None:
    """Check a scenario: its fields, the files it names, the network and every post's authors."""
    from lsbm_sim.catalog import find_scenario
    from lsbm_sim.engine.validate import check_scenario

    summary = check_scenario(find_scenario(scenario), _overrides(set_))
    console.print(
        f"{scenario}: valid ({summary['agents']:,} agents, {summary['follow_edges']:,} follow edges, "
        f"{summary['personas']:,} personas, {summary['posts']} posts, {summary['steps']} steps, "
        f"backend {summary['backend']})"
    )


@app.command("scenarios")
def scenarios_command() -> None:
    """List the shipped scenarios: the name to run each by, and what it is about."""
    from lsbm_sim.catalog import one_line, shipped_scenarios
    from lsbm_sim.scenario import Scenario

    table = Table(title="Shipped scenarios (lsbm-sim run NAME --out DIR runs one; lsbm-sim app NAME opens it)")
    table.add_column("name", no_wrap=True)
    table.add_column("about")
    for name, path in shipped_scenarios().items():
        table.add_row(name, one_line(Scenario.from_yaml(path)))
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def _parse_grid(items: list[str] | None) -> dict[str, list]:
    """--grid feed.size=5,10  or  --grid 'feed.policy=[chronological, popularity]' (YAML list)."""
    import yaml

    grid: dict[str, list] = {}
    for item in items or []:
        if "=" not in item:
            raise LsbmError(f"--grid {item!r}: expected PATH=V1,V2,... or PATH=[V1, V2]")
        path, raw = item.split("=", 1)
        text = raw.strip() if raw.strip().startswith("[") else f"[{raw}]"
        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise LsbmError(f"--grid {path}: values are not a YAML list ({exc})") from None
        grid[path.strip()] = values
    return grid


@app.command()
def sweep(
    scenario: ScenarioArg,
    grid: Annotated[list[str] | None, typer.Option(help="A field and its values: feed.size=5,10,20 (repeatable).")] = None,
    replications: Annotated[int, typer.Option(help="Runs per combination (seeds base, base+1, ...).")] = 1,
    seed: Annotated[int | None, typer.Option(help="Base seed (default: the scenario's).")] = None,
    executor: Annotated[str, typer.Option(help="local (processes) or ray.")] = "local",
    workers: Annotated[int | None, typer.Option(help="Parallel runs (default: CPU count).")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for sweep.parquet (default: results/<name>-sweep).")] = None,
    keep_runs: Annotated[bool, typer.Option(help="Also keep every run's results folder.")] = False,
    metric: Annotated[str, typer.Option(help="Per-post figure to summarise.")] = "share",
    ray_address: Annotated[str | None, typer.Option(help="Address of a running Ray cluster.")] = None,
    set_: SetOption = None,
) -> None:
    """Run a scenario over a grid of field values with replications; print mean and spread per combination.

    Every finished run is kept under DIR/runs/: the same command again skips them, so an interrupted sweep is
    finished by running it again."""
    from lsbm_sim.scenario import load_scenario
    from lsbm_sim.studies.sweep import SweepFailed, check_metric, summarize
    from lsbm_sim.studies.sweep import sweep as run_sweep

    from lsbm_sim.catalog import find_scenario

    check_seed(seed)
    spec = load_scenario(find_scenario(scenario), _overrides(set_))
    parsed = _parse_grid(grid)
    check_metric(spec, parsed, metric)
    out = out if out is not None else Path("results") / f"{spec.name}-sweep"
    failure: SweepFailed | None = None
    bar: dict[str, Progress] = {}

    def advance(done: int, total: int) -> None:  # the bar starts once the sweep's arguments have been checked
        if not bar:
            bar["progress"] = Progress(TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(),
                                       TimeElapsedColumn(), console=console)  # fmt: skip
            bar["progress"].start()
            bar["task"] = bar["progress"].add_task("runs", total=total)
        bar["progress"].update(bar["task"], completed=done, total=total)

    try:
        table = run_sweep(
            spec, parsed, replications=replications, seed=seed, executor=executor, workers=workers,
            out=out, keep_runs=keep_runs, ray_address=ray_address, progress=advance,
        )  # fmt: skip
    except SweepFailed as exc:
        failure, table = exc, exc.table
    finally:
        if bar:
            bar["progress"].stop()
    summary = summarize(table, metric)
    show = Table(title=f"{spec.name}: {metric} per post ({replications} replications, 95% intervals)")
    for column in summary.columns:
        show.add_column(column.removeprefix("param:"), justify="right")
    for row in summary.itertuples(index=False):
        show.add_row(*[f"{v:.3g}" if isinstance(v, float) else str(v) for v in row])
    Console(width=None if sys.stdout.isatty() else 160).print(show)
    if summary.attrs.get("baseline"):
        console.print(f"diff: paired difference from {_params_text(summary.attrs['baseline'])}, run by run (common random numbers)")
    for name in summary.attrs.get("unchanged", []):
        values = ", ".join(str(v) for v in parsed[name])
        console.print(
            f"note: {name} changed no result: the runs with {name} = {values} agree figure for figure "
            "(on this scenario the parameter has no effect)"
        )
    console.print(f"sweep table: {out / 'sweep.parquet'}")
    if failure is not None:
        console.print(f"[bold red]error:[/] {escape(str(failure))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command()
def replicate(
    names: Annotated[list[str] | None, typer.Argument(help="Replications to run (shipped names or files; default: all).")] = None,
    replications: Annotated[int | None, typer.Option(help="Seeds per arm (default: each file's).")] = None,
    out: Annotated[Path | None, typer.Option(help="Keep the runs and replications.parquet here (a rerun reuses them).")] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel runs (default: CPU count).")] = None,
    plot: Annotated[Path | None, typer.Option(help="Save the plot of published against simulated effects (PNG, SVG, PDF).")] = None,
    list_: Annotated[bool, typer.Option("--list", help="List the shipped replications and stop.")] = False,
    set_: SetOption = None,
) -> None:
    """Landmark experiments reproduced in silico: each experiment's published effect [interval] beside the
    simulated effect [95% interval, paired over seeds], whether they agree, and whether the experiment fitted a
    coefficient of the default head or only checks it."""
    from lsbm_sim.studies.replications import load_replication, plot_replications, published_text, describe_effect
    from lsbm_sim.studies.replications import replicate as run_replications
    from lsbm_sim.studies.replications import shipped_replications

    if list_:
        table = Table(title="Shipped replications (lsbm-sim replicate NAME runs one)")
        for column in ("name", "role", "published", "title"):
            table.add_column(column, no_wrap=column == "name")
        for name in shipped_replications():
            rep = load_replication(name)
            row = {"published": rep.published.effect if rep.published.effect is not None else float("nan"),
                   "published_low": rep.published.low if rep.published.low is not None else float("nan"),
                   "published_high": rep.published.high if rep.published.high is not None else float("nan"),
                   "published_interval": rep.published.interval, "published_direction": rep.published.direction or "",
                   "checked": rep.published.checked}  # fmt: skip
            role = f"fit: {rep.fits.coefficient} ({rep.fits.reaction})" if rep.fits else "check"
            table.add_row(name, role, published_text(row), rep.title)
        Console(width=None if sys.stdout.isatty() else 160).print(table)
        return
    if replications is not None and replications < 2:
        raise LsbmError(f"--replications {replications}: an interval needs at least 2 replications")
    bar: dict = {}

    def advance(name: str, done: int, total: int) -> None:  # one bar per experiment, started as its runs start
        if "progress" not in bar:
            bar["progress"] = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                       TimeElapsedColumn(), console=console)  # fmt: skip
            bar["progress"].start()
        if name not in bar:
            bar[name] = bar["progress"].add_task(name, total=total)
        bar["progress"].update(bar[name], completed=done, total=total)

    try:
        table = run_replications(names, replications=replications, out=out, overrides=_overrides(set_),
                                 workers=workers, progress=advance)  # fmt: skip
    finally:
        if "progress" in bar:
            bar["progress"].stop()
    show = Table(title="Landmark experiments in silico (simulated: 95% interval, paired bootstrap over seeds)")
    for column in ("experiment", "published", "simulated", "agree", "role", "runs"):
        show.add_column(column, justify="left" if column in ("experiment", "role") else "right")
    for _, row in table.iterrows():
        role = f"fit: {row['fits']}" if row["role"] == "fit" else "check"
        show.add_row(row["experiment"], published_text(row),
                     describe_effect(row["simulated"], row["simulated_low"], row["simulated_high"]),
                     "yes" if row["agree"] else "no", role, f"{row['runs']}")  # fmt: skip
    Console(width=None if sys.stdout.isatty() else 160).print(show)
    if not table["checked"].all():
        console.print("* a published figure not re-checked against the paper here (the replication file says why)")
    if plot is not None:
        plot_replications(table, plot)
        console.print(f"plot: {plot}")
    if out is not None:
        console.print(f"table: {out / 'replications.parquet'}")


def _params_text(params: dict) -> str:
    return ", ".join(f"{k.removeprefix('param:')}={v}" for k, v in params.items())


@app.command()
def compare(
    run_or_sweep: Annotated[Path, typer.Argument(help="A results folder, a sweep folder or any cascade file.")],
    real: Annotated[Path | None, typer.Option(help="Real cascades: twitter-layout trees, a tree CSV, event sequences, sizes, a run.")] = None,
    impressions: Annotated[Path | None, typer.Option(help="Real per-post impressions: a Twitter Analytics or Facebook Insights export, or post_id,impressions,likes,shares,comments.")] = None,
    min_size: Annotated[int | None, typer.Option(help="Compare cascades of this many nodes and more on both sides (default: the real data's smallest).")] = None,
    min_shares: Annotated[int, typer.Option(help="Shares a cascade needs for the median shares per follower.")] = 50,
    json_: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON (for scripts).")] = False,
    out: Annotated[Path | None, typer.Option(help="Report folder (default: <RUN_OR_SWEEP>-compare beside it).")] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the intervals.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap and of the real-data halvings.")] = 0,
) -> None:
    """Simulated against real: cascades (KS distances, overall and at matched size, with the real floor) and
    rates per impression (pooled rates, per-post distributions, posts with none)."""
    import json

    from lsbm_sim.analysis.compare import compare as compare_cascades
    from lsbm_sim.analysis.impressions import compare_rates, load_impressions

    if real is None and impressions is None:
        raise LsbmError("give --real (cascades), --impressions (per-post impressions) or both")
    result = compare_cascades(run_or_sweep, real, bootstrap=bootstrap, seed=seed, min_size=min_size,
                              min_shares=min_shares) if real is not None else None  # fmt: skip
    rates = compare_rates(_run_items(run_or_sweep), load_impressions(impressions), seed=seed) if impressions else None
    folder = out if out is not None else run_or_sweep.with_name(f"{run_or_sweep.name}-compare")
    if rates is not None and (out is not None or not json_):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "rates.json").write_text(json.dumps(rates.to_dict(), indent=2, default=str))
    if json_:
        if out is not None and result is not None:
            result.report(out)
        document = result.to_dict() if result is not None else {}
        if rates is not None:
            document["rates"] = rates.to_dict()
        print(json.dumps(document, indent=2, default=str))
        return
    wide = Console(width=None if sys.stdout.isatty() else 160)

    def fmt(value: float, low: float = float("nan"), high: float = float("nan"), digits: int = 3) -> str:
        if value != value:  # NaN: not comparable (a metric one side lacks; matched size for size itself)
            return "-"
        return f"{value:.{digits}g}" + (f" ({low:.2f}-{high:.2f})" if low == low else "")

    if result is not None:
        report = result.report(folder)
        show = Table(title=f"{run_or_sweep} vs {real}: KS distance (95% bootstrap interval) | real-vs-real floor")
        for column in ("metric", "overall", "floor", "matched size", "floor ", "n sim", "n real"):
            show.add_column(column, justify="left" if column == "metric" else "right")
        for r in result.table.itertuples(index=False):
            show.add_row(r.metric, fmt(r.ks_overall, r.ks_overall_low, r.ks_overall_high), fmt(r.floor_overall),
                         fmt(r.ks_matched, r.ks_matched_low, r.ks_matched_high), fmt(r.floor_matched),
                         str(r.n_sim), str(r.n_real))  # fmt: skip
        wide.print(show)
        above = [r.metric for r in result.table.itertuples(index=False)
                 if any(low > value for value, low in ((r.ks_overall, r.ks_overall_low), (r.ks_matched, r.ks_matched_low)))]  # fmt: skip
        if above:
            console.print(
                f"note: {', '.join(above)}: the interval lies above the distance itself. A KS distance between "
                "resampled sets is biased upward (resampling adds noise two close samples do not have), so when the two "
                "sides are this close the interval reads 'within sampling noise of this'; the floor column is the "
                "yardstick.", soft_wrap=True, highlight=False,
            )  # fmt: skip
        if result.reach is not None:
            reach = Table(title=f"shares per follower of author and sharers (median over cascades with >= {min_shares} shares)")
            for column in ("figure", "simulated", "real", "log(sim/real)"):
                reach.add_column(column, justify="left" if column == "figure" else "right")
            for r in result.reach.itertuples(index=False):
                reach.add_row(r.figure, fmt(r.sim), fmt(r.real), fmt(r.log_ratio))
            wide.print(reach)
        console.print(f"size cut: {result.settings['size cut']} | half_time: {result.settings['half_time']}")
        console.print(f"report: {report}")
    if rates is not None:
        show = Table(title=f"{run_or_sweep} vs {impressions}: rates per impression (score {rates.score():.3f})")
        for column in ("figure", "simulated", "real", "log(sim/real)", "KS", "floor", "sim - real"):
            show.add_column(column, justify="left" if column == "figure" else "right")
        for r in rates.table.itertuples(index=False):
            show.add_row(r.figure, fmt(r.sim), fmt(r.real), fmt(r.log_ratio), fmt(r.ks), fmt(r.floor), fmt(r.difference))
        wide.print(show)
        console.print(f"real posts: {rates.settings['real kept']} | not compared: {rates.settings['not compared']}")
        console.print(f"rates: {folder / 'rates.json'}")


def _run_items(path: Path):
    """The per-post table of a results folder or a sweep folder (rows per post), or an impressions file."""
    import pandas as pd

    from lsbm_sim.errors import DataError
    from lsbm_sim.analysis.impressions import load_impressions

    if (path / "sweep.parquet").is_file() and not (path / "manifest.json").is_file():
        table = pd.read_parquet(path / "sweep.parquet")
        if "author" in table.columns:
            raise DataError(f"{path}: a sweep kept per cascade tree has no per-post impressions; sweep per post")
        table.attrs["source"] = str(path)
        return table
    if path.is_dir() and (path / "manifest.json").is_file():
        from lsbm_sim.analysis.results import load_results

        items = load_results(path).items
        items.attrs["source"] = str(path)
        return items
    return load_impressions(path)


@app.command()
def calibrate(
    scenario: ScenarioArg,
    param: Annotated[list[str], typer.Option(help="A field and its range: behavior.p=0.01..0.3 (:log; repeatable).")],
    trials: Annotated[int, typer.Option(help="Finished trials wanted (a rerun resumes the study).")] = 30,
    replications: Annotated[int, typer.Option(help="Runs per trial (seeds base, base+1, ...: the same in every trial).")] = 2,
    workers: Annotated[int | None, typer.Option(help="Parallel runs (default: CPU count).")] = None,
    executor: Annotated[str, typer.Option(help="local (processes) or ray.")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="Address of a running Ray cluster.")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for the study (default: results/<name>-calibration).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the sampler and of the fit/check split.")] = 0,
    real: Annotated[Path | None, typer.Option(help="Real cascades to fit (split into fit and check halves).")] = None,
    impressions: Annotated[Path | None, typer.Option(help="Real per-post impressions to fit rates per impression to (split too).")] = None,
    min_size: Annotated[int | None, typer.Option(help="Compare cascades of this many nodes and more (default: the real data's smallest).")] = None,
    set_: SetOption = None,
) -> None:
    """Fit scenario fields to real cascades and/or real rates per impression (Optuna TPE; the study resumes
    from OUT/study.db)."""
    from lsbm_sim.studies.calibrate import Param
    from lsbm_sim.studies.calibrate import calibrate as run_calibration
    from lsbm_sim.scenario import load_scenario

    spec = load_scenario(scenario, _overrides(set_))
    params = [Param.parse(p) for p in param]  # a malformed range fails before the progress bar
    if real is None and impressions is None:
        raise LsbmError("give --real (cascades), --impressions (per-post impressions) or both to calibrate to")
    out = out if out is not None else Path("results") / f"{spec.name}-calibration"
    with Progress(TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=console) as bar:  # fmt: skip
        task = bar.add_task("", total=trials)
        result = run_calibration(
            spec, real, params, trials=trials, replications=replications, out=out, executor=executor, workers=workers,
            ray_address=ray_address, seed=seed, impressions=impressions, min_size=min_size,
            progress=lambda done, total, value: bar.update(task, completed=done, description=f"last score {value:.3f}"),
        )  # fmt: skip
    best = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.best.items())
    console.print(f"best: {best} | score {result.fit_score:.3f} on the fit half, {result.check_score:.3f} on the check half")
    console.print(f"scenario: {result.scenario_path} | report: {result.report_path} | study: {out / 'study.db'}")


@app.command()
def explain(
    text: Annotated[str, typer.Argument(help="The post text to explain.")],
    persona: Annotated[str | None, typer.Option(help="Persona text (default: the scenario's typical person).")] = None,
    scenario: Annotated[Path | None, typer.Option(help="Use this scenario's behavior model and typical persona.")] = None,
    edit: Annotated[list[str] | None, typer.Option(help="A counterfactual edit OLD=>NEW (repeatable).")] = None,
    outcome: Annotated[str | None, typer.Option(help="Colour the words by their effect on this (default: engaged).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the explanation as JSON.")] = False,
) -> None:
    """Which words raise or lower each reaction's probability (leave-one-word-out, one batched model call)."""
    import json

    from lsbm_sim.studies.explain import explain as explain_text
    from lsbm_sim.studies.explain import render_explanation

    result = explain_text(text, persona=persona, scenario=scenario, edits=edit or ())
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        render_explanation(result, Console(width=None if sys.stdout.isatty() else 160), outcome)


@app.command()
def optimize(
    scenario: ScenarioArg,
    post: Annotated[str, typer.Option(help="Id of the post whose text is varied.")],
    variants: Annotated[Path, typer.Option(help="Variants: .txt (one per line), .csv or .jsonl (a 'text' field).")],
    replications: Annotated[int, typer.Option(help="Runs per variant (seeds base, base+1, ... for every variant).")] = 20,
    metric: Annotated[str, typer.Option(help="Figure that names the winner.")] = "engagement",
    seed: Annotated[int | None, typer.Option(help="Base seed (default: the scenario's).")] = None,
    workers: Annotated[int | None, typer.Option(help="Parallel runs (default: CPU count).")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for the table and plot (default: results/<name>-optimize).")] = None,
    set_: SetOption = None,
) -> None:
    """Simulate every variant of a post with common random numbers; name a winner only if significantly better."""
    from lsbm_sim.studies.optimize import find_post, read_variants, render_optimization
    from lsbm_sim.studies.optimize import optimize as optimize_post
    from lsbm_sim.scenario import load_scenario

    spec = load_scenario(scenario, _overrides(set_))
    find_post(spec, post)  # a wrong id or a bad file fails before any run
    texts = read_variants(variants)
    out = out if out is not None else Path("results") / f"{spec.name}-optimize"
    with Progress(TextColumn("[bold]runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("runs", total=None)
        result = optimize_post(
            spec, post, texts, replications=replications, metric=metric, seed=seed, workers=workers, out=out,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )  # fmt: skip
    render_optimization(result, Console(width=None if sys.stdout.isatty() else 160))
    console.print(f"table and plot: {out}")


@app.command("app")
def app_command(
    scenario: Annotated[
        Path | None, typer.Argument(help="Scenario to open first: a file or a shipped scenario's name.")
    ] = None,
    port: Annotated[int, typer.Option(help="Port of the page.")] = 8765,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    set_: SetOption = None,
) -> None:
    """Open the interactive page (Mesa's SolaraViz): step a scenario and watch posts spread."""
    import json
    import socket
    import subprocess

    from lsbm_sim.catalog import find_scenario

    with socket.socket() as probe:  # a port in use fails here, as one line, not after the server has started
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise LsbmError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror or exc}); choose another port") from None
    if scenario is not None or set_:
        from lsbm_sim.catalog import shipped_scenarios
        from lsbm_sim.engine.validate import check_scenario

        path = find_scenario(scenario) if scenario is not None else shipped_scenarios()["eco_product_launch"]
        check_scenario(path, _overrides(set_))  # a bad scenario fails here, with the usual message, not inside the page
        os.environ["LSBM_APP_SCENARIO"] = str(path.resolve())
        os.environ["LSBM_APP_SET"] = json.dumps(_overrides(set_))
    os.environ.setdefault("SOLARA_TELEMETRY_MIXPANEL_ENABLE", "False")
    page = Path(__file__).with_name("app.py")
    raise typer.Exit(subprocess.call([sys.executable, "-m", "solara", "run", str(page), "--host", host, "--port", str(port)]))


def _register_optional_commands() -> None:
    """Commands whose modules carry heavier imports; each module provides its typer command or app."""
    try:
        from lsbm_sim.serve import serve_command

        app.command("serve")(serve_command)
    except ImportError:
        pass
    try:
        from lsbm_sim.studies.distill import distill_command

        app.command("distill")(distill_command)
    except ImportError:
        pass
    try:
        from lsbm_sim.bft.cli import bft_app

        app.add_typer(bft_app, name="bft", help="Behavior instruction fine-tuning: prepare, train, eval.")
    except ImportError:
        pass
    from lsbm_sim.behavior.appeal_cli import appeal_app

    app.add_typer(appeal_app, name="appeal", help="Content appeal learned from real A/B tests: rebuild the read-out.")


_register_optional_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and return its exit code. User errors become one line and exit code 2; Ctrl-C
    and SIGTERM stop the command (a run at the end of its step), say what was kept, and exit 130 and 143."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _log_to_console()
    with interrupts.handle_signals():
        try:
            code = app(args=argv, standalone_mode=False)
        except LsbmError as exc:
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            return 2
        except interrupts.Interrupted as exc:
            kept = getattr(exc, "kept", None)
            console.print(f"interrupted by {exc.name}" + (f": {escape(kept)}" if kept else ""), highlight=False)
            return exc.exit_code
        except KeyboardInterrupt:
            console.print("interrupted")
            return 130
        except typer.Exit as exc:
            return exc.exit_code
        except typer.Abort:
            return 1
        except Exception as exc:
            # The command line's own usage errors (a missing argument, an unknown option) know how to show
            # themselves and carry exit code 2. (typer >= 0.20 vendors click; older typer raises click's classes.)
            if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
                exc.show()
                return exc.exit_code
            raise
    # A command returns None when it succeeds; typer returns an Exit's code (a command's failure, or 130 for a
    # Ctrl-C it caught itself) instead of raising it.
    return code if isinstance(code, int) else 0


def _log_to_console() -> None:
    """The package's warnings (a stale staging folder removed, say) as one line each on stderr."""
    import logging

    class CurrentStderr(logging.StreamHandler):
        """Writes to whatever sys.stderr is when a line is logged (a caller that redirects stderr after the
        first command, as a notebook or a test does, still gets the lines)."""

        @property
        def stream(self):
            return sys.stderr

        @stream.setter
        def stream(self, value):
            pass

    logger = logging.getLogger("lsbm_sim")
    if not any(getattr(h, "_lsbm_cli", False) for h in logger.handlers):
        handler = CurrentStderr()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        handler.setLevel(logging.WARNING)
        handler._lsbm_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
