"""The embedded default: the real MiniLM encoder and the logistic head; fitting, saving, loading."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from lsbm_sim import BehaviorQuery, Scenario, SocialContext
from lsbm_sim.behavior import Broker, make_behavior_model
from lsbm_sim.behavior.base import QueryBatch
from lsbm_sim.behavior.surrogate import (
    APPEAL_COEFFICIENT,
    COEFFICIENT_SOURCES,
    DEFAULT_HEAD,
    FEATURES,
    SurrogateModel,
    default_encoder,
    query_features,
)
from lsbm_sim.errors import LsbmError
from lsbm_sim.studies.replications import load_replication

GREEN = "Follows news about environment and science. Aged 25-34, politically left, often shares and comments on posts."
SPORTS = "Follows news about sports and business. Aged 55-64, politically right, rarely shares or reacts to posts."
ECO = "Just launched our new eco-friendly product line!"


def test_the_encoder_is_the_real_pretrained_model():
    encoder = default_encoder()
    vectors = encoder.encode(["The cat sat on the mat.", "A cat was sitting on a mat.", "Quarterly tax filing deadlines"])
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # A pretrained encoder puts paraphrases together; a random one would not.
    assert vectors[0] @ vectors[1] > 0.7 and vectors[0] @ vectors[2] < 0.3


def test_disposition_labels_and_friends_move_the_probabilities_as_documented():
    model = SurrogateModel()
    probs = model.predict_proba(
        [
            BehaviorQuery(GREEN, ECO, disposition=1.0),
            BehaviorQuery(SPORTS, ECO, disposition=-1.0),
            BehaviorQuery(GREEN, ECO, SocialContext(label="Rated false by fact-checkers."), disposition=1.0),
            BehaviorQuery(GREEN, ECO, SocialContext(sharers=5, proof=100), disposition=1.0),
        ]
    )
    share, comment = model.reactions.index("share"), model.reactions.index("comment")
    assert np.allclose(probs.sum(axis=1), 1)
    assert probs[0, share] > 2 * probs[1, share]  # ready to share vs rarely reacting
    assert probs[2, share] < probs[0, share] and probs[2, comment] > probs[0, comment]  # a warning label
    assert probs[3, share] > probs[0, share]  # friends who shared and social proof


def test_fit_recovers_a_head_from_sampled_reactions():
    rng = np.random.default_rng(0)
    personas = [GREEN, SPORTS, "Follows news about technology and health. Aged 18-24, politically center."]
    posts = [ECO, "Local team wins the championship", "New phone chip doubles battery life", "Flu shots now free"]
    queries = [
        BehaviorQuery(personas[rng.integers(3)], posts[rng.integers(4)],
                      SocialContext(sharers=int(rng.integers(1, 6)), proof=int(rng.integers(0, 50)), age=int(rng.integers(0, 9)),
                                    label="Disputed." if rng.random() < 0.3 else None),
                      disposition=float(rng.choice([-1, 0, 1])))  # fmt: skip
        for _ in range(6000)
    ]
    truth = SurrogateModel(head={
        "like": {"intercept": -1.5, "similarity": 4.0, "proof": 0.3, "labeled": -0.5},
        "share": {"intercept": -2.5, "similarity": 6.0, "sharers": 0.6, "labeled": -1.5, "disposition": 0.7},
        "comment": {"intercept": -3.0, "labeled": 1.0, "age": -0.3},
    })  # fmt: skip
    p_true = truth.predict_proba(queries)
    observed = (rng.random(len(queries))[:, None] > np.cumsum(p_true, axis=1)).sum(axis=1)
    fitted = SurrogateModel().fit(queries, observed)
    p_fit = fitted.predict_proba(queries)
    kl = np.mean(np.sum(p_true * np.log(p_true / p_fit), axis=1))
    assert fitted.fit_report["converged"] and kl < 0.01
    assert fitted.head()["share"]["labeled"] < -0.8 and fitted.head()["comment"]["labeled"] > 0.5


def test_save_load_and_use_a_head_from_a_scenario(tmp_path: Path):
    model = SurrogateModel(reactions=("ignore", "share"), head={"share": {"intercept": -1.0, "similarity": 2.0}})
    path = model.save(tmp_path / "heads" / "h.json")
    loaded = SurrogateModel.load(path)
    batch = QueryBatch.from_queries([BehaviorQuery(GREEN, ECO), BehaviorQuery(SPORTS, ECO)])
    assert np.allclose(loaded.predict_proba(batch), model.predict_proba(batch))
    assert loaded.fingerprint == model.fingerprint
    spec = Scenario.from_dict(
        {"population": {"size": 5}, "content": [{"id": "a", "text": "x"}], "behavior": {"head": "heads/h.json", "reactions": ["ignore", "share"]}},
        base_dir=tmp_path,
    )
    assert make_behavior_model(spec.behavior, spec).head() == model.head()
    wrong = spec.with_overrides(["behavior.reactions=[ignore, like, share, comment]"])
    with pytest.raises(LsbmError, match="was fitted for reactions"):
        make_behavior_model(wrong.behavior, wrong)


def test_scenario_coefficients_override_the_default_head_and_a_loaded_one(tmp_path: Path):
    base = {"population": {"size": 5}, "content": [{"id": "a", "text": "x"}]}
    spec = Scenario.from_dict({**base, "behavior": {"coefficients": {"share": {"intercept": -7.5, "sharers": 0.1}}}})
    head = make_behavior_model(spec.behavior, spec).head()
    assert head["share"]["intercept"] == -7.5 and head["share"]["sharers"] == 0.1
    assert head["share"]["similarity"] == DEFAULT_HEAD["share"]["similarity"]  # the others keep their values
    assert head["like"] == make_behavior_model(Scenario.from_dict(base).behavior, spec).head()["like"]
    # a dotted override reaches one coefficient, as `lsbm-sim calibrate --param` does
    moved = Scenario.from_dict(base).with_overrides(["behavior.coefficients.share.intercept=-2.5"])
    assert make_behavior_model(moved.behavior, moved).head()["share"]["intercept"] == -2.5
    batch = QueryBatch.from_queries([BehaviorQuery(GREEN, ECO)])
    share = list(spec.behavior.reactions).index("share")
    assert make_behavior_model(moved.behavior, moved).predict_proba(batch)[0, share] > \
        make_behavior_model(spec.behavior, spec).predict_proba(batch)[0, share]  # fmt: skip
    # on top of a head file
    SurrogateModel(reactions=("ignore", "share"), head={"share": {"intercept": -1.0}}).save(tmp_path / "h.json")
    loaded = Scenario.from_dict({**base, "behavior": {"head": "h.json", "reactions": ["ignore", "share"],
                                                      "coefficients": {"share": {"age": -0.5}}}}, base_dir=tmp_path)  # fmt: skip
    assert make_behavior_model(loaded.behavior, loaded).head()["share"] == {
        "intercept": -1.0, **{f: (-0.5 if f == "age" else 0.0) for f in FEATURES}}  # fmt: skip


@pytest.mark.parametrize(
    "coefficients, words",
    [
        ({"share": {"charm": 1.0}}, r"behavior.coefficients.share.charm: not a coefficient"),
        ({"retweet": {"intercept": 1.0}}, r"behavior.coefficients.retweet: not a reaction with coefficients"),
        ({"ignore": {"intercept": 1.0}}, r"behavior.coefficients.ignore: not a reaction with coefficients"),
        ({"share": {"intercept": "high"}}, r"behavior.coefficients.share.intercept"),
    ],
)
def test_bad_scenario_coefficients_are_named(coefficients, words):
    with pytest.raises(LsbmError, match=words):
        Scenario.from_dict({"population": {"size": 5}, "content": [{"id": "a", "text": "x"}],
                            "behavior": {"coefficients": coefficients}})  # fmt: skip
    with pytest.raises(LsbmError, match="behavior.coefficients is read only by 'surrogate'"):
        Scenario.from_dict({"population": {"size": 5}, "content": [{"id": "a", "text": "x"}],
                            "behavior": {"backend": "constant", "probabilities": {"share": 0.1},
                                         "coefficients": {"share": {"intercept": 1.0}}}})  # fmt: skip


def test_bad_heads_and_reactions_are_named(tmp_path: Path):
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(LsbmError, match="bad.json: not a valid surrogate head"):
        SurrogateModel.load(tmp_path / "bad.json")
    with pytest.raises(LsbmError, match=r"no coefficients for reaction\(s\) \['retweet'\]"):
        SurrogateModel(reactions=("ignore", "retweet"))
    with pytest.raises(LsbmError, match=r"head for 'share' has unknown features \['charm'\]"):
        SurrogateModel(reactions=("ignore", "share"), head={"share": {"charm": 1.0}})


def test_every_feature_is_documented_has_a_default_and_says_where_it_comes_from():
    from lsbm_sim.behavior import surrogate

    for feature in FEATURES:
        assert f"\n    {feature} " in surrogate.__doc__, f"feature {feature!r} is not described in the module docstring"
        assert all(feature in DEFAULT_HEAD[r] for r in ("like", "share", "comment")), feature
    assert set(COEFFICIENT_SOURCES) == set(FEATURES) | {"intercept"}
    assert all(source.startswith(("measured", "assumed", "calibrated", "fitted")) for source in COEFFICIENT_SOURCES.values())
    # a coefficient fitted to an experiment names the replication file that reproduces it (lsbm-sim replicate)
    fitted = {f: source for f, source in COEFFICIENT_SOURCES.items() if source.startswith("fitted")}
    assert set(fitted) == {"proof", "labeled"}
    for feature, source in fitted.items():
        names = re.findall(r"scenarios/replications/(\w+)\.yaml", source)
        assert names and all(load_replication(n).fits.coefficient == feature for n in names), feature
    # the calibrated share coefficients say what they were fit to (and CALIBRATION names the world and the date)
    calibrated = {f for f, source in COEFFICIENT_SOURCES.items() if source.startswith("calibrated")}
    assert calibrated == {"intercept", "similarity", "sharers", "age"}
    assert "twitter16 fit half" in surrogate.CALIBRATION and "twitter_cascades" in surrogate.CALIBRATION
    # one attention decay for every reaction: the fit to real retweet delays sets them all
    assert len({DEFAULT_HEAD[r]["age"] for r in ("like", "share", "comment")}) == 1


def test_appeal_moves_every_reaction_by_the_documented_coefficient():
    """Two posts whose appeal scores differ by d: each reaction's odds against ignoring differ by exp(coef * d)
    beyond what their similarity to the persona explains; the head without appeal does not see the difference."""
    calm, vivid = "Town council approves the budget for next year", "You Won't Believe What This Dad Did Next"
    model = SurrogateModel()
    queries = QueryBatch.from_queries([BehaviorQuery(GREEN, calm), BehaviorQuery(GREEN, vivid)])
    x = query_features(queries, model.encoder, model.appeal)
    appeal = FEATURES.index("appeal")
    assert np.allclose(x[:, appeal], model.appeal.score([calm, vivid]))
    assert x[1, appeal] - x[0, appeal] > 1.5  # the read-out ranks the planted pair
    probs = model.predict_proba(queries)
    log_odds = np.log(probs / probs[:, [model.reactions.index("ignore")]])
    similarity = FEATURES.index("similarity")
    for r in ("like", "share", "comment"):
        k = model.reactions.index(r)
        expected = (model.coef[k, appeal] * (x[1, appeal] - x[0, appeal])
                    + model.coef[k, similarity] * (x[1, similarity] - x[0, similarity]))  # fmt: skip
        assert log_odds[1, k] - log_odds[0, k] == pytest.approx(expected, abs=1e-9)
        assert model.coef[k, appeal] == APPEAL_COEFFICIENT > 0.5
    share = model.reactions.index("share")
    without = SurrogateModel(head={r: {**h, "appeal": 0.0} for r, h in DEFAULT_HEAD.items()}).predict_proba(queries)
    # The vivid post's share odds gain exp(coef * d) > 4x over the calm one's, relative to the head without appeal.
    gain = (probs[1, share] / probs[1, 0]) / (without[1, share] / without[1, 0]) / ((probs[0, share] / probs[0, 0]) / (without[0, share] / without[0, 0]))
    assert gain == pytest.approx(np.exp(APPEAL_COEFFICIENT * (x[1, appeal] - x[0, appeal])), rel=1e-6) and gain > 4


def test_a_head_saved_before_appeal_existed_loads_with_appeal_off(tmp_path: Path):
    old = {"format": "lsbm-sim surrogate head", "version": 1, "encoder": "all-MiniLM-L6-v2",
           "reactions": ["ignore", "like", "share", "comment"],
           "features": ["similarity", "proof", "sharers", "labeled", "age", "seen", "promoted", "disposition"],
           "head": {r: {k: v for k, v in h.items() if k != "appeal"} for r, h in DEFAULT_HEAD.items()}, "fit": {}}  # fmt: skip
    (tmp_path / "old.json").write_text(json.dumps(old))
    loaded = SurrogateModel.load(tmp_path / "old.json")
    assert all(h["appeal"] == 0.0 for h in loaded.head().values())
    batch = QueryBatch.from_queries([BehaviorQuery(GREEN, ECO), BehaviorQuery(SPORTS, "You Won't Believe What This Dad Did Next")])
    x = query_features(batch, loaded.encoder, loaded.appeal)
    # The old head's probabilities, computed from its own eight features alone.
    logits = np.zeros((2, 4))
    for k, r in enumerate(old["reactions"][1:], start=1):
        logits[:, k] = old["head"][r]["intercept"] + x[:, :8] @ np.array([old["head"][r][f] for f in old["features"]])
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert np.allclose(loaded.predict_proba(batch), expected)


def test_real_significant_pairs_differ_by_the_real_median_ratio(shared_data: Path):
    """On training-week significant pairs of the real data, the default model's first-exposure engagement of the
    two variants differs by a median ratio near the real median click ratio (1.94x on all 2,042 pairs; 150 here:
    real 1.97x, simulated 1.85x; an appeal coefficient of 0.5 gives 1.46x, no appeal at all 1.37x)."""
    from lsbm_sim import SocialContext
    from lsbm_sim.behavior.appeal import significant_pairs, upworthy_rows
    from lsbm_sim.world.population import persona_text

    rows = upworthy_rows(shared_data / "upworthy" / "upworthy_packages_dev.csv")
    train = rows[rows.split == "train"].reset_index(drop=True)
    pairs = significant_pairs(train, "clickability_test_id", "clicks", "impressions", "headline")
    pairs = pairs.sample(150, random_state=0)
    rate = (train.clicks / train.impressions).to_numpy()
    real = np.median(np.maximum(rate[pairs["first"]], rate[pairs["second"]]) / np.minimum(rate[pairs["first"]], rate[pairs["second"]]))
    persona = persona_text("25-34", ("politics", "health"), "center", "medium")
    model = SurrogateModel()
    texts = train["headline"].tolist()
    used = np.unique(np.r_[pairs["first"], pairs["second"]])
    probs = model.predict_proba([BehaviorQuery(persona, texts[i], SocialContext(sharers=1)) for i in used])
    engagement = dict(zip(used.tolist(), 1 - probs[:, model.reactions.index("ignore")]))
    a, b = np.array([engagement[i] for i in pairs["first"]]), np.array([engagement[i] for i in pairs["second"]])
    simulated = np.median(np.maximum(a, b) / np.minimum(a, b))
    assert 1.5 < real < 2.5 and simulated == pytest.approx(real, rel=0.12), (simulated, real)


def test_broker_deduplicates_identical_questions():
    broker = Broker(SurrogateModel())
    # Two personas who differ in how readily they react: two distinct questions, two distinct answers.
    batch = QueryBatch.from_queries([BehaviorQuery(GREEN, ECO)] * 50 + [BehaviorQuery(SPORTS, ECO, disposition=1.0)] * 50)
    probs = broker.decide(batch)
    assert broker.stats.model_rows == 2 and broker.stats.decisions == 100
    assert np.allclose(probs[:50], probs[0]) and not np.allclose(probs[0], probs[99])
    broker.decide(batch)
    assert broker.stats.model_rows == 2 and broker.stats.memory_hits == 2


def test_answer_memory_finds_rows_across_runs_and_never_confuses_a_hash_collision(monkeypatch):
    from lsbm_sim.behavior import broker as broker_module
    from lsbm_sim.behavior.broker import AnswerMemory

    memory = AnswerMemory(2)
    rows = np.arange(40, dtype=np.int64).reshape(20, 2)
    for start in range(0, 20, 4):  # five runs, merged once there are more than MAX_RUNS
        memory.add(rows[start : start + 4], np.stack([rows[start : start + 4, 0] / 100, np.ones(4)], axis=1))
    probe = np.vstack([rows[::-1], [[999, 999]]])
    found, answers = memory.lookup(probe)
    assert found[:-1].all() and not found[-1]
    assert np.allclose(answers[:-1, 0], probe[:-1, 0] / 100)

    monkeypatch.setattr(broker_module, "hash_rows", lambda r: np.zeros(len(r), dtype=np.uint64))
    colliding = AnswerMemory(1)
    colliding.add(np.array([[1], [2]]), np.array([[0.1], [0.2]], dtype=np.float32))
    found, answers = colliding.lookup(np.array([[2], [1], [3]]))
    # Every row hashes alike: only the row stored first under that hash can be found, and never for another row.
    assert found.tolist() == [False, True, False] and answers[1, 0] == np.float32(0.1)


def test_the_readme_table_of_coefficients_is_the_default_head():
    """The README's table says which value each coefficient has; it must be the shipped one."""
    from conftest import ROOT

    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index("| coefficient | like | share | comment | where it comes from |")
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        name, like, share, comment = (cell.strip() for cell in line.strip("|").split("|")[:4])
        rows[name.split(" (")[0]] = [float(like), float(share), float(comment)]
    assert set(rows) == set(FEATURES) | {"intercept"}
    for name, values in rows.items():
        assert values == [DEFAULT_HEAD[r][name] for r in ("like", "share", "comment")], name
