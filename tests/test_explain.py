"""Understand and optimize: leave-one-word-out explanations through the broker, and variants of a post compared
by simulation with common random numbers.

The language model here is real: a tiny Llama trained in the session to answer " share" when a text holds the
planted word (tests/explain_fixtures.py), reached through the `hf` backend and through a real `lsbm-sim serve`.
"""

import doctest
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import small_scenario
from explain_fixtures import PLANTED, TEMPLATE, save_planted_checkpoint

import lsbm_sim
from lsbm_sim import Scenario
from lsbm_sim.cli import main
from lsbm_sim.studies.explain import explain, split_words, without_word
from lsbm_sim.studies.optimize import compare, decide, optimize, paired_difference

TEXT = f"Our village market opens with {PLANTED} and music"


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    return save_planted_checkpoint(tmp_path_factory.mktemp("planted") / "model")


def hf_scenario(folder: Path, **changes) -> Scenario:
    data = small_scenario(
        behavior={"backend": "hf", "model": str(folder), "device": "cpu", "prompt": TEMPLATE},
        population={"size": 100, "activity": 0.7},
        steps=4,
        content=[{"id": "a", "text": "the teacher visits the village library", "author": {"strategy": "random", "count": 3}}],
    )
    data.update(changes)
    return Scenario.from_dict(data)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_module_examples_run():
    import importlib

    for name in ("lsbm_sim.studies.explain", "lsbm_sim.studies.optimize"):
        result = doctest.testmod(importlib.import_module(name))
        assert result.failed == 0 and result.attempted >= 1, name


def test_a_word_left_out_leaves_the_rest_of_the_text_as_it_was():
    text = "Wow, the 3 'eco-friendly' kittens!"
    words = split_words(text)
    assert [w.text for w in words] == ["Wow", "the", "3", "eco-friendly", "kittens"]
    assert [without_word(text, w) for w in words] == [
        ", the 3 'eco-friendly' kittens!", "Wow, 3 'eco-friendly' kittens!", "Wow, the 'eco-friendly' kittens!",
        "Wow, the 3 '' kittens!", "Wow, the 3 'eco-friendly'!",
    ]  # fmt: skip


def test_the_planted_word_comes_first_through_a_real_language_model(planted):
    spec = hf_scenario(planted)
    e = explain(TEXT, scenario=spec, edits=[f"{PLANTED}=>music"])
    assert e.model == "hf" and e.model_calls == 1  # the text, its 7 occluded copies and the edit: one call
    assert e.ranking("share")[0][0] == PLANTED and e.ranking("engaged")[0][0] == PLANTED
    assert e.ranking("ignore")[-1][0] == PLANTED  # leaving it out raises ignore the most
    others = [abs(v) for w, v in e.ranking("share") if w != PLANTED]
    assert e.effect(PLANTED, "share") > 0.2 and max(others) < e.effect(PLANTED, "share") / 10
    assert e.edits[0].change["share"] < -0.2 and e.edits[0].text == "Our village market opens with music and music"
    # a text without the word: nothing in it moves sharing much
    plain = explain("the farmer crosses the mountain bridge", scenario=spec)
    assert max(abs(v) for _, v in plain.ranking("share")) < 0.05 < e.effect(PLANTED, "share")


def test_the_same_explanation_through_an_openai_compatible_server(planted):
    from lsbm_sim.serve import start_server

    direct = explain(TEXT, scenario=hf_scenario(planted))
    with start_server(planted, port=0, served_model_name="planted", device="cpu") as server:
        behavior = {"backend": "openai", "model": "planted", "base_url": server.url, "prompt": TEMPLATE}
        served = explain(TEXT, scenario=hf_scenario(planted, behavior=behavior))
    assert served.model == "openai" and served.model_calls == 1
    assert served.ranking("share")[0][0] == PLANTED
    np.testing.assert_allclose(served.effects, direct.effects, atol=1e-4)


def test_explain_json_holds_the_probability_differences_of_the_default_model(capsys):
    from lsbm_sim.behavior import BehaviorQuery
    from lsbm_sim.behavior.surrogate import SurrogateModel

    persona = "Follows news about health and science."
    text = "Walking daily adds years to your life"
    code, out, err = run_cli(capsys, "explain", text, "--persona", persona, "--json", "--edit", "daily=>weekly")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["model"] == "surrogate" and doc["model_calls"] == 1  # as a scenario names it
    scenario = Path(__file__).resolve().parents[1] / "scenarios" / "eco_product_launch.yaml"  # its backend: surrogate
    code, out, err = run_cli(capsys, "explain", text, "--persona", persona, "--json", "--scenario", scenario)
    assert code == 0, err
    assert json.loads(out)["model"] == doc["model"]  # one name for the same model, with or without --scenario
    assert [w["word"] for w in doc["words"]] == text.split()
    # recompute every effect with the model directly, one text at a time
    model = SurrogateModel()
    texts = [text] + [" ".join(t for t in text.split() if t != w) for w in text.split()] + [text.replace("daily", "weekly")]
    p = model.predict_proba([BehaviorQuery(persona, t) for t in texts])
    share = list(model.reactions).index("share")
    for k, word in enumerate(doc["words"], 1):
        assert word["effects"]["share"] == pytest.approx(p[0, share] - p[k, share], abs=1e-5)
        assert word["effects"]["engaged"] == pytest.approx(p[k, 0] - p[0, 0], abs=1e-5)
    assert doc["edits"][0]["change"]["share"] == pytest.approx(p[-1, share] - p[0, share], abs=1e-5)
    best = max(doc["words"], key=lambda w: w["effects"]["share"])["word"]
    assert doc["ranking"]["share"][0] == best


def test_explain_prints_a_table_of_every_word(capsys):
    code, out, _ = run_cli(capsys, "explain", "Walking daily adds years to your life", "--outcome", "share")
    assert code == 0
    assert "effect of each word" in out and "p(share)" in out
    assert all(word in out for word in ("Walking", "daily", "adds", "years", "life"))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["", ], "empty"),
        (["   "], "empty"),
        (["?!", ], "no words"),
        (["Hello world", "--edit", "Hello"], "expected OLD=>NEW"),
        (["Hello world", "--edit", "=>Hi"], "empty"),
        (["Hello world", "--edit", "Bye=>Hi"], "'Bye' does not occur"),
        (["Hello world", "--persona", " "], "persona"),
    ],
)
def test_explain_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run_cli(capsys, "explain", *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err


def test_explain_is_the_package_function():
    assert lsbm_sim.explain is explain and lsbm_sim.optimize is optimize


# ------------------------------------------------------------------------------------------------ optimize


def test_optimize_names_the_variant_the_model_prefers(planted, tmp_path):
    spec = hf_scenario(planted)
    variants = [f"the teacher visits the {PLANTED} library", "the farmer visits the village library"]
    result = optimize(spec, "a", variants, replications=3, workers=1, out=tmp_path / "opt")
    assert result.winner == "v1", result.verdict
    s = result.summary.set_index(["variant", "metric"])
    assert s.loc[("v1", "share"), "diff_low"] > 0 and s.loc[("v1", "share"), "p_holm"] < 0.05
    assert abs(s.loc[("v2", "engagement"), "diff"]) < s.loc[("v1", "engagement"), "diff"] / 5
    # common random numbers: replication r of every variant ran with the same seed
    assert (result.runs.groupby("replication").seed.nunique() == 1).all()
    table = pd.read_csv(tmp_path / "opt" / "optimize.csv")
    assert len(table) == 3 * 5 and set(table.metric) == {"reach", "like", "share", "cascade_size", "engagement"}
    assert (tmp_path / "opt" / "optimize.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "opt" / "optimize.json").read_text())["winner"] == "v1"


def test_optimize_names_no_winner_when_the_texts_make_no_difference(tmp_path):
    spec = Scenario.from_dict(small_scenario())  # a constant model: every text is answered alike
    result = optimize(spec, "a", ["A different headline", "Yet another one"], replications=3, workers=1)
    assert result.winner is None and result.verdict.startswith("no winner")
    others = result.summary[result.summary.variant != "original"]
    assert (others["diff"] == 0).all() and (others.p_value == 1).all()
    assert (result.summary.groupby("metric")["mean"].nunique() == 1).all()  # same seeds, same runs


def fake_runs(shifts: dict[str, np.ndarray], n: int = 12, seed: int = 0) -> pd.DataFrame:
    """Paired runs: a shared per-replication world effect plus each variant's shift and its own noise."""
    rng = np.random.default_rng(seed)
    world = rng.normal(100, 20, n)
    rows = []
    for label, shift in shifts.items():
        values = world + shift + rng.normal(0, 1, n)
        rows += [{"variant": label, "replication": r, "engagement": v} for r, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_a_winner_must_survive_the_correction_for_several_variants():
    labels = ["original", "v1", "v2", "v3"]
    runs = fake_runs({"original": 0, "v1": 0, "v2": 0, "v3": 0})
    # v3 made just significant on its own (raw p ~ 0.02), but not after Holm over three variants
    base = runs[runs.variant == "original"].engagement.to_numpy()
    v3 = runs.variant == "v3"
    diff = runs.loc[v3, "engagement"].to_numpy() - base
    runs.loc[v3, "engagement"] = base + (diff - diff.mean()) + 2.7 * diff.std(ddof=1) / np.sqrt(12)
    summary = compare(runs, labels, ["engagement"])
    row = summary.set_index("variant").loc["v3"]
    assert 0.01 < row.p_value < 0.05 and row.p_holm > 0.05
    assert decide(summary, "engagement") == (None, decide(summary, "engagement")[1])
    # a real improvement is found, paired: the shared world noise (sd 20) does not hide a shift of 3
    runs = fake_runs({"original": 0, "v1": 3.0, "v2": 0, "v3": -0.2})
    summary = compare(runs, labels, ["engagement"])
    winner, verdict = decide(summary, "engagement")
    assert winner == "v1" and "v1 wins" in verdict
    d = summary.set_index("variant").loc["v1"]
    assert d.diff_low < 3.0 < d.diff_high
    assert paired_difference(np.array([1.0, 2, 3]), np.array([1.0, 2, 3])) == (0.0, 0.0, 0.0, 1.0)


def write_scenario(tmp_path: Path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(small_scenario()))
    return path


def test_optimize_command_writes_the_table_and_plot(tmp_path, capsys):
    variants = tmp_path / "v.jsonl"
    variants.write_text('{"id": "calm", "text": "A calm headline"}\n\n{"text": "A loud headline!"}\n')
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "optimize", write_scenario(tmp_path), "--post", "a", "--variants", variants,
                                "--replications", 2, "--workers", 1, "--out", out)  # fmt: skip
    assert code == 0, err
    assert "calm" in stdout and "v2" in stdout and "no winner" in stdout and "paired t-test" in stdout
    assert {p.name for p in out.iterdir()} >= {"optimize.csv", "optimize.parquet", "optimize.png", "optimize.json",
                                               "sweep.parquet"}  # fmt: skip
    assert set(pd.read_parquet(out / "optimize.parquet").variant) == {"original", "calm", "v2"}


@pytest.mark.parametrize(
    "name, content, post, message",
    [
        ("missing.txt", None, "a", "file not found"),
        ("v.csv", "headline\nHello\n", "a", "needs a 'text' column"),
        ("v.jsonl", '{"text": "ok"}\n{"text": \n', "a", "line 2 is not valid JSON"),
        ("v.csv", "text\nHello\n\"\"\n", "a", "line 3: the variant's text is empty"),
        ("v.jsonl", '{"text": "ok"}\n\n{"id": "x"}\n', "a", "record 2 has no 'text' field"),
        ("v.txt", "\n\n", "a", "no variants"),
        ("v.xlsx", "text\n", "a", "not '.xlsx'"),
        ("v.txt", "Hello\n", "nope", "--post 'nope': no post with that id"),
    ],
)
def test_optimize_bad_input_is_one_line_and_exit_2(tmp_path, capsys, name, content, post, message):
    variants = tmp_path / name
    if content is not None:
        variants.write_text(content)
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "optimize", write_scenario(tmp_path), "--post", post, "--variants", variants,
                           "--replications", 2, "--workers", 1, "--out", out)  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not out.exists()
