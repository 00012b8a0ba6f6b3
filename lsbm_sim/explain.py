"""Understand and optimize content with the behavior model: which words drive a prediction, and which variant
of a post a simulated audience engages with most.

`explain(text)` asks the behavior model about the text and about every copy of it with one word left out
(occlusion), in one batch through the broker: one model call, whichever backend the scenario names (the embedded
surrogate, or a language model through transformers, vLLM or an OpenAI-compatible server). A word's effect on a
reaction is p(reaction | whole text) - p(reaction | text without the word): positive means the word raises it.
`edits` ("old=>new") ask the same about counterfactual rewrites, in the same call.

>>> e = explain("Doctors hate how simple this daily habit is")  # doctest: +SKIP
>>> e.ranking("share")[:3]  # doctest: +SKIP
[('habit', 0.0041), ('daily', 0.0017), ...]

`optimize(scenario, post, variants)` runs the scenario once per variant of one post (the original text first)
with common random numbers, through the sweep machinery: replication r of every variant uses seed base + r, so
the variants meet the same world, the same online people and the same random draws, and the paired difference
between a variant and the original over replications measures the text's effect with little noise. A winner is
named only when a paired t-test, Holm-corrected over the variants, finds it significantly better.

>>> opt = optimize("scenarios/headline_ab_test.yaml", "headline_a", ["Walk 20 minutes a day, live longer"],
...                replications=20)  # doctest: +SKIP
>>> opt.winner, opt.verdict  # doctest: +SKIP

Both are also `lsbm_sim.explain` / `lsbm_sim.optimize` and the commands `lsbm-sim explain` / `lsbm-sim optimize`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lsbm_sim.behavior.base import BehaviorModel, BehaviorQuery, QueryBatch, SocialContext
from lsbm_sim.errors import DataError, LsbmError

if TYPE_CHECKING:  # annotations only: importing lsbm_sim (which imports this) must not need pydantic
    from lsbm_sim.scenario import Scenario

ENGAGED = "engaged"
"""The derived outcome "any reaction but ignore" (1 - p_ignore), reported beside the reactions."""

# A word: letters or digits, with inner apostrophes or hyphens ("don't", "eco-friendly"). Punctuation and spaces
# between words are not words: leaving them out would measure the tokenizer, not the content.
WORD = re.compile(r"\w+(?:['’\-]\w+)*")


# ------------------------------------------------------------------------------------------------ explain


@dataclass(frozen=True)
class Word:
    """A word of the explained text: its position among the words and its character span."""

    index: int
    text: str
    start: int
    end: int


def split_words(text: str) -> list[Word]:
    """The words of a text, with their spans.

    >>> [w.text for w in split_words("Don't miss: eco-friendly, 100% recycled!")]
    ["Don't", 'miss', 'eco-friendly', '100', 'recycled']
    """
    return [Word(k, m.group(), m.start(), m.end()) for k, m in enumerate(WORD.finditer(text))]


def without_word(text: str, word: Word) -> str:
    """The text with one word left out, and the space it leaves closed up.

    >>> without_word("Cute kittens play!", split_words("Cute kittens play!")[1])
    'Cute play!'
    >>> without_word("Cute kittens!", split_words("Cute kittens!")[1])
    'Cute!'
    """
    before, after = text[: word.start], text[word.end :]
    if not before.strip():
        return before + after.lstrip()
    if before[-1:].isspace() and (not after or not after[0].isalnum()):
        before = before.rstrip()
    return before + after


def parse_edit(raw: str) -> tuple[str, str]:
    """'old=>new' -> (old, new); new may be empty (a deletion).

    >>> parse_edit("simple=>easy")
    ('simple', 'easy')
    """
    if raw.count("=>") != 1:
        raise LsbmError(f"--edit {raw!r}: expected OLD=>NEW with one '=>', e.g. --edit 'simple=>easy'")
    old, new = raw.split("=>")
    if not old:
        raise LsbmError(f"--edit {raw!r}: the text to replace (before '=>') is empty")
    return old, new


@dataclass
class EditEffect:
    """What a counterfactual edit changes: every occurrence of `old` replaced by `new`."""

    old: str
    new: str
    text: str
    probabilities: dict[str, float]
    change: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"edit": f"{self.old}=>{self.new}", "text": self.text, "probabilities": self.probabilities,
                "change": self.change}  # fmt: skip


@dataclass
class Explanation:
    """The answer of `explain`: the text's predicted probabilities and each word's effect on them.

    `effects[i, k]` is word i's effect on outcome k (`outcomes` = the model's reactions, then "engaged"):
    p(whole text) - p(text without word i).
    """

    text: str
    persona: str
    model: str
    outcomes: tuple[str, ...]
    probabilities: dict[str, float]
    words: list[Word]
    effects: np.ndarray
    edits: list[EditEffect] = field(default_factory=list)
    model_calls: int = 0

    def effect(self, word: str, outcome: str = ENGAGED) -> float:
        """The effect of the first occurrence of `word` on `outcome`."""
        k = self._column(outcome)
        for w in self.words:
            if w.text == word:
                return float(self.effects[w.index, k])
        raise LsbmError(f"{word!r} is not a word of the explained text")

    def ranking(self, outcome: str = ENGAGED) -> list[tuple[str, float]]:
        """The words by their effect on `outcome`, the one that raises it most first."""
        k = self._column(outcome)
        order = sorted(self.words, key=lambda w: (-self.effects[w.index, k], w.index))
        return [(w.text, float(self.effects[w.index, k])) for w in order]

    def table(self) -> pd.DataFrame:
        """One row per word in text order: the word, its position and its effect on every outcome."""
        frame = pd.DataFrame({"word": [w.text for w in self.words], "position": [w.index for w in self.words]})
        for k, outcome in enumerate(self.outcomes):
            frame[outcome] = self.effects[:, k] if len(self.words) else []
        return frame

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain data (what `lsbm-sim explain --json` prints)."""
        return {
            "text": self.text,
            "persona": self.persona,
            "model": self.model,
            "outcomes": list(self.outcomes),
            "probabilities": self.probabilities,
            "effect": "p(outcome | text) - p(outcome | text without the word)",
            "words": [
                {"word": w.text, "position": w.index, "start": w.start, "end": w.end,
                 "effects": {o: float(self.effects[w.index, k]) for k, o in enumerate(self.outcomes)}}
                for w in self.words
            ],  # fmt: skip
            "ranking": {o: [w for w, _ in self.ranking(o)] for o in self.outcomes},
            "edits": [e.to_dict() for e in self.edits],
            "model_calls": self.model_calls,
        }

    def _column(self, outcome: str) -> int:
        if outcome not in self.outcomes:
            raise LsbmError(f"unknown outcome {outcome!r}; the model answers {list(self.outcomes)}")
        return self.outcomes.index(outcome)


def typical_persona(scenario: Scenario | None = None) -> tuple[str, float]:
    """The persona text (and disposition) of the scenario's most common kind of person.

    From a persona CSV: its most frequent persona. Otherwise the persona of the most likely level of every trait
    (age band, leaning, susceptibility) and the most likely interests. Without a scenario: the default traits'.
    """
    from lsbm_sim.population import DISPOSITION, persona_text, read_population

    from lsbm_sim.scenario import PopulationSpec

    spec = scenario.population if scenario is not None else PopulationSpec()
    if spec.path is not None:
        population = read_population(spec, scenario.resolve(spec.path), np.random.default_rng(0))
        common = int(np.bincount(population.archetype).argmax())
        return population.personas[common], float(population.dispositions[common])
    traits = spec.traits

    def modal(levels: dict[str, float]) -> str:
        return max(levels, key=levels.get)  # the first of equals, as the scenario lists them

    topics = list(traits.interests)
    top = sorted(topics, key=lambda t: -traits.interests[t])[: spec.interests_per_agent]
    interests = tuple(t for t in topics if t in top)  # in the scenario's order, as draw_population writes them
    susceptibility = modal(dict(traits.susceptibility))
    text = persona_text(modal(traits.age_band), interests, modal(traits.leaning), susceptibility)
    return text, DISPOSITION[susceptibility]


def explain(
    text: str,
    persona: str | None = None,
    scenario: Scenario | str | Path | None = None,
    behavior: BehaviorModel | None = None,
    context: SocialContext | None = None,
    disposition: float | None = None,
    edits: Sequence[str | tuple[str, str]] = (),
) -> Explanation:
    """Which words raise or lower each reaction's predicted probability for `text` (leave-one-word-out).

    The model is `behavior` if given, else the `scenario`'s behavior model, else the embedded default. The
    persona is `persona` if given, else the scenario's typical one (`typical_persona`), whose disposition is
    used unless `disposition` is given; the context defaults to a first exposure through one friend's share. `edits` ("old=>new" or (old, new)) are counterfactual rewrites
    whose effect is reported too. Every text is asked in one batch through the broker: one model call.
    """
    from lsbm_sim.behavior import Broker, make_behavior_model
    from lsbm_sim.scenario import load_scenario

    if not text or not text.strip():
        raise LsbmError("the text to explain is empty")
    spec = load_scenario(scenario) if scenario is not None else None
    parsed = [parse_edit(e) if isinstance(e, str) else (str(e[0]), str(e[1])) for e in edits]
    for old, new in parsed:
        if old not in text:
            raise LsbmError(f"--edit {old}=>{new}: {old!r} does not occur in the text")
    if persona is not None and not persona.strip():
        raise LsbmError("the persona text is empty")
    typical, typical_disposition = typical_persona(spec)
    persona = persona if persona is not None else typical
    disposition = disposition if disposition is not None else typical_disposition
    context = context or SocialContext()

    words = split_words(text)
    if not words:
        raise LsbmError(f"the text {text!r} has no words to explain")
    edited = [text.replace(old, new) for old, new in parsed]
    texts = [text, *(without_word(text, w) for w in words), *edited]

    owned = behavior is None
    if behavior is None:
        if spec is not None:
            behavior = make_behavior_model(spec.behavior, spec)
        else:
            from lsbm_sim.behavior.surrogate import SurrogateModel

            behavior = SurrogateModel()
    # The scenario's persistent answer cache, if it names one: explaining a text twice then costs no model call.
    cache = spec.resolve(spec.behavior.cache) if spec is not None and owned and spec.behavior.cache else None
    broker = Broker(behavior, cache_path=cache)
    try:
        batch = QueryBatch.from_queries([BehaviorQuery(persona, t, context, disposition) for t in texts])
        probs = broker.decide(batch).astype(np.float64)
    finally:
        broker.close()
        if owned and hasattr(behavior, "close"):
            behavior.close()
    reactions = tuple(broker.reactions)
    if "ignore" in reactions:  # "engaged" = any reaction but ignore
        probs = np.column_stack([probs, 1.0 - probs[:, reactions.index("ignore")]])
        outcomes = (*reactions, ENGAGED)
    else:
        outcomes = reactions
    whole = probs[0]
    effects = whole[None, :] - probs[1 : 1 + len(words)]
    edit_effects = [
        EditEffect(old, new, t, _as_dict(outcomes, p), _as_dict(outcomes, p - whole))
        for (old, new), t, p in zip(parsed, edited, probs[1 + len(words) :])
    ]
    # Named as a scenario names it (its backend), with or without --scenario; a model the caller passed in by
    # its class.
    if owned:
        from lsbm_sim.scenario import BehaviorSpec

        name = (spec.behavior if spec is not None else BehaviorSpec()).backend
    else:
        name = type(behavior).__name__
    return Explanation(
        text=text, persona=persona, model=name, outcomes=outcomes, probabilities=_as_dict(outcomes, whole),
        words=words, effects=effects, edits=edit_effects, model_calls=broker.stats.model_calls,
    )  # fmt: skip


def _as_dict(names: Sequence[str], values: np.ndarray) -> dict[str, float]:
    return {n: float(v) for n, v in zip(names, values)}


def render_explanation(explanation: Explanation, console: Any, outcome: str | None = None) -> None:
    """Print an explanation with rich: the text with each word coloured by its effect on `outcome` (green raises,
    red lowers, brighter is stronger), a table of every word's effect on every outcome in percentage points, and
    the edits' changes."""
    from rich.table import Table
    from rich.text import Text

    outcome = outcome or (ENGAGED if ENGAGED in explanation.outcomes else explanation.outcomes[-1])
    k = explanation._column(outcome)
    scale = float(np.abs(explanation.effects).max()) or 1.0

    def style(value: float) -> str:
        if abs(value) < 0.05 * scale:
            return "dim"
        colour = "green" if value > 0 else "red"
        return f"bold {colour}" if abs(value) >= 0.5 * scale else colour

    line = Text()
    cursor = 0
    for w in explanation.words:
        line.append(explanation.text[cursor : w.start])
        line.append(w.text, style=style(float(explanation.effects[w.index, outcome and k])))
        cursor = w.end
    line.append(explanation.text[cursor:])
    console.print(Text(f"persona: {explanation.persona}", style="dim"))
    console.print(Text(f"words coloured by their effect on p({outcome}): ", style="italic") + line)

    table = Table(title=f"effect of each word (percentage points; model {explanation.model})")
    table.add_column("word")
    for o in explanation.outcomes:
        table.add_column(f"{o}\n{100 * explanation.probabilities[o]:.2f}%", justify="right")
    for w in explanation.words:
        cells = [Text(f"{100 * v:+.3f}", style=style(float(v))) for v in explanation.effects[w.index]]
        table.add_row(Text(w.text, style=style(float(explanation.effects[w.index, k]))), *cells)
    console.print(table)
    for e in explanation.edits:
        changes = ", ".join(f"{o} {100 * e.change[o]:+.3f}" for o in explanation.outcomes)
        console.print(f"edit {e.old!r} => {e.new!r}: {changes} (percentage points)")


# ----------------------------------------------------------------------------------------------- optimize

METRICS: tuple[str, ...] = ("reach", "like", "share", "cascade_size", "engagement")
"""What `optimize` reports per variant; "engagement" is the post's likes + shares + comments (every reaction but
ignore), the default figure a winner is named by."""


@dataclass(frozen=True)
class Variant:
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
        from lsbm_sim.bft.instructions import read_jsonl

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
    from lsbm_sim.sweep import sweep

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
