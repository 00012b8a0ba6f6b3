"""Factorized scoring: a tiny real language model encodes each text once, a distilled head answers, and a hybrid
population sends some people through the full prompt."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from llm_fixtures import hub_offline, sample_batch, scenario_dict, tiny_checkpoint  # noqa: F401 - fixtures
from typer.testing import CliRunner

from lsbm_sim import run
from lsbm_sim.behavior import make_behavior_model
from lsbm_sim.behavior.embedding_cache import EmbeddingCache
from lsbm_sim.behavior.factorized import (
    FactorizedHead,
    FactorizedScorer,
    HybridScorer,
    LMTextEncoder,
    full_prompt_people,
)
from lsbm_sim.behavior.hf import HFScorer
from lsbm_sim.cli import main
from lsbm_sim.studies.distill import distill, distill_command, distill_factorized_queries
from lsbm_sim.errors import LsbmError
from lsbm_sim.engine.runner import sample_queries
from lsbm_sim.scenario import Scenario

# A low temperature spreads the random tiny model's answers, so that they depend visibly on the question.
TEACHER_TEMPERATURE = 0.02
POSTS = [
    "Just launched our new eco-friendly product line!",
    "Local team wins championship in overtime thriller.",
    "Fact check: the viral study was retracted.",
    "Ten tips for a greener garden this spring.",
    "Breaking: city council votes on the new stadium.",
    "Our bakery opens a second shop downtown 🍞",
]


def small_world(behavior: dict, agents: int = 60, steps: int = 4) -> dict:
    content = [{"id": f"p{i}", "text": text, "step": i % 3} for i, text in enumerate(POSTS)]
    content[0]["author"] = {"strategy": "influencer"}
    world = scenario_dict(behavior, agents=agents, steps=steps)
    world["content"] = content
    return world


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("factorized") / "small.yaml"
    path.write_text(yaml.safe_dump(small_world({"backend": "surrogate"}, agents=300, steps=6)))
    return str(path)


@pytest.fixture(scope="module")
def distilled(tmp_path_factory, tiny_checkpoint, scenario_file) -> tuple[dict, str]:
    """A head distilled from the tiny model on the scenario's questions, and the report."""
    out = tmp_path_factory.mktemp("head") / "head.json"
    queries = sample_queries(scenario_file, 400, seed=1)
    teacher = HFScorer(tiny_checkpoint, temperature=TEACHER_TEMPERATURE)
    report = distill_factorized_queries(teacher, queries, out, seed=1, holdout=0.25, components=8)
    return report, str(out)


def behavior(checkpoint, head: str, **factorized) -> dict:
    return {"backend": "hf", "model": str(checkpoint), "temperature": TEACHER_TEMPERATURE,
            "factorized": {"head": head, **factorized}}  # fmt: skip


def test_the_distilled_head_agrees_with_the_teacher_on_held_out_questions(distilled):
    report, head_path = distilled
    held, mean_answer = report["heldout"], report["heldout_mean_answer"]
    assert report["heldout_rows"] >= 20 and report["fit_rows"] >= 60 and report["components"] == 8
    # The teacher's answers vary from question to question, and the head follows that variation.
    assert mean_answer["mean_kl"] > 0.02
    assert held["mean_kl"] < 0.5 * mean_answer["mean_kl"]
    assert held["argmax_accuracy"] >= mean_answer["argmax_accuracy"]
    saved = json.loads(open(head_path).read())
    assert saved["fit"]["distilled"]["heldout"] == held and saved["reactions"] == list(report["reactions"])


def test_a_saved_head_answers_as_the_fitted_one(tmp_path, distilled, tiny_checkpoint, scenario_file):
    _, head_path = distilled
    head = FactorizedHead.load(head_path)
    encoder = LMTextEncoder(HFScorer(tiny_checkpoint), cache=None)
    batch = sample_queries(scenario_file, 50, seed=2)
    probs = head.proba(batch, encoder)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    # The per-pair shortcut gives what the full feature matrix gives.
    logits = head.intercept + head.features(batch, encoder) @ head.coef.T
    logits[:, head.ignore_index] = 0
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, expected, atol=1e-12)
    head.save(tmp_path / "again.json")
    np.testing.assert_array_equal(FactorizedHead.load(tmp_path / "again.json").proba(batch, encoder), probs)


def test_language_model_work_grows_with_texts_not_questions(distilled, tiny_checkpoint):
    _, head_path = distilled
    scorer = HFScorer(tiny_checkpoint)
    model = FactorizedScorer(LMTextEncoder(scorer, cache=None), FactorizedHead.load(head_path))
    batch = sample_batch(24)  # 3 personas x 3 posts in many contexts
    first = model.predict_proba(batch)
    assert model.stats["texts_encoded"] == 6 and model.stats["head_rows"] == 24
    again = model.predict_proba(sample_batch(24))
    np.testing.assert_array_equal(again, first)
    assert model.stats["texts_encoded"] == 6 and model.stats["head_rows"] == 48
    assert scorer.stats["prompts"] == 0  # no full prompt was scored
    # The context reaches the answer: the same persona and post in other contexts get other probabilities.
    same_pair = (batch.persona_id == 0) & (batch.item_id == 0)
    assert len(np.unique(first[same_pair].round(9), axis=0)) > 1


def test_vectors_do_not_depend_on_batching_or_the_disk_cache(tmp_path, tiny_checkpoint):
    texts = ["Persona: a teacher.", "Text: 'hello world.'", "Text: 'hello world!'", "Text: 'hello world?'",
             "Text: 'a longer post about gardens'"]
    small = LMTextEncoder(HFScorer(tiny_checkpoint, batch_tokens=1), cache=None)
    large = LMTextEncoder(HFScorer(tiny_checkpoint, batch_tokens=100_000), cache=None)
    np.testing.assert_array_equal(small.encode(texts), large.encode(texts))
    # The texts are grouped alike whatever the budget (on a GPU, other groups could change the last bits).
    lengths = {len(ids) for ids in small.scorer.encode(texts)}
    assert len(lengths) < len(texts)  # some texts share a pass
    assert small.stats["text_passes"] == large.stats["text_passes"] == len(lengths)
    large = large.encode(texts)
    # Each text alone (no padding, no neighbours) gives its vector within float32 rounding.
    encoder = LMTextEncoder(HFScorer(tiny_checkpoint), cache=None)
    alone = np.concatenate([encoder._run_model([t]) for t in texts])
    np.testing.assert_allclose(alone, large, atol=1e-6, rtol=0)
    cache = EmbeddingCache(tmp_path / "emb")
    cold = LMTextEncoder(HFScorer(tiny_checkpoint), cache=cache)
    vectors = cold.encode(texts)
    warm = LMTextEncoder(HFScorer(tiny_checkpoint), cache=cache)
    np.testing.assert_array_equal(warm.encode(texts), vectors)
    assert cold.stats["texts_encoded"] == len(texts) and warm.stats["texts_encoded"] == 0


def test_runs_give_the_same_events_whatever_the_batch_size_or_cache_state(tmp_path, monkeypatch, distilled,
                                                                          tiny_checkpoint):  # fmt: skip
    _, head_path = distilled
    for name, extra in (("factorized", {}), ("hybrid", {"full_prompt": {"share": 0.25, "select": "random"}})):
        monkeypatch.setenv("LSBM_CACHE", str(tmp_path / f"cache-{name}"))  # cold: an empty cache
        # Temperature 1: the full-prompt scorer's answers agree across batch budgets to float rounding, which a
        # temperature of 0.02 would multiply fifty-fold into the probabilities.
        spec = {**behavior(tiny_checkpoint, head_path, **extra), "temperature": 1.0,
                "cache": str(tmp_path / f"{name}.sqlite")}
        scenario = Scenario.from_dict(small_world(spec), base_dir=tmp_path)
        cold = run(scenario, out=tmp_path / f"{name}-cold")
        assert cold.manifest["behavior_stats"]["texts_encoded"] > 0
        warm = run(scenario, out=tmp_path / f"{name}-warm")
        assert warm.manifest["behavior_stats"]["texts_encoded"] == 0  # every vector read back from disk
        monkeypatch.setenv("LSBM_EMBEDDING_CACHE", "off")
        small = run(scenario.with_overrides(["behavior.batch_tokens=16", "behavior.cache=null"]), out=tmp_path / f"{name}-small")
        monkeypatch.delenv("LSBM_EMBEDDING_CACHE")
        assert small.manifest["behavior_stats"]["texts_encoded"] == cold.manifest["behavior_stats"]["texts_encoded"]
        reference = cold.events.reset_index(drop=True)
        for other in (warm, small):
            pd.testing.assert_frame_equal(other.events.reset_index(drop=True), reference, obj=f"{name} {other.path}")
        if name == "hybrid":
            stats = cold.manifest["behavior_stats"]
            assert stats["full_prompt_people"] == 15 and stats["prompts"] > 0 and stats["head_rows"] > 0
            assert warm.manifest["behavior_stats"]["prompts"] == 0  # the full-prompt answers came from the cache


def test_hybrid_asks_the_chosen_people_with_the_full_prompt(distilled, tiny_checkpoint):
    _, head_path = distilled
    scorer = HFScorer(tiny_checkpoint, temperature=TEACHER_TEMPERATURE)
    factorized = FactorizedScorer(LMTextEncoder(scorer, cache=None), FactorizedHead.load(head_path))
    hybrid = HybridScorer(scorer, factorized, share=0.5)
    batch = sample_batch(24)
    batch.agent_id[:] = np.arange(24) % 4
    hybrid.full_prompt_agents = np.array([True, False, True, False])
    probs = hybrid.predict_proba(batch)
    full = np.isin(batch.agent_id, [0, 2])
    np.testing.assert_allclose(probs[full], scorer.predict_proba(batch.take(np.flatnonzero(full))), atol=1e-6)
    np.testing.assert_allclose(probs[~full], factorized.predict_proba(batch.take(np.flatnonzero(~full))), atol=1e-12)
    assert np.abs(probs[full] - factorized.predict_proba(batch.take(np.flatnonzero(full)))).max() > 1e-3


def test_who_gets_the_full_prompt():
    followers = np.array([5, 50, 0, 50, 7, 1, 9, 3, 2, 8])
    assert np.flatnonzero(full_prompt_people(10, 0.3, "most_followed", followers, seed=1)).tolist() == [1, 3, 6]
    assert full_prompt_people(10, 0.01, "most_followed", followers, seed=1).sum() == 1  # at least one person
    a = full_prompt_people(1000, 0.1, "random", np.zeros(1000), seed=1)
    assert a.sum() == 100
    np.testing.assert_array_equal(a, full_prompt_people(1000, 0.1, "random", np.zeros(1000), seed=1))
    assert (a != full_prompt_people(1000, 0.1, "random", np.zeros(1000), seed=2)).any()


def test_the_distill_command_writes_a_head_a_scenario_runs_with(tmp_path, monkeypatch, tiny_checkpoint, scenario_file):
    monkeypatch.setenv("LSBM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "heads" / "tiny.json"
    import typer

    app = typer.Typer()
    app.command()(distill_command)
    teacher_spec = {"backend": "hf", "model": str(tiny_checkpoint), "temperature": TEACHER_TEMPERATURE}
    result = CliRunner().invoke(app, ["--teacher", json.dumps(teacher_spec), "--scenario",
                                      scenario_file, "--sample", "80", "--out", str(out), "--student", "factorized",
                                      "--compare"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "factorized head" in result.output and "factorized: {head:" in result.output
    assert "share per exposure in a run of the scenario: teacher" in result.output
    spec = {"backend": "hf", "model": str(tiny_checkpoint), "factorized": {"head": "heads/tiny.json"}}
    scenario = Scenario.from_dict(small_world(spec, agents=300, steps=6), base_dir=tmp_path)  # the head resolves from here
    student = run(scenario)
    assert len(student.events) > 0
    # The comparison's runs are the scenario's runs with the full prompt and with the distilled head.
    teacher = run(Scenario.from_dict(small_world(teacher_spec, agents=300, steps=6)))
    rates = {reaction: [int(r.items[reaction].sum()) / r.manifest["broker"]["decisions"] for r in (teacher, student)]
             for reaction in ("like", "share", "comment")}  # fmt: skip
    assert any(t != s for t, s in rates.values())  # the runs differ, so the report shows which run is which
    for reaction, (t, s) in rates.items():
        assert f"{reaction} per exposure in a run of the scenario: teacher {100 * t:.3f}%, student {100 * s:.3f}%" in result.output


def test_bad_inputs_get_one_clear_message(tmp_path, capsys, distilled, tiny_checkpoint, scenario_file):
    _, head_path = distilled
    with pytest.raises(ValueError, match="behavior.factorized is read only by 'hf'"):
        Scenario.from_dict(small_world({"backend": "surrogate", "factorized": {"head": head_path}}))
    with pytest.raises(ValueError, match="share"):
        Scenario.from_dict(small_world(behavior(tiny_checkpoint, head_path, full_prompt={"share": 0})))

    garbled = tmp_path / "garbled.json"
    doc = json.loads(open(head_path).read())
    doc["coef"] = doc["coef"][:-1]
    garbled.write_text(json.dumps(doc))
    other_model = tmp_path / "other.json"
    other_model.write_text(json.dumps({**json.loads(open(head_path).read()), "model": "lm-text:0123"}))
    wrong_reactions = small_world(behavior(tiny_checkpoint, head_path))
    wrong_reactions["behavior"]["reactions"] = ["ignore", "share"]
    cases = [
        (behavior(tiny_checkpoint, str(tmp_path / "missing.json")), "behavior.factorized.head: file not found"),
        (behavior(tiny_checkpoint, str(garbled)), "is not a valid factorized head (its arrays' shapes do not agree)"),
        (behavior(tiny_checkpoint, str(other_model)), "distilled from another language model"),
        (wrong_reactions["behavior"], "the head's reactions"),
    ]
    for spec, message in cases:
        with pytest.raises(LsbmError, match=message.replace("(", r"\(").replace(")", r"\)")):
            make_behavior_model(Scenario.from_dict(small_world(spec), base_dir=tmp_path).behavior)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(small_world(behavior(tiny_checkpoint, str(garbled)))))
    for command in (["validate", str(path)], ["run", str(path), "--out", str(tmp_path / "out")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "not a valid factorized head" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(LsbmError, match="--student factorized needs a full-prompt hf teacher"):
        distill("{backend: constant, probabilities: {like: 0.2}}", scenario_file, 10, tmp_path / "h.json",
                student="factorized")  # fmt: skip


def test_the_world_is_the_same_whichever_way_people_are_scored(tmp_path, monkeypatch, distilled, tiny_checkpoint):
    """Posting and the interest recommender read a behavior model's sentence encoder when it has one; the
    language model's text vectors must not take its place, or the factorized world would post other texts."""
    from conftest import ROOT

    _, head_path = distilled
    monkeypatch.setenv("LSBM_CACHE", str(tmp_path / "cache"))
    posting = {"posting": {"rate": 0.05, "pool": str(ROOT / "scenarios" / "data" / "posts.jsonl")}}
    items = {}
    for name, spec in (("full", {"backend": "hf", "model": str(tiny_checkpoint)}),
                       ("factorized", behavior(tiny_checkpoint, head_path))):  # fmt: skip
        world = {**small_world(spec, agents=60, steps=4), **posting}
        world["feed"] = {**world["feed"], "recommender": "interest", "out_of_network": 0.3}
        result = run(Scenario.from_dict(world, base_dir=tmp_path))
        items[name] = result.items.set_index("item_id")["text"] if "text" in result.items else result.items.index
    assert len(items["full"]) > len(POSTS)  # people posted
    pd.testing.assert_series_equal(items["factorized"], items["full"])


def test_the_bos_token_is_left_out_of_the_mean(tiny_checkpoint):
    """Trained Llamas' tokenizers begin every text with BOS, whose hidden state is the same for every text."""
    import torch

    scorer = HFScorer(tiny_checkpoint)
    bos, plain = scorer.tokenizer.bos_token_id, scorer.encode
    scorer.encode = lambda texts: [[bos, *ids] for ids in plain(texts)]  # as a BOS-adding tokenizer encodes
    text = "Text: 'hello world.'"
    vector = LMTextEncoder(scorer, cache=None).encode([text])[0]
    with torch.inference_mode():
        hidden = scorer.model.base_model(input_ids=torch.tensor(scorer.encode([text]))).last_hidden_state[0].numpy()
    np.testing.assert_allclose(vector, hidden[1:].mean(axis=0), atol=1e-6)
    assert np.abs(vector - hidden.mean(axis=0)).max() > 1e-4
