"""The embedded default: the real MiniLM encoder and the logistic head; fitting, saving, loading."""

from pathlib import Path

import numpy as np
import pytest

from lsbm_sim import BehaviorQuery, Scenario, SocialContext
from lsbm_sim.behavior import Broker, make_behavior_model
from lsbm_sim.behavior.base import QueryBatch
from lsbm_sim.behavior.surrogate import FEATURES, SurrogateModel, default_encoder
from lsbm_sim.errors import LsbmError

GREEN = "Follows news about environment and science. Aged 25-34, politically left, often shares and comments on posts."
SPORTS = "Follows news about sports and business. Aged 55-64, politically right, rarely shares or reacts to posts."
ECO = "Just launched our new eco-friendly product line!"


def test_the_encoder_is_the_real_pretrained_model():
    encoder = default_encoder()
    vectors = encoder.encode(["The cat sat on the mat.", "A cat was sitting on a mat.", "Quarterly tax filing deadlines"])
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # A pretrained encoder puts paraphrases together; a random one would not.
    assert vectors[0] @ vectors[1] > 0.7 and vectors[0] @ vectors[2] < 0.3


def test_interest_labels_and_friends_move_the_probabilities_as_documented():
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
    assert probs[0, share] > 2 * probs[1, share]  # interested and ready to share vs neither
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


def test_bad_heads_and_reactions_are_named(tmp_path: Path):
    (tmp_path / "bad.json").write_text('{"format": "something else"}')
    with pytest.raises(LsbmError, match="bad.json: not a valid surrogate head"):
        SurrogateModel.load(tmp_path / "bad.json")
    with pytest.raises(LsbmError, match=r"no coefficients for reaction\(s\) \['retweet'\]"):
        SurrogateModel(reactions=("ignore", "retweet"))
    assert len(FEATURES) == 8


def test_broker_deduplicates_identical_questions():
    broker = Broker(SurrogateModel())
    batch = QueryBatch.from_queries([BehaviorQuery(GREEN, ECO)] * 50 + [BehaviorQuery(SPORTS, ECO)] * 50)
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
