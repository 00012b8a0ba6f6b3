"""From a CSV of A/B-tested headlines to a simulation: bft prepare -> train (LoRA) -> eval -> run with hf."""

from __future__ import annotations

import json

import numpy as np
import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from lsbm_sim import run
from lsbm_sim.behavior.checkpoint import BehaviorCheckpoint
from lsbm_sim.bft.cli import run_bft_cli
from lsbm_sim.scenario import Scenario

from bft_fixtures import one_torch_thread, tiny_base_model, write_planted_csv  # noqa: F401 (a fixture)

SEED_CARD_PROMPT = "Text: 'Just launched our new eco-friendly product line!' Predict the like level (low/medium/high):"
CATCHY = "Amazing secret shocking hilarious city"
DULL = "Quarterly report policy minutes update"


@pytest.mark.usefixtures("one_torch_thread")
def test_prepare_train_eval_simulate(tmp_path, capsys):
    csv = write_planted_csv(tmp_path, n_tests=120)
    base = tiny_base_model(tmp_path / "base")
    data, model = tmp_path / "data" / "bft", tmp_path / "models" / "lsbm"

    assert run_bft_cli(["prepare", str(csv), "--text", "headline", "--behavior", "clicks", "--exposure",
                        "impressions", "--group", "test_id", "--split", "time:week", "--name", "like",
                        "--tasks", "level", "--out", str(data)]) == 0  # fmt: skip
    assert {p.name for p in data.iterdir()} == {"train.jsonl", "val.jsonl", "test.jsonl", "bft.json"}

    assert run_bft_cli(["train", str(data), "--base", str(base), "--lora", "--out", str(model), "--steps", "300",
                        "--batch-size", "8", "--lr", "3e-3", "--save-steps", "100", "--no-progress"]) == 0  # fmt: skip
    assert (model / "lsbm_behavior.json").is_file() and not model.with_name("lsbm.checkpoints").exists()

    assert run_bft_cli(["eval", str(model), str(data), "--baseline", str(base), "--no-encoder"]) == 0
    printed = capsys.readouterr().out
    assert "| LSBM tuned (behavior tokens) |" in printed and "| base, untuned (words) |" in printed
    written = json.loads((tmp_path / "models" / "lsbm.eval" / "eval.json").read_text())
    results = {r["name"]: r for r in written["results"]}
    assert results["LSBM tuned (behavior tokens)"]["accuracy"] > results["base, untuned (words)"]["accuracy"]

    # The seed card's example on the result: greedy generation decodes to a level.
    lm = AutoModelForCausalLM.from_pretrained(model)
    tokenizer = AutoTokenizer.from_pretrained(model)
    inputs = tokenizer(SEED_CARD_PROMPT, return_tensors="pt")
    generated = lm.generate(**inputs, max_new_tokens=3, do_sample=False)
    answer = tokenizer.decode(generated[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert answer in {"low", "medium", "high"}

    # Simulate with the checkpoint through the hf backend: share probabilities come from the level rates.
    scenario = Scenario.from_dict({
        "name": "bft-e2e",
        "steps": 4,
        "population": {"size": 40},
        "network": {"kind": "barabasi_albert", "params": {"m": 2}},
        "content": [{"id": "catchy", "text": CATCHY}, {"id": "dull", "text": DULL}],
        "behavior": {"backend": "hf", "model": str(model), "reactions": ["ignore", "share"]},
    })  # fmt: skip
    result = run(scenario, seed=1)
    events = result.events
    assert len(events) > 0 and set(events["reaction"]) <= {"ignore", "share"}
    rates = BehaviorCheckpoint.read(model).level_rates
    assert events["p_share"].between(min(rates.values()) - 1e-6, max(rates.values()) + 1e-6).all()
    assert np.allclose(events["p_share"] + events["p_ignore"], 1.0)
    p_share = events.groupby("item_id")["p_share"].mean()
    assert p_share["catchy"] > p_share["dull"]  # the planted words, learned and carried into the simulation
