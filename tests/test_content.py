"""Content entries that make many posts, author strategies by follower count, and per-post share probability."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from lsbm_sim import Scenario, SocialModel
from lsbm_sim.world.content import choose_authors, expand_content
from lsbm_sim.errors import ScenarioError
from lsbm_sim.engine.validate import check_scenario
from lsbm_sim.world.network import Network
from lsbm_sim.scenario import AuthorSpec

from conftest import ROOT, small_scenario


def star_network() -> Network:
    """Agent 0 has 6 followers, agent 1 has 3, agent 2 has 1, agents 3..9 have none."""
    edges = [(0, v) for v in range(1, 7)] + [(1, v) for v in (4, 5, 6)] + [(2, 9)]
    u, v = np.array(edges).T
    return Network(10, u, v, directed=True)


class FakePopulation:
    size = 10


def authors_of(model: SocialModel) -> list[list[int]]:
    return [model.posts[i].authors.tolist() for i in range(len(model.posts))]


def test_a_batch_makes_numbered_posts_from_a_template_a_list_or_a_file(tmp_path: Path):
    (tmp_path / "texts.txt").write_text("first headline\n\nsecond headline\n")
    content = [
        {"id": "hand", "text": "A hand-written post"},
        {"posts": 3, "id": "t{i}", "text": "Story number {i}", "step": 1},
        {"posts": 3, "id": "l{i}", "texts": ["red", "blue"], "topic": "colours"},
        {"posts": 3, "id": "f{i}", "text_file": "texts.txt"},
    ]
    interventions = [{"kind": "label", "step": 3, "item": "t2", "text": "checked"}]
    scenario = Scenario.from_dict(small_scenario(content=content, interventions=interventions), base_dir=tmp_path)
    posts = expand_content(scenario, np.random.default_rng(0))
    assert [p.id for p, _ in posts] == ["hand", "t0", "t1", "t2", "l0", "l1", "l2", "f0", "f1", "f2"]
    assert [p.text for p, _ in posts[1:]] == [
        "Story number 0", "Story number 1", "Story number 2", "red", "blue", "red",
        "first headline", "second headline", "first headline",
    ]  # fmt: skip
    assert posts[1][0].step == 1 and posts[4][0].topic == "colours" and posts[0][0] is scenario.content[0]
    assert check_scenario(scenario)["posts"] == 10
    model = SocialModel(scenario)
    model.run()
    assert set(model.result().items["item_id"]) == {p.id for p, _ in posts}


def test_each_post_of_a_batch_draws_its_own_authors():
    content = [{"posts": 40, "id": "p{i}", "text": "x", "author": {"strategy": "random"}}]
    model = SocialModel(Scenario.from_dict(small_scenario(content=content)))
    assert len({a[0] for a in authors_of(model)}) > 30  # 40 draws among 300 people


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([{"posts": 2, "id": "p", "text": "x"}], r"content\.0\.id: must contain \{i\}"),
        ([{"posts": 2, "text": "x", "texts": ["y"]}], r"content\.0: give exactly one of text .* got \['text', 'texts'\]"),
        ([{"posts": 0, "text": "x"}], r"content\.0\.posts: Input should be greater than 0"),
        ([{"posts": 2, "text": "x", "author": {"strategy": "quantile"}}], r"content\.0\.author: author.strategy 'quantile' needs author.quantiles"),
        ([{"posts": 2, "text": "x", "author": {"strategy": "quantile", "quantiles": [0.9, 0.5]}}], r"content\.0\.author: author.quantiles: low must be below high"),
        ([{"id": "a", "text": "x", "author": {"strategy": "influencer", "count": 3, "top": 2}}], r"content\.0\.author: author.top \(2\) must be at least"),
        ([{"id": "a", "text": "x", "author": {"strategy": "random", "top": 5}}], r"content\.0\.author: author.top is read only by strategy 'influencer'"),
        ([{"posts": 2, "text": "x", "p": 0.3}], r"content\[0\]\.p: read only by the independent_cascade backend"),
        ([{"posts": 2, "text": "x", "p": {"distribution": "beta", "a": -1, "b": 2}}], r"content\.0\.p\.a: Input should be greater than 0"),
        ([{"id": "post-1", "text": "x"}, {"posts": 2, "text": "y"}], r"post id 'post-1' is used twice"),
    ],
)
def test_bad_content_entries_name_the_field(content: list, message: str):
    with pytest.raises(ScenarioError, match=message):
        Scenario.from_dict(small_scenario(content=content))


def test_a_missing_text_file_is_named(tmp_path: Path):
    scenario = Scenario.from_dict(small_scenario(content=[{"posts": 2, "text_file": "nope.txt"}]), base_dir=tmp_path)
    with pytest.raises(ScenarioError, match=r"content\[0\]\.text_file: file not found: .*nope.txt"):
        check_scenario(scenario)


def test_followers_strategy_draws_in_proportion_to_follower_count():
    net, rng = star_network(), np.random.default_rng(1)
    picks = [choose_authors(AuthorSpec(strategy="followers"), "a", FakePopulation(), net, rng)[0] for _ in range(5000)]
    share = np.bincount(picks, minlength=10) / 5000
    assert np.allclose(share[:3], [0.6, 0.3, 0.1], atol=0.03) and share[3:].sum() == 0
    two = choose_authors(AuthorSpec(strategy="followers", count=3), "a", FakePopulation(), net, rng)
    assert two.tolist() == [0, 1, 2]  # the only three accounts with followers, each once
    with pytest.raises(ScenarioError, match=r"a.count: 4 authors but only 3 accounts have followers"):
        choose_authors(AuthorSpec(strategy="followers", count=4), "a", FakePopulation(), net, rng)


def test_quantile_strategy_draws_within_the_follower_count_ranks():
    net, rng = star_network(), np.random.default_rng(2)
    top = {int(choose_authors(AuthorSpec(strategy="quantile", quantiles=[0.8, 1.0]), "a", FakePopulation(), net, rng)[0])
           for _ in range(200)}  # fmt: skip
    assert top == {0, 1}  # the two most-followed of ten
    bottom = {int(choose_authors(AuthorSpec(strategy="quantile", quantiles=[0.0, 0.5]), "a", FakePopulation(), net, rng)[0])
              for _ in range(200)}  # fmt: skip
    assert bottom == {3, 4, 5, 6, 7}  # no followers; ties ranked by agent number
    with pytest.raises(ScenarioError, match=r"a.quantiles: 2 accounts rank between 0.8 and 1.0, 3 needed"):
        choose_authors(AuthorSpec(strategy="quantile", quantiles=[0.8, 1.0], count=3), "a", FakePopulation(), net, rng)


def test_influencer_with_top_draws_among_the_top_accounts_and_without_it_keeps_the_top():
    net, rng = star_network(), np.random.default_rng(3)
    plain = {tuple(choose_authors(AuthorSpec(strategy="influencer"), "a", FakePopulation(), net, rng)) for _ in range(50)}
    assert plain == {(0,)}  # no `top`: the most followed account, as always
    among = [int(choose_authors(AuthorSpec(strategy="influencer", top=3), "a", FakePopulation(), net, rng)[0])
             for _ in range(300)]  # fmt: skip
    assert set(among) == {0, 1, 2} and min(np.bincount(among)) > 70


def test_batch_authors_by_follower_count_on_a_follower_graph():
    content = [{"posts": 300, "text": "x", "author": {"strategy": "followers"}}]
    scenario = small_scenario(content=content, network={"kind": "follower", "params": {"exponent": 2.2, "mean_degree": 5}})
    model = SocialModel(Scenario.from_dict(scenario))
    authors = np.array([a[0] for a in authors_of(model)])
    followers = model.network.out_degree
    # Weighted by followers, the mean author has far more followers than the mean account.
    assert followers[authors].mean() > 3 * followers.mean()


def test_per_post_share_probability_drives_each_cascade():
    behavior = {"backend": "independent_cascade", "reactions": ["ignore", "share"], "p": 0.5}
    content = [
        {"id": "dud", "text": "x", "p": 0.0, "author": {"strategy": "influencer"}},
        {"id": "viral", "text": "y", "p": 1.0, "author": {"strategy": "influencer"}},
        {"id": "plain", "text": "z", "author": {"strategy": "influencer"}},
        {"posts": 200, "id": "b{i}", "text": "w{i}", "p": {"distribution": "beta", "a": 2, "b": 8}},
    ]
    scenario = small_scenario(content=content, behavior=behavior, steps=30, population={"size": 300, "activity": 1.0},
                              feed={"policy": "all", "size": None})  # fmt: skip
    model = SocialModel(Scenario.from_dict(scenario))
    model.run()
    events = model.result().events
    p_share = events.groupby("item_id")["p_share"].agg(["min", "max"])
    assert p_share.loc["dud"].tolist() == [0.0, 0.0] and p_share.loc["viral"].tolist() == [1.0, 1.0]
    assert p_share.loc["plain"].tolist() == [0.5, 0.5]  # behavior.p for a post without its own
    shares = events[events["reaction"] == "share"].groupby("item_id").size()
    assert "dud" not in shares and shares["viral"] > 250  # p = 1 on a connected BA graph reaches everyone
    drawn = np.array([model.posts[i].p for i in range(3, 203)])
    assert abs(drawn.mean() - 0.2) < 0.03 and 0.05 < drawn.std() < 0.2  # Beta(2, 8): mean 0.2, sd 0.12
    for i in (3, 100, 202):
        post = model.posts[i]
        rows = events[events["item_id"] == post.id]
        assert rows.empty or np.allclose(rows["p_share"], post.p)


def test_the_documented_follower_world_runs_as_written(tmp_path: Path):
    import yaml

    page = (Path(__file__).resolve().parents[1] / "docs" / "reference" / "scenario.md").read_text()
    block = next(b for b in page.split("```yaml\n")[1:] if b.startswith("name: follower_world"))
    scenario = Scenario.from_dict(yaml.safe_load(block.split("```")[0]))
    model = SocialModel(scenario, overrides=["population.size=3000", "steps=15"])
    model.run()
    items = model.result().items
    assert len(items) == 500 and model.network.kind == "follower"
    # Heterogeneous posts: most spread little, a few far.
    assert (items["share"] == 0).mean() > 0.3 and items["share"].max() > 5 * max(items["share"].median(), 1)


def test_authors_as_a_fraction_of_the_people_keep_their_share_at_any_size():
    spec = small_scenario()
    spec["content"] = [{"id": "claim", "text": "A claim", "author": {"strategy": "random", "fraction": 0.05}}]
    for size, expected in ((400, 20), (1000, 50), (10, 1)):  # at least one author
        scenario = Scenario.from_dict({**spec, "population": {**spec["population"], "size": size}})
        model = SocialModel(scenario, seed=2)
        assert len(model.posts[0].authors) == expected
    # A scenario with a fraction survives being written out and read back (overrides, sweeps and to_yaml do so).
    shipped = Scenario.from_yaml(ROOT / "scenarios" / "misinformation_correction.yaml")
    again = shipped.with_overrides(["population.size=2000"])
    assert again.content[0].author.fraction == shipped.content[0].author.fraction == 0.015
    assert Scenario.from_dict(yaml.safe_load(shipped.to_yaml())).content[0].author.fraction == 0.015
    both = {"id": "claim", "text": "A claim", "author": {"strategy": "random", "count": 3, "fraction": 0.05}}
    with pytest.raises(ScenarioError, match=r"content\.0\.author: give count .* or fraction .*, not both"):
        Scenario.from_dict({**spec, "content": [both]})
