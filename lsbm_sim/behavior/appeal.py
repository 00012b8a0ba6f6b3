"""Content appeal: how much a post's wording draws people in, learned from real headline A/B tests.

Upworthy tested several headlines for the same story on randomly split audiences (the Upworthy Research
Archive, Matias et al. 2021, CC BY 4.0; `../shared/data/upworthy/SOURCE.txt`). Within one test the story, the day
and the audience are the same, so the differences in click rate between its headlines are the effect of the
wording alone. That is the target here:

    target_i = log rate_i - mean of log rate_j over the variants j of i's test

with rate = (clicks + 0.5) / (impressions + 1) (so that a zero-click row has a finite log), and the plain mean,
each variant counted once (Upworthy split each test's viewers evenly, so impressions are close within a test and
weighting them would change little; a plain mean keeps the targets of a test summing to zero). A row's weight is
the inverse of its log rate's sampling variance, 1 / (1/(clicks + 0.5) - 1/(impressions + 1)), about its
clicks: a headline seen by few people, or clicked by few, says little and counts little. Tests whose rows fall
in weeks 201326..201402 are left out (the archive flags randomisation problems for tests created 2013-06-25 to
2014-01-10), as are tests with a single variant (nothing to compare).

The read-out is a weighted ridge regression of that target on the post's all-MiniLM-L6-v2 sentence embedding
(the encoder the embedded default already loads), with the embeddings centred within each test first, so that
only differences between one story's wordings teach it (what a story is about is shared by all its variants).
Its penalty is chosen on the validation weeks (see `VALIDATION_FROM`); on the held-out weeks it picks the real
winner of 69.8% of the significant pairs (card: `lsbm_sim/behavior/data/appeal_upworthy.md`).
`score()` returns it standardised over the training headlines (0 = a typical Upworthy headline, 1 = one standard
deviation more appealing); the embedded default's head uses that as its feature `appeal`.

    >>> from lsbm_sim.behavior.appeal import default_appeal
    >>> readout = default_appeal()
    >>> a, b = readout.score(["The tax office publishes its annual report",
    ...                       "You won't believe what this dad did when his daughter came home crying"])
    >>> bool(b > a)
    True

The shipped read-out (`lsbm_sim/behavior/data/appeal_upworthy.json`, card beside it) is rebuilt from the data by

    lsbm-sim appeal fit ../shared/data/upworthy/upworthy_packages_dev.csv --out lsbm_sim/behavior/data/appeal_upworthy.json
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lsbm_sim.abtests import SIGNIFICANCE
from lsbm_sim.abtests import significant_pairs as ab_pairs
from lsbm_sim.errors import LsbmError

SHIPPED = Path(__file__).with_name("data") / "appeal_upworthy.json"
FORMAT = "lsbm-sim appeal read-out"

FLAGGED_WEEKS = (201326, 201402)
"""Upworthy tests created 2013-06-25..2014-01-10 have randomisation problems (SOURCE.txt): never fit or scored."""
VALIDATION_FROM, TEST_FROM = 201429, 201437
"""The split of the developers' weeks (201303..201444), fixed by rule before any score was looked at: a test
belongs to the week of its first row; the last 8 weeks (201437..) are the held-out test weeks, the 8 before them
(201429..201436) the validation weeks that choose the ridge penalty, everything earlier is training. The shipped
read-out is refitted on training + validation weeks with the chosen penalty; the test weeks are never fitted."""
RIDGE_PENALTIES = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
UPWORTHY_COLUMNS = {"text": "headline", "group": "clickability_test_id", "clicks": "clicks",
                    "impressions": "impressions", "time": "test_week"}  # fmt: skip


# ------------------------------------------------------------------------------------------------- the target


def within_test_target(frame: pd.DataFrame, group: str = "clickability_test_id", clicks: str = "clicks",
                       impressions: str = "impressions", time: str | None = None,
                       exclude: tuple[float, float] | None = None, source: str = "the table") -> pd.DataFrame:  # fmt: skip
    """The rows that carry a within-test comparison, with three columns added: `log_rate`, `target` (log rate
    minus the plain mean of its test's log rates) and `weight` (inverse variance of the log rate).

    `time`, `exclude`: a column and an inclusive range (low, high); a test with any row in that range is left
    out whole. Tests left with one variant are left out too.

    >>> frame = pd.DataFrame({"clickability_test_id": ["t", "t"], "clicks": [30, 10], "impressions": [1000, 1000]})
    >>> within_test_target(frame)["target"].round(3).tolist()
    [0.533, -0.533]
    """
    wanted = [group, clicks, impressions] + ([time] if time is not None else [])
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise LsbmError(f"{source}: no column {missing[0]!r} (columns are {list(frame.columns)})")
    counts = {}
    for name in (clicks, impressions):
        values = pd.to_numeric(frame[name], errors="coerce")
        bad = values.isna() | (values < 0)
        if bad.any():
            raise LsbmError(f"{source}: column {name!r} must hold counts >= 0; rows {_row_list(frame.index[bad])}")
        counts[name] = values.to_numpy(dtype=np.float64)
    c, n = counts[clicks], counts[impressions]
    bad = (n <= 0) | (c > n)
    if bad.any():
        raise LsbmError(f"{source}: rows {_row_list(frame.index[bad])} have no impressions or more clicks than "
                        f"impressions (columns {clicks!r}, {impressions!r})")  # fmt: skip
    out = frame.copy()
    out["log_rate"] = np.log((c + 0.5) / (n + 1.0))
    # Delta method: var(log p_hat) = (1 - p) / (n p), with the same half-click smoothing.
    out["weight"] = 1.0 / (1.0 / (c + 0.5) - 1.0 / (n + 1.0))
    keep = np.ones(len(out), dtype=bool)
    if exclude is not None and time is not None:
        low, high = exclude
        week = pd.to_numeric(out[time], errors="coerce")
        flagged_tests = set(out.loc[(week >= low) & (week <= high), group])
        keep &= ~out[group].isin(flagged_tests).to_numpy()
    out = out[keep]
    size = out.groupby(group)[group].transform("size")
    out = out[size.to_numpy() >= 2].copy()
    out["target"] = out["log_rate"] - out.groupby(group)["log_rate"].transform("mean")
    return out


def _row_list(index: pd.Index, limit: int = 5) -> str:
    """Row numbers as a reader counts them in a CSV file (header = line 1, first row = line 2)."""
    shown = ", ".join(str(int(i) + 2) if isinstance(i, (int, np.integer)) else str(i) for i in list(index)[:limit])
    return shown + (f" and {len(index) - limit} more" if len(index) > limit else "")


def split_by_week(frame: pd.DataFrame, group: str = "clickability_test_id", time: str = "test_week",
                  validation_from: float = VALIDATION_FROM, test_from: float = TEST_FROM) -> pd.Series:  # fmt: skip
    """'train', 'validation' or 'test' for every row, by the first week of its test (so that a test's variants
    are never on both sides)."""
    first = frame.groupby(group)[time].transform("min")
    return pd.Series(np.select([first >= test_from, first >= validation_from], ["test", "validation"], "train"),
                     index=frame.index)  # fmt: skip


# ------------------------------------------------------------------------------------------------- the read-out


@dataclass
class AppealReadout:
    """A linear read-out of a sentence embedding: raw = embedding @ coef + intercept; score = (raw - mean) /
    scale, standardised over the headlines it was fitted on.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(500, 8))
    >>> readout = AppealReadout.fit_embeddings(x, x[:, 0] + 0.1 * rng.normal(size=500), penalty=1.0)
    >>> bool(np.argmax(np.abs(readout.coef)) == 0)
    True
    """

    coef: np.ndarray
    intercept: float = 0.0
    mean: float = 0.0
    scale: float = 1.0
    encoder: str = "all-MiniLM-L6-v2"
    meta: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------------------------------- fitting

    @classmethod
    def fit_embeddings(cls, x: np.ndarray, target: np.ndarray, weight: np.ndarray | None = None,
                       group: Sequence[Any] | None = None, penalty: float = 10.0,
                       encoder: str = "all-MiniLM-L6-v2") -> AppealReadout:  # fmt: skip
        """Weighted ridge regression of `target` on the rows of `x`. With `group` (the A/B test of each row),
        embeddings and target are first centred within each group, so that only differences between the
        variants of one test teach the read-out (what the story is about, which all variants share, cannot).
        The weights are normalised to mean 1, so that `penalty` means the same whatever their scale."""
        from sklearn.linear_model import Ridge

        x = np.asarray(x, dtype=np.float64)
        target = np.asarray(target, dtype=np.float64)
        if x.ndim != 2 or len(x) != len(target):
            raise ValueError(f"{len(target)} targets for embeddings of shape {x.shape}")
        weight = np.ones(len(target)) if weight is None else np.asarray(weight, dtype=np.float64)
        weight = weight / weight.mean()
        x_fit, y_fit = x, target
        if group is not None:
            codes = pd.factorize(pd.Series(list(group)))[0]
            x_fit = x - _group_means(x, codes)
            y_fit = target - _group_means(target[:, None], codes)[:, 0]
        model = Ridge(alpha=penalty, fit_intercept=group is None).fit(x_fit, y_fit, sample_weight=weight)
        raw = x @ model.coef_
        scale = float(raw.std()) or 1.0
        return cls(coef=model.coef_.astype(np.float64), intercept=0.0, mean=float(raw.mean()), scale=scale,
                   encoder=encoder, meta={"penalty": penalty, "rows": len(target)})  # fmt: skip

    @classmethod
    def fit(cls, texts: Sequence[str], target: np.ndarray, weight: np.ndarray | None = None,
            group: Sequence[Any] | None = None, penalty: float = 10.0, encoder: Any = None) -> AppealReadout:  # fmt: skip
        """Fit on texts (embedded with `encoder`, default the embedded default's all-MiniLM-L6-v2); see
        `fit_embeddings`."""
        encoder = encoder or _default_encoder()
        return cls.fit_embeddings(encoder.encode(list(texts)), target, weight, group, penalty, encoder=encoder.name)

    # ------------------------------------------------------------------------------------------- scoring

    def score_embeddings(self, x: np.ndarray) -> np.ndarray:
        """Standardised appeal of embedded texts (rows of `x`)."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1] != len(self.coef):
            raise LsbmError(f"the appeal read-out expects {len(self.coef)}-dimensional embeddings of {self.encoder}, "
                            f"got {x.shape[-1]} dimensions")  # fmt: skip
        return ((x @ self.coef + self.intercept) - self.mean) / self.scale

    def score(self, texts: Sequence[str], encoder: Any = None) -> np.ndarray:
        """Standardised appeal of each text: 0 is a typical training headline, +1 one standard deviation
        more appealing."""
        encoder = encoder or _default_encoder()
        return self.score_embeddings(encoder.encode(list(texts)))

    @property
    def fingerprint(self) -> str:
        import hashlib

        blob = np.concatenate([self.coef, [self.intercept, self.mean, self.scale]]).astype(np.float64).tobytes()
        return hashlib.sha256(blob).hexdigest()[:12]

    # ------------------------------------------------------------------------------------------- saving

    def save(self, path: str | Path) -> Path:
        """Write as JSON (written whole, then moved into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "format": FORMAT, "version": 1, "encoder": self.encoder, "intercept": self.intercept,
            "mean": self.mean, "scale": self.scale, "meta": self.meta,
            "coef": [float(f"{c:.8g}") for c in self.coef],
        }  # fmt: skip
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(document, indent=1) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> AppealReadout:
        path = Path(path)
        if not path.is_file():
            raise LsbmError(f"appeal read-out not found: {path}")
        try:
            document = json.loads(path.read_text())
            if document.get("format") != FORMAT:
                raise ValueError("not an appeal read-out file")
            coef = np.asarray(document["coef"], dtype=np.float64)
            if coef.ndim != 1 or not np.isfinite(coef).all() or not document["scale"] > 0:
                raise ValueError("coef must be a list of finite numbers and scale positive")
            return cls(coef=coef, intercept=float(document["intercept"]), mean=float(document["mean"]),
                       scale=float(document["scale"]), encoder=str(document["encoder"]), meta=document.get("meta", {}))  # fmt: skip
        except (ValueError, KeyError, TypeError) as exc:
            raise LsbmError(f"{path}: not a valid appeal read-out ({exc})") from None


def _group_means(x: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Each row replaced by the mean of its group's rows."""
    sums = np.zeros((codes.max() + 1, x.shape[1]))
    np.add.at(sums, codes, x)
    return (sums / np.bincount(codes)[:, None])[codes]


@lru_cache(maxsize=1)
def default_appeal() -> AppealReadout:
    """The read-out shipped with the package (fitted on the Upworthy archive's developers' weeks)."""
    return AppealReadout.load(SHIPPED)


def _default_encoder() -> Any:
    from lsbm_sim.behavior.surrogate import default_encoder

    return default_encoder()


# ---------------------------------------------------------------------------------------------- evaluation


def significant_pairs(frame: pd.DataFrame, group: str, clicks: str, impressions: str, text: str,
                      alpha: float = SIGNIFICANCE) -> pd.DataFrame:  # fmt: skip
    """Within-test pairs of different texts whose click rates differ at `alpha` (two-sided pooled
    two-proportion z-test, `lsbm_sim.abtests.significant_pairs`): columns `first`, `second` (positions in
    `frame`), `first_wins` and `group`."""
    c = frame[clicks].to_numpy(dtype=np.float64)
    n = frame[impressions].to_numpy(dtype=np.float64)
    groups = frame[group].astype(str).to_numpy(dtype=object)
    pairs = ab_pairs(frame[text].astype(str).tolist(), c, n, groups, alpha=alpha)
    return pd.DataFrame({"first": pairs.first, "second": pairs.second, "first_wins": pairs.first_wins,
                         "group": groups[pairs.first] if len(pairs) else []})  # fmt: skip


def pairwise_accuracy(score: np.ndarray, pairs: pd.DataFrame) -> float:
    """Share of significant pairs whose real winner has the higher score (a tie counts one half)."""
    if len(pairs) == 0:
        return math.nan
    difference = np.asarray(score)[pairs["first"].to_numpy()] - np.asarray(score)[pairs["second"].to_numpy()]
    return float(np.mean(np.where(difference == 0, 0.5, (difference > 0) == pairs["first_wins"].to_numpy())))


def within_test_spearman(score: np.ndarray, frame: pd.DataFrame, group: str) -> float:
    """Spearman correlation of the score, centred within each test, with the within-test target."""
    from scipy.stats import spearmanr

    centred = pd.Series(np.asarray(score, dtype=np.float64), index=frame.index)
    centred = centred - centred.groupby(frame[group]).transform("mean")
    return float(spearmanr(centred.to_numpy(), frame["target"].to_numpy()).statistic)


# ----------------------------------------------------------------------------------------- fitting the archive


def read_upworthy(path: str | Path) -> pd.DataFrame:
    """The Upworthy packages table (CSV or Parquet) with the columns the target needs, checked."""
    path = Path(path)
    if not path.is_file():
        raise LsbmError(f"data file not found: {path}")
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:  # pandas raises many kinds; the user needs the file's name and the reason
        raise LsbmError(f"{path}: cannot be read as a table ({exc})") from None
    missing = [c for c in UPWORTHY_COLUMNS.values() if c not in frame.columns]
    if missing:
        raise LsbmError(f"{path}: no column {missing[0]!r} (an Upworthy packages table has "
                        f"{', '.join(UPWORTHY_COLUMNS.values())})")  # fmt: skip
    empty = frame["headline"].isna() | (frame["headline"].astype(str).str.strip() == "")
    if empty.any():
        raise LsbmError(f"{path}: column 'headline' is empty in rows {_row_list(frame.index[empty])}")
    frame["headline"] = frame["headline"].astype(str)
    return frame


def subset_tests(frame: pd.DataFrame, keep: int, group: str = UPWORTHY_COLUMNS["group"]) -> pd.DataFrame:
    """Every k-th test (in order of test id) so that about `keep` tests remain: a quick, documented rebuild."""
    tests = np.sort(frame[group].unique())
    step = max(1, len(tests) // keep)
    return frame[frame[group].isin(set(tests[::step]))]


SUBSET_CHECK = 60
"""The quick rebuild a test repeats (`--subset 60`: about 60 tests per split); the full build records its scores."""


def upworthy_rows(path: str | Path) -> pd.DataFrame:
    """The Upworthy rows that carry a within-test target, with their split ('train', 'validation', 'test')."""
    c = UPWORTHY_COLUMNS
    rows = within_test_target(read_upworthy(path), c["group"], c["clicks"], c["impressions"], c["time"],
                              FLAGGED_WEEKS, str(path))  # fmt: skip
    rows["split"] = split_by_week(rows, c["group"], c["time"]).to_numpy()
    return rows


def fit_upworthy(path: str | Path, subset: int | None = None, encoder: Any = None, log: Any = print,
                 vectors: dict[str, np.ndarray] | None = None) -> tuple[AppealReadout, dict[str, Any]]:  # fmt: skip
    """The shipped read-out's recipe: target, split by week, penalty chosen on the validation weeks, refit on
    training + validation weeks, scored on the held-out test weeks. Returns the read-out and its report (also
    kept in the read-out's `meta`).

    `subset`: keep about that many tests of each split (every k-th; see `subset_tests`), for a quick rebuild.
    A full build also records the scores of the `SUBSET_CHECK` rebuild, which a test repeats.
    `vectors`: embeddings already computed, by text (the rest are embedded with `encoder`).
    """
    encoder = encoder or _default_encoder()
    rows = upworthy_rows(path)
    if subset is not None:
        rows = _subset(rows, subset)
    vectors = dict(vectors or {})
    texts = sorted(set(rows[UPWORTHY_COLUMNS["text"]]) - set(vectors))
    if texts:
        log(f"embedding {len(texts)} distinct headlines with {encoder.name}")
        vectors.update(zip(texts, encoder.encode(texts)))
    readout, report = _fit_rows(rows, vectors, encoder.name, log)
    report = {"data": Path(path).name, "fitted": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "subset": subset, **report}  # fmt: skip
    if subset is None:
        _, check = _fit_rows(_subset(rows, SUBSET_CHECK), vectors, encoder.name, lambda _: None)
        report["subset_check"] = {"subset": SUBSET_CHECK, **{k: check[k] for k in ("penalty", "test_pairwise_accuracy",
                                                                                     "test_spearman")}}  # fmt: skip
    readout.meta = report
    log(f"chose penalty {report['penalty']:g}; held-out weeks: pairwise accuracy {report['test_pairwise_accuracy']:.3f} "
        f"on {report['significant_pairs']['test']} significant pairs, Spearman {report['test_spearman']:.3f}")  # fmt: skip
    return readout, report


def _subset(rows: pd.DataFrame, keep: int) -> pd.DataFrame:
    return pd.concat([subset_tests(rows[rows.split == s], keep) for s in ("train", "validation", "test")])


def _fit_rows(rows: pd.DataFrame, vectors: dict[str, np.ndarray], encoder: str,
              log: Any) -> tuple[AppealReadout, dict[str, Any]]:  # fmt: skip
    c = UPWORTHY_COLUMNS
    parts = {s: rows[rows.split == s].reset_index(drop=True) for s in ("train", "validation", "test")}
    for name, part in parts.items():
        if part.empty:
            raise LsbmError(f"no tests in the {name} weeks (train < {VALIDATION_FROM} <= validation < {TEST_FROM} "
                            "<= test, by each test's first week)")  # fmt: skip
    x = {name: np.stack([vectors[t] for t in part[c["text"]]]) for name, part in parts.items()}
    pairs = {name: significant_pairs(part, c["group"], c["clicks"], c["impressions"], c["text"])
             for name, part in parts.items()}  # fmt: skip
    choice = {}
    for penalty in RIDGE_PENALTIES:
        trial = AppealReadout.fit_embeddings(x["train"], parts["train"].target, parts["train"].weight,
                                             parts["train"][c["group"]], penalty)  # fmt: skip
        val = trial.score_embeddings(x["validation"])
        choice[penalty] = _weighted_r2(val, parts["validation"])
        log(f"penalty {penalty:g}: validation weighted R2 {choice[penalty]:.4f}, "
            f"pairwise accuracy {pairwise_accuracy(val, pairs['validation']):.3f}")  # fmt: skip
    penalty = max(choice, key=choice.get)
    fitted = pd.concat([parts["train"], parts["validation"]])
    readout = AppealReadout.fit_embeddings(np.vstack([x["train"], x["validation"]]), fitted.target, fitted.weight,
                                           fitted[c["group"]], penalty, encoder=encoder)  # fmt: skip
    test_score = readout.score_embeddings(x["test"])
    report = {
        "penalty": penalty,
        "weeks": {"train": f"..{VALIDATION_FROM - 1}", "validation": f"{VALIDATION_FROM}..{TEST_FROM - 1}",
                  "test": f"{TEST_FROM}..", "excluded": f"{FLAGGED_WEEKS[0]}..{FLAGGED_WEEKS[1]}"},  # fmt: skip
        "rows": {name: len(part) for name, part in parts.items()},
        "tests": {name: int(part[c["group"]].nunique()) for name, part in parts.items()},
        "significant_pairs": {name: len(p) for name, p in pairs.items()},
        "validation_weighted_r2": choice[penalty],
        "test_pairwise_accuracy": pairwise_accuracy(test_score, pairs["test"]),
        "test_spearman": within_test_spearman(test_score, parts["test"], c["group"]),
        "test_weighted_r2": _weighted_r2(test_score, parts["test"]),
    }
    return readout, report


def _weighted_r2(score: np.ndarray, part: pd.DataFrame, group: str = UPWORTHY_COLUMNS["group"]) -> float:
    """Weighted R2 of the target by the best scaling of the score centred within each test: a scale-free
    measure of how much of the within-test variation the score explains."""
    s = pd.Series(np.asarray(score, dtype=np.float64), index=part.index)
    s = (s - s.groupby(part[group]).transform("mean")).to_numpy()
    y, w = part["target"].to_numpy(), part["weight"].to_numpy()
    slope = (w * s * y).sum() / max((w * s * s).sum(), 1e-300)
    return float(1 - (w * (y - slope * s) ** 2).sum() / (w * y * y).sum())
