"""What every language-model scorer shares: the prompt, the answer options, how option scores become reaction
probabilities, and how prompts are grouped into batches.

A scorer never generates text. The prompt ends where the answer starts, and the answer options are scored by
the model's log-probability of each option's spelling after the prompt:

- `first_token`: the log-probability of each option's first token, read from one next-token distribution (one
  forward pass per prompt). The options' first tokens must be distinct; `ScoringPlan.first_token_ids` checks this.
- `full`: the summed log-probability of all of each option's tokens (for options that share a first token).

Option scores s_k become probabilities softmax(s_k / temperature) over the options only; the temperature
calibrates an over- or under-confident model. For a level checkpoint (`lsbm_behavior.json`) the options are the
levels and `BehaviorCheckpoint.reaction_probabilities` turns level probabilities into reaction probabilities.

>>> plan = ScoringPlan.build(reactions=["ignore", "like"], behavior_words=set())
>>> plan.options, plan.spellings
(('ignore', 'like'), (' ignore', ' like'))
>>> plan.probabilities([[0.0, 0.0]]).tolist()
[[0.5, 0.5]]
"""

from __future__ import annotations

import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lsbm_sim.behavior.base import BehaviorModelBase, BehaviorQuery, QueryBatch, as_batch
from lsbm_sim.behavior.checkpoint import BehaviorCheckpoint
from lsbm_sim.behavior.prompts import PromptTemplate, behavior_token
from lsbm_sim.errors import LsbmError

SCORING_MODES = ("first_token", "full")


@dataclass(frozen=True)
class ScoringPlan:
    """How queries become prompts and option scores become reaction probabilities, for one model.

    `options`: what the model chooses among (the reactions, or a level checkpoint's levels); `spellings`: the
    text appended to the prompt for each option (" like", or a behavior token "<|like|>"); `shown`: how
    {options} lists them inside the prompt.
    """

    reactions: tuple[str, ...]
    template: PromptTemplate
    options: tuple[str, ...]
    spellings: tuple[str, ...]
    shown: tuple[str, ...]
    temperature: float = 1.0
    scoring: str = "first_token"
    checkpoint: BehaviorCheckpoint | None = None

    @classmethod
    def build(
        cls,
        reactions: Sequence[str],
        behavior_words: set[str] | frozenset[str],
        prompt: str | None = "default",
        temperature: float = 1.0,
        scoring: str = "first_token",
        checkpoint: BehaviorCheckpoint | None = None,
        source: str = "the model",
    ) -> ScoringPlan:
        """The plan for a model whose tokenizer has a behavior token for each word in `behavior_words`.

        Without a checkpoint the options are the reactions, spelled as behavior tokens when the tokenizer has one
        for every reaction. With a level checkpoint its prompt and levels are used and `prompt` is ignored.
        """
        if scoring not in SCORING_MODES:
            raise LsbmError(f"behavior.scoring: {scoring!r} is not one of {list(SCORING_MODES)}")
        if not temperature > 0:
            raise LsbmError(f"behavior.temperature must be positive, got {temperature}")
        reactions = tuple(reactions)
        if checkpoint is not None:
            checkpoint.check_reactions(reactions, source)
            options = tuple(checkpoint.levels)
            template = checkpoint.template()
            if checkpoint.behavior_tokens:
                missing = [o for o in options if o not in behavior_words]
                if missing:
                    raise LsbmError(
                        f"{source}: lsbm_behavior.json says behavior_tokens, but the tokenizer has no "
                        f"{[behavior_token(o) for o in missing]}"
                    )
            use_tokens = checkpoint.behavior_tokens
        else:
            options = reactions
            try:
                template = PromptTemplate(prompt)
            except ValueError as exc:
                raise LsbmError(str(exc)) from None
            use_tokens = all(o in behavior_words for o in options)
        if use_tokens:
            spellings = shown = tuple(behavior_token(o) for o in options)
        else:
            # A prompt ending in ":" is answered " like", the way the word follows in running text; a prompt
            # that already ends in white space is answered "like".
            lead = "" if template.template[-1:].isspace() else " "
            spellings = tuple(lead + o for o in options)
            shown = options
        return cls(reactions, template, options, spellings, shown, float(temperature), scoring, checkpoint)

    # ------------------------------------------------------------------------------------------ prompts

    def render(self, query: BehaviorQuery) -> str:
        """The prompt for one query; it ends where the answer starts."""
        return self.template.render(query, self.shown)

    # -------------------------------------------------------------------------------------- answers

    def probabilities(self, option_scores: Any) -> np.ndarray:
        """Option log-probabilities (rows x options) -> reaction probabilities (rows x reactions)."""
        scores = np.asarray(option_scores, dtype=np.float64) / self.temperature
        scores = scores - scores.max(axis=1, keepdims=True)
        weights = np.exp(scores)
        option_probs = weights / weights.sum(axis=1, keepdims=True)
        if self.checkpoint is not None:
            return self.checkpoint.reaction_probabilities(option_probs, self.reactions)
        return option_probs

    # -------------------------------------------------------------------------------- token checks

    def option_token_ids(self, tokenizer: Any) -> list[list[int]]:
        """Each option's spelling as token ids (no special tokens added)."""
        ids = [list(tokenizer(s, add_special_tokens=False)["input_ids"]) for s in self.spellings]
        empty = [o for o, i in zip(self.options, ids) if not i]
        if empty:
            raise LsbmError(f"the tokenizer turns option(s) {empty} into no tokens")
        return ids

    def first_token_ids(self, tokenizer: Any, source: str = "the model") -> list[int]:
        """The options' first token ids, checked to be distinct (first_token scoring reads only these)."""
        ids = self.option_token_ids(tokenizer)
        seen: dict[int, str] = {}
        for option, token_ids in zip(self.options, ids):
            first = token_ids[0]
            if first in seen:
                token = tokenizer.convert_ids_to_tokens(first)
                raise LsbmError(
                    f"{source}: options {seen[first]!r} and {option!r} both begin with the token {token!r}, so "
                    "first-token scoring cannot tell them apart; set behavior.scoring: full (scores whole options) "
                    "or use options that begin differently"
                )
            seen[first] = option
        return [i[0] for i in ids]

    def describe(self) -> dict[str, Any]:
        """Everything about the plan that changes an answer (for fingerprints)."""
        return {
            "reactions": list(self.reactions),
            "template": self.template.template,
            "options": list(self.options),
            "spellings": list(self.spellings),
            "temperature": self.temperature,
            "scoring": self.scoring,
            "checkpoint": None if self.checkpoint is None else self.checkpoint.to_json(),
        }


def behavior_words(tokenizer: Any, words: Iterable[str]) -> set[str]:
    """The words among `words` whose behavior token (`<|like|>`) is a single token of the tokenizer."""
    vocab = tokenizer.get_vocab()
    found = set()
    for word in words:
        token = behavior_token(word)
        if token in vocab and tokenizer(token, add_special_tokens=False)["input_ids"] == [vocab[token]]:
            found.add(word)
    return found


def candidate_words(reactions: Sequence[str], checkpoint: BehaviorCheckpoint | None) -> list[str]:
    """The words whose behavior tokens matter for a plan: the levels of a checkpoint, else the reactions."""
    return list(checkpoint.levels) if checkpoint is not None else list(reactions)


# ------------------------------------------------------------------------------------------------ batches


def length_buckets(lengths: Sequence[int], batch_tokens: int) -> list[np.ndarray]:
    """Group prompt indices into batches of similar length whose padded size (rows x longest) fits the budget.

    Longest prompts come first, so that a budget too large for the device fails on the first batch, not the last.
    A prompt longer than the whole budget gets a batch of its own.

    >>> [b.tolist() for b in length_buckets([5, 9, 4, 8], batch_tokens=16)]
    [[1], [3, 0], [2]]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        longest = int(lengths[order[start]])
        rows = max(1, batch_tokens // max(longest, 1))
        batches.append(order[start : start + rows])
        start += rows
    return batches


# ------------------------------------------------------------------------------------------ fingerprints

_SAMPLED_FILE_BYTES = 64 * 2**20
_SAMPLES = 64
_SAMPLE_BYTES = 256 * 2**10


def folder_digest(folder: Path) -> str:
    """A digest of a checkpoint folder's files: names, sizes and contents.

    Files up to 64 MiB are hashed whole. Larger weight files are hashed at 64 evenly spaced 256 KiB samples plus
    their first and last MiB (the safetensors header holds names and shapes), so that fingerprinting a 6 GB model
    takes a fraction of a second; fine-tuning changes the weights throughout, which the samples see.
    """
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        size = path.stat().st_size
        h.update(f"{path.relative_to(folder).as_posix()}\0{size}\0".encode())
        with path.open("rb") as f:
            if size <= _SAMPLED_FILE_BYTES:
                h.update(f.read())
                continue
            offsets = [0, size - 2**20] + [int(size * k / _SAMPLES) for k in range(_SAMPLES)]
            for offset in offsets:
                f.seek(offset)
                h.update(f.read(2**20 if offset in (0, size - 2**20) else _SAMPLE_BYTES))
    return h.hexdigest()


def fingerprint(kind: str, **parts: Any) -> str:
    """`kind:` + a short hash of the parts (JSON-serialisable)."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return f"{kind}:{hashlib.sha256(blob.encode()).hexdigest()[:24]}"


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE is set: then a model id must already be in the local cache."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


class PromptScorer(BehaviorModelBase, ABC):
    """What the hf, vllm and openai backends share: each query becomes a prompt (`plan.render`), the model scores
    the answer options after it (`option_scores`, the part each backend does its own way), and the plan turns
    the scores into reaction probabilities. The rendered prompt is the persistent cache's key, and the
    fingerprint (set by the subclass as `_fingerprint`) names the weights, prompt, options and scoring."""

    plan: ScoringPlan
    _fingerprint: str
    SPEC_OPTIONS: tuple[str, ...] = ()

    @classmethod
    def from_spec(cls, spec: Any, resolve: Callable[[str], Path]) -> PromptScorer:
        """The scorer a scenario's `behavior` section describes: its model plus the fields in SPEC_OPTIONS."""
        return cls(spec.model, resolve=resolve, **{name: getattr(spec, name) for name in cls.SPEC_OPTIONS})

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def cache_key(self, query: BehaviorQuery) -> str:
        return self.plan.render(query)

    def predict_proba(self, queries: QueryBatch | Sequence[BehaviorQuery]) -> np.ndarray:
        batch = as_batch(queries)
        if len(batch) == 0:
            return np.zeros((0, len(self.reactions)))
        prompts = [self.plan.render(batch.query(i)) for i in range(len(batch))]
        return self.plan.probabilities(self.option_scores(prompts))

    @abstractmethod
    def option_scores(self, prompts: list[str]) -> np.ndarray:
        """Log-probability of each option after each prompt (rows x options)."""
