"""Factorized language-model scoring: the model reads each text once, a small head reads the social context.

A full-prompt scorer (`hf.py`) runs the language model once per distinct (persona, post, social context)
question, and on a living platform most questions are distinct, so its work grows with exposures. Here the
language model encodes each distinct persona text and each distinct post text once (the mean of its last hidden
layer over the text's tokens), and a small head maps (persona vector, post vector, social context) to reaction
probabilities. Language-model work grows with distinct texts, not with exposures; the head costs a few dozen
multiply-adds per question.

The head is a multinomial logistic regression (ignore's logit is 0) over

    similarity     cosine of the persona's and the post's vectors, centred on the mean text vector
    post_j         the post vector's j-th principal component (j < k), in units of its spread
    persona_j      the persona vector's j-th component
    match_j        persona_j * post_j: does this persona lean the way this post leans
    proof ... disposition   the social context, exactly as the embedded surrogate reads it (`CONTEXT_FEATURES`)

The components are fitted on the texts of the questions the head is fitted on; new texts are projected on them.
The head is distilled from the same language model's full-prompt answers (`lsbm-sim distill --student
factorized`) and saved as JSON naming the model it belongs to; a scenario uses it as

    behavior:
      backend: hf
      model: /models/lsbm-3b
      factorized:
        head: heads/lsbm-3b-factorized.json
        full_prompt: {share: 0.01, select: most_followed}   # optional: these people get the full prompt

With `full_prompt` the population is hybrid (`HybridScorer`): that share of people, the most followed or a
seeded random sample, is asked with the full prompt, everyone else through the head, so that a study spends the
GPU on the people whose reactions travel furthest.

Same scenario and seed, same events: the text vectors of a simulation are computed in one call, when the
simulation binds the model, over every text it can show (its personas, its posts and its posting pool), sorted,
in batches of texts of equal token length (no padding), and kept on disk per call like the sentence embeddings
(`embedding_cache.py`); so they do not depend on which questions the broker had answered before.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lsbm_sim.behavior.base import PROMPT_FIELDS, BehaviorModelBase, QueryBatch, as_batch, check_probabilities
from lsbm_sim.behavior.embedding_cache import EmbeddingCache
from lsbm_sim.behavior.scoring import fingerprint
from lsbm_sim.behavior.surrogate import FEATURES as SURROGATE_FEATURES
from lsbm_sim.errors import LsbmError

CONTEXT_FEATURES: tuple[str, ...] = tuple(f for f in SURROGATE_FEATURES if f not in ("similarity", "appeal"))
"""The surrogate's social-context features; the text features come from the language model instead."""

HEAD_FORMAT = "lsbm-sim factorized head"
DEFAULT_COMPONENTS = 16
TOKENS_PER_PASS = 65_536
"""Texts of one token length are encoded together, up to this many tokens a forward pass. Fixed, not derived
from `behavior.batch_tokens`: on CPUs and GPUs a matrix product's last bits can depend on how many rows it has,
and a text's vector must not depend on a setting that only trades speed for memory."""
POOLING = "mean of the last hidden layer over the text's tokens, BOS left out"
# Each text is read in the words the full prompt frames it with, so its vector is the model's reading of it there.
PERSONA_FRAME = "Persona: {}"
POST_FRAME = "Text: '{}'"


# --------------------------------------------------------------------------------------------- the encoder


class LMTextEncoder:
    """One vector per distinct text from a causal language model that an `HFScorer` has loaded (shared, not
    loaded twice). Vectors are float32, kept in memory and on disk (`EmbeddingCache`, one entry per encoding
    call: see the module docstring for why the calls, not single texts, are the unit).

    `stats`: texts encoded by the model, their tokens, forward passes and seconds.
    """

    def __init__(self, scorer: Any, cache: EmbeddingCache | None | Literal["default"] = "default"):
        self.scorer = scorer
        self.disk_cache = EmbeddingCache.default() if cache == "default" else cache
        self.model_identity = fingerprint("lm-text", weights=scorer.weights_digest, pooling=POOLING)
        # The exact vectors also depend on the arithmetic: dtype, device and how texts are batched.
        self.identity = fingerprint("lm-text-run", model=self.model_identity, dtype=str(scorer.dtype),
                                    device=scorer.device, tokens_per_pass=TOKENS_PER_PASS).replace(":", "-")  # fmt: skip
        self._vectors: dict[str, np.ndarray] = {}
        self.stats: dict[str, float] = {"texts_encoded": 0, "text_tokens": 0, "text_passes": 0, "text_seconds": 0.0}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """The vectors of `texts` (rows x hidden size); texts not seen before are encoded in one call."""
        new = sorted({t for t in texts if t not in self._vectors})
        if new:
            vectors = self.disk_cache.get(self.identity, new) if self.disk_cache is not None else None
            if vectors is None:
                vectors = self._run_model(new)
                if self.disk_cache is not None:
                    self.disk_cache.put(self.identity, new, vectors)
            self._vectors.update(zip(new, vectors))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vectors[t] for t in texts])

    @property
    def dim(self) -> int:
        return int(self.scorer.model.config.hidden_size)

    def _run_model(self, texts: list[str]) -> np.ndarray:
        """Mean-pooled last hidden states, texts batched only with texts of the same token length."""
        torch = self.scorer._torch
        ids = self.scorer.encode(texts)
        lengths = np.array([len(i) for i in ids])
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        body = self.scorer.model.base_model  # the transformer without its output layer
        # A BOS token's hidden state is the same for every text (it sees only itself), and in trained models it is
        # often far larger than the others: averaged in, it would add a vector divided by the text's length.
        bos = self.scorer.tokenizer.bos_token_id
        for length in np.unique(lengths).tolist():
            rows = np.flatnonzero(lengths == length)
            per_pass = max(1, TOKENS_PER_PASS // length)
            for start in range(0, len(rows), per_pass):
                chunk = rows[start : start + per_pass]
                started = time.perf_counter()
                batch = torch.tensor([ids[r] for r in chunk.tolist()], dtype=torch.long, device=self.scorer.device)
                with torch.inference_mode():
                    hidden = body(input_ids=batch, use_cache=False).last_hidden_state
                    start = 1 if length > 1 and bos is not None and ids[chunk[0]][0] == bos else 0
                    out[chunk] = hidden[:, start:].float().mean(dim=1).cpu().numpy()
                self.stats["text_passes"] += 1
                self.stats["text_tokens"] += int(length * len(chunk))
                self.stats["text_seconds"] += time.perf_counter() - started
        self.stats["texts_encoded"] += len(texts)
        if not np.isfinite(out).all():
            raise LsbmError(f"behavior.model: the language model gave non-finite hidden states for {len(texts)} texts")
        return out

    def persona_vectors(self, personas: Sequence[str]) -> np.ndarray:
        return self.encode([PERSONA_FRAME.format(p) for p in personas])

    def post_vectors(self, contents: Sequence[str]) -> np.ndarray:
        return self.encode([POST_FRAME.format(c) for c in contents])


# ------------------------------------------------------------------------------------------------ the head


def context_features(batch: QueryBatch) -> np.ndarray:
    """The social-context columns of `CONTEXT_FEATURES`, transformed as the surrogate transforms them."""
    columns = {
        "proof": np.log1p(batch.proof),
        "sharers": np.log1p(batch.sharers),
        "labeled": batch.label_id > 0,
        "age": np.log1p(batch.age),
        "seen": np.log1p(batch.seen),
        "promoted": batch.promoted,
        "disposition": np.asarray(batch.dispositions)[batch.persona_id],
    }
    return np.stack([np.asarray(columns[f], dtype=np.float64) for f in CONTEXT_FEATURES], axis=1)


class FactorizedHead:
    """The projection of text vectors (`mean`, `basis`, `scale`) and the logistic head (`intercept`, `coef`,
    one row per reaction, ignore's row zero) over `feature_names()`. `model_identity` names the language model
    (weights and pooling) whose vectors it reads."""

    def __init__(self, reactions: Sequence[str], model_identity: str, mean: np.ndarray, basis: np.ndarray,
                 scale: np.ndarray, intercept: np.ndarray, coef: np.ndarray, fit_report: dict | None = None):  # fmt: skip
        self.reactions = tuple(reactions)
        self.model_identity = model_identity
        self.mean = np.asarray(mean, dtype=np.float64)
        self.basis = np.asarray(basis, dtype=np.float64)  # hidden size x k
        self.scale = np.asarray(scale, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.coef = np.asarray(coef, dtype=np.float64)
        self.fit_report = dict(fit_report or {})
        self.ignore_index = self.reactions.index("ignore")

    @property
    def k(self) -> int:
        return self.basis.shape[1]

    def feature_names(self) -> list[str]:
        k = range(self.k)
        return ["similarity", *(f"post_{j}" for j in k), *(f"persona_{j}" for j in k), *(f"match_{j}" for j in k),
                *CONTEXT_FEATURES]  # fmt: skip

    # ------------------------------------------------------------------------------------ features

    def project(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(components in units of their spread, centred unit vectors) of text vectors."""
        centred = np.asarray(vectors, dtype=np.float64) - self.mean
        unit = centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)
        return (centred @ self.basis) / self.scale, unit

    def text_features(self, persona_vectors: np.ndarray, post_vectors: np.ndarray) -> np.ndarray:
        """similarity, post_*, persona_*, match_* of aligned (persona, post) rows."""
        zp, up = self.project(persona_vectors)
        zc, uc = self.project(post_vectors)
        return np.concatenate([(up * uc).sum(axis=1, keepdims=True), zc, zp, zp * zc], axis=1)

    def features(self, batch: QueryBatch, encoder: LMTextEncoder) -> np.ndarray:
        """The head's input, one row per query (for fitting; `proba` computes the same per distinct pair)."""
        _, index, personas, posts = _pairs(batch, encoder)
        return np.concatenate([self.text_features(personas, posts)[index], context_features(batch)], axis=1)

    # ----------------------------------------------------------------------------------- answers

    def proba(self, batch: QueryBatch, encoder: LMTextEncoder) -> np.ndarray:
        """Reaction probabilities of every query. The text part of the logits is computed once per distinct
        (persona, post) pair; a row adds its context part."""
        n_text = 1 + 3 * self.k
        _, index, personas, posts = _pairs(batch, encoder)
        text_logits = self.text_features(personas, posts) @ self.coef[:, :n_text].T
        logits = self.intercept + text_logits[index] + context_features(batch) @ self.coef[:, n_text:].T
        logits[:, self.ignore_index] = 0.0
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    # ------------------------------------------------------------------------------------- fitting

    @classmethod
    def fit(cls, batch: QueryBatch, targets: np.ndarray, encoder: LMTextEncoder, reactions: Sequence[str],
            components: int = DEFAULT_COMPONENTS, l2: float = 1e-4) -> FactorizedHead:  # fmt: skip
        """Fit the projection on the batch's texts and the head to `targets` (rows x reactions: a teacher's
        probabilities, or one-hot observed reactions) by maximum likelihood (L-BFGS; `l2` penalises the squared
        coefficients against the mean log-likelihood per row)."""
        reactions = tuple(reactions)
        targets = np.asarray(targets, dtype=np.float64)
        if targets.shape != (len(batch), len(reactions)):
            raise ValueError(f"targets have shape {targets.shape}, expected ({len(batch)}, {len(reactions)})")
        used_p = np.unique(batch.persona_id)
        used_c = np.unique(batch.item_id)
        texts = np.concatenate([encoder.persona_vectors([batch.personas[i] for i in used_p.tolist()]),
                                encoder.post_vectors([batch.contents[i] for i in used_c.tolist()])]).astype(np.float64)  # fmt: skip
        mean = texts.mean(axis=0)
        k = max(1, min(components, len(texts) - 1, texts.shape[1]))
        _, _, vt = np.linalg.svd(texts - mean, full_matrices=False)
        basis = vt[:k].T
        # Signs fixed by the largest loading, so a refit on the same texts gives the same head.
        basis *= np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(k)])
        scale = np.maximum(((texts - mean) @ basis).std(axis=0), 1e-12)
        head = cls(reactions, encoder.model_identity, mean, basis, scale, np.zeros(len(reactions)),
                   np.zeros((len(reactions), 1 + 3 * k + len(CONTEXT_FEATURES))))  # fmt: skip
        x = head.features(batch, encoder)
        active = [r for r in range(len(reactions)) if r != head.ignore_index]
        theta, value, converged = fit_softmax(x, targets, active, l2)
        head.intercept[active] = theta[:, 0]
        head.coef[active] = theta[:, 1:]
        head.fit_report = {"rows": len(batch), "texts": len(texts), "components": k, "loss": value,
                           "converged": converged}  # fmt: skip
        return head

    # ------------------------------------------------------------------------------------- saving

    def to_json(self) -> dict[str, Any]:
        return {
            "format": HEAD_FORMAT,
            "version": 1,
            "model": self.model_identity,
            "pooling": POOLING,
            "reactions": list(self.reactions),
            "features": self.feature_names(),
            "mean": self.mean.tolist(),
            "basis": self.basis.tolist(),
            "scale": self.scale.tolist(),
            "intercept": self.intercept.tolist(),
            "coef": self.coef.tolist(),
            "fit": self.fit_report,
        }

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]

    def save(self, path: Path | str) -> Path:
        """Write the head as JSON (written beside, then renamed: never half-written)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_json()))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path | str, source: str = "behavior.factorized.head") -> FactorizedHead:
        path = Path(path)
        if not path.is_file():
            raise LsbmError(f"{source}: file not found: {path}")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or doc.get("format") != HEAD_FORMAT:
                raise ValueError(f"not a {HEAD_FORMAT} file")
            head = cls(doc["reactions"], doc["model"], doc["mean"], doc["basis"], doc["scale"], doc["intercept"],
                       doc["coef"], doc.get("fit"))  # fmt: skip
            d, k = head.basis.shape if head.basis.ndim == 2 else (0, 0)
            n_feat = 1 + 3 * k + len(CONTEXT_FEATURES)
            if head.mean.shape != (d,) or head.scale.shape != (k,) or head.coef.shape != (len(head.reactions), n_feat) \
                    or head.intercept.shape != (len(head.reactions),) or k == 0:
                raise ValueError("its arrays' shapes do not agree")
            if doc.get("features") != head.feature_names():
                raise ValueError(f"its features are not {head.feature_names()[:3]}...")
            arrays = (head.mean, head.basis, head.scale, head.intercept, head.coef)
            if not all(np.isfinite(a).all() for a in arrays):
                raise ValueError("it holds values that are not finite")
        except (ValueError, KeyError, TypeError) as exc:
            raise LsbmError(f"{source}: {path} is not a valid factorized head ({exc})") from None
        return head


def fit_softmax(x: np.ndarray, targets: np.ndarray, active: list[int], l2: float,
                max_iter: int = 3000) -> tuple[np.ndarray, float, bool]:  # fmt: skip
    """Maximum-likelihood multinomial logistic regression (the `active` reactions get an intercept and
    coefficients, the others a logit of 0) by L-BFGS in float64: (active x (1 + features) parameters, the mean
    loss, whether it converged). Torch's L-BFGS, not SciPy's: the GPU benchmark's machine has no SciPy."""
    import torch

    xt = torch.as_tensor(x, dtype=torch.float64)
    yt = torch.as_tensor(targets, dtype=torch.float64)
    theta = torch.zeros((len(active), 1 + x.shape[1]), dtype=torch.float64, requires_grad=True)
    others = torch.zeros((len(x), targets.shape[1]), dtype=torch.float64)
    index = torch.as_tensor(active)
    optimizer = torch.optim.LBFGS([theta], max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-14,
                                  history_size=20, line_search_fn="strong_wolfe")  # fmt: skip

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        logits = others.index_copy(1, index, theta[:, 0] + xt @ theta[:, 1:].T)
        value = -(yt * torch.log_softmax(logits, dim=1)).sum() / len(x) + l2 * (theta[:, 1:] ** 2).sum()
        value.backward()
        return value

    optimizer.step(loss)
    state = optimizer.state[theta]
    converged = int(state.get("n_iter", 0)) < max_iter
    return theta.detach().numpy().copy(), float(loss().detach()), converged


def _pairs(batch: QueryBatch, encoder: LMTextEncoder) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (persona, post) pairs of a batch, each row's pair, and the pairs' persona and post vectors."""
    code = batch.persona_id.astype(np.int64) * (int(batch.item_id.max(initial=0)) + 1) + batch.item_id
    pairs, first, index = np.unique(code, return_index=True, return_inverse=True)
    persona_ids, item_ids = batch.persona_id[first], batch.item_id[first]
    used_p, p_index = np.unique(persona_ids, return_inverse=True)
    used_c, c_index = np.unique(item_ids, return_inverse=True)
    personas = encoder.persona_vectors([batch.personas[i] for i in used_p.tolist()])[p_index]
    posts = encoder.post_vectors([batch.contents[i] for i in used_c.tolist()])[c_index]
    return pairs, index.reshape(-1), personas, posts


# ------------------------------------------------------------------------------------------- the scorers


class FactorizedScorer(BehaviorModelBase):
    """Language-model text vectors and a distilled head (see the module docstring).

    The encoder is `text_encoder`, not `encoder`: posting and the interest recommender use a behavior model's
    `encoder` when it has one, and the world must be the same whether people are scored by prompt or by head.
    It has no fingerprint, so the broker keeps its answers in memory only: the head answers a question faster
    than a persistent cache could look it up, and the expensive part, the text vectors, is cached on disk.
    """

    def __init__(self, encoder: LMTextEncoder, head: FactorizedHead, reactions: Sequence[str] | None = None):
        self.text_encoder = encoder
        self.head = head
        self.reactions = tuple(reactions) if reactions is not None else head.reactions
        if self.reactions != head.reactions:
            raise LsbmError(f"behavior.factorized.head: the head's reactions {list(head.reactions)} differ from "
                            f"behavior.reactions {list(self.reactions)}")  # fmt: skip
        if head.model_identity != encoder.model_identity:
            raise LsbmError("behavior.factorized.head: the head was distilled from another language model (or another "
                            f"pooling) than behavior.model {encoder.scorer.folder}; distil one for this model")  # fmt: skip
        self.head_rows = 0

    depends_on = PROMPT_FIELDS

    @property
    def stats(self) -> dict[str, float]:
        return {**self.text_encoder.stats, "head_rows": self.head_rows}

    def bind(self, simulation: Any) -> None:
        """Encode every text the simulation can show, in one call (see the module docstring)."""
        self.text_encoder.encode(sorted(set(simulation_texts(simulation))))

    def predict_proba(self, queries: QueryBatch | Sequence[Any]) -> np.ndarray:
        batch = as_batch(queries)
        self.head_rows += len(batch)
        if len(batch) == 0:
            return np.zeros((0, len(self.reactions)))
        return self.head.proba(batch, self.text_encoder)

    def close(self) -> None:
        self.text_encoder.scorer.close()


def simulation_texts(simulation: Any) -> list[str]:
    """The framed texts a simulation can ask about: its personas, its scheduled posts, its posting pool."""
    texts = [PERSONA_FRAME.format(p) for p in simulation.population.personas]
    contents = list(simulation.item_texts)
    posting = getattr(simulation, "posting", None)
    if posting is not None:
        contents += list(posting.pool.texts)
    return texts + [POST_FRAME.format(c) for c in contents]


FULL_PROMPT_SELECTIONS = ("most_followed", "random")


def full_prompt_people(n: int, share: float, select: str, followers: np.ndarray, seed: int) -> np.ndarray:
    """Which of n people are asked with the full prompt: `share` of them (rounded, at least one), the most
    followed (ties: lower agent number first) or a random sample seeded by the simulation's seed.

    >>> full_prompt_people(5, 0.4, "most_followed", np.array([3, 9, 1, 9, 0]), seed=0).tolist()
    [False, True, False, True, False]
    """
    if select not in FULL_PROMPT_SELECTIONS:
        raise LsbmError(f"behavior.factorized.full_prompt.select: {select!r} is not one of {list(FULL_PROMPT_SELECTIONS)}")
    count = min(n, max(1, int(round(share * n))))
    if select == "most_followed":
        chosen = np.lexsort((np.arange(n), -np.asarray(followers, dtype=np.int64)))[:count]
    else:
        # Its own stream, derived from the seed and a fixed tag, so no other draw of the simulation moves.
        tag = int.from_bytes(hashlib.sha256(b"behavior.factorized.full_prompt").digest()[:4], "little")
        chosen = np.random.default_rng([seed, tag]).permutation(n)[:count]
    mask = np.zeros(n, dtype=bool)
    mask[chosen] = True
    return mask


class HybridScorer(BehaviorModelBase):
    """Some people through the full prompt, everyone else through the factorized head.

    The answer depends on who asks, so the outer broker tells people apart (`depends_on` adds agent_id); the
    full-prompt questions go through a broker of their own, which asks the language model once per distinct
    prompt whoever asks it and keeps answers in `cache_path` (the scenario's `behavior.cache`) across runs.
    """

    def __init__(self, full: Any, factorized: FactorizedScorer, share: float, select: str = "most_followed",
                 cache_path: Path | None = None):  # fmt: skip
        from lsbm_sim.behavior.broker import Broker

        self.full = full
        self.factorized = factorized
        self.reactions = factorized.reactions
        self.share, self.select = float(share), select
        self.full_broker = Broker(full, cache_path=cache_path)
        self.full_prompt_agents: np.ndarray | None = None

    depends_on = (*PROMPT_FIELDS, "agent_id")

    @property
    def stats(self) -> dict[str, float]:
        return {**self.full.stats, **self.factorized.stats,
                "full_prompt_people": int(self.full_prompt_agents.sum()) if self.full_prompt_agents is not None else 0}  # fmt: skip

    def bind(self, simulation: Any) -> None:
        self.factorized.bind(simulation)
        self.full_prompt_agents = full_prompt_people(
            simulation.num_agents, self.share, self.select, simulation.network.out_degree, simulation.seed
        )

    def predict_proba(self, queries: QueryBatch | Sequence[Any]) -> np.ndarray:
        batch = as_batch(queries)
        probs = np.empty((len(batch), len(self.reactions)))
        full = np.zeros(len(batch), dtype=bool)
        if self.full_prompt_agents is not None:
            known = batch.agent_id >= 0
            full[known] = self.full_prompt_agents[batch.agent_id[known]]
        rows = np.flatnonzero(full)
        if len(rows):
            probs[rows] = self.full_broker.decide(batch.take(rows))
        rows = np.flatnonzero(~full)
        if len(rows):
            probs[rows] = self.factorized.predict_proba(batch.take(rows))
        return check_probabilities(probs, len(batch), self.reactions, "HybridScorer")

    def close(self) -> None:
        self.full_broker.close()
        self.full.close()


def from_spec(spec: Any, resolve: Callable[[str], Path]) -> BehaviorModelBase:
    """The factorized or hybrid scorer a scenario's `behavior` section describes (backend hf with `factorized`)."""
    from lsbm_sim.behavior.hf import HFScorer

    head = FactorizedHead.load(resolve(str(spec.factorized.head)))
    scorer = HFScorer.from_spec(spec, resolve)
    try:
        factorized = FactorizedScorer(LMTextEncoder(scorer), head, reactions=spec.reactions)
    except LsbmError:
        scorer.close()
        raise
    full_prompt = spec.factorized.full_prompt
    if full_prompt is None:
        return factorized
    cache = resolve(str(spec.cache)) if spec.cache is not None else None
    return HybridScorer(scorer, factorized, full_prompt.share, full_prompt.select, cache_path=cache)
