"""The `vllm` backend: a behavior model in an in-process vLLM engine, one per GPU.

vLLM is an optional extra (`pip install 'lsbm-sim[vllm]'`): it pins its own CUDA build of PyTorch, so it is
imported only when this backend is chosen. Prompts are tokenized here, with the checkpoint's own tokenizer
exactly as the `hf` backend does, and sent as token ids, so that both backends score the same tokens.

Scoring (see `scoring.py`) maps onto vLLM as follows; the request-building functions below are plain
functions, tested without vLLM:

- `first_token`: one generated token (`max_tokens=1`) whose log-probabilities are read for the option tokens.
  Where vLLM has `SamplingParams.logprob_token_ids` it returns exactly those tokens' log-probabilities. Older
  versions restrict the next token to the options (`allowed_token_ids`) and report the processed
  log-probabilities (`logprobs_mode="processed_logprobs"`), which are then the options' renormalised scores.
  Either way the softmax over options (with the temperature) is the same.
- `full`: prompt + option as one prompt; `prompt_logprobs=0` gives each prompt token's log-probability, and the
  option's tokens are summed.

Prefix caching is on: the prompts of one post share their long content prefix.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lsbm_sim.behavior.base import DEFAULT_REACTIONS, BehaviorModelError
from lsbm_sim.behavior.checkpoint import BehaviorCheckpoint
from lsbm_sim.behavior.scoring import (
    PromptScorer,
    ScoringPlan,
    behavior_words,
    candidate_words,
    fingerprint,
    folder_digest,
)
from lsbm_sim.errors import LsbmError

INSTALL_HINT = "pip install 'lsbm-sim[vllm]'"


def import_vllm() -> Any:
    """The vllm module, or one clear LsbmError saying how to install it."""
    try:
        import vllm
    except ImportError as exc:
        raise LsbmError(
            f"behavior.backend 'vllm' needs vLLM, which is not installed here ({exc.msg}); install it with "
            f"{INSTALL_HINT} on a CUDA machine, or use backend 'hf' (same model, transformers) or 'openai' (a vLLM "
            "server elsewhere)"
        ) from None
    return vllm


# -------------------------------------------------------------------------------------- request building


def engine_arguments(
    folder: Path | str,
    dtype: str = "auto",
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    n_options: int = 4,
    use_processed_logprobs: bool = False,
    max_model_len: int | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM`.

    >>> engine_arguments("/m", n_options=3)["max_logprobs"]
    20
    """
    args: dict[str, Any] = {
        "model": str(folder),
        "tokenizer": str(folder),
        "dtype": "bfloat16" if dtype == "auto" else dtype,
        "trust_remote_code": trust_remote_code,
        "enable_prefix_caching": True,
        # vLLM refuses a request for more log-probabilities than this; the options plus the sampled token fit.
        "max_logprobs": max(20, n_options + 1),
        "load_format": "auto" if allow_pickle else "safetensors",
    }
    if use_processed_logprobs:
        args["logprobs_mode"] = "processed_logprobs"
    if max_model_len is not None:
        args["max_model_len"] = int(max_model_len)
    return args


def first_token_sampling(option_ids: Sequence[int], has_logprob_token_ids: bool) -> dict[str, Any]:
    """Keyword arguments for `vllm.SamplingParams` that read the option tokens' log-probabilities.

    >>> first_token_sampling([5, 9], has_logprob_token_ids=True)["logprob_token_ids"]
    [5, 9]
    >>> first_token_sampling([5, 9], has_logprob_token_ids=False)["allowed_token_ids"]
    [5, 9]
    """
    ids = [int(i) for i in option_ids]
    # temperature 1: the log-probabilities are the model's own (the scorer applies behavior.temperature itself).
    base = {"max_tokens": 1, "temperature": 1.0, "detokenize": False}
    if has_logprob_token_ids:
        return {**base, "logprobs": len(ids), "logprob_token_ids": ids}
    return {**base, "logprobs": len(ids), "allowed_token_ids": ids}


def full_sampling() -> dict[str, Any]:
    """`vllm.SamplingParams` arguments for full-option scoring: the prompt tokens' own log-probabilities."""
    return {"max_tokens": 1, "temperature": 1.0, "prompt_logprobs": 0, "detokenize": False}


def token_prompts(sequences: Sequence[Sequence[int]]) -> list[dict[str, list[int]]]:
    """Token-id prompts in vLLM's `TokensPrompt` form."""
    return [{"prompt_token_ids": [int(t) for t in s]} for s in sequences]


def full_sequences(prompt_ids: Sequence[Sequence[int]], option_ids: Sequence[Sequence[int]]) -> list[list[int]]:
    """Each prompt followed by each option, prompt-major (row i * n_options + k)."""
    return [list(p) + list(o) for p in prompt_ids for o in option_ids]


def _value(entry: Any) -> float:
    """A vLLM log-probability entry: a `Logprob` object (with `.logprob`) or a plain number."""
    return float(getattr(entry, "logprob", entry))


def read_first_token(step: dict[int, Any] | None, option_ids: Sequence[int]) -> list[float]:
    """The option tokens' log-probabilities from one generated position's {token id: Logprob}.

    >>> read_first_token({5: -0.1, 9: -2.3, 7: -4.0}, [9, 5])
    [-2.3, -0.1]
    """
    if not step:
        raise BehaviorModelError("vLLM returned no log-probabilities for the answer position")
    missing = [i for i in option_ids if i not in step]
    if missing:
        raise BehaviorModelError(f"vLLM returned no log-probability for option token id(s) {missing}")
    return [_value(step[i]) for i in option_ids]


def read_continuation(prompt_logprobs: Sequence[dict[int, Any] | None] | None, sequence: Sequence[int],
                      n_tokens: int) -> float:  # fmt: skip
    """Summed log-probability of the last `n_tokens` tokens of `sequence`, from vLLM's prompt_logprobs.

    >>> read_continuation([None, {4: -1.0}, {6: -0.5, 2: -3.0}], [1, 4, 6], 2)
    -1.5
    """
    if prompt_logprobs is None or len(prompt_logprobs) != len(sequence):
        raise BehaviorModelError("vLLM returned prompt log-probabilities that do not match the prompt")
    total = 0.0
    for position in range(len(sequence) - n_tokens, len(sequence)):
        entry = prompt_logprobs[position]
        if not entry or sequence[position] not in entry:
            raise BehaviorModelError(f"vLLM returned no log-probability for prompt position {position}")
        total += _value(entry[sequence[position]])
    return total


# ------------------------------------------------------------------------------------------------ scorer


class VLLMScorer(PromptScorer):
    """Scores reaction options with an in-process vLLM engine (see the module docstring)."""

    def __init__(
        self,
        model: str | Path,
        reactions: Sequence[str] = DEFAULT_REACTIONS,
        dtype: str = "auto",
        prompt: str = "default",
        temperature: float = 1.0,
        scoring: str = "first_token",
        trust_remote_code: bool = False,
        allow_pickle: bool = False,
        resolve: Callable[[str], Path] = lambda p: Path(p).expanduser(),
        **engine_options: Any,
    ):
        vllm = import_vllm()  # first: a missing vLLM is the first thing the user needs to hear about
        from transformers import AutoTokenizer

        from lsbm_sim.behavior.hf import locate_checkpoint

        self.reactions = tuple(reactions)
        self.folder = locate_checkpoint(str(model), resolve, allow_pickle)
        source = f"behavior.model {model}"
        self.checkpoint = BehaviorCheckpoint.read(self.folder)
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder, trust_remote_code=trust_remote_code)
        words = behavior_words(self.tokenizer, candidate_words(self.reactions, self.checkpoint))
        self.plan = ScoringPlan.build(self.reactions, words, prompt, temperature, scoring, self.checkpoint, source)
        if scoring == "first_token":
            self.option_ids = [[i] for i in self.plan.first_token_ids(self.tokenizer, source)]
        else:
            self.option_ids = self.plan.option_token_ids(self.tokenizer)

        sampling_fields = {f.name for f in dataclasses.fields(vllm.SamplingParams)} if dataclasses.is_dataclass(
            vllm.SamplingParams) else set(inspect.signature(vllm.SamplingParams).parameters) | set(
            getattr(vllm.SamplingParams, "__struct_fields__", ()))  # fmt: skip
        self.has_logprob_token_ids = "logprob_token_ids" in sampling_fields
        llm_parameters = set(inspect.signature(vllm.LLM.__init__).parameters)
        accepts_any = any(p.kind == p.VAR_KEYWORD for p in inspect.signature(vllm.LLM.__init__).parameters.values())
        processed = scoring == "first_token" and not self.has_logprob_token_ids and (
            "logprobs_mode" in llm_parameters or accepts_any)  # fmt: skip
        args = engine_arguments(self.folder, dtype, trust_remote_code, allow_pickle, len(self.option_ids), processed)
        args.update(engine_options)
        self.llm = vllm.LLM(**args)
        if scoring == "first_token":
            self.sampling = vllm.SamplingParams(**first_token_sampling([i[0] for i in self.option_ids], self.has_logprob_token_ids))
        else:
            self.sampling = vllm.SamplingParams(**full_sampling())
        self._fingerprint = fingerprint(
            "vllm", weights=folder_digest(self.folder), plan=self.plan.describe(), dtype=args["dtype"]
        )
        self.stats: dict[str, float] = {"prompts": 0, "prompt_tokens": 0, "forward_passes": 0, "seconds": 0.0}

    # The scenario's behavior fields this scorer takes (PromptScorer.from_spec passes them on).
    SPEC_OPTIONS = ("reactions", "dtype", "prompt", "temperature", "scoring", "trust_remote_code", "allow_pickle")

    def option_scores(self, prompts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        prompt_ids = [list(i) for i in self.tokenizer(prompts, add_special_tokens=True)["input_ids"]]
        if self.plan.scoring == "first_token":
            outputs = self.llm.generate(token_prompts(prompt_ids), self.sampling, use_tqdm=False)
            first = [i[0] for i in self.option_ids]
            scores = np.array([read_first_token((o.outputs[0].logprobs or [None])[0], first) for o in outputs])
            tokens = sum(len(p) for p in prompt_ids)
        else:
            sequences = full_sequences(prompt_ids, self.option_ids)
            outputs = self.llm.generate(token_prompts(sequences), self.sampling, use_tqdm=False)
            n_opt = len(self.option_ids)
            flat = [read_continuation(o.prompt_logprobs, s, len(self.option_ids[k % n_opt]))
                    for k, (o, s) in enumerate(zip(outputs, sequences))]  # fmt: skip
            scores = np.array(flat).reshape(len(prompts), n_opt)
            tokens = sum(len(s) for s in sequences)
        self.stats["prompts"] += len(prompts)
        self.stats["prompt_tokens"] += tokens
        self.stats["forward_passes"] += 1
        self.stats["seconds"] += time.perf_counter() - started
        return scores

    def close(self) -> None:
        self.llm = None
