"""The engine: reproducibility, the rules of a step, interventions, agents and hooks, failed runs."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import small_scenario

from lsbm_sim import Scenario, SocialModel, UserAgent, load_results, run
from lsbm_sim.behavior import BehaviorModelBase, BehaviorModelError
from lsbm_sim.behavior import broker as broker_module
from lsbm_sim.behavior.base import as_batch
from lsbm_sim.behavior.classic import LinearThresholdModel
from lsbm_sim.errors import LsbmError
from lsbm_sim.engine.runner import sample_queries


def scenario(**changes) -> Scenario:
    return Scenario.from_dict(small_scenario(**changes))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class ContextModel(BehaviorModelBase):
    """A deterministic model whose answer depends on the post, the friends who shared and the persona."""

    reactions = ("ignore", "like", "share", "comment")
    depends_on = ("persona_id", "item_id", "sharers", "proof")

    def predict_proba(self, queries):
        batch = as_batch(queries)
        share = 0.05 + 0.1 * np.minimum(batch.sharers, 3) / 3 + 0.02 * (batch.item_id % 2) + 0.01 * (batch.persona_id % 5)
        like = 0.1 + 0.05 * (batch.proof > 0)
        comment = np.full(len(batch), 0.03)
        return np.stack([1 - share - like - comment, like, share, comment], axis=1)


def test_same_seed_gives_byte_identical_event_log(tmp_path: Path):
    a = run(scenario(), out=tmp_path / "a")
    run(scenario(), out=tmp_path / "b")
    run(scenario(), seed=6, out=tmp_path / "c")
    assert len(a.events) > 100
    assert digest(tmp_path / "a" / "events.parquet") == digest(tmp_path / "b" / "events.parquet")
    assert digest(tmp_path / "a" / "events.parquet") != digest(tmp_path / "c" / "events.parquet")
    assert load_results(tmp_path / "a").events.equals(a.events)


def test_event_log_does_not_depend_on_the_cache(monkeypatch):
    cached = run(scenario(), behavior=ContextModel())
    monkeypatch.setattr(broker_module, "MEMORY_CACHE_LIMIT", 0)
    uncached = run(scenario(), behavior=ContextModel())
    pd.testing.assert_frame_equal(cached.events, uncached.events)
    assert cached.manifest["broker"]["cache_hits"] > 0 and uncached.manifest["broker"]["cache_hits"] == 0


def test_the_rules_of_a_step_hold_in_the_event_log():
    model = SocialModel(scenario(steps=12), behavior=ContextModel())
    model.run()
    events = model.result().events
    edges = set(zip(model.network.source.tolist(), model.network.target.tolist()))
    authors = {(model.item_ids[i], int(a)) for i, p in model.posts.items() for a in p.authors}
    # At most one exposure per person, post and step; at most feed.size per person and step.
    assert not events.duplicated(["step", "agent_id", "item_id"]).any()
    assert events.groupby(["step", "agent_id"]).size().max() <= 5
    # A person engages with a post at most once, and is not shown it again afterwards.
    engaged = events[events["reaction"] != "ignore"]
    assert not engaged.duplicated(["agent_id", "item_id"]).any()
    first_engagement = engaged.set_index(["agent_id", "item_id"])["step"]
    later = events.join(first_engagement.rename("engaged_at"), on=["agent_id", "item_id"])
    assert not (later["step"] > later["engaged_at"]).any()
    # Every exposure came through an account the person follows, which had shared (or authored) the post before.
    shared_at = engaged[engaged["reaction"] == "share"].set_index(["agent_id", "item_id"])["step"].to_dict()
    for row in events.itertuples():
        assert (row.parent_id, row.agent_id) in edges
        assert (row.item_id, row.parent_id) in authors or shared_at[(row.parent_id, row.item_id)] < row.step
    # Cascades: authors plus everyone who shared; probabilities are kept for every exposure.
    items = model.result().items.set_index("item_id")
    shares = engaged[engaged["reaction"] == "share"].groupby("item_id", observed=True).size()
    for item_id, row in items.iterrows():
        assert row["cascade_size"] == row["authors"] + shares.get(item_id, 0)
        assert row["reach"] == events[events["item_id"] == item_id]["agent_id"].nunique()
    assert np.allclose(events[["p_ignore", "p_like", "p_share", "p_comment"]].sum(axis=1), 1, atol=1e-5)


def test_independent_cascade_scenario_runs_from_its_file():
    res = run("scenarios/independent_cascade.yaml", overrides=["population.size=2000", "steps=30"])
    events = res.events
    assert set(events["reaction"].unique()) <= {"ignore", "share"}
    assert np.allclose(events["p_share"], 0.2)
    assert res.steps["online"].eq(2000).all()  # activity 1: everyone is online every step
    # <k> p = 1.6 is supercritical: a large outbreak (theory: S = 1 - exp(-1.6 S) = 0.64 of the population)
    assert 0.5 < res.items.loc[0, "cascade_size"] / 2000 < 0.75


def test_linear_threshold_reaches_the_deterministic_closure():
    # With thresholds fixed, the final set of sharers is the closure: keep adding anyone the fraction of whose
    # followed accounts that shared reaches their threshold.
    data = small_scenario(
        population={"size": 200, "activity": 1.0},
        network={"kind": "erdos_renyi", "params": {"mean_degree": 6}},
        content=[{"id": "a", "text": "t", "author": {"strategy": "random", "count": 8}}],
        feed={"policy": "all", "size": None},
        behavior={"backend": "linear_threshold", "reactions": ["ignore", "share"]},
        steps=60,
    )
    thresholds = np.random.default_rng(0).uniform(0.05, 0.6, size=200)
    model = SocialModel(Scenario.from_dict(data), behavior=LinearThresholdModel(thresholds, ("ignore", "share")))
    model.run()
    active = set(model.posts[0].authors.tolist())
    graph = model.network.graph
    changed = True
    while changed:
        changed = False
        for v in graph.nodes:
            if v not in active and graph.degree(v) and sum(u in active for u in graph.neighbors(v)) / graph.degree(v) >= thresholds[v]:
                active.add(v)
                changed = True
    assert model.result().items.loc[0, "cascade_size"] == len(active)


def test_interventions_remove_label_promote_inject():
    data = small_scenario(
        steps=10,
        interventions=[
            {"kind": "label", "step": 3, "item": "a", "text": "Independent fact-checkers rated this false."},
            {"kind": "remove", "step": 6, "item": "b"},
            {"kind": "promote", "step": 4, "item": "a", "k": 40},
            {"kind": "inject", "step": 5, "post": {"id": "c", "text": "Breaking news", "author": {"strategy": "random", "count": 2}}},
        ],
    )
    model = SocialModel(Scenario.from_dict(data), behavior=ContextModel())
    asked = []
    original = model.queries
    model.queries = lambda exposures, t: asked.append((t, original(exposures, t))) or asked[-1][1]
    model.run()
    events = model.result().events
    assert not ((events["item_id"] == "b") & (events["step"] >= 6)).any()
    assert events[events["item_id"] == "c"]["step"].min() >= 5
    promoted = events[events["parent_id"] == -1]
    assert set(promoted["item_id"]) == {"a"} and promoted["step"].min() == 4 and len(promoted) <= 40
    for t, batch in asked:
        labeled = batch.label_id[batch.item_id == 0]
        assert (labeled > 0).all() if t >= 3 else (labeled == 0).all()
    items = model.result().items.set_index("item_id")
    assert items.loc["a", "label"].startswith("Independent") and items.loc["b", "removed"]


class Sharer(UserAgent):
    def __init__(self, model, agent_id):
        super().__init__(model, agent_id)
        self.reactions_seen = []
        self.steps_taken = 0

    def on_reaction(self, post_id, reaction, sharer):
        self.reactions_seen.append((post_id, reaction, sharer))

    def step(self):
        self.steps_taken += 1


def test_agents_are_mesa_agents_and_hooks_run_where_defined():
    model = SocialModel(scenario(), behavior=ContextModel(), agent_class=Sharer)
    model.run()
    assert len(model.agents) == 300 and all(isinstance(a, Sharer) for a in model.agents)
    agent = model._agent_list[0]
    assert agent.steps_taken == 8
    history = agent.history
    assert len(agent.reactions_seen) == len(history)
    assert [r for _, r, _ in agent.reactions_seen] == history["reaction"].tolist()
    assert agent.persona.startswith("Follows news about")
    assert agent.counts["exposures"] == len(history)
    assert set(agent.following.tolist()) == set(model.network.graph.neighbors(0))


def test_plain_user_agents_have_no_hooks_called():
    model = SocialModel(scenario(), behavior=ContextModel())
    assert len(model._hooked["on_reaction"]) == 0 and len(model._hooked["step"]) == 0


class FailsAtStep(ContextModel):
    def __init__(self, step):
        self.calls = 0
        self.fail_at = step

    def predict_proba(self, queries):
        self.calls += 1
        if self.calls >= self.fail_at:
            raise BehaviorModelError("server http://127.0.0.1:9 refused the connection")
        return super().predict_proba(queries)


def test_a_failed_run_keeps_partial_results_and_nothing_looks_complete(tmp_path: Path):
    out = tmp_path / "res"
    with pytest.raises(BehaviorModelError):
        run(scenario(), out=out, behavior=FailsAtStep(4))
    assert not out.exists()
    partial = load_results(tmp_path / "res.partial", allow_incomplete=True)
    assert partial.manifest["complete"] is False and "refused" in partial.manifest["error"]
    assert partial.events["step"].max() == 2  # steps 0-2 finished; the failing step left nothing
    with pytest.raises(LsbmError, match="did not complete"):
        load_results(tmp_path / "res.partial")
    # A previous complete result is not lost when a later run fails.
    run(scenario(), out=out)
    with pytest.raises(BehaviorModelError):
        run(scenario(), out=out, behavior=FailsAtStep(2))
    assert load_results(out).complete


def test_refuses_to_overwrite_a_folder_that_is_not_results(tmp_path: Path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("precious")
    with pytest.raises(LsbmError, match="not a results folder"):
        run(scenario(), out=tmp_path / "notes")
    assert (tmp_path / "notes" / "thesis.tex").read_text() == "precious"


def test_results_tables_and_timeline():
    res = run(scenario())
    assert list(res.events.columns[:6]) == ["step", "agent_id", "item_id", "parent_id", "position", "reaction"]
    assert {"item_id", "reach", "like", "share", "comment", "cascade_size", "depth", "max_breadth",
            "structural_virality"} <= set(res.items.columns)  # fmt: skip
    assert len(res.steps) == 8 and res.steps["exposures"].sum() == len(res.events)
    shares = res.timeline("share")
    assert shares.iloc[-1].to_dict() == res.items.set_index("item_id")["share"].to_dict()
    assert res.manifest["complete"] and res.manifest["broker"]["decisions"] == len(res.events)


def test_sample_queries_returns_distinct_questions():
    batch = sample_queries(scenario(behavior={"backend": "surrogate"}), n=50)
    assert len(batch) == 50
    rows = np.stack([batch.persona_id, batch.item_id, batch.sharers, batch.proof, batch.age, batch.seen], axis=1)
    assert len(np.unique(rows, axis=0)) == 50
