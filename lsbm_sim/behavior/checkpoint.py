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
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lsbm_sim.behavior.prompts import TEMPLATE_FIELDS, PromptTemplate
from lsbm_sim.errors import LsbmError

FILENAME = "lsbm_behavior.json"
FORMAT = "lsbm-sim behavior checkpoint"
VERSION = 1
DEFAULT_LEVEL_PROMPT = "Text: '{content}' Predict the {behavior} level ({options}):"
LEVEL_TEMPLATE_FIELDS = TEMPLATE_FIELDS | {"behavior"}


class BehaviorCheckpoint(BaseModel):
    """The contents of `lsbm_behavior.json` (see the module docstring).

    `prompt` may use {persona} {content} {context} {options} and {behavior}; {behavior} is filled in from
    `behavior` when the scorer loads it. `behavior_tokens`: the options are spelled as behavior tokens
    (`<|low|>`), which the checkpoint's tokenizer must have. `metadata`: free-form facts about the training run
    (base model, data, metrics), kept but never read by the scorers.
    """

    model_config = ConfigDict(extra="forbid")

    format: Literal["lsbm-sim behavior checkpoint"] = FORMAT
    version: Literal[1] = VERSION
    task: Literal["level"] = "level"
    behavior: str = Field(min_length=1)
    levels: list[str] = Field(min_length=2)
    level_rates: dict[str, float]
    reaction: str = "share"
    prompt: str = DEFAULT_LEVEL_PROMPT
    behavior_tokens: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> BehaviorCheckpoint:
        if len(set(self.levels)) != len(self.levels):
            raise ValueError(f"levels has duplicates: {self.levels}")
        if set(self.level_rates) != set(self.levels):
            raise ValueError(f"level_rates must give a rate for each level {self.levels}, got {sorted(self.level_rates)}")
        bad = {k: v for k, v in self.level_rates.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"level_rates must lie in [0, 1], got {bad}")
        if self.reaction == "ignore":
            raise ValueError("reaction must be the behavior's reaction (e.g. 'share'), not 'ignore'")
        used = {name for _, name, _, _ in string.Formatter().parse(self.prompt) if name is not None}
        unknown = used - LEVEL_TEMPLATE_FIELDS
        if unknown:
            raise ValueError(f"prompt uses unknown field(s) {sorted(unknown)}; allowed: {sorted(LEVEL_TEMPLATE_FIELDS)}")
        if "content" not in used:
            raise ValueError("prompt must contain {content}")
        return self

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
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors(include_url=False)
            )
            raise LsbmError(f"{path}: {problems}") from None

    def write(self, folder: Path | str) -> Path:
        """Write `lsbm_behavior.json` into `folder` (created if missing); return the file's path.

        The file is written beside and then renamed over the old one, so a reader never sees half a file.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / FILENAME
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
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
