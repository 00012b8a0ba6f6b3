"""Shared pieces of the language-model backend tests: tiny real checkpoints, a real `lsbm-sim serve`, a small
real server that fails on purpose, and a small scenario.

Import the fixtures explicitly in a test module (`from tests.llm_fixtures import tiny_checkpoint, ...`).
Every model here is real: a byte-level BPE tokenizer trained in the test session and a Llama with random
weights, saved as safetensors and loaded back through transformers.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from lsbm_sim.behavior.base import BehaviorQuery, QueryBatch, SocialContext
from lsbm_sim.behavior.checkpoint import BehaviorCheckpoint
from lsbm_sim.behavior.prompts import behavior_token
from lsbm_sim.behavior.tiny_models import save_tiny_checkpoint

REACTIONS = ("ignore", "like", "share", "comment")
LEVELS = ("low", "medium", "high")
SERVED_NAME = "tiny-lsbm"


def sample_batch(n: int = 24) -> QueryBatch:
    """Queries of different lengths and contexts, including non-ASCII text."""
    personas = ["Follows news about the environment.", "A retired teacher who loves gardening and 🌻.",
                "Student, into sports"]  # fmt: skip
    contents = ["Just launched our new eco-friendly product line!", "Fact check: the viral study was retracted.",
                "Local team wins — again!"]  # fmt: skip
    return QueryBatch.from_queries([
        BehaviorQuery(personas[i % 3], contents[(i // 3) % 3],
                      SocialContext(sharers=i % 4, proof=3 * i, age=i % 5, seen=i % 2,
                                    label="Disputed" if i % 7 == 0 else None, promoted=i % 6 == 0))
        for i in range(n)
    ])  # fmt: skip


@pytest.fixture(scope="session")
def hub_offline() -> Iterator[None]:
    """No test may reach the Hugging Face hub."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TOKENIZERS_PARALLELISM", "false")
        yield


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, hub_offline: None) -> Path:
    """A tiny Llama whose answers are plain words (" like")."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def token_checkpoint(tmp_path_factory: pytest.TempPathFactory, hub_offline: None) -> Path:
    """A tiny Llama whose tokenizer has behavior tokens <|ignore|> <|like|> <|share|> <|comment|>."""
    folder = tmp_path_factory.mktemp("tokens") / "model"
    return save_tiny_checkpoint(folder, extra_tokens=[behavior_token(r) for r in REACTIONS], seed=1)


@pytest.fixture(scope="session")
def level_checkpoint(tmp_path_factory: pytest.TempPathFactory, hub_offline: None) -> Path:
    """A tiny level checkpoint (the fine-tuning pipeline's output): behavior tokens <|low|> ... and
    lsbm_behavior.json reading the clicks level as the `share` reaction."""
    folder = tmp_path_factory.mktemp("levels") / "model"
    save_tiny_checkpoint(folder, extra_tokens=[behavior_token(x) for x in LEVELS], seed=2)
    BehaviorCheckpoint(
        behavior="clicks",
        levels=list(LEVELS),
        level_rates={"low": 0.008, "medium": 0.013, "high": 0.021},
        reaction="share",
        prompt="Persona: {persona}\nText: '{content}' Predict the {behavior} level ({options}):",
        behavior_tokens=True,
    ).write(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_server(tiny_checkpoint: Path):
    """A real `lsbm-sim serve` over the tiny checkpoint, on a free port of 127.0.0.1."""
    from lsbm_sim.serve import start_server

    with start_server(tiny_checkpoint, port=0, served_model_name=SERVED_NAME) as server:
        yield server


def scenario_dict(behavior: dict[str, Any], agents: int = 40, steps: int = 4, **extra: Any) -> dict[str, Any]:
    """A small scenario: two posts on a Barabási-Albert graph, every agent online every step."""
    return {
        "name": "llm-test",
        "seed": 3,
        "steps": steps,
        "population": {"size": agents, "activity": 1.0},
        "network": {"kind": "barabasi_albert", "params": {"m": 2}},
        "content": [
            {"id": "eco", "text": "Just launched our new eco-friendly product line!", "author": {"strategy": "influencer"}},
            {"id": "sport", "text": "Local team wins championship in overtime thriller.", "step": 1},
        ],
        "feed": {"policy": "chronological", "size": 5},
        "behavior": behavior,
        **extra,
    }


def free_port() -> int:
    """A port nothing listens on (bound, then released): connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FaultyServer:
    """A real HTTP server on 127.0.0.1 that misbehaves in one chosen way, counting the requests it gets.

    mode: "500" (every request answers 500), "stall" (waits `stall_seconds` before answering), "models-then-500"
    (lists the model, then answers 500 to completions), "wrong-count" (one choice whatever the prompts),
    "no-logprobs" (choices without log-probabilities). `headers` keeps the last request's headers.
    """

    def __init__(self, mode: str, model: str = SERVED_NAME, stall_seconds: float = 2.0):
        self.mode = mode
        self.model = model
        self.stall_seconds = stall_seconds
        self.requests: list[str] = []
        self.headers: dict[str, str] = {}
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def completion_requests(self) -> int:
        return sum(1 for r in self.requests if r.endswith("/completions"))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up waiting (the stall case)
                    pass

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null") if length else None
                with server._lock:
                    server.requests.append(f"{method} {self.path}")
                    server.headers = dict(self.headers.items())
                mode = server.mode
                if mode == "stall":
                    time.sleep(server.stall_seconds)
                if mode in ("500", "stall"):
                    self._answer(500, {"error": {"message": "out of memory", "type": "server_error"}})
                elif self.path.endswith("/models"):
                    self._answer(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                elif mode == "models-then-500":
                    self._answer(500, {"error": {"message": "CUDA error: device-side assert", "type": "server_error"}})
                else:
                    prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
                    logprobs = None if mode == "no-logprobs" else {
                        "tokens": [" like"], "token_logprobs": [-1.0], "top_logprobs": [{" like": -1.0}],
                        "text_offset": [0],
                    }  # fmt: skip
                    n = 1 if mode == "wrong-count" else len(prompts)
                    choices = [{"index": i, "text": " like", "logprobs": logprobs} for i in range(n)]
                    self._answer(200, {"object": "text_completion", "model": server.model, "choices": choices})

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        return Handler

    def __enter__(self) -> FaultyServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
