"""Evaluate a behavior-tuned model against its base and simple baselines on a prepared folder's test split.

Every predictor gives, for each test headline, a probability for each level (low/medium/high) and a score
(by default sum_level p(level) * the level's mean training target: for rate levels, the predicted rate the
simulation's hf backend reads from a checkpoint). From those:

    pairwise accuracy    within each group (A/B test): of two variants with different texts whose rates differ
                         significantly (two-sided two-proportion z-test, 5%), how often the higher score is the
                         winner (a tie counts one half, so chance and a constant score 0.5); the lead figure
    accuracy, macro-F1   of the most probable level against the true level
    Spearman rho         between the score and the observed target (the rate, or the relative log rate of a
                         folder prepared with --relative-to)
    ECE                  expected calibration error of the most probable level (10 equal-width bins)

Predictors: the tuned model, scored with the plain-word prompt of the seed card and, where it has them, with its
behavior tokens (the form the hf backend uses); its untuned base; a bag-of-words logistic regression; the
embedded surrogate's sentence encoder (all-MiniLM-L6-v2) with a logistic head, or, on a relative target, a ridge
read-out of the relative log rate weighted as `bft prepare` weighted the rows (`sentence_encoder_relative`); and
the training split's level frequencies (a constant). The heads are fitted on the training split, their
regularisation chosen on the validation split. Language models are scored through
`lsbm_sim.behavior.hf.HFScorer`, the simulation's own scorer, so that the numbers are those of the model as a
simulation runs it. The metrics need numpy and pandas only (the GPU machine has no scipy or scikit-learn); the
simple baselines need scikit-learn.

>>> report = evaluate_lsbm("models/lsbm", "data/bft", baseline="models/base")  # doctest: +SKIP
>>> baselines = evaluate_lsbm(None, "data/bft")  # the simple baselines alone  # doctest: +SKIP
>>> print(report.markdown())  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from lsbm_sim.bft.instructions import RATE_TARGET, PreparedData, level_answers, render_level_prompt
from lsbm_sim.abtests import SIGNIFICANCE, Pairs
from lsbm_sim.abtests import significant_pairs as ab_pairs
from lsbm_sim.errors import LsbmError

ECE_BINS = 10
REGULARISATION_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
RIDGE_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)
EVAL_JSON = "eval.json"
EVAL_MARKDOWN = "eval.md"


# ------------------------------------------------------------------------------------------- the test rows


@dataclass
class EvalRows:
    """The rows of one split as arrays: texts, true rates, targets and levels (indices), weights, counts, groups
    and times. `target` is what the levels were cut from (the rate unless prepared with --relative-to)."""

    text: list[str]
    rate: np.ndarray
    level: np.ndarray
    behavior: np.ndarray
    exposure: np.ndarray | None
    group: np.ndarray | None
    time: np.ndarray | None
    target: np.ndarray | None = None
    weight: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.target is None:
            self.target = self.rate
        if self.weight is None:
            self.weight = np.ones(len(self.rate))

    @classmethod
    def of(cls, data: PreparedData, split: str) -> EvalRows:
        rows = data.rows(split)
        if not rows:
            raise LsbmError(f"{data.folder}: the {split} split is empty")
        index = {level: i for i, level in enumerate(data.levels)}
        exposure = [r["exposure"] for r in rows]
        group = [r["group"] for r in rows]
        time = [r["time"] for r in rows]
        return cls(
            text=[r["text"] for r in rows],
            rate=np.array([r["rate"] for r in rows], dtype=np.float64),
            target=np.array([r.get("target", r["rate"]) for r in rows], dtype=np.float64),
            weight=np.array([r.get("weight") or 1.0 for r in rows], dtype=np.float64),
            level=np.array([index[r["level"]] for r in rows]),
            behavior=np.array([r["behavior"] for r in rows], dtype=np.float64),
            exposure=None if exposure[0] is None else np.array(exposure, dtype=np.float64),
            group=None if group[0] is None else np.array(group, dtype=object),
            time=None if time[0] is None else np.array(time, dtype=np.float64),
        )

    def __len__(self) -> int:
        return len(self.text)


# ------------------------------------------------------------------------------------------------- metrics


def expected_calibration_error(probs: np.ndarray, truth: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE of the most probable class: the bin-size-weighted mean |accuracy - confidence| over confidence bins.

    >>> expected_calibration_error(np.array([[0.9, 0.1], [0.9, 0.1]]), np.array([0, 1]))
    0.4
    """
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == truth
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return round(float(total), 10)


def significant_pairs(rows: EvalRows, alpha: float = SIGNIFICANCE,
                      exclude_time: tuple[float, float] | None = None) -> Pairs:  # fmt: skip
    """`lsbm_sim.abtests.significant_pairs` on a split's rows."""
    return ab_pairs(rows.text, rows.behavior, rows.exposure, rows.group, rows.time, alpha, exclude_time)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: Pearson's correlation of average ranks (scipy's spearmanr; NaN for a constant input)."""
    import pandas as pd

    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(np.corrcoef(pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy())[0, 1])


def macro_f1(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    """The unweighted mean over classes of F1 (a class never predicted nor true scores 0, as scikit-learn's
    f1_score(average="macro", zero_division=0) with every label listed)."""
    scores = []
    for c in range(n_classes):
        true_positive = np.sum((predicted == c) & (truth == c))
        denominator = np.sum(predicted == c) + np.sum(truth == c)
        scores.append(2 * true_positive / denominator if denominator else 0.0)
    return float(np.mean(scores))


def pairwise_accuracy(predicted_rate: np.ndarray, pairs: Pairs) -> float:
    """Share of significant pairs whose winner has the higher predicted rate (a tie counts one half)."""
    if len(pairs) == 0:
        return math.nan
    difference = predicted_rate[pairs.first] - predicted_rate[pairs.second]
    right = np.where(difference == 0, 0.5, (difference > 0) == pairs.first_wins)
    return float(np.mean(right))


def level_metrics(probs: np.ndarray, rows: EvalRows, level_rates: np.ndarray, pairs: Pairs,
                  score: np.ndarray | None = None) -> dict[str, float]:  # fmt: skip
    """All the metrics of one predictor's level probabilities (rows x levels) and score (default: the expected
    level mean, probs @ level_rates). A predictor that gives a score but no probabilities (a regression) passes
    one-hot probabilities and `score`; its ECE is then undefined (NaN)."""
    predicted = probs.argmax(axis=1)
    regression = score is not None
    score = probs @ level_rates if score is None else np.asarray(score, dtype=np.float64)
    return {
        "pairwise_accuracy": pairwise_accuracy(score, pairs),
        "accuracy": float(np.mean(predicted == rows.level)),
        "macro_f1": macro_f1(rows.level, predicted, probs.shape[1]),
        "spearman": spearman(score, rows.target),  # NaN for a constant score: it has no rank order
        "ece": math.nan if regression else expected_calibration_error(probs, rows.level),
    }


# ---------------------------------------------------------------------------------------------- predictors


def prior_levels(train: EvalRows, n_test: int, n_levels: int) -> np.ndarray:
    """The training split's level frequencies for every test row: the constant to beat."""
    frequencies = np.bincount(train.level, minlength=n_levels) / len(train)
    return np.tile(frequencies, (n_test, 1))


def fit_logistic(x_train: Any, y_train: np.ndarray, x_val: Any, y_val: np.ndarray, n_levels: int, seed: int = 0) -> Any:
    """A multinomial logistic regression, its inverse regularisation C chosen by validation log-loss."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from threadpoolctl import threadpool_limits

    best, best_loss = None, math.inf
    # One BLAS thread: L-BFGS's vector updates are too small to share, and on a busy machine extra BLAS
    # threads spin-wait (a bag-of-words fit on Upworthy took 15 s on two threads, 3 s on one).
    with threadpool_limits(limits=1, user_api="blas"):
        for c in REGULARISATION_GRID:
            model = LogisticRegression(C=c, max_iter=3000, random_state=seed).fit(x_train, y_train)
            loss = log_loss(y_val, model.predict_proba(x_val), labels=model.classes_)
            if loss < best_loss:
                best, best_loss = model, loss
    return best


def class_probabilities(model: Any, x: Any, n_levels: int) -> np.ndarray:
    """predict_proba with a column for every level, also those absent from the training labels."""
    probs = np.zeros((x.shape[0], n_levels))
    probs[:, model.classes_] = model.predict_proba(x)
    return probs


def bag_of_words_levels(train: EvalRows, val: EvalRows, test: EvalRows, n_levels: int) -> np.ndarray:
    """Word and word-pair counts (TF-IDF weighted) -> logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(train.text)
    model = fit_logistic(vectorizer.transform(train.text), train.level, vectorizer.transform(val.text),
                         val.level, n_levels)  # fmt: skip
    return class_probabilities(model, vectorizer.transform(test.text), n_levels)


def sentence_encoder_levels(train: EvalRows, val: EvalRows, test: EvalRows, n_levels: int,
                            encoder: Any = None) -> np.ndarray:  # fmt: skip
    """The embedded surrogate's encoder (all-MiniLM-L6-v2) -> logistic regression on the embeddings."""
    from lsbm_sim.behavior.surrogate import default_encoder

    encoder = encoder or default_encoder()
    model = fit_logistic(encoder.encode(train.text), train.level, encoder.encode(val.text), val.level, n_levels)
    return class_probabilities(model, encoder.encode(test.text), n_levels)


def sentence_encoder_relative(train: EvalRows, val: EvalRows, encoder: Any = None) -> Callable[[Sequence[str]], np.ndarray]:
    """A scorer of texts: the relative log rate read out of each text's MiniLM sentence embedding by weighted
    ridge regression (fitted on the training split with `bft prepare`'s inverse-variance weights; the penalty
    chosen by weighted squared error on the validation split).

    One function on purpose: a shipped read-out of the same kind (the default model's appeal) can stand in here.
    """
    from sklearn.linear_model import Ridge

    from lsbm_sim.behavior.surrogate import default_encoder

    encoder = encoder or default_encoder()
    x_train, x_val = encoder.encode(train.text), encoder.encode(val.text)
    best, best_error = None, math.inf
    for alpha in RIDGE_GRID:
        model = Ridge(alpha=alpha).fit(x_train, train.target, sample_weight=train.weight)
        error = float(np.average((model.predict(x_val) - val.target) ** 2, weights=val.weight))
        if error < best_error:
            best, best_error = model, error
    return lambda texts: best.predict(encoder.encode(list(texts)))


def scores_as_levels(score: np.ndarray, train_score: np.ndarray, train_level: np.ndarray, n_levels: int) -> np.ndarray:
    """One-hot level probabilities of scores, cut where the training rows' own scores give each level its
    training frequency (a shrunk regression's predictions are narrower than the target, so the target's
    thresholds would put nearly every row in the middle level)."""
    frequencies = np.bincount(train_level, minlength=n_levels) / len(train_level)
    thresholds = np.quantile(train_score, np.cumsum(frequencies)[:-1])
    return np.eye(n_levels)[np.searchsorted(thresholds, score, side="left")]


class LanguageModelLevels:
    """Level probabilities from a causal LM folder, scored through the simulation's HFScorer.

    `predict(prompts, answers)`: the softmax, over the answers, of each answer's log-probability after each
    prompt.
    """

    def __init__(self, folder: str | Path, reaction: str = "share", device: str = "auto", batch_tokens: int = 8192,
                 role: str = "model"):  # fmt: skip
        from lsbm_sim.behavior.checkpoint import BehaviorCheckpoint
        from lsbm_sim.behavior.hf import HFScorer

        checkpoint = BehaviorCheckpoint.read(folder) if Path(folder).is_dir() else None
        reaction = checkpoint.reaction if checkpoint is not None else reaction
        try:
            # "full" scoring: the scorer checks nothing about first tokens; we pick the scoring per answer set below.
            self.scorer = HFScorer(folder, reactions=("ignore", reaction), device=device, scoring="full",
                                   batch_tokens=batch_tokens)  # fmt: skip
        except LsbmError as exc:  # the scorer speaks of a scenario's behavior.model; here it is `role`
            raise LsbmError(str(exc).replace("behavior.model:", f"{role}:", 1)) from None
        self.checkpoint = checkpoint

    @property
    def tokenizer(self) -> Any:
        return self.scorer.tokenizer

    def has_behavior_tokens(self) -> bool:
        return bool(self.checkpoint is not None and self.checkpoint.behavior_tokens)

    def predict(self, prompts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        answer_ids = [self.tokenizer(a, add_special_tokens=False)["input_ids"] for a in answers]
        prompt_ids = self.scorer.encode(prompts)
        if all(len(ids) == 1 for ids in answer_ids) and len({ids[0] for ids in answer_ids}) == len(answer_ids):
            first = [ids[0] for ids in answer_ids]
            scores = np.empty((len(prompts), len(answers)))
            for rows, logprobs in self.scorer.forward(prompt_ids, keep=1):
                scores[rows] = logprobs[:, -1, first].double().cpu().numpy()
        else:
            scores = self.scorer.continuation_scores(prompt_ids, answer_ids)
        scores -= scores.max(axis=1, keepdims=True)
        weights = np.exp(scores)
        return weights / weights.sum(axis=1, keepdims=True)

    def simulation_prompts(self, texts: Sequence[str]) -> tuple[list[str], list[str]]:
        """The prompts and option spellings the hf backend uses with this checkpoint (behavior tokens)."""
        from lsbm_sim.behavior.base import BehaviorQuery

        plan = self.scorer.plan
        return [plan.render(BehaviorQuery("", t)) for t in texts], list(plan.spellings)

    def close(self) -> None:
        self.scorer.close()


# --------------------------------------------------------------------------------------------- the report


@dataclass
class EvalReport:
    """Metrics per predictor on a test split, and what they were computed on."""

    model: str
    data: str
    baseline: str | None
    test_rows: int
    test_levels: dict[str, int]
    pairs: dict[str, Any]
    results: list[dict[str, Any]] = field(default_factory=list)
    created: str = ""
    split: str = "test"
    target: str = RATE_TARGET

    def result(self, name: str) -> dict[str, Any]:
        for r in self.results:
            if r["name"] == name:
                return r
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON data; a metric that is undefined (NaN) becomes null."""
        document = dict(vars(self))
        document["results"] = [
            {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in self.results
        ]
        return document

    def markdown(self) -> str:
        """The table, led by pairwise accuracy; then a sentence each on the pairs, tuned vs base, and each
        predictor's level accuracy beside the constant predictor's."""

        def number(value: Any) -> str:
            return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"

        pairs = self.pairs
        notes = [f"of {pairs['tested']} tested"]
        if pairs.get("excluded"):
            notes.append(f"{pairs['excluded']} more excluded by time")
        if pairs.get("same_text"):
            notes.append(f"{pairs['same_text']} with the same text skipped")
        if pairs.get("reason"):
            notes.append(pairs["reason"])
        levels = ", ".join(f"{k} {v}" for k, v in self.test_levels.items())
        target = "relative log rate (within group)" if self.target != RATE_TARGET else "rate"
        lines = [
            f"{self.split.capitalize()} split of `{self.data}`: {self.test_rows} rows, levels of the {target} "
            f"{levels}; {pairs['significant']} significant within-group pairs ({', '.join(notes)}).",
            "",
            "| model | pairwise accuracy | level accuracy | macro-F1 | Spearman rho | ECE |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in self.results:
            lines.append(
                f"| {r['name']} | {number(r['pairwise_accuracy'])} | {number(r['accuracy'])} | "
                f"{number(r['macro_f1'])} | {number(r['spearman'])} | {number(r['ece'])} |"
            )
        lines.append("")
        lines.append(
            f"Pairwise accuracy: how often the higher score picks the winner of a pair whose rates differ at "
            f"{pairs['alpha']:.0%} (chance 0.5; {pairs['significant']} pairs)."
        )
        tuned = [r for r in self.results if r["kind"] == "tuned"]
        base = [r for r in self.results if r["kind"] == "base"]
        if tuned and base:
            best_tuned = max(tuned, key=lambda r: _or_minus_inf(r["pairwise_accuracy"]))
            gain = best_tuned["pairwise_accuracy"] - base[0]["pairwise_accuracy"]
            verdict = "beats" if gain > 0 else "does not beat"
            lines.append(
                f"The tuned model ({best_tuned['name']}) {verdict} its untuned base on pairwise accuracy: "
                f"{number(best_tuned['pairwise_accuracy'])} vs {number(base[0]['pairwise_accuracy'])} ({gain:+.3f})."
            )
        constant = [r for r in self.results if r["kind"] == "constant"]
        if constant:
            floor = constant[0]["accuracy"]
            shown = "; ".join(f"{r['name']} {r['accuracy']:.3f}" for r in self.results if r["kind"] != "constant")
            lines.append(
                f"Level accuracy beside the constant predictor's {floor:.3f} (it always answers the most frequent "
                f"training level): {shown or 'no other predictor'}."
            )
        return "\n".join(lines) + "\n"

    def write(self, folder: Path | str) -> Path:
        """Write eval.json and eval.md into `folder` (each under a temporary name, then renamed)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        document = json.dumps(self.to_json(), indent=2, default=_json_default, allow_nan=False)
        for name, text in ((EVAL_JSON, document), (EVAL_MARKDOWN, self.markdown())):
            tmp = folder / f".{name}.tmp-{os.getpid()}"
            tmp.write_text(text)
            tmp.replace(folder / name)
        return folder


def _or_minus_inf(value: float) -> float:
    return -math.inf if math.isnan(value) else value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def evaluate_lsbm(
    model: str | Path | None,
    data_dir: str | Path,
    baseline: str | Path | None = None,
    split: str = "test",
    exclude_time: tuple[float, float] | None = None,
    sentence_encoder: bool = True,
    device: str = "auto",
    batch_tokens: int = 8192,
    encoder: Any = None,
    bag_of_words: bool = True,
) -> EvalReport:
    """Evaluate `model` (a tuned folder; None: baselines only), its `baseline` and the simple baselines.

    `exclude_time`: an inclusive (low, high) range of the time column whose rows are left out of the pairwise
    comparisons (they still count for every other metric; `bft prepare --drop-time` drops them everywhere).
    `bag_of_words`, `sentence_encoder`: include those baselines (they need scikit-learn).
    """
    if model is not None and not Path(model).is_dir():
        raise LsbmError(
            f"{model}: no tuned model folder there (make one with `bft train`, or evaluate the baselines alone "
            "with --baselines-only)"
        )
    data = PreparedData.read(data_dir)
    if "level" not in data.tasks:
        raise LsbmError(f"{data_dir} has no level instructions; prepare it with the level task")
    train, val, test = EvalRows.of(data, "train"), EvalRows.of(data, "val"), EvalRows.of(data, split)
    levels = list(data.levels)
    level_rates = np.array([data.level_rates[level] for level in levels])
    pairs = significant_pairs(test, exclude_time=exclude_time)
    report = EvalReport(
        model=str(model) if model is not None else "",
        data=str(data_dir),
        baseline=str(baseline) if baseline is not None else None,
        test_rows=len(test),
        test_levels={level: int((test.level == i).sum()) for i, level in enumerate(levels)},
        pairs={"significant": len(pairs), "tested": pairs.tested, "excluded": pairs.excluded,
               "same_text": pairs.same_text, "alpha": SIGNIFICANCE,
               "exclude_time": list(exclude_time) if exclude_time else None, "reason": pairs.reason},  # fmt: skip
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        split=split,
        target=data.target,
    )

    def add(name: str, kind: str, probs: np.ndarray, score: np.ndarray | None = None) -> None:
        report.results.append({"name": name, "kind": kind, **level_metrics(probs, test, level_rates, pairs, score)})

    word_prompts = [render_level_prompt(t, data.behavior, levels) for t in test.text]
    word_answers = level_answers(levels)
    if model is not None:
        tuned = LanguageModelLevels(model, data.reaction, device, batch_tokens, role=str(model))
        try:
            add("LSBM tuned (words)", "tuned", tuned.predict(word_prompts, word_answers))
            if tuned.has_behavior_tokens():
                add("LSBM tuned (behavior tokens)", "tuned", tuned.predict(*tuned.simulation_prompts(test.text)))
        finally:
            tuned.close()
    if baseline is not None:
        base = LanguageModelLevels(baseline, data.reaction, device, batch_tokens, role="--baseline")
        try:
            add("base, untuned (words)", "base", base.predict(word_prompts, word_answers))
        finally:
            base.close()
    if bag_of_words:
        add("bag-of-words logistic regression", "simple", bag_of_words_levels(train, val, test, len(levels)))
    if sentence_encoder and data.target != RATE_TARGET:
        scorer = sentence_encoder_relative(train, val, encoder)
        score = scorer(test.text)
        add("sentence encoder + weighted ridge on the relative log rate (all-MiniLM-L6-v2)", "simple",
            scores_as_levels(score, scorer(train.text), train.level, len(levels)), score)  # fmt: skip
    elif sentence_encoder:
        add("sentence encoder + logistic head (all-MiniLM-L6-v2)", "simple",
            sentence_encoder_levels(train, val, test, len(levels), encoder))  # fmt: skip
    add("training level frequencies (constant)", "constant", prior_levels(train, len(test), len(levels)))
    return report
