"""`lsbm_behavior.json`: what a behavior-fine-tuned checkpoint was trained to answer, and how to read its answer.

The fine-tuning pipeline (`lsbm_sim.bft`) trains a model to predict a *level* of one behavior ("Predict the
clicks level (low/medium/high):"), as the seed model card does, rather than a simulated person's reaction. It
writes this file beside the weights so that a scorer knows the prompt the model was trained on, the level
options, and the observed rate of the behavior at each level, which turns a level distribution into reaction
probabilities:

    p(reaction) = sum over levels of p(level) * level_rates[level]
    p(ignore)   = 1 - p(reaction),   every other reaction 0.

>>> ckpt = BehaviorCheckpoint(behavior="clicks", levels=["low", "high"], level_rates={"low": 0.01, "high": 0.03})
>>> ckpt.reaction_probabilities([[0.5, 0.5]], ["ignore", "like", "share"]).round(3).tolist()
[[0.98, 0.0, 0.02]]
>>> ckpt.template().template
"Text: '{content}' Predict the clicks level ({options}):"
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from lsbm_sim.behavior.prompts import TEMPLATE_FIELDS, PromptTemplate
from lsbm_sim.errors import LsbmError

FILENAME = "lsbm_behavior.json"
FORMAT = "lsbm-sim behavior checkpoint"
VERSION = 1
DEFAULT_LEVEL_PROMPT = "Text: '{content}' Predict the {behavior} level ({options}):"
LEVEL_TEMPLATE_FIELDS = TEMPLATE_FIELDS | {"behavior"}


class CheckpointFieldError(ValueError):
    """One field of a checkpoint description is wrong; `field` names it ('' for the record as a whole)."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}" if field_name else message)
        self.field = field_name


@dataclass(frozen=True)
class BehaviorCheckpoint:
    """The contents of `lsbm_behavior.json` (see the module docstring).

    `prompt` may use {persona} {content} {context} {options} and {behavior}; {behavior} is filled in from
    `behavior` when the scorer loads it. `behavior_tokens`: the options are spelled as behavior tokens
    (`<|low|>`), which the checkpoint's tokenizer must have. `metadata`: free-form facts about the training run
    (base model, data, metrics), kept but never read by the scorers.

    A plain dataclass checked in `__post_init__`, not a pydantic model: the GPU scorers and the fine-tuning code
    import this file, and they must run where only torch and transformers are installed.
    """

    behavior: str
    levels: list[str]
    level_rates: dict[str, float]
    reaction: str = "share"
    prompt: str = DEFAULT_LEVEL_PROMPT
    behavior_tokens: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT
    version: int = VERSION
    task: str = "level"

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, message: str) -> None:
            if not ok:
                raise CheckpointFieldError(name, message)

        need(self.format == FORMAT, "format", f"must be {FORMAT!r}")
        need(self.version == VERSION and type(self.version) is int, "version", f"must be {VERSION}")
        need(self.task == "level", "task", "must be 'level'")
        for name in ("behavior", "reaction", "prompt"):
            need(isinstance(getattr(self, name), str), name, "must be a string")
        need(len(self.behavior) >= 1, "behavior", "must not be empty")
        need(isinstance(self.behavior_tokens, bool), "behavior_tokens", "must be true or false")
        need(isinstance(self.metadata, dict), "metadata", "must be an object")
        need(isinstance(self.levels, list) and all(isinstance(v, str) for v in self.levels), "levels",
             "must be a list of strings")  # fmt: skip
        need(len(self.levels) >= 2, "levels", "must have at least 2 levels")
        need(len(set(self.levels)) == len(self.levels), "levels", f"levels has duplicates: {self.levels}")
        need(isinstance(self.level_rates, dict), "level_rates", "must be an object of level: rate")
        rates = {}
        for level, rate in self.level_rates.items():
            number = isinstance(rate, (int, float)) and not isinstance(rate, bool) and math.isfinite(rate)
            need(number, f"level_rates.{level}", f"must be a number, got {rate!r}")
            rates[level] = float(rate)
        object.__setattr__(self, "level_rates", rates)  # 1 -> 1.0, as JSON gives integers back
        need(set(rates) == set(self.levels), "level_rates",
             f"level_rates must give a rate for each level {self.levels}, got {sorted(rates)}")  # fmt: skip
        bad = {k: v for k, v in rates.items() if not 0.0 <= v <= 1.0}
        need(not bad, "level_rates", f"level_rates must lie in [0, 1], got {bad}")
        need(self.reaction != "ignore", "reaction",
             "reaction must be the behavior's reaction (e.g. 'share'), not 'ignore'")  # fmt: skip
        used = {name for _, name, _, _ in string.Formatter().parse(self.prompt) if name is not None}
        unknown = used - LEVEL_TEMPLATE_FIELDS
        need(not unknown, "prompt",
             f"prompt uses unknown field(s) {sorted(unknown)}; allowed: {sorted(LEVEL_TEMPLATE_FIELDS)}")  # fmt: skip
        need("content" in used, "prompt", "prompt must contain {content}")

    # ----------------------------------------------------------------------------------- JSON documents

    @classmethod
    def from_json(cls, data: Any) -> BehaviorCheckpoint:
        """The checkpoint a JSON object describes; an unknown or wrong field raises CheckpointFieldError."""
        if not isinstance(data, dict):
            raise CheckpointFieldError("", "must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointFieldError(unknown[0], "unknown field (extra fields are not allowed)")
        missing = [name for name in ("behavior", "levels", "level_rates") if name not in data]
        if missing:
            raise CheckpointFieldError(missing[0], "field required")
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        """The checkpoint as the JSON object `lsbm_behavior.json` holds."""
        document = asdict(self)
        # format, version and task first, as a reader of the file expects them
        return {k: document.pop(k) for k in ("format", "version", "task")} | document

    # The names the pydantic record had, for callers written against it.
    model_validate = from_json

    def model_dump(self, mode: str = "json") -> dict[str, Any]:
        return self.to_json()

    # ------------------------------------------------------------------------------------------ files

    @classmethod
    def read(cls, folder: Path | str) -> BehaviorCheckpoint | None:
        """The checkpoint description in `folder`, or None when the folder has no `lsbm_behavior.json`.

        A file that exists but is not valid raises LsbmError naming the file and the field.
        """
        path = Path(folder) / FILENAME
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise LsbmError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise LsbmError(f"{path}: not an lsbm-sim behavior checkpoint file (expected \"format\": \"{FORMAT}\")")
        try:
            return cls.from_json(data)
        except (CheckpointFieldError, TypeError) as exc:
            raise LsbmError(f"{path}: {exc}") from None

    def write(self, folder: Path | str) -> Path:
        """Write `lsbm_behavior.json` into `folder` (created if missing); return the file's path.

        The file is written beside and then renamed over the old one, so a reader never sees half a file.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / FILENAME
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    # -------------------------------------------------------------------------------------- scoring

    def template(self) -> PromptTemplate:
        """The prompt as a PromptTemplate, with {behavior} filled in and the other fields left to render."""
        parts = []
        for literal, name, spec, conversion in string.Formatter().parse(self.prompt):
            parts.append(literal.replace("{", "{{").replace("}", "}}"))
            if name is None:
                continue
            if name == "behavior":
                parts.append(self.behavior.replace("{", "{{").replace("}", "}}"))
            else:
                parts.append("{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}")
        return PromptTemplate("".join(parts))

    def check_reactions(self, reactions: Sequence[str], source: str = "the checkpoint") -> None:
        """A level checkpoint answers for `ignore` and its one reaction; the scenario must have both."""
        missing = [r for r in ("ignore", self.reaction) if r not in reactions]
        if missing:
            raise LsbmError(
                f"{source} predicts {self.behavior!r} levels, read as the reaction {self.reaction!r}; "
                f"behavior.reactions {list(reactions)} must include {missing}"
            )

    def reaction_probabilities(self, level_probs: Any, reactions: Sequence[str]) -> np.ndarray:
        """Level probabilities (rows x levels, in `levels` order) -> reaction probabilities (rows x reactions)."""
        self.check_reactions(reactions)
        level_probs = np.asarray(level_probs, dtype=np.float64)
        rates = np.array([self.level_rates[level] for level in self.levels], dtype=np.float64)
        p_reaction = level_probs @ rates
        out = np.zeros((len(level_probs), len(reactions)), dtype=np.float64)
        out[:, list(reactions).index(self.reaction)] = p_reaction
        out[:, list(reactions).index("ignore")] = 1.0 - p_reaction
        return out
