"""`lsbm-sim distill`: fit a small head to a language model's answers.

A language model answers a few thousand of the questions a scenario's agents are asked; the surrogate's small
head (see `behavior/surrogate.py`) is fitted to those answers and checked on questions it was not fitted on.
The head is then a cheap stand-in for the teacher: a scenario with millions of agents uses it as

    behavior:
      backend: surrogate
      head: heads/lsbm-3b.json

    lsbm-sim distill --teacher '{backend: hf, model: /models/lsbm-3b}' --scenario scenarios/eco_product_launch.yaml \\
        --sample 4000 --out heads/lsbm-3b.json

With `--student factorized` the head reads the teacher's own text vectors instead of the sentence encoder's
(`behavior/factorized.py`): the language model still encodes each persona and post once in a run, and the
scenario names the head as `behavior: {backend: hf, model: /models/lsbm-3b, factorized: {head: PATH}}`.

>>> report = distill({"backend": "hf", "model": "/models/lsbm-3b"}, "scenarios/eco.yaml", 4000, "head.json")  # doctest: +SKIP
>>> report["heldout"]["mean_kl"], report["heldout"]["argmax_accuracy"]  # doctest: +SKIP
(0.004, 0.97)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import typer
import yaml

from lsbm_sim.behavior import make_behavior_model
from lsbm_sim.behavior.base import BehaviorModel, QueryBatch, check_probabilities
from lsbm_sim.errors import LsbmError

if TYPE_CHECKING:  # the command line imports this module to list `distill`; the schema and the head load when it runs
    from lsbm_sim.behavior.surrogate import SurrogateModel
    from lsbm_sim.scenario import BehaviorSpec, Scenario

STUDENTS = ("surrogate", "factorized")

TEACHER_ROWS_PER_CALL = 4096
"""Questions sent to the teacher at once (bounds the memory of one call; the teacher batches further)."""


def teacher_spec(teacher: BehaviorSpec | dict[str, Any] | str | Path, reactions: Sequence[str]) -> tuple[BehaviorSpec, Callable[[str], Path]]:
    """The teacher's behavior spec and the function resolving its relative paths.

    `teacher`: a BehaviorSpec, a mapping, a YAML/JSON mapping string ('{backend: hf, model: PATH}') or a YAML file
    holding such a mapping, at top level or under `behavior:`. Reactions default to the scenario's. Paths in a
    file resolve against the file's folder, others against the current folder.

    >>> spec, _ = teacher_spec("{backend: constant, probabilities: {like: 0.2}}", ["ignore", "like"])
    >>> spec.backend, spec.reactions
    ('constant', ['ignore', 'like'])
    """
    from pydantic import ValidationError

    from lsbm_sim.scenario import BehaviorSpec, format_validation_error

    base = Path.cwd()
    source = "--teacher"
    if isinstance(teacher, BehaviorSpec):
        return teacher, _resolver(base)
    if isinstance(teacher, Path) or (isinstance(teacher, str) and _is_file(teacher)):
        path = Path(teacher).expanduser()
        if not path.is_file():
            raise LsbmError(f"--teacher: file not found: {path}")
        text, source, base = path.read_text(encoding="utf-8"), str(path), path.resolve().parent
        data = _parse(text, source)
    elif isinstance(teacher, str):
        data = _parse(teacher, source)
    else:
        data = dict(teacher)
    if isinstance(data, dict) and isinstance(data.get("behavior"), dict):
        data = data["behavior"]
    if not isinstance(data, dict):
        raise LsbmError(f"{source}: a teacher is a mapping such as '{{backend: hf, model: PATH}}'")
    data = {"reactions": list(reactions), **data}
    try:
        spec = BehaviorSpec.model_validate(data)
    except ValidationError as exc:
        raise LsbmError(format_validation_error(exc, source).replace(f"{source}: ", f"{source}: behavior.", 1)) from None
    return spec, _resolver(base)


def _is_file(text: str) -> bool:
    stripped = text.strip()
    return not stripped.startswith("{") and (stripped.endswith((".yaml", ".yml", ".json")) or Path(stripped).is_file())


def _parse(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LsbmError(f"{source}: not a valid YAML/JSON mapping ({getattr(exc, 'problem', exc)})") from None


def _resolver(base: Path) -> Callable[[str], Path]:
    def resolve(p: str | Path) -> Path:
        path = Path(p).expanduser()
        return path if path.is_absolute() else base / path

    return resolve


def teacher_probabilities(teacher: BehaviorModel, queries: QueryBatch) -> np.ndarray:
    """The teacher's answer for every query, asked in chunks and checked."""
    name = type(teacher).__name__
    parts = []
    for start in range(0, len(queries), TEACHER_ROWS_PER_CALL):
        rows = np.arange(start, min(start + TEACHER_ROWS_PER_CALL, len(queries)))
        parts.append(check_probabilities(teacher.predict_proba(queries.take(rows)), len(rows), teacher.reactions, name))
    return np.concatenate(parts)


def agreement(teacher: np.ndarray, student: np.ndarray) -> dict[str, float]:
    """Mean KL(teacher || student) in nats and how often both put their highest probability on one reaction.

    >>> agreement(np.array([[0.5, 0.5]]), np.array([[0.5, 0.5]]))
    {'mean_kl': 0.0, 'argmax_accuracy': 1.0, 'rows': 1}
    """
    p = np.clip(np.asarray(teacher, dtype=np.float64), 1e-12, 1.0)
    q = np.clip(np.asarray(student, dtype=np.float64), 1e-12, 1.0)
    kl = (p * (np.log(p) - np.log(q))).sum(axis=1)
    same = teacher.argmax(axis=1) == student.argmax(axis=1)
    return {"mean_kl": float(kl.mean()), "argmax_accuracy": float(same.mean()), "rows": int(len(p))}


def split_rows(n: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random (fit rows, held-out rows); at least one of each when n >= 2."""
    if not 0.0 < holdout < 1.0:
        raise LsbmError(f"--holdout must lie strictly between 0 and 1, got {holdout}")
    if n < 2:
        raise LsbmError(f"distillation needs at least 2 distinct questions, the scenario gave {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_hold = min(max(1, int(round(holdout * n))), n - 1)
    return np.sort(order[n_hold:]), np.sort(order[:n_hold])


def distill_queries(
    teacher_model: BehaviorModel,
    queries: QueryBatch,
    out: Path | str,
    seed: int = 0,
    holdout: float = 0.2,
    student: SurrogateModel | None = None,
) -> dict[str, Any]:
    """Fit a surrogate head to the teacher's answers on `queries`, save it to `out`, report the agreement."""
    from lsbm_sim.behavior.surrogate import SurrogateModel

    reactions = tuple(teacher_model.reactions)
    probs = teacher_probabilities(teacher_model, queries)
    fit_rows, held_rows = split_rows(len(queries), holdout, seed)
    student = student if student is not None else SurrogateModel(reactions=reactions)
    if tuple(student.reactions) != reactions:
        raise LsbmError(f"the student's reactions {list(student.reactions)} differ from the teacher's {list(reactions)}")
    before = agreement(probs[held_rows], student.predict_proba(queries.take(held_rows)))
    student.fit(queries.take(fit_rows), probs[fit_rows])
    report = {
        "teacher": getattr(teacher_model, "fingerprint", None) or type(teacher_model).__name__,
        "reactions": list(reactions),
        "questions": int(len(queries)),
        "fit_rows": int(len(fit_rows)),
        "heldout_rows": int(len(held_rows)),
        "seed": int(seed),
        "teacher_mean": {r: float(v) for r, v in zip(reactions, probs.mean(axis=0))},
        "fit": agreement(probs[fit_rows], student.predict_proba(queries.take(fit_rows))),
        "heldout": agreement(probs[held_rows], student.predict_proba(queries.take(held_rows))),
        "heldout_before_fit": before,
    }
    student.fit_report = {**student.fit_report, "distilled": report}
    report["out"] = str(student.save(out))
    return report


def distill_factorized_queries(
    teacher_model: Any,
    queries: QueryBatch,
    out: Path | str,
    seed: int = 0,
    holdout: float = 0.2,
    components: int | None = None,
) -> dict[str, Any]:
    """Fit a factorized head (the teacher's text vectors + a small head) to the teacher's full-prompt answers
    on `queries`, save it to `out`, report the agreement. `teacher_model`: an `HFScorer` (its model is shared
    with the encoder, not loaded twice)."""
    from lsbm_sim.behavior.factorized import DEFAULT_COMPONENTS, FactorizedHead, LMTextEncoder

    reactions = tuple(teacher_model.reactions)
    probs = teacher_probabilities(teacher_model, queries)
    fit_rows, held_rows = split_rows(len(queries), holdout, seed)
    encoder = LMTextEncoder(teacher_model)
    head = FactorizedHead.fit(queries.take(fit_rows), probs[fit_rows], encoder, reactions,
                              components=components or DEFAULT_COMPONENTS)  # fmt: skip
    report = {
        "student": "factorized",
        "teacher": teacher_model.fingerprint,
        "reactions": list(reactions),
        "questions": int(len(queries)),
        "fit_rows": int(len(fit_rows)),
        "heldout_rows": int(len(held_rows)),
        "seed": int(seed),
        "components": head.k,
        "teacher_mean": {r: float(v) for r, v in zip(reactions, probs.mean(axis=0))},
        "fit": agreement(probs[fit_rows], head.proba(queries.take(fit_rows), encoder)),
        "heldout": agreement(probs[held_rows], head.proba(queries.take(held_rows), encoder)),
        # What the head does better than knowing nothing of the question: the teacher's mean answer for all.
        "heldout_mean_answer": agreement(probs[held_rows], np.tile(probs[fit_rows].mean(axis=0), (len(held_rows), 1))),
    }
    head.fit_report = {**head.fit_report, "distilled": report}
    report["out"] = str(head.save(out))
    return report


def compare_outcomes(scenario: Scenario, teacher_model: BehaviorModel, student_model: BehaviorModel) -> dict[str, Any]:
    """Run `scenario` (its own seed) with the teacher and with the student: each reaction's rate per exposure, and
    the student's minus the teacher's with a 95% interval (normal approximation, two independent runs)."""
    from lsbm_sim.engine.runner import run

    rates: dict[str, dict[str, float]] = {}
    exposures: dict[str, int] = {}
    for name, model in (("teacher", teacher_model), ("student", student_model)):
        result = run(scenario, behavior=model)
        exposures[name] = int(result.manifest["broker"]["decisions"])
        rates[name] = {r: int(result.items[r].sum()) / max(exposures[name], 1) for r in teacher_model.reactions
                       if r != "ignore"}  # fmt: skip
    outcomes: dict[str, Any] = {"exposures": exposures, "reactions": {}}
    for reaction, p0 in rates["teacher"].items():
        p1 = rates["student"][reaction]
        se = float(np.sqrt(p0 * (1 - p0) / max(exposures["teacher"], 1) + p1 * (1 - p1) / max(exposures["student"], 1)))
        outcomes["reactions"][reaction] = {"teacher": p0, "student": p1, "difference": p1 - p0,
                                           "ci_low": p1 - p0 - 1.96 * se, "ci_high": p1 - p0 + 1.96 * se}  # fmt: skip
    return outcomes


def distill(
    teacher: BehaviorSpec | dict[str, Any] | str | Path,
    scenario: Scenario | str | Path,
    sample: int,
    out: Path | str,
    seed: int = 0,
    holdout: float = 0.2,
    overrides: Sequence[str] = (),
    student: str = "surrogate",
    compare: bool = False,
) -> dict[str, Any]:
    """Distil `teacher` into a surrogate head on a sample of `scenario`'s questions; write it to `out`.

    The sample is `sample` distinct questions the agents are asked in a run of the scenario (with the default
    surrogate); `holdout` of them are kept out of the fit and the report's "heldout" figures are computed on
    them: mean KL(teacher || student) and argmax accuracy. `student`: `surrogate` (the embedded model's head)
    or `factorized` (a head over the teacher's own text vectors; the teacher must be an hf backend). `compare`:
    also run the scenario with the teacher and with the distilled student and report each reaction's rate per
    exposure under both (`compare_outcomes`); the teacher's run costs one model row per distinct question, so
    shrink the scenario with `overrides` for a large model.
    """
    from lsbm_sim.engine.runner import sample_queries
    from lsbm_sim.scenario import load_scenario

    if sample < 2:
        raise LsbmError(f"--sample must be at least 2, got {sample}")
    scenario = load_scenario(scenario, overrides)
    reactions = scenario.behavior.reactions
    spec, resolve = teacher_spec(teacher, reactions)
    if list(spec.reactions) != list(reactions):
        raise LsbmError(f"--teacher: reactions {spec.reactions} differ from the scenario's {reactions}")
    if student not in STUDENTS:
        raise LsbmError(f"--student: {student!r} is not one of {list(STUDENTS)}")
    if student == "factorized" and (spec.backend != "hf" or spec.factorized is not None):
        raise LsbmError("--student factorized needs a full-prompt hf teacher ('{backend: hf, model: PATH}'): the head "
                        f"reads that model's hidden states; the teacher given is {spec.backend!r}"
                        f"{' with factorized set' if spec.factorized is not None else ''}")  # fmt: skip
    queries = sample_queries(scenario, sample, seed=seed)
    teacher_model = make_behavior_model(spec, _ResolveOnly(resolve))  # type: ignore[arg-type]
    fit = distill_factorized_queries if student == "factorized" else distill_queries
    try:
        report = fit(teacher_model, queries, out, seed=seed, holdout=holdout)
        if compare:
            report["outcomes"] = compare_outcomes(scenario, teacher_model, student_model(student, teacher_model, out))
    finally:
        close = getattr(teacher_model, "close", None)
        if close is not None:
            close()
    report["scenario"] = scenario.name
    report["teacher_backend"] = spec.backend
    return report


def student_model(student: str, teacher_model: Any, head: Path | str) -> BehaviorModel:
    """The distilled model as a scenario would run it (a factorized one shares the teacher's loaded model)."""
    if student == "factorized":
        from lsbm_sim.behavior.factorized import FactorizedHead, FactorizedScorer, LMTextEncoder

        return FactorizedScorer(LMTextEncoder(teacher_model), FactorizedHead.load(head), reactions=teacher_model.reactions)
    from lsbm_sim.behavior.surrogate import SurrogateModel

    return SurrogateModel.load(head)


class _ResolveOnly:
    """What make_behavior_model reads from a scenario: how to resolve the teacher's relative paths."""

    def __init__(self, resolve: Callable[[str], Path]):
        self.resolve = resolve


def distill_command(
    teacher: str = typer.Option(..., "--teacher", help="Teacher backend: a mapping such as '{backend: hf, model: "
                                "PATH}' or a YAML file with one (at top level or under behavior:)."),  # fmt: skip
    scenario: Path = typer.Option(..., "--scenario", help="Scenario whose agents' questions are sampled."),
    out: Path = typer.Option(..., "--out", help="Where to write the distilled head (JSON)."),
    sample: int = typer.Option(2000, "--sample", help="Distinct questions to ask the teacher."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample and of the held-out split."),
    holdout: float = typer.Option(0.2, "--holdout", help="Share of the sample kept out of the fit for the report."),
    set_: list[str] = typer.Option(None, "--set", help="Override a scenario field, e.g. --set steps=5 (repeatable)."),
    student: str = typer.Option("surrogate", "--student", help="surrogate (the embedded model's head) or factorized "
                                "(a head over the hf teacher's own text vectors)."),  # fmt: skip
    compare: bool = typer.Option(False, "--compare", help="Also run the scenario with the teacher and the student and "
                                 "report each reaction's rate per exposure (the teacher's run is the slow part)."),  # fmt: skip
) -> None:
    """Fit the surrogate's head to a language model's answers on a sample of a scenario's questions.

    Example: lsbm-sim distill --teacher '{backend: hf, model: /models/lsbm-3b}' --scenario s.yaml --sample 4000
    --out heads/lsbm.json. Use the head with behavior: {backend: surrogate, head: heads/lsbm.json}.
    """
    report = distill(teacher, scenario, sample, out, seed=seed, holdout=holdout, overrides=list(set_ or []),
                     student=student, compare=compare)  # fmt: skip
    for reaction, r in report.get("outcomes", {}).get("reactions", {}).items():
        typer.echo(f"{reaction} per exposure in a run of the scenario: teacher {100 * r['teacher']:.3f}%, student "
                   f"{100 * r['student']:.3f}%, difference {100 * r['difference']:+.3f} points (95% interval "
                   f"{100 * r['ci_low']:+.3f} to {100 * r['ci_high']:+.3f})")  # fmt: skip
    if student == "factorized":
        held, mean = report["heldout"], report["heldout_mean_answer"]
        typer.echo(
            f"distilled a factorized head from the hf teacher on {report['fit_rows']} questions of {report['scenario']}; "
            f"held-out ({held['rows']}): mean KL {held['mean_kl']:.4f} nats (the teacher's mean answer: "
            f"{mean['mean_kl']:.4f}), argmax accuracy {held['argmax_accuracy']:.3f}"
        )
        typer.echo(f"head: {report['out']}  (use: behavior: {{backend: hf, model: ..., factorized: {{head: {report['out']}}}}})")
        return
    held, before = report["heldout"], report["heldout_before_fit"]
    typer.echo(
        f"distilled {report['teacher_backend']} teacher on {report['fit_rows']} questions of {report['scenario']}; "
        f"held-out ({held['rows']}): mean KL {held['mean_kl']:.4f} nats (default head: {before['mean_kl']:.4f}), "
        f"argmax accuracy {held['argmax_accuracy']:.3f} (default head: {before['argmax_accuracy']:.3f})"
    )
    typer.echo(f"head: {report['out']}  (use: behavior: {{backend: surrogate, head: {report['out']}}})")
