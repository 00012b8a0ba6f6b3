"""The hf backend on tiny real Llama checkpoints: exact probabilities, batching, options, level checkpoints,
loading errors, and whole scenarios."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from llm_fixtures import (  # noqa: F401 - fixtures
    LEVELS,
    REACTIONS,
    hub_offline,
    level_checkpoint,
    sample_batch,
    scenario_dict,
    tiny_checkpoint,
    token_checkpoint,
)
from transformers import AutoModelForCausalLM, AutoTokenizer

from lsbm_sim import run
from lsbm_sim.behavior.base import BehaviorQuery, QueryBatch
from lsbm_sim.behavior.checkpoint import BehaviorCheckpoint
from lsbm_sim.behavior.hf import HFScorer
from lsbm_sim.behavior.prompts import PromptTemplate
from lsbm_sim.errors import LsbmError
from lsbm_sim.scenario import Scenario
from lsbm_sim.behavior.tiny_models import random_llama, tiny_llama_config, train_tokenizer


def reference_probs(folder, batch: QueryBatch, options, temperature: float = 1.0) -> np.ndarray:
    """One unpadded forward per query with transformers directly; softmax over the options' first tokens."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    template = PromptTemplate()
    first = [tokenizer(" " + o, add_special_tokens=False)["input_ids"][0] for o in options]
    rows = []
    for query in batch:
        ids = torch.tensor([tokenizer(template.render(query, options))["input_ids"]])
        with torch.no_grad():
            logits = model(ids).logits[0, -1].double()
        scores = torch.log_softmax(logits, -1)[first] / temperature
        rows.append(torch.softmax(scores, -1).numpy())
    return np.array(rows)


def test_probabilities_match_an_unbatched_reference_forward(tiny_checkpoint):
    batch = sample_batch()
    scorer = HFScorer(tiny_checkpoint, batch_tokens=300)  # several prompts per batch, padded on the left
    probs = scorer.predict_proba(batch)
    assert probs.shape == (len(batch), len(REACTIONS))
    np.testing.assert_allclose(probs, reference_probs(tiny_checkpoint, batch, REACTIONS), atol=1e-5, rtol=0)
    assert scorer.stats["prompts"] == len(batch)
    assert scorer.stats["forward_passes"] > 1
    assert scorer.stats["prompt_tokens"] < scorer.stats["padded_tokens"]


def test_batch_budget_and_query_order_do_not_change_answers(tiny_checkpoint):
    batch = sample_batch()
    one_at_a_time = HFScorer(tiny_checkpoint, batch_tokens=1).predict_proba(batch)
    all_at_once = HFScorer(tiny_checkpoint, batch_tokens=1_000_000).predict_proba(batch)
    reversed_rows = np.arange(len(batch))[::-1]
    reordered = HFScorer(tiny_checkpoint).predict_proba(batch.take(reversed_rows))
    np.testing.assert_allclose(one_at_a_time, all_at_once, atol=1e-6, rtol=0)
    np.testing.assert_allclose(reordered, all_at_once[reversed_rows], atol=1e-6, rtol=0)


def test_temperature_calibrates(tiny_checkpoint):
    batch = sample_batch(6)
    hot = HFScorer(tiny_checkpoint, temperature=2.0).predict_proba(batch)
    np.testing.assert_allclose(hot, reference_probs(tiny_checkpoint, batch, REACTIONS, temperature=2.0), atol=1e-5)
    plain = HFScorer(tiny_checkpoint).predict_proba(batch)
    assert hot.max(axis=1).mean() < plain.max(axis=1).mean()  # a higher temperature flattens


def test_full_scoring_sums_every_option_token(tiny_checkpoint):
    # " liked" is two tokens here (" like" + "d"), so "like" and "liked" share their first token.
    reactions = ("ignore", "like", "liked")
    with pytest.raises(LsbmError, match="scoring: full"):
        HFScorer(tiny_checkpoint, reactions=reactions)
    batch = sample_batch(5)
    scorer = HFScorer(tiny_checkpoint, reactions=reactions, scoring="full")
    tokenizer, model = scorer.tokenizer, scorer.model
    expected = []
    for query in batch:
        prompt = tokenizer(PromptTemplate().render(query, reactions))["input_ids"]
        scores = []
        for option in reactions:
            cont = tokenizer(" " + option, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([prompt + cont])).logits[0].double(), -1)
            scores.append(sum(float(logp[len(prompt) - 1 + k, t]) for k, t in enumerate(cont)))
        expected.append(np.exp(scores) / np.exp(scores).sum())
    np.testing.assert_allclose(scorer.predict_proba(batch), np.array(expected), atol=1e-5)
    # With single-token options both modes read the same numbers.
    batch = sample_batch(8)
    np.testing.assert_allclose(
        HFScorer(tiny_checkpoint, scoring="full").predict_proba(batch),
        HFScorer(tiny_checkpoint).predict_proba(batch), atol=1e-6,
    )  # fmt: skip


def test_behavior_tokens_are_used_when_the_tokenizer_has_them(token_checkpoint, tiny_checkpoint):
    scorer = HFScorer(token_checkpoint)
    assert scorer.plan.spellings == ("<|ignore|>", "<|like|>", "<|share|>", "<|comment|>")
    prompt = scorer.cache_key(BehaviorQuery("A teacher.", "Hello"))
    assert prompt.endswith("Predict the reaction (<|ignore|>/<|like|>/<|share|>/<|comment|>):")
    vocab = scorer.tokenizer.get_vocab()
    assert [ids[0] for ids in scorer.option_ids] == [vocab[t] for t in scorer.plan.spellings]
    assert HFScorer(tiny_checkpoint).plan.spellings == (" ignore", " like", " share", " comment")


def test_level_checkpoint_turns_levels_into_reaction_probabilities(level_checkpoint):
    reactions = ("ignore", "like", "share")
    scorer = HFScorer(level_checkpoint, reactions=reactions)
    batch = sample_batch(6)
    probs = scorer.predict_proba(batch)

    tokenizer = AutoTokenizer.from_pretrained(level_checkpoint)
    model = AutoModelForCausalLM.from_pretrained(level_checkpoint).eval()
    level_ids = [tokenizer.convert_tokens_to_ids(f"<|{x}|>") for x in LEVELS]
    rates = np.array([0.008, 0.013, 0.021])
    for query, row in zip(batch, probs):
        text = (f"Persona: {query.persona}\nText: '{query.content}' Predict the clicks level "
                "(<|low|>/<|medium|>/<|high|>):")  # fmt: skip
        assert scorer.cache_key(query) == text
        with torch.no_grad():
            logits = model(torch.tensor([tokenizer(text)["input_ids"]])).logits[0, -1].double()
        p_level = torch.softmax(logits[level_ids], -1).numpy()
        share = float(p_level @ rates)
        np.testing.assert_allclose(row, [1 - share, 0.0, share], atol=1e-6)

    with pytest.raises(LsbmError, match=r"must include \['share'\]"):
        HFScorer(level_checkpoint, reactions=("ignore", "like"))


def test_level_checkpoint_file_round_trips_and_bad_files_are_named(tmp_path):
    ckpt = BehaviorCheckpoint(behavior="likes", levels=["low", "high"], level_rates={"low": 0.1, "high": 0.4})
    ckpt.write(tmp_path)
    assert BehaviorCheckpoint.read(tmp_path) == ckpt
    assert BehaviorCheckpoint.read(tmp_path / "missing") is None
    (tmp_path / "lsbm_behavior.json").write_text(
        '{"format": "lsbm-sim behavior checkpoint", "version": 1, "task": "level", "behavior": "likes",'
        ' "levels": ["low", "high"], "level_rates": {"low": 0.1}}'
    )
    with pytest.raises(LsbmError, match=r"lsbm_behavior.json: .*level_rates must give a rate for each level"):
        BehaviorCheckpoint.read(tmp_path)


def test_fingerprint_names_weights_prompt_and_calibration(tiny_checkpoint, token_checkpoint):
    base = HFScorer(tiny_checkpoint)
    assert HFScorer(tiny_checkpoint).fingerprint == base.fingerprint
    others = {
        HFScorer(tiny_checkpoint, temperature=0.5).fingerprint,
        HFScorer(tiny_checkpoint, prompt="Text: {content} Reaction ({options}):").fingerprint,
        HFScorer(tiny_checkpoint, reactions=("ignore", "share")).fingerprint,
        HFScorer(token_checkpoint).fingerprint,
    }
    assert base.fingerprint not in others and len(others) == 4


def test_loading_errors_are_one_clear_message(tmp_path, tiny_checkpoint, hub_offline):
    with pytest.raises(LsbmError, match="is not a checkpoint folder"):
        HFScorer(tmp_path / "nowhere")
    with pytest.raises(LsbmError, match="neither a folder nor a hub model in the local cache"):
        HFScorer("no-such-org/no-such-model")
    with pytest.raises(LsbmError, match=r"unknown field\(s\) \['mood'\]"):
        HFScorer(tiny_checkpoint, prompt="{content} {mood}")

    # A checkpoint with only pickle weights loads only when the scenario allows pickle.
    pickled = tmp_path / "pickled"
    tokenizer = train_tokenizer()
    model = random_llama(tiny_llama_config(len(tokenizer)), tokenizer)
    tokenizer.save_pretrained(pickled)
    model.save_pretrained(pickled)
    # transformers 5 always writes safetensors; swap them for the pickle format older checkpoints have.
    torch.save(model.state_dict(), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    with pytest.raises(LsbmError, match="allow_pickle"):
        HFScorer(pickled)
    assert HFScorer(pickled, allow_pickle=True).predict_proba(sample_batch(2)).shape == (2, 4)


def test_a_whole_scenario_runs_through_hf_and_writes_its_statistics(tmp_path, tiny_checkpoint):
    scenario = Scenario.from_dict(scenario_dict({"backend": "hf", "model": str(tiny_checkpoint)}), base_dir=tmp_path)
    result = run(scenario, out=tmp_path / "results")
    events = result.events
    assert len(events) > 0
    assert {"p_ignore", "p_like", "p_share", "p_comment"} <= set(events.columns)
    np.testing.assert_allclose(events[["p_ignore", "p_like", "p_share", "p_comment"]].sum(axis=1), 1.0, atol=1e-5)
    manifest = result.manifest
    assert manifest["complete"] and manifest["backend"] == "hf"
    assert manifest["behavior_fingerprint"].startswith("hf:")
    stats = manifest["behavior_stats"]
    assert stats["prompts"] == manifest["broker"]["model_rows"] > 0
    assert stats["prompt_tokens"] > stats["prompts"] and stats["forward_passes"] >= 1
    assert (tmp_path / "results" / "manifest.json").is_file()


def test_batch_size_and_cache_state_do_not_change_the_event_log(tmp_path, tiny_checkpoint):
    cache = tmp_path / "answers.sqlite"
    behavior = {"backend": "hf", "model": str(tiny_checkpoint), "cache": str(cache)}
    scenario = Scenario.from_dict(scenario_dict(behavior), base_dir=tmp_path)

    cold = run(scenario, out=tmp_path / "cold")
    assert cold.manifest["broker"]["disk_hits"] == 0
    warm = run(scenario, out=tmp_path / "warm")
    assert warm.manifest["broker"]["disk_hits"] > 0 and warm.manifest["broker"]["model_rows"] == 0
    small = run(scenario.with_overrides(["behavior.batch_tokens=64", "behavior.cache=null"]), out=tmp_path / "small")
    assert small.manifest["behavior_stats"]["forward_passes"] > cold.manifest["behavior_stats"]["forward_passes"]

    reference = cold.events.reset_index(drop=True)
    for other in (warm, small):
        pd.testing.assert_frame_equal(other.events.reset_index(drop=True), reference)
