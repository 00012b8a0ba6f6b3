"""Does the embedded default pick the headlines real audiences picked? Upworthy A/B tests, time split.

Three parts, all on ../shared/data/upworthy (read its SOURCE.txt), with the split fixed by rule in
`lsbm_sim.behavior.appeal` (a test belongs to its first week: training ..201428, validation 201429..201436,
held-out test weeks 201437..201444; tests touching the flagged weeks 201326..201402 left out):

1. **Scores, as the simulator uses the model.** Each test-week headline is scored by the default
   `SurrogateModel().predict_proba` for a typical persona at first exposure (reached through one friend's share,
   no likes yet, just posted): engagement = 1 - p(ignore). Pairwise winner accuracy on the pairs whose click
   rates differ at 5% (pooled two-proportion z-test, different headlines) and Spearman of the within-test
   relative click rate, with bootstrap 95% intervals (tests resampled), beside the appeal read-out alone, a
   bag-of-words ridge (TF-IDF of words and word pairs, same target, weights and penalty choice), random scores
   and chance.
2. **Calibration** of the head's `appeal` coefficient on the *training* weeks' significant pairs: the
   coefficient (the same for like, share, comment) whose median engagement ratio between a pair's two variants
   (higher over lower) equals the median real click-rate ratio of those pairs.
3. **End to end through the simulator.** Significant pairs from the test weeks (one per test, drawn at random
   with a fixed seed): both variants posted into the same small world (scenarios/headline_ab_test.yaml at a
   small size, the two posts' texts overridden) with `lsbm_sim.studies.sweep` (replication r of every pair runs with
   the same seed: common random numbers); the variant with more engagement (likes + shares + comments) summed
   over the replications is the simulator's pick. Agreement with the real winner, bootstrap interval.

    python benchmarks/appeal_upworthy.py                     # all three; about 10-15 minutes on 2 shared cores
    python benchmarks/appeal_upworthy.py --skip-end-to-end   # parts 1-2 (embedding 9,700 headlines is most of it)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, print_machine  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "upworthy" / "upworthy_packages_dev.csv"
GROUP, TEXT = "clickability_test_id", "headline"


def typical_persona() -> str:
    """A middle-of-the-road reader: the simulator's persona text for mid traits (disposition 0)."""
    from lsbm_sim.world.population import persona_text

    return persona_text("25-34", ("politics", "health"), "center", "medium")


def engagement(model, texts: list[str]) -> np.ndarray:
    """1 - p(ignore) for the typical persona at first exposure, as the simulator asks the model."""
    from lsbm_sim import BehaviorQuery, SocialContext

    persona = typical_persona()
    probs = model.predict_proba([BehaviorQuery(persona, t, SocialContext(sharers=1), disposition=0.0) for t in texts])
    return 1.0 - probs[:, model.reactions.index("ignore")]


def metrics_with_intervals(score: np.ndarray, frame: pd.DataFrame, pairs: pd.DataFrame, draws: int,
                           seed: int = 0) -> dict[str, object]:  # fmt: skip
    """Pairwise accuracy and within-test Spearman, each with a bootstrap 95% interval over resampled tests (whole
    tests drawn with replacement; a test drawn twice counts twice)."""
    from scipy.stats import spearmanr

    from lsbm_sim.behavior.appeal import pairwise_accuracy, within_test_spearman

    codes, tests = pd.factorize(frame[GROUP])
    centred = pd.Series(score).groupby(codes).transform(lambda s: s - s.mean()).to_numpy()
    target = frame["target"].to_numpy()
    difference = score[pairs["first"].to_numpy()] - score[pairs["second"].to_numpy()]
    right = np.where(difference == 0, 0.5, (difference > 0) == pairs["first_wins"].to_numpy())
    pair_test = pd.Index(tests).get_indexer(pairs["group"])
    rng = np.random.default_rng(seed)
    accuracy, rho = [], []
    for _ in range(draws):
        counts = np.bincount(rng.integers(0, len(tests), len(tests)), minlength=len(tests))
        accuracy.append((counts[pair_test] * right).sum() / counts[pair_test].sum())
        rows = np.repeat(np.arange(len(frame)), counts[codes])
        rho.append(spearmanr(centred[rows], target[rows]).statistic)
    return {"pairwise accuracy": pairwise_accuracy(score, pairs),
            "pairwise 95% CI": tuple(np.percentile(accuracy, [2.5, 97.5]).round(3)),
            "Spearman (within-test)": within_test_spearman(score, frame, GROUP),
            "Spearman 95% CI": tuple(np.percentile(rho, [2.5, 97.5]).round(3))}  # fmt: skip


def scores_table(parts, scores: dict[str, np.ndarray], pairs, draws: int) -> pd.DataFrame:
    rows = [{"model": name, **metrics_with_intervals(np.asarray(score, dtype=np.float64), parts["test"], pairs["test"], draws)}
            for name, score in scores.items()]  # fmt: skip
    rows.append({"model": "chance", "pairwise accuracy": 0.5, "pairwise 95% CI": None,
                 "Spearman (within-test)": 0.0, "Spearman 95% CI": None})  # fmt: skip
    return pd.DataFrame(rows)


def bag_of_words(parts) -> np.ndarray:
    """TF-IDF ridge on the same target and weights; penalty by validation weighted R2; refit on train + val."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import Ridge

    from lsbm_sim.behavior.appeal import _weighted_r2

    def fit(frame: pd.DataFrame, penalty: float):
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2).fit(frame[TEXT])
        weight = frame["weight"] / frame["weight"].mean()
        return vectorizer, Ridge(alpha=penalty).fit(vectorizer.transform(frame[TEXT]), frame["target"], sample_weight=weight)

    def predict(model, frame: pd.DataFrame) -> np.ndarray:
        return model[1].predict(model[0].transform(frame[TEXT]))

    r2 = {p: _weighted_r2(predict(fit(parts["train"], p), parts["validation"]), parts["validation"])
          for p in (0.1, 0.3, 1.0, 3.0, 10.0)}  # fmt: skip
    penalty = max(r2, key=r2.get)
    print(f"bag of words: penalty {penalty:g} (validation weighted R2 {r2[penalty]:.4f})")
    return predict(fit(pd.concat([parts["train"], parts["validation"]]), penalty), parts["test"])


def calibrate(frame: pd.DataFrame, pairs: pd.DataFrame, vectors: dict[str, np.ndarray]) -> dict[str, float]:
    """The appeal coefficient whose median engagement ratio (higher over lower variant) on these pairs equals
    their median real click-rate ratio (winner over loser)."""
    from scipy.optimize import brentq

    from lsbm_sim.behavior.appeal import default_appeal
    from lsbm_sim.behavior.surrogate import DEFAULT_HEAD, SurrogateModel

    rate = (frame["clicks"] / frame["impressions"]).to_numpy()
    a, b = rate[pairs["first"]], rate[pairs["second"]]
    real = np.maximum(a, b) / np.minimum(a, b)
    texts = frame[TEXT].tolist()

    def ratios(coefficient: float) -> tuple[np.ndarray, np.ndarray]:
        head = {r: {**h, "appeal": coefficient} for r, h in DEFAULT_HEAD.items()}
        e = engagement(SurrogateModel(head=head, appeal=default_appeal()), texts)
        first, second = e[pairs["first"]], e[pairs["second"]]
        wins = pairs["first_wins"].to_numpy()
        return np.maximum(first, second) / np.minimum(first, second), np.where(wins, first / second, second / first)

    target = float(np.median(real))
    coefficient = brentq(lambda c: np.median(ratios(c)[0]) - target, 0.0, 5.0, xtol=1e-4)
    size, direction = ratios(DEFAULT_HEAD["share"].get("appeal", 0.0))
    return {"pairs": len(pairs), "real ratio quartiles": np.percentile(real, [25, 50, 75]).round(3).tolist(),
            "calibrated coefficient": round(coefficient, 4),
            "shipped coefficient": DEFAULT_HEAD["share"].get("appeal", 0.0),
            "shipped: engagement ratio higher/lower, quartiles": np.percentile(size, [25, 50, 75]).round(3).tolist(),
            "shipped: engagement ratio winner/loser, quartiles": np.percentile(direction, [25, 50, 75]).round(3).tolist()}  # fmt: skip


def end_to_end(parts, pairs, n_pairs: int, replications: int, size: int, steps: int, workers: int, seed: int):
    """Both variants of each pair in the same small world; who gets more engagement over the replications."""
    from lsbm_sim import Scenario
    from lsbm_sim.studies.sweep import sweep

    test, test_pairs = parts["test"], pairs["test"]
    rng = np.random.default_rng(seed)
    one_per_test = test_pairs.groupby("group").sample(1, random_state=seed)
    chosen = one_per_test.iloc[rng.permutation(len(one_per_test))[:n_pairs]]
    scenario = Scenario.from_yaml(ROOT / "scenarios" / "headline_ab_test.yaml")
    scenario = scenario.with_overrides([f"population.size={size}", f"steps={steps}"])
    posts = [p.model_dump(mode="json", exclude_none=True) for p in scenario.content]
    grid = {"content": [[{**posts[0], "text": test[TEXT].iloc[int(row["first"])]},
                         {**posts[1], "text": test[TEXT].iloc[int(row["second"])]}] for _, row in chosen.iterrows()]}  # fmt: skip
    started = time.perf_counter()
    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            print(f"  end to end: {done}/{total} runs, {time.perf_counter() - started:.0f} s", flush=True)

    table = sweep(scenario, grid, replications=replications, workers=workers, progress=progress)
    seconds = time.perf_counter() - started
    table["engagement"] = table["like"] + table["share"] + table["comment"]
    total = table.pivot_table(index="combination", columns="item_id", values="engagement", aggfunc="sum")
    margin = (total[posts[0]["id"]] - total[posts[1]["id"]]).to_numpy()
    first_wins = chosen["first_wins"].to_numpy()
    agree = np.where(margin == 0, 0.5, (margin > 0) == first_wins)
    draws = np.random.default_rng(seed + 1).integers(0, len(agree), size=(5000, len(agree)))
    low, high = np.percentile(agree[draws].mean(axis=1), [2.5, 97.5])
    return {"pairs": len(agree), "replications": replications, "population": size, "steps": steps,
            "agreement": float(agree.mean()), "95% CI": [float(low), float(high)], "ties": int((margin == 0).sum()),
            "median engagement per variant and run": float(table["engagement"].median()), "seconds": round(seconds, 1)}  # fmt: skip


def scores_and_calibration(args, rows, parts, pairs) -> dict:
    """Parts 1 and 2."""
    from lsbm_sim.behavior.appeal import default_appeal
    from lsbm_sim.behavior.surrogate import SurrogateModel, default_encoder

    started = time.perf_counter()
    encoder = default_encoder()
    if args.embeddings is not None and args.embeddings.is_file():
        stored = np.load(args.embeddings, allow_pickle=False)
        encoder._cache.update(zip(stored["texts"].tolist(), stored["vectors"]))
    texts = sorted(set(rows[TEXT]))
    vectors = dict(zip(texts, encoder.encode(texts)))
    if args.embeddings is not None and not args.embeddings.is_file():
        np.savez(args.embeddings, texts=np.array(texts), vectors=np.stack([vectors[t] for t in texts]))
    print(f"embedded {len(texts)} headlines in {time.perf_counter() - started:.0f} s")

    readout = default_appeal()
    print(f"shipped read-out: fitted {readout.meta.get('fitted')} on weeks train {readout.meta['weeks']['train']} + "
          f"validation {readout.meta['weeks']['validation']}; penalty {readout.meta['penalty']}")  # fmt: skip
    simulator = SurrogateModel(encoder=encoder, appeal=readout)
    test_texts = parts["test"][TEXT].tolist()
    scores = {
        "default SurrogateModel (engagement, typical persona)": np.log(engagement(simulator, test_texts)),
        "appeal read-out alone": readout.score(test_texts, encoder),
        "bag of words (TF-IDF ridge, same target)": bag_of_words(parts),
        "default head without appeal (the old default)": np.log(
            engagement(SurrogateModel(encoder=encoder, appeal=readout,
                                      head={r: {**h, "appeal": 0.0} for r, h in simulator.head().items()}), test_texts)),
        "random scores": np.random.default_rng(0).normal(size=len(test_texts)),
    }  # fmt: skip
    table = scores_table(parts, scores, pairs, args.bootstrap)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_colwidth", 60)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    report = {"scores": table.to_dict(orient="records")}

    report["calibration"] = calibrate(parts["train"], pairs["train"], vectors)
    print("calibration on training-week pairs:", json.dumps(report["calibration"]))

    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap draws")
    parser.add_argument("--pairs", type=int, default=100, help="significant test-week pairs run end to end")
    # At real rates a variant needs thousands of exposures: the scenario promotes each into everyone's feed here.
    parser.add_argument("--replications", type=int, default=4)
    parser.add_argument("--size", type=int, default=20000, help="population of the end-to-end world")
    parser.add_argument("--steps", type=int, default=6, help="steps of the end-to-end runs")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--skip-scores", action="store_true", help="only the end-to-end part")
    parser.add_argument("--embeddings", type=Path, default=None,
                        help="an .npz of (texts, vectors) to reuse (written there if absent); inside the project")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"skipped: {args.data} not found (the Upworthy data lives in ../shared/data beside the repository)")
        return 0
    import torch

    from lsbm_sim.behavior.appeal import significant_pairs, upworthy_rows

    torch.set_num_threads(1)  # one thread is fastest on the shared 2-core machine (benchmarks/RESULTS.md)
    print_machine()
    print("command: python " + " ".join(sys.argv))
    rows = upworthy_rows(args.data)
    parts = {s: rows[rows.split == s].reset_index(drop=True) for s in ("train", "validation", "test")}
    pairs = {s: significant_pairs(p, GROUP, "clicks", "impressions", TEXT) for s, p in parts.items()}
    print({s: f"{len(p)} rows, {p[GROUP].nunique()} tests, {len(pairs[s])} significant pairs" for s, p in parts.items()})

    report = {} if args.skip_scores else scores_and_calibration(args, rows, parts, pairs)
    if not args.skip_end_to_end:
        report["end_to_end"] = end_to_end(parts, pairs, args.pairs, args.replications, args.size, args.steps,
                                          args.workers, seed=0)  # fmt: skip
        print("end to end:", json.dumps(report["end_to_end"]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
