"""Which words drive a prediction: the behavior model asked about a text and about every copy of it with one word
left out (occlusion), in one batch through the broker: one model call, whichever backend the scenario names (the
embedded surrogate, or a language model through transformers, vLLM or an OpenAI-compatible server). A word's
effect on a reaction is p(reaction | whole text) - p(reaction | text without the word): positive means the word
raises it. `edits` ("old=>new") ask the same about counterfactual rewrites, in the same call.

>>> e = explain("Doctors hate how simple this daily habit is")  # doctest: +SKIP
>>> e.ranking("share")[:3]  # doctest: +SKIP
[('habit', 0.0041), ('daily', 0.0017), ...]

Also `lsbm_sim.explain` and the command `lsbm-sim explain`; `lsbm_sim.studies.optimize` asks which variant of a
post a simulated audience engages with most.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lsbm_sim.behavior.base import BehaviorModel, BehaviorQuery, QueryBatch, SocialContext
from lsbm_sim.errors import LsbmError

if TYPE_CHECKING:  # annotations only: the schema (pydantic) is imported where a scenario is read
    from lsbm_sim.scenario import Scenario

ENGAGED = "engaged"
"""The derived outcome "any reaction but ignore" (1 - p_ignore), reported beside the reactions."""

# A word: letters or digits, with inner apostrophes or hyphens ("don't", "eco-friendly"). Punctuation and spaces
# between words are not words: leaving them out would measure the tokenizer, not the content.
WORD = re.compile(r"\w+(?:['’\-]\w+)*")



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
    from lsbm_sim.world.population import DISPOSITION, persona_text, read_population

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
