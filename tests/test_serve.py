"""`lsbm-sim serve`: a real server on 127.0.0.1 over a tiny real model, spoken to over HTTP."""

from __future__ import annotations

import httpx2 as httpx
import numpy as np
import pytest
import torch
import typer
from llm_fixtures import (  # noqa: F401 - fixtures
    SERVED_NAME,
    hub_offline,
    level_checkpoint,
    tiny_checkpoint,
    tiny_server,
)
from typer.testing import CliRunner

from lsbm_sim.errors import LsbmError
from lsbm_sim.serve import make_server, serve_command, start_server

PROMPT = "Text: 'Just launched our new eco-friendly product line!' Predict the reaction (ignore/like/share/comment):"


def post(server, body, path="/completions"):
    return httpx.post(server.url + path, json=body, timeout=30)


def model_logprobs(server, text):
    """Every position's log-probabilities from the server's own model, one unpadded forward."""
    scorer = server.service.scorer
    ids = scorer.tokenizer(text)["input_ids"]
    with torch.no_grad():
        logits = scorer.model(torch.tensor([ids])).logits[0].double()
    return ids, torch.log_softmax(logits, -1)


def test_health_and_models(tiny_server):
    assert httpx.get(tiny_server.url.removesuffix("/v1") + "/health").json() == {"status": "ok"}
    models = httpx.get(tiny_server.url + "/models").json()
    entry = models["data"][0]
    assert entry["id"] == SERVED_NAME and entry["object"] == "model"
    assert entry["lsbm"]["checkpoint"] is None and entry["lsbm"]["behavior_tokens"] == []
    assert len(entry["lsbm"]["fingerprint"]) == 24


def test_top_logprobs_are_the_models_next_token_distribution(tiny_server):
    answer = post(tiny_server, {"model": SERVED_NAME, "prompt": [PROMPT, PROMPT + " like"], "max_tokens": 1,
                                "logprobs": 5})  # fmt: skip
    assert answer.status_code == 200
    body = answer.json()
    assert [c["index"] for c in body["choices"]] == [0, 1]
    _, logp = model_logprobs(tiny_server, PROMPT)
    top = body["choices"][0]["logprobs"]["top_logprobs"][0]
    values, ids = logp[-1].topk(5)
    tokenizer = tiny_server.service.tokenizer
    expected: dict[str, float] = {}
    for v, i in zip(values.tolist(), ids.tolist()):  # ids that decode alike share an entry: the likelier keeps it
        expected.setdefault(tokenizer.decode([i]), v)
    assert list(top) == list(expected)
    np.testing.assert_allclose(list(top.values()), list(expected.values()), atol=1e-5)
    # The one token it "generates" is the most likely one.
    assert body["choices"][0]["text"] == next(iter(expected))
    assert body["usage"]["prompt_tokens"] == len(tokenizer(PROMPT)["input_ids"]) + len(tokenizer(PROMPT + " like")["input_ids"])


def test_echo_returns_every_prompt_tokens_logprob(tiny_server):
    text = PROMPT + " share"
    body = post(tiny_server, {"model": SERVED_NAME, "prompt": text, "max_tokens": 1, "logprobs": 1, "echo": True}).json()
    lp = body["choices"][0]["logprobs"]
    ids, logp = model_logprobs(tiny_server, text)
    assert len(lp["tokens"]) == len(ids) + 1  # the prompt, then the generated token
    assert "".join(lp["tokens"][: len(ids)]) == text
    assert lp["token_logprobs"][0] is None
    expected = [float(logp[t - 1, ids[t]]) for t in range(1, len(ids))]
    np.testing.assert_allclose(lp["token_logprobs"][1 : len(ids)], expected, atol=1e-5)
    assert lp["text_offset"][len(ids) - 1] == len(PROMPT)  # " share" starts where the prompt ends
    assert body["choices"][0]["text"].startswith(text)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": "other", "prompt": "x", "max_tokens": 1}, 404, "does not exist"),
        ({"model": SERVED_NAME, "prompt": "x", "max_tokens": 20}, 400, "max_tokens must be 0 or 1"),
        ({"model": SERVED_NAME, "prompt": [], "max_tokens": 1}, 400, "prompt must be"),
        ({"model": SERVED_NAME, "prompt": "x", "max_tokens": 1, "logprobs": -2}, 400, "logprobs must be"),
    ],
)
def test_bad_requests_get_openai_style_errors(tiny_server, body, status, message):
    answer = post(tiny_server, body)
    assert answer.status_code == status
    assert message in answer.json()["error"]["message"]


def test_unknown_paths_and_bad_json(tiny_server):
    assert post(tiny_server, {}, path="/chat/completions").status_code == 404
    answer = httpx.post(tiny_server.url + "/completions", content=b"{not json", timeout=10)
    assert answer.status_code == 400 and "not JSON" in answer.json()["error"]["message"]


def test_binds_loopback_by_default_and_names_a_busy_port(tiny_checkpoint):
    httpd = make_server(tiny_checkpoint, port=0)
    try:
        assert httpd.server_address[0] == "127.0.0.1"
        with pytest.raises(LsbmError, match=f"cannot listen on 127.0.0.1:{httpd.server_address[1]}"):
            make_server(tiny_checkpoint, port=httpd.server_address[1])
    finally:
        httpd.server_close()


def test_level_checkpoint_is_described_to_clients(level_checkpoint):
    with start_server(level_checkpoint, port=0) as server:
        entry = httpx.get(server.url + "/models").json()["data"][0]
    assert entry["id"] == str(level_checkpoint)
    assert entry["lsbm"]["checkpoint"]["levels"] == ["low", "medium", "high"]
    assert set(entry["lsbm"]["behavior_tokens"]) >= {"low", "medium", "high"}


def test_serve_command_rejects_bad_options_with_one_message(tiny_checkpoint):
    app = typer.Typer()
    app.command("serve")(serve_command)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["serve", "--model", str(tiny_checkpoint), "--dtype", "int3"])
    assert isinstance(result.exception, LsbmError) and "--dtype" in str(result.exception)
    result = CliRunner().invoke(app, ["serve", "--model", "/no/such/folder"])
    assert isinstance(result.exception, LsbmError) and "is not a checkpoint folder" in str(result.exception)
