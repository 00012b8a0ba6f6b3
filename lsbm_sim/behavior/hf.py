"""The `hf` backend: a behavior language model run in-process with transformers.

The model reads each prompt once and the scorer keeps only the last position's logits (`logits_to_keep=1`), so
a forward pass costs the prompt tokens and nothing for the 128k-word output layer at every other position.
Prompts are grouped by length under a token budget (`behavior.batch_tokens`) and padded on the left, so that
the last position is every row's answer position; explicit position ids keep a padded row's answer identical
to the unpadded one. On CUDA the model runs in bfloat16 with PyTorch's scaled-dot-product attention.

    behavior:
      backend: hf
      model: /models/lsbm-3b        # a checkpoint folder, or a hub id already on this machine
      device: auto                  # cuda bfloat16 where there is a GPU, else cpu float32
      batch_tokens: 32768

>>> scorer = HFScorer("/models/lsbm-3b", reactions=["ignore", "like", "share"])  # doctest: +SKIP
>>> scorer.predict_proba([BehaviorQuery("A teacher.", "Our new eco line!")])  # doctest: +SKIP
array([[0.81, 0.12, 0.07]])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lsbm_sim.behavior.base import DEFAULT_REACTIONS
from lsbm_sim.behavior.checkpoint import BehaviorCheckpoint
from lsbm_sim.behavior.scoring import (
    PromptScorer,
    ScoringPlan,
    behavior_words,
    candidate_words,
    fingerprint,
    folder_digest,
    hub_offline,
    length_buckets,
)
from lsbm_sim.errors import LsbmError

WEIGHT_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken"]


def locate_checkpoint(model: str, resolve: Callable[[str], Path], allow_pickle: bool = False) -> Path:
    """The local folder of `behavior.model`: a folder (relative to the scenario) or a hub id.

    A hub id is looked up in the local Hugging Face cache first; it is downloaded only when the hub is not
    switched off (HF_HUB_OFFLINE) and the machine can reach it.
    """
    path = resolve(model)
    if path.is_dir():
        return path
    # A hub id is "name" or "org/name" ("meta-llama/Llama-3.2-3B"); anything else names a folder.
    looks_like_path = model.startswith((".", "/", "~")) or model.count("/") > 1 or "\\" in model
    if path.exists() or looks_like_path:
        raise LsbmError(f"behavior.model: {path} is not a checkpoint folder")
    from huggingface_hub import snapshot_download

    patterns = None if allow_pickle else WEIGHT_PATTERNS
    try:
        return Path(snapshot_download(model, local_files_only=True, allow_patterns=patterns))
    except Exception as exc:  # the hub raises several kinds; each means "not in the local cache"
        if hub_offline():
            raise LsbmError(
                f"behavior.model: {model!r} is neither a folder nor a hub model in the local cache (HF_HUB_OFFLINE is "
                f"set, so nothing is downloaded): {type(exc).__name__}"
            ) from None
    try:
        return Path(snapshot_download(model, allow_patterns=patterns))
    except Exception as exc:
        raise LsbmError(
            f"behavior.model: {model!r} is neither a folder nor a hub model that could be downloaded "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None


def pick_device(device: str) -> str:
    """`auto` -> `cuda` where a GPU is visible, else `cpu`; anything else is used as given."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LsbmError(f"behavior.device: {device!r} was asked for, but PyTorch sees no CUDA GPU")
    return device


def pick_dtype(dtype: str, device: str) -> Any:
    """`auto` -> bfloat16 on CUDA, float32 elsewhere (CPU bfloat16 matmuls are slow and less exact)."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


class HFScorer(PromptScorer):
    """Scores reaction options with a causal language model loaded by transformers (see the module docstring).

    `stats` counts what the scorer did: prompts scored, prompt tokens, forward passes, padded tokens (the budget
    spent on padding) and seconds in the model.
    """

    def __init__(
        self,
        model: str | Path,
        reactions: Sequence[str] = DEFAULT_REACTIONS,
        device: str = "auto",
        dtype: str = "auto",
        batch_tokens: int = 32768,
        prompt: str = "default",
        temperature: float = 1.0,
        scoring: str = "first_token",
        trust_remote_code: bool = False,
        allow_pickle: bool = False,
        resolve: Callable[[str], Path] = lambda p: Path(p).expanduser(),
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.reactions = tuple(reactions)
        self.folder = locate_checkpoint(str(model), resolve, allow_pickle)
        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        self.batch_tokens = int(batch_tokens)
        source = f"behavior.model {model}"
        self.checkpoint = BehaviorCheckpoint.read(self.folder)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.folder, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            raise LsbmError(f"{source}: the tokenizer could not be loaded ({first_line(exc)})") from None
        load = dict(dtype=self.dtype, trust_remote_code=trust_remote_code, use_safetensors=None if allow_pickle else True)
        try:
            try:
                self.model = AutoModelForCausalLM.from_pretrained(self.folder, attn_implementation="sdpa", **load)
            except ValueError as exc:  # an architecture without SDPA support: its default attention then
                if "sdpa" not in str(exc).lower() and "attention" not in str(exc).lower():
                    raise
                self.model = AutoModelForCausalLM.from_pretrained(self.folder, **load)
        except (OSError, ValueError) as exc:
            hint = "" if allow_pickle else " (only safetensors weights load unless behavior.allow_pickle is true)"
            raise LsbmError(f"{source}: the model could not be loaded{hint}: {first_line(exc)}") from None
        self.model.to(self.device).eval()
        self._torch = torch
        # Left padding puts every row's last prompt token in the last position, the only one whose logits we keep.
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        words = behavior_words(self.tokenizer, candidate_words(self.reactions, self.checkpoint))
        self.plan = ScoringPlan.build(
            self.reactions, words, prompt, temperature, scoring, self.checkpoint, source=source
        )
        if scoring == "first_token":
            self.option_ids = [[i] for i in self.plan.first_token_ids(self.tokenizer, source)]
        else:
            self.option_ids = self.plan.option_token_ids(self.tokenizer)
        # The weights' digest names the model for the full-prompt cache and for factorized heads alike.
        self.weights_digest = folder_digest(self.folder)
        self._fingerprint = fingerprint(
            "hf",
            weights=self.weights_digest,
            plan=self.plan.describe(),
            dtype=str(self.dtype),
            device=self.device.split(":")[0],
        )
        self.stats: dict[str, float] = {
            "prompts": 0,
            "prompt_tokens": 0,
            "padded_tokens": 0,
            "forward_passes": 0,
            "seconds": 0.0,
        }

    # The scenario's behavior fields this scorer takes (PromptScorer.from_spec passes them on).
    SPEC_OPTIONS = ("reactions", "device", "dtype", "batch_tokens", "prompt", "temperature", "scoring", "trust_remote_code",
                    "allow_pickle")

    def close(self) -> None:
        self.model = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()

    # -------------------------------------------------------------------------------------- scores

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids of each prompt, with the tokenizer's usual special tokens (BOS), as the model was trained."""
        return [list(ids) for ids in self.tokenizer(list(prompts), add_special_tokens=True)["input_ids"]]

    def option_scores(self, prompts: list[str]) -> np.ndarray:
        """Log-probability of each option after each prompt (rows x options), per `plan.scoring`."""
        prompt_ids = self.encode(prompts)
        if self.plan.scoring == "first_token":
            first = self._torch.tensor([ids[0] for ids in self.option_ids])
            scores = np.empty((len(prompt_ids), len(first)), dtype=np.float64)
            for rows, logprobs in self.forward(prompt_ids, keep=1):
                scores[rows] = logprobs[:, -1, first.to(logprobs.device)].double().cpu().numpy()
            return scores
        return self.continuation_scores(prompt_ids, self.option_ids)

    def continuation_scores(self, prompt_ids: list[list[int]], continuations: list[list[int]]) -> np.ndarray:
        """Summed log-probability of each continuation after each prompt (rows x continuations)."""
        n_cont = len(continuations)
        sequences = [p + c for p in prompt_ids for c in continuations]
        lengths = [len(c) for _ in prompt_ids for c in continuations]
        keep = max(len(c) for c in continuations) + 1
        flat = np.empty(len(sequences), dtype=np.float64)
        for rows, logprobs in self.forward(sequences, keep=keep):
            for j, row in enumerate(rows.tolist()):
                n = lengths[row]
                targets = self._torch.tensor(sequences[row][-n:], device=logprobs.device)
                # Position -n-1 predicts the first continuation token; the last position predicts what comes after.
                picked = logprobs[j, -n - 1 : -1].gather(1, targets[:, None])
                flat[row] = float(picked.double().sum())
        return flat.reshape(len(prompt_ids), n_cont)

    def forward(self, sequences: Sequence[Sequence[int]], keep: int,
                batch_tokens: int | None = None) -> Iterator[tuple[np.ndarray, Any]]:  # fmt: skip
        """Run the model over token sequences in length buckets; yield (row indices, log-probs of the last
        `keep` positions as float32, shape rows x keep x vocab). `keep=0` keeps every position.

        `batch_tokens` overrides the scorer's budget (every position's logits need a smaller one)."""
        torch = self._torch
        lengths = [len(s) for s in sequences]
        for rows in length_buckets(lengths, batch_tokens or self.batch_tokens):
            started = time.perf_counter()
            width = max(lengths[r] for r in rows)
            ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for j, r in enumerate(rows.tolist()):
                n = lengths[r]
                ids[j, width - n :] = torch.tensor(sequences[r], dtype=torch.long)
                mask[j, width - n :] = 1
            # Positions count from each row's first real token, so padding does not shift the rotary positions.
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            with torch.inference_mode():
                out = self.model(
                    input_ids=ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    position_ids=positions.to(self.device),
                    logits_to_keep=keep,
                    use_cache=False,
                )
                logprobs = torch.log_softmax(out.logits.float(), dim=-1)
            self.stats["forward_passes"] += 1
            self.stats["prompts"] += len(rows)
            self.stats["prompt_tokens"] += int(sum(lengths[r] for r in rows))
            self.stats["padded_tokens"] += int(len(rows) * width)
            yield rows, logprobs
            # Counted after the caller has read the answers: on a GPU that is when the work is done.
            self.stats["seconds"] += time.perf_counter() - started


def first_line(exc: BaseException) -> str:
    """An error's first line, or its type's name when it has no message: for one-line error reports."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
