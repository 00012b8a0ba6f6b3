"""The vllm backend without vLLM: its missing-dependency message, and its request building and answer reading,
checked against a real tiny model's log-probabilities laid out the way vLLM returns them."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from llm_fixtures import hub_offline, sample_batch, tiny_checkpoint  # noqa: F401 - fixtures

from lsbm_sim.behavior import make_behavior_model
from lsbm_sim.behavior.base import BehaviorModelError
from lsbm_sim.behavior.hf import HFScorer
from lsbm_sim.behavior.vllm import (
    engine_arguments,
    first_token_sampling,
    full_sampling,
    full_sequences,
    read_continuation,
    read_first_token,
    token_prompts,
)
from lsbm_sim.errors import LsbmError
from lsbm_sim.scenario import BehaviorSpec

VLLM_MISSING = importlib.util.find_spec("vllm") is None


@pytest.mark.skipif(not VLLM_MISSING, reason="vLLM is installed here")
def test_missing_vllm_is_one_message_with_the_install_command(tiny_checkpoint):
    spec = BehaviorSpec(backend="vllm", model=str(tiny_checkpoint))
    with pytest.raises(LsbmError, match=r"pip install 'lsbm-sim\[vllm\]'"):
        make_behavior_model(spec)


def test_engine_arguments():
    args = engine_arguments("/models/m", n_options=4)
    assert args["model"] == args["tokenizer"] == "/models/m"
    assert args["enable_prefix_caching"] is True
    assert args["dtype"] == "bfloat16" and args["load_format"] == "safetensors"
    assert args["trust_remote_code"] is False and "logprobs_mode" not in args
    assert args["max_logprobs"] >= 5
    args = engine_arguments("/m", dtype="float16", allow_pickle=True, n_options=40, use_processed_logprobs=True)
    assert args["dtype"] == "float16" and args["load_format"] == "auto"
    assert args["max_logprobs"] >= 41 and args["logprobs_mode"] == "processed_logprobs"


def test_first_token_requests_ask_for_the_option_tokens_only():
    new = first_token_sampling([11, 12, 13], has_logprob_token_ids=True)
    assert new["logprob_token_ids"] == [11, 12, 13] and "allowed_token_ids" not in new
    old = first_token_sampling([11, 12, 13], has_logprob_token_ids=False)
    assert old["allowed_token_ids"] == [11, 12, 13] and old["logprobs"] == 3
    for params in (new, old):
        assert params["max_tokens"] == 1 and params["temperature"] == 1.0
    assert full_sampling()["prompt_logprobs"] == 0
    assert token_prompts([[1, 2], [3]]) == [{"prompt_token_ids": [1, 2]}, {"prompt_token_ids": [3]}]
    assert full_sequences([[1, 2], [3]], [[7], [8, 9]]) == [[1, 2, 7], [1, 2, 8, 9], [3, 7], [3, 8, 9]]


class Logprob:
    """vLLM's log-probability entry has this shape (a value with a rank and the decoded token)."""

    def __init__(self, logprob: float, rank: int = 1):
        self.logprob = logprob
        self.rank = rank


def test_answers_are_read_as_hf_scores_them(tiny_checkpoint):
    scorer = HFScorer(tiny_checkpoint, scoring="full")
    batch = sample_batch(4)
    prompts = [scorer.plan.render(q) for q in batch]
    prompt_ids = scorer.encode(prompts)
    options = scorer.option_ids
    # What vLLM's prompt_logprobs=0 returns: for each position, {actual token id: Logprob}, None at position 0.
    sequences = full_sequences(prompt_ids, options)
    outputs = []
    for seq in sequences:
        with torch.no_grad():
            logp = torch.log_softmax(scorer.model(torch.tensor([seq])).logits[0].double(), -1)
        outputs.append([None] + [{seq[t]: Logprob(float(logp[t - 1, seq[t]]))} for t in range(1, len(seq))])
    scores = np.array([read_continuation(o, s, len(options[k % len(options)]))
                       for k, (o, s) in enumerate(zip(outputs, sequences))]).reshape(len(prompts), -1)  # fmt: skip
    np.testing.assert_allclose(scorer.plan.probabilities(scores), scorer.predict_proba(batch), atol=1e-6)

    # first_token: the answer position's {token id: Logprob} for the option ids (plus whatever was sampled).
    first = [ids[0] for ids in options]
    with torch.no_grad():
        logp = torch.log_softmax(scorer.model(torch.tensor([prompt_ids[0]])).logits[0, -1].double(), -1)
    step = {i: Logprob(float(logp[i])) for i in first} | {5: Logprob(-9.0)}
    assert read_first_token(step, first) == pytest.approx([float(logp[i]) for i in first])


def test_incomplete_answers_are_errors():
    with pytest.raises(BehaviorModelError, match=r"no log-probability for option token id\(s\) \[9\]"):
        read_first_token({5: -0.1}, [5, 9])
    with pytest.raises(BehaviorModelError, match="no log-probabilities for the answer position"):
        read_first_token(None, [5])
    with pytest.raises(BehaviorModelError, match="do not match the prompt"):
        read_continuation([None, {4: -1.0}], [1, 4, 6], 1)
