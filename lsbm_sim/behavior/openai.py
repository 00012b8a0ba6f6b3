"""The `openai` backend: a behavior model behind any OpenAI-compatible server (vLLM, SGLang, `lsbm-sim serve`).

    behavior:
      backend: openai
      model: /models/lsbm-3b                  # the model id the server serves
      base_url: [http://gpu1:8000/v1, http://gpu2:8000/v1]
      concurrency: 8                          # requests in flight at once
      timeout: 60                             # seconds per request
      retries: 3                              # more tries per request, with exponential backoff

How options are scored over `/v1/completions`, using only what vLLM, SGLang and `lsbm-sim serve` all accept:

1. `first_token` scoring asks for the next token's top log-probabilities (`max_tokens: 1, logprobs: 20`, 20
   being vLLM's default cap). When every option's spelling is among them, that row is answered.
2. Otherwise (an option outside the top 20, a multi-token spelling, or `full` scoring) the row is scored by
   echo: the server reads prompt + option (`echo: true`) and returns every prompt token's log-probability;
   the option's tokens are the last ones before the generated token. The first (or, for `full`, all) of them
   give the option's score. This costs one prompt per option, which servers with prefix caching absorb.

Scores become probabilities exactly as in the `hf` backend (`ScoringPlan.probabilities`), so the same model
gives the same answer in-process or behind a server. Requests go to the base URLs in turn; a connection error,
a timeout, a 429 or a 5xx answer is retried on the next URL after an exponentially growing pause, and after
the last retry the run stops with a BehaviorModelError naming the servers and the last error. Nothing falls
back to another model. A 4xx answer (wrong model name, rejected parameter) is not retried: it will not change.

What the client needs to know about the model (a level checkpoint, behavior tokens) it takes from the
server's `/v1/models` entry when the server is `lsbm-sim serve`, else from `behavior.model` when that is a local
checkpoint folder, else it uses plain reaction words.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from lsbm_sim.behavior.base import DEFAULT_REACTIONS, BehaviorModelError
from lsbm_sim.behavior.checkpoint import BehaviorCheckpoint
from lsbm_sim.behavior.scoring import PromptScorer, ScoringPlan, candidate_words, fingerprint
from lsbm_sim.errors import LsbmError

try:  # httpx2 is the maintained successor of httpx with the same API; huggingface_hub already depends on it
    import httpx2 as httpx
except ImportError:  # pragma: no cover - older environments
    import httpx  # type: ignore[no-redef]

TOP_LOGPROBS = 20
"""Top log-probabilities asked for in the first pass: vLLM's default `max_logprobs`."""
PROMPTS_PER_REQUEST = 64
BACKOFF_SECONDS = 0.5
BACKOFF_CAP_SECONDS = 8.0


class ServerError(Exception):
    """One failed request: `retry` says whether another try may succeed."""

    def __init__(self, message: str, retry: bool):
        super().__init__(message)
        self.retry = retry


def normalise_base_url(url: str) -> str:
    """`http://host:8000` -> `http://host:8000/v1`; a URL with a path is kept as given (without a final /)."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise LsbmError(f"behavior.base_url: {url!r} is not an http(s) URL such as http://localhost:8000/v1")
    return url if parts.path else url + "/v1"


class OpenAIScorer(PromptScorer):
    """Scores reaction options with a model behind OpenAI-compatible servers (see the module docstring).

    Its fingerprint names the served model (and, for `lsbm-sim serve`, its weights), the prompt, options and
    temperature: another server serving a model under the same name shares the cache, so give fine-tuned
    models distinct names.
    """

    def __init__(
        self,
        model: str,
        base_url: str | Sequence[str],
        reactions: Sequence[str] = DEFAULT_REACTIONS,
        prompt: str = "default",
        temperature: float = 1.0,
        scoring: str = "first_token",
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 60.0,
        retries: int = 3,
        top_logprobs: int = TOP_LOGPROBS,
        prompts_per_request: int = PROMPTS_PER_REQUEST,
        backoff: float = BACKOFF_SECONDS,
        resolve: Callable[[str], Path] = lambda p: Path(p).expanduser(),
    ):
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise LsbmError("behavior.base_url: give at least one server URL")
        self.base_urls = [normalise_base_url(u) for u in urls]
        self.model_name = str(model)
        self.reactions = tuple(reactions)
        self.concurrency = int(concurrency)
        self.retries = int(retries)
        self.top_logprobs = int(top_logprobs)
        self.prompts_per_request = int(prompts_per_request)
        self.backoff = float(backoff)
        headers = {"Content-Type": "application/json"}
        api_key = os.environ.get(api_key_env) if api_key_env else None
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
        )
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="lsbm-openai")
        self._turn = 0
        self._lock = threading.Lock()
        self.stats: dict[str, float] = {
            "prompts": 0,
            "prompt_tokens": 0,
            "requests": 0,
            "retried_requests": 0,
            "echo_rows": 0,
            "seconds": 0.0,
        }

        info = self._model_info()
        lsbm = info.get("lsbm") if isinstance(info.get("lsbm"), dict) else {}
        checkpoint, words = self._model_facts(lsbm, resolve)
        source = f"behavior.model {self.model_name} at {self.base_urls[0]}"
        self.plan = ScoringPlan.build(self.reactions, words, prompt, temperature, scoring, checkpoint, source=source)
        self._fingerprint = fingerprint(
            "openai", model=self.model_name, server_fingerprint=lsbm.get("fingerprint"), plan=self.plan.describe()
        )

    # The scenario's behavior fields this scorer takes (PromptScorer.from_spec passes them on).
    SPEC_OPTIONS = ("base_url", "reactions", "prompt", "temperature", "scoring", "api_key_env", "concurrency", "timeout",
                    "retries")

    def option_scores(self, prompts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        scores = np.full((len(prompts), len(self.plan.options)), np.nan)
        if self.plan.scoring == "first_token":
            self._score_from_top(prompts, scores)
        todo = np.flatnonzero(np.isnan(scores).any(axis=1))
        if len(todo):
            self._score_by_echo(prompts, todo, scores)
        self.stats["prompts"] += len(prompts)
        self.stats["seconds"] += time.perf_counter() - started
        return scores

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()

    # ------------------------------------------------------------------------------------ scoring

    def _score_from_top(self, prompts: list[str], scores: np.ndarray) -> None:
        """Fill rows whose options are all among the next token's top log-probabilities."""
        body = {"max_tokens": 1, "logprobs": self.top_logprobs, "temperature": 1.0, "skip_special_tokens": False}
        for start, choices in self._complete_all(prompts, body):
            for j, choice in enumerate(choices):
                top = _logprobs(choice, self._where())["top_logprobs"]
                if not isinstance(top, list) or not top or not isinstance(top[-1], dict):
                    raise BehaviorModelError(f"{self._where()} answered without top log-probabilities")
                found = [top[-1].get(s) for s in self.plan.spellings]
                if all(v is not None for v in found):
                    scores[start + j] = found

    def _score_by_echo(self, prompts: list[str], rows: np.ndarray, scores: np.ndarray) -> None:
        """Fill the given rows by scoring each prompt + option spelling from the echoed prompt log-probabilities."""
        spellings = self.plan.spellings
        texts = [prompts[r] + s for r in rows.tolist() for s in spellings]
        body = {"max_tokens": 1, "logprobs": 1, "echo": True, "temperature": 1.0, "skip_special_tokens": False}
        first_only = self.plan.scoring == "first_token"
        flat = np.empty(len(texts))
        first_tokens: list[str] = [""] * len(texts)
        for start, choices in self._complete_all(texts, body):
            for j, choice in enumerate(choices):
                k = start + j
                flat[k], first_tokens[k] = option_logprob(choice, spellings[k % len(spellings)], first_only, self._where())
        if first_only:
            for i in range(len(rows)):
                firsts = first_tokens[i * len(spellings) : (i + 1) * len(spellings)]
                if len(set(firsts)) < len(firsts):
                    raise BehaviorModelError(
                        f"{self._where()}: options {list(self.plan.options)} begin with the tokens {firsts} in the "
                        "server's tokenizer, which are not distinct; set behavior.scoring: full"
                    )
        scores[rows] = flat.reshape(len(rows), len(spellings))
        self.stats["echo_rows"] += len(rows)

    # -------------------------------------------------------------------------------------- HTTP

    def _where(self) -> str:
        return "server " + " / ".join(self.base_urls)

    def _complete_all(self, prompts: list[str], body: dict[str, Any]):
        """Send the prompts in chunks, `concurrency` requests at a time; yield (first index, choices) in order."""
        chunks = [(s, prompts[s : s + self.prompts_per_request]) for s in range(0, len(prompts), self.prompts_per_request)]
        futures = [(s, self._pool.submit(self._complete, chunk, body)) for s, chunk in chunks]
        try:
            for start, future in futures:
                yield start, future.result()
        finally:
            for _, future in futures:
                future.cancel()

    def _complete(self, prompts: list[str], body: dict[str, Any]) -> list[dict[str, Any]]:
        payload = {"model": self.model_name, "prompt": prompts, **body}
        answer = self._request("POST", "/completions", payload)
        choices = answer.get("choices") if isinstance(answer, dict) else None
        if not isinstance(choices, list) or len(choices) != len(prompts):
            got = len(choices) if isinstance(choices, list) else "no"
            raise BehaviorModelError(f"{self._where()} answered {got} choices for {len(prompts)} prompts")
        if all(isinstance(c, dict) and isinstance(c.get("index"), int) for c in choices):
            choices = sorted(choices, key=lambda c: c["index"])
            if [c["index"] for c in choices] != list(range(len(prompts))):
                raise BehaviorModelError(f"{self._where()} answered choices with indices that do not match the prompts")
        usage = answer.get("usage") or {}
        with self._lock:
            self.stats["requests"] += 1
            self.stats["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
        return choices

    def _request(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        """One request, tried on the base URLs in turn with exponential backoff; the answer's JSON."""
        with self._lock:
            first = self._turn
            self._turn += 1
        errors: list[str] = []
        for attempt in range(self.retries + 1):
            url = self.base_urls[(first + attempt) % len(self.base_urls)] + path
            try:
                return self._send(method, url, payload)
            except ServerError as exc:
                errors.append(f"{url}: {exc}")
                if not exc.retry:
                    raise BehaviorModelError(f"{url} refused the request: {exc}") from None
            if attempt < self.retries:
                with self._lock:
                    self.stats["retried_requests"] += 1
                time.sleep(min(self.backoff * 2**attempt, BACKOFF_CAP_SECONDS))
        raise BehaviorModelError(
            f"no answer from the behavior model server ({', '.join(self.base_urls)}) after {self.retries + 1} "
            f"tries; last error: {errors[-1]}"
        )

    def _send(self, method: str, url: str, payload: dict[str, Any] | None) -> Any:
        try:
            response = self._client.request(method, url, json=payload)
        except httpx.TimeoutException as exc:
            raise ServerError(f"timed out ({type(exc).__name__})", retry=True) from None
        except httpx.TransportError as exc:
            raise ServerError(f"{type(exc).__name__}: {exc}", retry=True) from None
        if response.status_code >= 500 or response.status_code == 429:
            raise ServerError(f"HTTP {response.status_code}: {_error_message(response)}", retry=True)
        if response.status_code >= 400:
            raise ServerError(f"HTTP {response.status_code}: {_error_message(response)}", retry=False)
        try:
            return response.json()
        except ValueError:
            raise ServerError(f"HTTP {response.status_code} with a body that is not JSON", retry=True) from None

    # ------------------------------------------------------------------------------ model facts

    def _model_info(self) -> dict[str, Any]:
        """The server's /v1/models entry for our model ({} when the server does not list it by that id)."""
        answer = self._request("GET", "/models")
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list):
            raise BehaviorModelError(f"{self._where()}: /models did not answer a model list")
        ids = [m.get("id") for m in data if isinstance(m, dict)]
        if ids and self.model_name not in ids:
            raise BehaviorModelError(
                f"{self._where()} serves {ids}, not behavior.model {self.model_name!r}; the scorer never swaps in "
                "another model"
            )
        return next((m for m in data if isinstance(m, dict) and m.get("id") == self.model_name), {})

    def _model_facts(self, lsbm: dict[str, Any], resolve: Callable[[str], Path]) -> tuple[BehaviorCheckpoint | None, set[str]]:
        """The level checkpoint and behavior tokens: from `lsbm-sim serve`'s model entry, else a local folder."""
        if lsbm:
            raw = lsbm.get("checkpoint")
            try:
                checkpoint = BehaviorCheckpoint.from_json(raw) if raw else None
            except ValueError as exc:
                raise BehaviorModelError(f"{self._where()}: the model's checkpoint description is invalid ({exc})") from None
            return checkpoint, set(lsbm.get("behavior_tokens") or ())
        folder = resolve(self.model_name)
        if not folder.is_dir():
            return None, set()
        checkpoint = BehaviorCheckpoint.read(folder)
        words: set[str] = set()
        if any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json")):
            from transformers import AutoTokenizer

            from lsbm_sim.behavior.scoring import behavior_words

            tokenizer = AutoTokenizer.from_pretrained(folder)
            words = behavior_words(tokenizer, candidate_words(self.reactions, checkpoint))
        return checkpoint, words


def _logprobs(choice: Any, where: str) -> dict[str, Any]:
    logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
    if not isinstance(logprobs, dict):
        raise BehaviorModelError(f"{where} answered without log-probabilities (does it support `logprobs`?)")
    return logprobs


def option_logprob(choice: dict[str, Any], spelling: str, first_only: bool, where: str) -> tuple[float, str]:
    """The option's log-probability from an echoed prompt + option, and the text of its first token.

    The option's tokens are the last tokens before the one generated token whose texts join to the spelling;
    walking back from the end does not depend on how the server counts text offsets inside the prompt.
    """
    logprobs = _logprobs(choice, where)
    tokens, values = logprobs.get("tokens"), logprobs.get("token_logprobs")
    if not isinstance(tokens, list) or not isinstance(values, list) or len(tokens) != len(values) or len(tokens) < 2:
        raise BehaviorModelError(f"{where} answered echo log-probabilities without matching tokens and values")
    end = len(tokens) - 1  # the last entry is the generated token
    joined, i = "", end
    while len(joined) < len(spelling) and i > 0:
        i -= 1
        joined = str(tokens[i]) + joined
    if joined != spelling:
        raise BehaviorModelError(
            f"{where}: the echoed prompt does not end in the option {spelling!r} as separate tokens (got {joined!r}); "
            "the server's tokenizer merges it with the prompt or did not echo the prompt"
        )
    picked = values[i:end]
    if any(v is None for v in picked):
        raise BehaviorModelError(f"{where} answered no log-probability for a token of option {spelling!r}")
    return (float(picked[0]) if first_only else float(sum(picked))), str(tokens[i])


def _error_message(response: Any) -> str:
    try:
        body = response.json()
        error = body.get("error", body) if isinstance(body, dict) else body
        message = error.get("message") if isinstance(error, dict) else error
        return str(message or body)[:300]
    except ValueError:
        return (response.text or response.reason_phrase or "")[:300]
