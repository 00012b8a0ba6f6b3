"""Full-prompt vs factorized vs hybrid language-model scoring on the living platform (`platform_day`).

The teacher is a tiny random Llama on the CPU, made here (nothing is downloaded), read as a level checkpoint:
its prompt shows the persona, the social context and the post, as the default prompt does, and its
low/medium/high answer becomes a share probability (`lsbm_behavior.json`), so the platform's share rates stay
in the range of the default model's. Steps:

1. distil a factorized head from the teacher on `--sample` questions of the scenario (`lsbm-sim distill
   --student factorized`), report held-out agreement;
2. run the scenario with the full prompt, the factorized head and a hybrid population (`--hybrid-share` of the
   people, the most followed, through the full prompt), each in a fresh process, and count language-model rows
   (prompts scored + texts encoded), wall time, exposures and outcomes;
3. compare the outcomes of the three at the size where all three ran: share rate per exposure and shares per
   post, with 95% intervals.

    python benchmarks/bench_factorized.py                                  # 100k x 24; full prompt at 10k x 24
    python benchmarks/bench_factorized.py --people 20000 --full-people 5000 --steps 12   # a quick look
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, fmt_seconds, in_child, peak_rss_gb, print_command, print_machine

HERE = Path(__file__).resolve()
SCENARIO = ROOT / "scenarios" / "platform_day.yaml"
LEVELS = ("low", "medium", "high")
LEVEL_RATES = {"low": 0.002, "medium": 0.02, "high": 0.08}
PROMPT = "Persona: {persona}\nContext: {context}\nText: '{content}' Predict the {behavior} level ({options}):"
# Weights drawn wider than a fresh model's (initializer_range 0.02) make the random model's answers depend on
# the question: its share probability spans 0.3%-7% across the scenario's questions (5th-95th percentile).
INITIALIZER_RANGE = 0.3
TEMPERATURE = 1.0


def make_teacher(folder: Path) -> Path:
    from lsbm_sim.behavior.checkpoint import BehaviorCheckpoint
    from lsbm_sim.behavior.prompts import behavior_token
    from lsbm_sim.behavior.tiny_models import save_tiny_checkpoint

    save_tiny_checkpoint(folder, extra_tokens=[behavior_token(x) for x in LEVELS], seed=2,
                         initializer_range=INITIALIZER_RANGE)
    BehaviorCheckpoint(behavior="shares", levels=list(LEVELS), level_rates=LEVEL_RATES, reaction="share",
                       prompt=PROMPT, behavior_tokens=True).write(folder)  # fmt: skip
    return folder


def overrides(people: int, steps: int, model: Path, mode: str, head: Path | None, hybrid_share: float) -> list[str]:
    sets = [f"population.size={people}", f"steps={steps}", "behavior.backend=hf", f"behavior.model={model}",
            f"behavior.temperature={TEMPERATURE}", "behavior.cache=null"]  # fmt: skip
    if mode in ("factorized", "hybrid"):
        sets.append(f"behavior.factorized.head={head}")
    if mode == "hybrid":
        sets += [f"behavior.factorized.full_prompt.share={hybrid_share}", "behavior.factorized.full_prompt.select=most_followed"]
    return sets


def worker(args: argparse.Namespace) -> dict:
    """One run in this process; prints its counts and outcomes."""
    started = time.perf_counter()
    import os

    from lsbm_sim import SocialModel

    with tempfile.TemporaryDirectory() as folder:
        os.environ["LSBM_CACHE"] = folder  # a cold text-vector cache: every run pays for its own texts
        model = SocialModel(SCENARIO, events_path=Path(folder) / "events.parquet",
                            overrides=overrides(args.n, args.steps, args.model, args.mode, args.head, args.hybrid_share))  # fmt: skip
        built = time.perf_counter()
        model.run()
        ran = time.perf_counter()
        result = model.result()
    stats = dict(model.behavior.stats)
    broker = model.broker.stats.as_dict()
    prompts = int(stats.get("prompts", 0))
    texts = int(stats.get("texts_encoded", 0))
    shares_per_post = result.items["share"].to_numpy()
    return {
        "mode": args.mode,
        "n": args.n,
        "steps": args.steps,
        "setup_s": built - started,
        "steps_s": ran - built,
        "model_s": broker["model_seconds"],
        "encode_s": stats.get("text_seconds", 0.0),
        "decisions": broker["decisions"],
        "distinct_questions": broker["unique_queries"],
        "prompts_scored": prompts,
        "texts_encoded": texts,
        "lm_rows": prompts + texts,
        "head_rows": int(stats.get("head_rows", 0)),
        "full_prompt_people": int(stats.get("full_prompt_people", args.n if args.mode == "full" else 0)),
        "exposures": int(model.events.exposures),
        "posts": len(model.item_ids),
        "shares": int(shares_per_post.sum()),
        "shares_per_post": shares_per_post.tolist(),
        "peak_rss_gb": peak_rss_gb(),
    }


def rate_interval(k: int, n: int) -> tuple[float, float, float]:
    """A rate and its 95% Wilson interval."""
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    p, z = k / n, 1.96
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, centre - half, centre + half


def mean_interval(values: list[float], seed: int = 0, draws: int = 2000) -> tuple[float, float, float]:
    """A mean and its 95% bootstrap interval."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    means = x[np.random.default_rng(seed).integers(0, len(x), size=(draws, len(x)))].mean(axis=1)
    return float(x.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def difference_interval(run: dict, full: dict) -> tuple[float, float, float]:
    """Share rate per exposure of `run` minus the full prompt's, with a 95% normal interval (independent runs)."""
    p1, p0 = run["shares"] / run["exposures"], full["shares"] / full["exposures"]
    se = np.sqrt(p1 * (1 - p1) / run["exposures"] + p0 * (1 - p0) / full["exposures"])
    return p1 - p0, p1 - p0 - 1.96 * se, p1 - p0 + 1.96 * se


def report_tables(rows: list[dict], full_people: int, steps: int) -> None:
    print()
    print("| scoring | people x steps | decisions | distinct questions | prompts scored | texts encoded | LM rows "
          "| LM rows per exposure | steps s | LM s | peak GB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        label = r["mode"] + (f" ({r['full_prompt_people']:,} people full)" if r["mode"] == "hybrid" else "")
        print(f"| {label} | {r['n']:,} x {r['steps']} | {r['decisions']:,} | {r['distinct_questions']:,} "
              f"| {r['prompts_scored']:,} | {r['texts_encoded']:,} | {r['lm_rows']:,} "
              f"| {r['lm_rows'] / max(r['exposures'], 1):.4f} | {fmt_seconds(r['steps_s'])} "
              f"| {fmt_seconds(r['model_s'])} | {r['peak_rss_gb']:.2f} |")  # fmt: skip

    same_size = [r for r in rows if r["n"] == full_people]
    full_run = next((r for r in same_size if r["mode"] == "full"), None)
    print()
    print(f"Outcomes at {full_people:,} x {steps} (95% intervals: Wilson for the rate, bootstrap over posts "
          "for shares per post):")  # fmt: skip
    print()
    print("| scoring | exposures | share rate per exposure | difference from full prompt | shares per post |")
    print("|---|---|---|---|---|")
    for r in same_size:
        p, lo, hi = rate_interval(r["shares"], r["exposures"])
        m, mlo, mhi = mean_interval(r["shares_per_post"])
        d, dlo, dhi = difference_interval(r, full_run) if full_run is not None and r is not full_run else (0, 0, 0)
        diff = f"{100 * d:+.3f} ({100 * dlo:+.3f} to {100 * dhi:+.3f}) points" if r is not full_run else "-"
        print(f"| {r['mode']} | {r['exposures']:,} | {100 * p:.3f}% ({100 * lo:.3f}-{100 * hi:.3f}) | {diff} "
              f"| {m:.3f} ({mlo:.3f}-{mhi:.3f}) |")  # fmt: skip
    full = next((r for r in same_size if r["mode"] == "full"), None)
    if full is not None:
        per_exposure = full["lm_rows"] / max(full["exposures"], 1)
        print()
        for r in rows:
            if r is not full and r["lm_rows"]:
                ratio = per_exposure / (r["lm_rows"] / max(r["exposures"], 1))
                print(f"- {r['mode']} at {r['n']:,} x {r['steps']}: {ratio:,.0f}x fewer LM rows per exposure than the full "
                      f"prompt at {full['n']:,} x {full['steps']} ({per_exposure:.3f} rows per exposure)")  # fmt: skip


def distil(model: Path, head: Path, people: int, steps: int, sample: int) -> dict:
    from lsbm_sim.behavior.hf import HFScorer
    from lsbm_sim.studies.distill import distill_factorized_queries
    from lsbm_sim.engine.runner import sample_queries

    started = time.perf_counter()
    queries = sample_queries(SCENARIO, sample, seed=0, overrides=[f"population.size={people}", f"steps={steps}"])
    sampled = time.perf_counter()
    teacher = HFScorer(model, temperature=TEMPERATURE)
    report = distill_factorized_queries(teacher, queries, head, seed=0, holdout=0.2)
    report["sample_s"] = sampled - started
    report["fit_s"] = time.perf_counter() - sampled
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--full-people", type=int, default=10_000, help="size of the full-prompt run (slow on CPUs)")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--sample", type=int, default=4000)
    parser.add_argument("--hybrid-share", type=float, default=0.01)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--report", type=Path, default=None, help="print the tables of a saved --json file")
    parser.add_argument("--json", type=Path, default=None, help="also write every run's figures here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--head", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.report:
        saved = json.loads(args.report.read_text())
        report_tables(saved["runs"], args.full_people, args.steps)
        return
    if args.worker:
        print(json.dumps(worker(args)))
        return

    print_machine()
    print_command()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model = make_teacher(folder / "teacher")
        head = folder / "head.json"
        report = distil(model, head, args.full_people, args.steps, args.sample)
        held, mean = report["heldout"], report["heldout_mean_answer"]
        print(f"# distilled on {report['fit_rows']} questions ({report['questions']} sampled from platform_day at "
              f"{args.full_people:,} x {args.steps}) in {report['sample_s'] + report['fit_s']:.0f} s; held-out "
              f"{held['rows']}: mean KL {held['mean_kl']:.5f} nats (teacher's mean answer {mean['mean_kl']:.5f}), "
              f"argmax {held['argmax_accuracy']:.3f}", flush=True)  # fmt: skip
        plan = [("full", args.full_people), ("factorized", args.full_people), ("hybrid", args.full_people)]
        if args.people != args.full_people:
            plan += [("factorized", args.people), ("hybrid", args.people)]
        rows = []
        for mode, n in plan:
            got = in_child(HERE, ["--worker", "--mode", mode, "--n", str(n), "--steps", str(args.steps), "--model",
                                  str(model), "--head", str(head), "--hybrid-share", str(args.hybrid_share)],
                           args.timeout)  # fmt: skip
            if got is None:
                print(f"{mode} n = {n:,}: stopped after {args.timeout:.0f} s", flush=True)
                continue
            print(f"{mode} n = {n:,}: " + json.dumps({k: v for k, v in got.items() if k != "shares_per_post"}), flush=True)
            rows.append(got)
            if args.json:
                args.json.write_text(json.dumps({"distillation": report, "runs": rows}, default=str))

    report_tables(rows, args.full_people, args.steps)


if __name__ == "__main__":
    main()
