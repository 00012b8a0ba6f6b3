"""The openai backend against real servers on 127.0.0.1: `lsbm-sim serve` for the answers, small real servers
that refuse, fail or stall for the error paths."""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
import pytest
from llm_fixtures import (  # noqa: F401 - fixtures
    SERVED_NAME,
    FaultyServer,
    free_port,
    hub_offline,
    level_checkpoint,
    sample_batch,
    scenario_dict,
    tiny_checkpoint,
    tiny_server,
)

from lsbm_sim import run
from lsbm_sim.behavior.base import BehaviorModelError
from lsbm_sim.behavior.hf import HFScorer
from lsbm_sim.behavior.openai import OpenAIScorer
from lsbm_sim.errors import LsbmError
from lsbm_sim.scenario import Scenario
from lsbm_sim.serve import start_server

FAST = {"timeout": 0.5, "retries": 2, "backoff": 0.01}


@pytest.mark.parametrize("top_logprobs", [20, 100_000], ids=["echo-scored", "top-scored"])
def test_same_probabilities_as_hf(tiny_checkpoint, tiny_server, top_logprobs):
    batch = sample_batch()
    client = OpenAIScorer(SERVED_NAME, tiny_server.url, top_logprobs=top_logprobs, prompts_per_request=7)
    probs = client.predict_proba(batch)
    np.testing.assert_allclose(probs, HFScorer(tiny_checkpoint).predict_proba(batch), atol=1e-6, rtol=0)
    assert client.stats["requests"] >= 4 and client.stats["prompt_tokens"] > 0
    # With 20 of a 600-word vocabulary, a random model's options are rarely all among the top: echo answers.
    if top_logprobs == 20:
        assert client.stats["echo_rows"] > 0
    else:
        assert client.stats["echo_rows"] == 0


def test_full_scoring_and_level_checkpoints_match_hf(tiny_checkpoint, tiny_server, level_checkpoint):
    batch = sample_batch(8)
    reactions = ("ignore", "like", "liked")  # share a first token: only full scoring tells them apart
    client = OpenAIScorer(SERVED_NAME, tiny_server.url, reactions=reactions, scoring="full")
    hf = HFScorer(tiny_checkpoint, reactions=reactions, scoring="full")
    np.testing.assert_allclose(client.predict_proba(batch), hf.predict_proba(batch), atol=1e-6)

    with pytest.raises(BehaviorModelError, match="not distinct; set behavior.scoring: full"):
        OpenAIScorer(SERVED_NAME, tiny_server.url, reactions=reactions).predict_proba(batch)

    reactions = ("ignore", "like", "share")
    with start_server(level_checkpoint, port=0, served_model_name="levels") as server:
        client = OpenAIScorer("levels", server.url, reactions=reactions)
        assert client.plan.checkpoint is not None and client.plan.spellings[0] == "<|low|>"
        np.testing.assert_allclose(
            client.predict_proba(batch), HFScorer(level_checkpoint, reactions=reactions).predict_proba(batch), atol=1e-6
        )


def test_a_scenario_through_the_server_matches_hf(tmp_path, tiny_checkpoint, tiny_server):
    via_hf = run(Scenario.from_dict(scenario_dict({"backend": "hf", "model": str(tiny_checkpoint)})))
    served = {"backend": "openai", "model": SERVED_NAME, "base_url": tiny_server.url, "concurrency": 2}
    via_server = run(Scenario.from_dict(scenario_dict(served)), out=tmp_path / "served")
    assert via_server.manifest["complete"] and via_server.manifest["behavior_stats"]["requests"] > 0
    columns = ["step", "agent_id", "item_id", "reaction"]
    pd.testing.assert_frame_equal(via_server.events[columns], via_hf.events[columns])
    probs = [c for c in via_hf.events.columns if c.startswith("p_")]
    np.testing.assert_allclose(via_server.events[probs], via_hf.events[probs], atol=1e-6)


def test_base_urls_are_tried_in_turn(tiny_server):
    dead = f"http://127.0.0.1:{free_port()}/v1"  # refuses at once; the live server may be slow on a busy machine
    client = OpenAIScorer(SERVED_NAME, [dead, tiny_server.url], **{**FAST, "timeout": 30})
    assert client.predict_proba(sample_batch(3)).shape == (3, 4)
    assert client.stats["retried_requests"] >= 1


@pytest.mark.parametrize("mode", ["refuse", "500", "stall"])
def test_a_failing_server_is_retried_then_one_clear_error(mode):
    if mode == "refuse":
        url = f"http://127.0.0.1:{free_port()}/v1"
        with pytest.raises(BehaviorModelError) as caught:
            OpenAIScorer(SERVED_NAME, url, **FAST)
        assert "ConnectError" in str(caught.value)
    else:
        with FaultyServer(mode, stall_seconds=1.5) as server:
            started = time.perf_counter()
            with pytest.raises(BehaviorModelError) as caught:
                OpenAIScorer(SERVED_NAME, server.url, **FAST)
            elapsed = time.perf_counter() - started
            assert len(server.requests) == FAST["retries"] + 1
        url = server.url
        expected = "HTTP 500: out of memory" if mode == "500" else "timed out"
        assert expected in str(caught.value)
        if mode == "stall":  # each try gave up after the timeout instead of waiting for the server
            assert elapsed < (FAST["retries"] + 1) * 1.5
    message = str(caught.value)
    assert url in message and "after 3 tries" in message and "\n" not in message


def test_a_server_failing_mid_run_stops_it_and_leaves_no_complete_folder(tmp_path):
    with FaultyServer("models-then-500") as server:
        behavior = {"backend": "openai", "model": SERVED_NAME, "base_url": server.url, "retries": 1, "timeout": 2}
        out = tmp_path / "results"
        with pytest.raises(BehaviorModelError, match=r"no answer from the behavior model server .* after 2 tries"):
            run(Scenario.from_dict(scenario_dict(behavior)), out=out)
        assert server.completion_requests() == 2
    assert not (out / "manifest.json").exists()
    partial = tmp_path / "results.partial" / "manifest.json"
    if partial.exists():  # what the run gathered before the failure, marked incomplete
        assert json.loads(partial.read_text())["complete"] is False


@pytest.mark.parametrize(
    ("mode", "message"),
    [("wrong-count", "answered 1 choices for 3 prompts"), ("no-logprobs", "without log-probabilities")],
)
def test_malformed_answers_are_named(mode, message):
    with FaultyServer(mode) as server:
        client = OpenAIScorer(SERVED_NAME, server.url, prompts_per_request=3, **FAST)
        with pytest.raises(BehaviorModelError, match=message):
            client.predict_proba(sample_batch(3))
        assert server.completion_requests() == 1  # a malformed answer is not retried


def test_api_key_comes_from_the_named_environment_variable(monkeypatch):
    monkeypatch.setenv("LSBM_TEST_KEY", "sk-test-123")
    with FaultyServer("wrong-count") as server:
        OpenAIScorer(SERVED_NAME, server.url, api_key_env="LSBM_TEST_KEY", **FAST)
        assert server.headers.get("Authorization") == "Bearer sk-test-123"


def test_wrong_model_and_bad_urls_are_refused(tiny_server):
    with pytest.raises(BehaviorModelError, match=f"serves \\['{SERVED_NAME}'\\], not behavior.model 'other'"):
        OpenAIScorer("other", tiny_server.url)
    with pytest.raises(LsbmError, match="not an http"):
        OpenAIScorer(SERVED_NAME, "localhost:8000")
    # A URL without a path gets the usual /v1.
    root = tiny_server.url.removesuffix("/v1")
    assert OpenAIScorer(SERVED_NAME, root).base_urls == [tiny_server.url]
