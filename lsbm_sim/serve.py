"""`lsbm-sim serve`: one behavior model behind an OpenAI-compatible `/v1/completions`, shared by many runs.

Simulation processes that use `behavior.backend: openai` with this server's URL share one model in memory
instead of loading it each. The server scores, it does not write: a request may ask for at most one new token
(the most likely one), with its log-probabilities (`logprobs: k` gives the k most likely next tokens) and,
with `echo: true`, the log-probability of every prompt token. That is all the `openai` scorer needs, and it is
the part of the API that vLLM and SGLang also serve, so the scorer works against either.

    lsbm-sim serve --model /models/lsbm-3b --port 8000
    curl -s localhost:8000/v1/completions -d '{"model": "/models/lsbm-3b", "prompt": "Hi", "max_tokens": 1, "logprobs": 5}'

`/v1/models` lists the model with an extra `lsbm` entry: the model's fingerprint, the behavior tokens its
tokenizer has and the level checkpoint description (`lsbm_behavior.json`) if any, so that a client builds the
same prompts and options as the in-process `hf` backend.

The server is the standard library's ThreadingHTTPServer: three JSON endpoints need no web framework, and the
model (one forward pass per request, each request already a batch of prompts) is the bottleneck, so requests
take turns on it under a lock. It listens on 127.0.0.1 unless told otherwise: it has no authentication.

>>> server = start_server("/models/lsbm-3b", port=0)  # doctest: +SKIP
>>> server.url  # doctest: +SKIP
'http://127.0.0.1:54321/v1'
>>> server.stop()  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import typer

from lsbm_sim.errors import LsbmError
from lsbm_sim.vocabulary import DEFAULT_REACTIONS

MAX_BODY_BYTES = 64 * 2**20
ECHO_LOGIT_BYTES = 2 * 2**30
"""Memory for one echo pass's float32 log-probabilities (tokens x vocabulary): about 4,000 tokens of a
128k-word vocabulary."""
_BEHAVIOR_TOKEN = re.compile(r"^<\|([A-Za-z0-9_\-]+)\|>$")


class RequestError(Exception):
    """A bad request: answered with `status` and an OpenAI-style error body."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.param = param


class CompletionService:
    """The model and the OpenAI completion logic, independent of HTTP (one instance per server)."""

    def __init__(self, model: str | Path, served_model_name: str | None = None, **scorer_options: Any):
        # Here, not at the top: `lsbm-sim --help` imports this module to list `serve`.
        from lsbm_sim.behavior.checkpoint import BehaviorCheckpoint
        from lsbm_sim.behavior.hf import HFScorer, locate_checkpoint

        folder = locate_checkpoint(str(model), lambda p: Path(p).expanduser(), scorer_options.get("allow_pickle", False))
        checkpoint = BehaviorCheckpoint.read(folder)
        # The server answers token questions; the reactions only matter to the client. A level checkpoint must be
        # loadable, so give it the reactions it reads as.
        reactions = ("ignore", checkpoint.reaction) if checkpoint is not None else DEFAULT_REACTIONS
        self.scorer = HFScorer(folder, reactions=reactions, **scorer_options)
        self.tokenizer = self.scorer.tokenizer
        self.model_name = served_model_name or str(model)
        self.checkpoint = checkpoint
        self.lock = threading.Lock()
        self.created = int(time.time())
        # Tokens of the form <|word|>, less the tokenizer's own markers (<|begin_of_text|>, <|pad|>, ...).
        own = {self.tokenizer.bos_token, self.tokenizer.eos_token, self.tokenizer.pad_token, self.tokenizer.unk_token}
        vocab = self.tokenizer.get_vocab()
        self.behavior_words = sorted(m.group(1) for t in vocab if t not in own and (m := _BEHAVIOR_TOKEN.match(t)))

    # ------------------------------------------------------------------------------------ endpoints

    def models(self) -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {
                    "id": self.model_name,
                    "object": "model",
                    "created": self.created,
                    "owned_by": "lsbm-sim",
                    "lsbm": {
                        "fingerprint": self.scorer.fingerprint.split(":", 1)[1],
                        "behavior_tokens": self.behavior_words,
                        "checkpoint": None if self.checkpoint is None else self.checkpoint.to_json(),
                    },
                }
            ],
        }

    def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        request = self._validate(body)
        prompts: list[str] = request["prompts"]
        k = request["logprobs"]
        # One request at a time on the model; the tokenizer too, since a fast tokenizer's call is not thread-safe.
        with self.lock:
            ids = self.scorer.encode(prompts)
            if request["echo"] and k is not None:
                rows = self._echo_rows(ids, k)
            else:
                rows = self._next_token_rows(ids, k)
            choices = [self._choice(i, p, p_ids, row, request) for i, (p, p_ids, row) in enumerate(zip(prompts, ids, rows))]
        prompt_tokens = sum(len(i) for i in ids)
        completion_tokens = len(prompts) * request["max_tokens"]
        return {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    # --------------------------------------------------------------------------------------- parts

    def _validate(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        model = body.get("model")
        if model is not None and model != self.model_name:
            raise RequestError(f"The model `{model}` does not exist; this server serves `{self.model_name}`.",
                               HTTPStatus.NOT_FOUND, "model")  # fmt: skip
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            prompts = [prompt]
        elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            prompts = list(prompt)
        else:
            raise RequestError("prompt must be a string or a non-empty list of strings", param="prompt")
        if any(not p for p in prompts):
            raise RequestError("prompts must not be empty", param="prompt")
        max_tokens = body.get("max_tokens", 16)
        if max_tokens is None:
            max_tokens = 16
        if not isinstance(max_tokens, int) or not 0 <= max_tokens <= 1:
            raise RequestError(
                f"this server scores and does not generate: max_tokens must be 0 or 1, got {max_tokens!r}",
                param="max_tokens",
            )
        logprobs = body.get("logprobs")
        if logprobs is not None and (not isinstance(logprobs, int) or isinstance(logprobs, bool) or logprobs < 0):
            raise RequestError(f"logprobs must be a non-negative integer, got {logprobs!r}", param="logprobs")
        if logprobs is not None:
            logprobs = min(logprobs, len(self.tokenizer))
        n = body.get("n", 1)
        if n != 1:
            raise RequestError("n must be 1", param="n")
        if body.get("stream"):
            raise RequestError("stream is not supported", param="stream")
        echo = bool(body.get("echo", False))
        if max_tokens == 0 and not echo:
            raise RequestError("max_tokens 0 returns nothing unless echo is true", param="max_tokens")
        return {
            "prompts": prompts,
            "max_tokens": max_tokens,
            "logprobs": logprobs,
            "echo": echo,
            "skip_special_tokens": bool(body.get("skip_special_tokens", True)),
        }

    def _next_token_rows(self, ids: list[list[int]], k: int | None) -> list[dict[str, Any]]:
        """For each prompt: the most likely next token, its log-probability and the top k."""
        rows: list[dict[str, Any]] = [{} for _ in ids]
        for batch_rows, logprobs in self.scorer.forward(ids, keep=1):
            last = logprobs[:, -1]
            top = last.topk(max(k or 0, 1), dim=-1)
            for j, r in enumerate(batch_rows.tolist()):
                rows[r] = {"next": self._top(top.values[j], top.indices[j], k), "prompt": None}
        return rows

    def _echo_rows(self, ids: list[list[int]], k: int) -> list[dict[str, Any]]:
        """As `_next_token_rows`, plus every prompt token's log-probability and top k (position 0 has none)."""
        rows: list[dict[str, Any]] = [{} for _ in ids]
        # Every position's log-probabilities: bound the tokens per pass so that they fit in ECHO_LOGIT_BYTES.
        vocab = max(len(self.tokenizer), int(getattr(self.scorer.model.config, "vocab_size", 0) or 0))
        budget = max(1, ECHO_LOGIT_BYTES // (4 * vocab))
        for batch_rows, logprobs in self.scorer.forward(ids, keep=0, batch_tokens=min(budget, self.scorer.batch_tokens)):
            for j, r in enumerate(batch_rows.tolist()):
                n = len(ids[r])
                own = logprobs[j, -n:]  # position t predicts token t + 1
                prompt_rows: list[tuple[float | None, dict[str, float] | None]] = [(None, None)]
                if n > 1:
                    targets = self.scorer._torch.tensor(ids[r][1:], device=own.device)
                    token_lp = own[:-1].gather(1, targets[:, None])[:, 0].tolist()
                    top = own[:-1].topk(max(k, 1), dim=-1) if k > 0 else None
                    for t in range(n - 1):
                        top_t = self._top_dict(top.values[t], top.indices[t]) if top is not None else None
                        prompt_rows.append((float(token_lp[t]), top_t))
                last_top = own[-1].topk(max(k, 1), dim=-1)
                rows[r] = {"next": self._top(last_top.values, last_top.indices, k), "prompt": prompt_rows}
        return rows

    def _top(self, values: Any, indices: Any, k: int | None) -> dict[str, Any]:
        return {
            "token_id": int(indices[0]),
            "logprob": float(values[0]),
            "top": self._top_dict(values[:k], indices[:k]) if k else None,
        }

    def _top_dict(self, values: Any, indices: Any) -> dict[str, float]:
        # Two ids can decode to the same text; the more likely one (listed first) keeps the entry.
        out: dict[str, float] = {}
        for value, index in zip(values.tolist(), indices.tolist()):
            out.setdefault(self._token_text(index), float(value))
        return out

    def _token_text(self, token_id: int, skip_special: bool = False) -> str:
        return self.tokenizer.decode([token_id], skip_special_tokens=skip_special, clean_up_tokenization_spaces=False)

    def _choice(self, index: int, prompt: str, prompt_ids: list[int], row: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
        skip = request["skip_special_tokens"]
        generated = self._token_text(row["next"]["token_id"], skip) if request["max_tokens"] else ""
        text = (prompt if request["echo"] else "") + generated
        logprobs = None
        if request["logprobs"] is not None:
            tokens: list[str] = []
            token_logprobs: list[float | None] = []
            top_logprobs: list[dict[str, float] | None] = []
            text_offset: list[int] = []
            if request["echo"]:
                offsets = self.tokenizer(prompt, add_special_tokens=True, return_offsets_mapping=True)["offset_mapping"]
                for t, (token_id, (lp, top)) in enumerate(zip(prompt_ids, row["prompt"])):
                    tokens.append(self._token_text(token_id, skip))
                    token_logprobs.append(lp)
                    top_logprobs.append(top)
                    text_offset.append(int(offsets[t][0]) if t < len(offsets) else len(prompt))
            if request["max_tokens"]:
                tokens.append(generated)
                token_logprobs.append(row["next"]["logprob"])
                top_logprobs.append(row["next"]["top"] or {generated: row["next"]["logprob"]})
                text_offset.append(len(prompt) if request["echo"] else 0)
            logprobs = {
                "tokens": tokens,
                "token_logprobs": token_logprobs,
                "top_logprobs": top_logprobs,
                "text_offset": text_offset,
            }
        return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": "length"}


# ---------------------------------------------------------------------------------------------------- HTTP


def _handler(service: CompletionService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: a client sends many requests over one connection
        server_version = "lsbm-sim"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            pass  # one line per request would drown a simulation's output

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: HTTPStatus, message: str, param: str | None = None) -> None:
            kind = "invalid_request_error" if status < 500 else "server_error"
            self._send(status, {"error": {"message": message, "type": kind, "param": param, "code": int(status)}})

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            if path in ("/health", "/v1/health"):
                self._send(HTTPStatus.OK, {"status": "ok"})
            elif path == "/v1/models":
                self._send(HTTPStatus.OK, service.models())
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: GET {path}")

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request body over {MAX_BODY_BYTES} bytes")
                self.close_connection = True
                return
            raw = self.rfile.read(length)
            if path != "/v1/completions":
                self._error(HTTPStatus.NOT_FOUND, f"no such endpoint: POST {path}")
                return
            try:
                body = json.loads(raw or b"null")
                self._send(HTTPStatus.OK, service.completions(body))
            except json.JSONDecodeError as exc:
                self._error(HTTPStatus.BAD_REQUEST, f"the request body is not JSON: {exc}")
            except RequestError as exc:
                self._error(exc.status, str(exc), exc.param)
            except Exception as exc:  # a bug or an exhausted device: the client retries 5xx, so say so
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")

    return Handler


@dataclass
class RunningServer:
    """A server running in a background thread (for tests and notebooks)."""

    httpd: ThreadingHTTPServer
    thread: threading.Thread
    service: CompletionService

    @property
    def url(self) -> str:
        """The base URL a client puts in `behavior.base_url` (ends in /v1)."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def make_server(model: str | Path, host: str = "127.0.0.1", port: int = 8000, served_model_name: str | None = None,
                **scorer_options: Any) -> ThreadingHTTPServer:  # fmt: skip
    """Load the model and bind the server (port 0: any free port); call `serve_forever()` to answer."""
    service = CompletionService(model, served_model_name, **scorer_options)
    try:
        httpd = ThreadingHTTPServer((host, port), _handler(service))
    except OSError as exc:
        raise LsbmError(f"lsbm-sim serve: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    httpd.daemon_threads = True
    httpd.service = service  # type: ignore[attr-defined]
    return httpd


def start_server(model: str | Path, host: str = "127.0.0.1", port: int = 0, **options: Any) -> RunningServer:
    """Start a server in a background thread and return once it listens."""
    httpd = make_server(model, host, port, **options)
    thread = threading.Thread(target=httpd.serve_forever, name="lsbm-serve", daemon=True)
    thread.start()
    return RunningServer(httpd, thread, httpd.service)  # type: ignore[attr-defined]


def serve(model: str | Path, host: str = "127.0.0.1", port: int = 8000, **scorer_options: Any) -> None:
    """Serve `model` until interrupted (Ctrl-C)."""
    serve_until_interrupted(make_server(model, host, port, **scorer_options))


def serve_until_interrupted(httpd: Any) -> None:
    """Serve until Ctrl-C, then close the socket."""
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


# ---------------------------------------------------------------------------------------------------- CLI


def serve_command(
    model: str = typer.Option(..., "--model", help="Checkpoint folder or hub id (already on this machine)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on. 0.0.0.0 exposes it to the network: "
                             "the server has no authentication."),  # fmt: skip
    port: int = typer.Option(8000, help="Port to listen on."),
    served_model_name: str = typer.Option(None, help="The model id clients send (default: --model as given)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
    dtype: str = typer.Option("auto", help="auto (bfloat16 on CUDA, float32 on CPU), float32, bfloat16, float16."),
    batch_tokens: int = typer.Option(32768, help="Token budget per forward pass."),
    trust_remote_code: bool = typer.Option(False, help="Run the checkpoint's own model code (only for code you trust)."),
    allow_pickle: bool = typer.Option(False, help="Load pickle (.bin) weights (only for files you trust)."),
) -> None:
    """Serve a behavior model over an OpenAI-compatible /v1/completions (scoring only), for the openai backend.

    Example: lsbm-sim serve --model /models/lsbm-3b --port 8000
    """
    if dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise LsbmError(f"--dtype: {dtype!r} is not one of auto, float32, bfloat16, float16")
    if not 0 <= port <= 65535:
        raise LsbmError(f"--port: {port} is not a port number")
    httpd = make_server(
        model, host, port, served_model_name=served_model_name, device=device, dtype=dtype,
        batch_tokens=batch_tokens, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle,
    )  # fmt: skip
    bound_host, bound_port = httpd.server_address[:2]
    print(f"lsbm-sim serve: {httpd.service.model_name} on http://{bound_host}:{bound_port}/v1 (Ctrl-C stops)", flush=True)  # type: ignore[attr-defined]
    serve_until_interrupted(httpd)
