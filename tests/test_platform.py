"""The living platform: what the event log keeps, people posting from a pool, recommenders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT, small_scenario
from lsbm_sim import Scenario, run
from lsbm_sim.errors import ScenarioError


def with_fields(data: dict, fields: dict) -> dict:
    """`data` with fields set by keyword: results__events="none" sets data["results"]["events"]."""
    for dotted, value in fields.items():
        node = data
        *head, last = dotted.split("__")
        for part in head:
            node = node.setdefault(part, {})
        node[last] = value
    return data


def small(**extra) -> Scenario:
    data = small_scenario(
        seed=4,
        population={"size": 400, "activity": 0.6},
        feed={"policy": "chronological", "size": 5},
        behavior={"backend": "constant", "probabilities": {"like": 0.1, "share": 0.25, "comment": 0.05}},
    )
    return Scenario.from_dict(with_fields(data, extra))


def test_results_events_keeps_all_engaged_or_none_and_the_tables_either_way(tmp_path: Path):
    full = run(small(), out=tmp_path / "all")
    engaged = run(small(results__events="engaged"), out=tmp_path / "engaged")
    nothing = run(small(results__events="none"), out=tmp_path / "none")

    assert len(full.events) > 100 and (full.events["reaction"] == "ignore").any()
    expected = full.events[full.events["reaction"] != "ignore"].reset_index(drop=True)
    pd.testing.assert_frame_equal(engaged.events.astype({"item_id": str, "reaction": str}),
                                  expected.astype({"item_id": str, "reaction": str}))  # fmt: skip
    assert len(nothing.events) == 0 and list(nothing.events.columns) == list(full.events.columns)
    for res in (engaged, nothing):  # the same run: per-step and per-post tables are whole
        pd.testing.assert_frame_equal(res.steps, full.steps)
        pd.testing.assert_frame_equal(res.items, full.items)
        assert res.manifest["exposures"] == len(full.events)
    assert nothing.manifest["event_rows"] == 0 and engaged.manifest["event_rows"] == len(expected)


def test_results_events_rejects_an_unknown_kind():
    with pytest.raises(ScenarioError, match="results.events"):
        small(results__events="some")


# ------------------------------------------------------------------------------------------------- posting

POOL = Path(__file__).resolve().parents[1] / "scenarios" / "data" / "posts.jsonl"
CONSTANT = {"backend": "constant", "probabilities": {"like": 0.1, "share": 0.1, "comment": 0.02}}


def platform(**extra) -> Scenario:
    """People posting from the shipped pool, no hand-listed posts."""
    base = small(content=[], posting={"rate": 0.02, "pool": str(POOL)}, behavior=CONSTANT)
    data = base.model_dump(mode="json")
    return Scenario.from_dict(with_fields(data, extra))


def test_people_post_from_the_pool_at_their_rate_and_unseeable_posts_retire():
    from lsbm_sim import SocialModel
    from lsbm_sim.world.posting import read_pool

    model = SocialModel(platform(steps=12))
    retired_after = []  # the posts retired by the end of each step
    for _ in range(12):
        model.step()
        retired_after.append(np.flatnonzero(model.retired))
    res = model.result()
    pool = read_pool(POOL)
    items = res.items
    # 400 people x 12 steps x 2%: about 96 posts (sd about 10).
    assert 60 < len(items) < 135
    assert set(items["text"]) <= set(pool.texts) and items["topic"].notna().all()
    assert items["item_id"].str.fullmatch(r"u\d+\.s\d+").all() and items["authors"].eq(1).all()
    # Every post's author is its cascade's root, and posts of a step entered at that step.
    assert (items["entered"] == items["item_id"].str.extract(r"\.s(\d+)")[0].astype(int)).all()
    assert (items["cascade_size"] >= 1).all() and res.events["item_id"].isin(items["item_id"]).all()
    # Posts no one can be shown any more were retired, and none of them was shown after it retired.
    assert len(retired_after[-1]) > 10
    item = res.events["item_id"].astype(str).map(model.item_index).to_numpy()
    step = res.events["step"].to_numpy()
    for t, gone in enumerate(retired_after[:-1]):
        assert not np.isin(item[step > t], gone).any(), f"a post retired by step {t} was shown later"


def test_posting_by_interest_puts_posts_near_their_authors_interests():
    from lsbm_sim import SocialModel

    def on_topic_share(interest: float) -> float:
        model = SocialModel(platform(steps=10, posting={"rate": 0.05, "pool": str(POOL), "interest": interest},
                                     behavior={"backend": "surrogate"}, feed__size=1))  # fmt: skip
        model.run()
        items = model.items_table()
        interests = model.population.traits["interests"].astype(str)
        author = np.array([model.posts[i].authors[0] for i in range(len(model.item_ids))])
        on_topic = [t in interests.iloc[a].split(";") for t, a in zip(items["topic"], author)]
        return float(np.mean(on_topic))

    uniform, by_interest = on_topic_share(0.0), on_topic_share(25.0)
    assert uniform < 0.4  # two interests of eight topics: about 0.25 by chance
    assert by_interest > uniform + 0.15, (uniform, by_interest)


@pytest.mark.parametrize(
    "content, words",
    [
        ('{"topic": "x"}\n', "no 'text' column"),
        ('{"text": "fine"}\n\n{"text": "  "}\n', "'text' is empty in row 2"),
        ('{"text": "fine"}\nnot json\n', "line 2 is not valid JSON"),
    ],
)
def test_a_bad_pool_is_named_with_its_line(tmp_path: Path, content: str, words: str):
    from lsbm_sim import SocialModel
    from lsbm_sim.errors import DataError

    pool = tmp_path / "pool.jsonl"
    pool.write_text(content)
    with pytest.raises(DataError, match=words) as err:
        SocialModel(platform(posting={"rate": 0.1, "pool": str(pool)}))
    assert str(pool) in str(err.value)


def test_a_csv_pool_and_a_persona_column_rate(tmp_path: Path):
    from lsbm_sim import SocialModel

    pool = tmp_path / "pool.csv"
    pool.write_text("text,topic\nhello world,misc\nsecond post,\n")
    personas = tmp_path / "people.csv"
    rates = np.where(np.arange(50) < 10, 1.0, 0.0)
    personas.write_text("persona,rate\n" + "".join(f"person {i},{r}\n" for i, r in enumerate(rates)))
    model = SocialModel(platform(population={"path": str(personas), "activity": 0.5}, network={"kind": "erdos_renyi", "params": {"mean_degree": 4}},
                                 posting={"rate": {"column": "rate"}, "pool": str(pool)}, steps=3))  # fmt: skip
    model.run()
    authors = {int(model.posts[i].authors[0]) for i in range(len(model.item_ids))}
    assert authors == set(range(10)) and len(model.item_ids) == 30  # the ten with rate 1, every step
    assert set(model.item_texts) == {"hello world", "second post"}


def test_a_pool_read_by_its_own_column_names(tmp_path: Path):
    from lsbm_sim import SocialModel
    from lsbm_sim.errors import DataError

    pool = tmp_path / "reddit.csv"
    pool.write_text("id,title,subreddit\n1,Scientists map the genome of the axolotl,science\n2,My cat at the vet,pics\n")
    spec = {"rate": 0.2, "pool": str(pool), "text_column": "title", "topic_column": "subreddit"}
    model = SocialModel(platform(posting=spec, steps=3))
    model.run()
    items = model.result().items
    assert len(items) > 0 and set(items["text"]) <= {"Scientists map the genome of the axolotl", "My cat at the vet"}
    assert set(items["topic"]) <= {"science", "pics"} and items["topic"].notna().all()
    with pytest.raises(DataError, match="no 'headline' column for posting.text_column"):
        SocialModel(platform(posting={**spec, "text_column": "headline"}))
    with pytest.raises(DataError, match="no 'sub' column for posting.topic_column"):
        SocialModel(platform(posting={**spec, "topic_column": "sub"}))


def test_platform_day_runs_on_real_post_titles(shared_data: Path, tmp_path: Path):
    """The shipped platform scenario on real posts (Reddit's top 2013 posts, public domain), as docs/how-to/recommender.md shows."""
    from lsbm_sim import run

    titles = sorted((shared_data / "reddit_top_2013").glob("*.csv"))
    if not titles:
        pytest.skip(f"no Reddit titles in {shared_data / 'reddit_top_2013'}")
    res = run(ROOT / "scenarios" / "platform_day.yaml", overrides=[
        f"posting.pool={titles[0]}", "posting.text_column=title", "posting.topic_column=null",
        "population.size=3000", "steps=8", "posting.rate=0.01"])  # fmt: skip
    real = set(pd.read_csv(titles[0])["title"].astype(str))
    assert len(res.items) > 100 and set(res.items["text"]) <= real
    assert res.items["reach"].sum() > 0


# ------------------------------------------------------------------------------------------ recommenders


@pytest.mark.parametrize("recommender", ["random", "popularity"])
def test_recommendations_fill_their_share_of_the_feed_from_outside_the_follows(recommender: str):
    from lsbm_sim import SocialModel
    from lsbm_sim.engine.recommend import RECOMMENDED

    model = SocialModel(platform(feed={"policy": "chronological", "size": 10, "recommender": recommender,
                                       "out_of_network": 0.3}))  # fmt: skip
    model.run()
    events = model.result().events
    item = events["item_id"].astype(str).map(model.item_index).to_numpy()
    agent = events["agent_id"].to_numpy()
    rec = events["parent_id"].to_numpy() == RECOMMENDED
    assert rec.sum() > 200 and (~rec).sum() > 50
    per_feed = events[rec].groupby(["step", "agent_id"]).size()
    assert per_feed.max() == 3  # round(10 * 0.3) slots
    author = model.first_author[item[rec]]
    assert not (author == agent[rec]).any()  # never one's own post
    edges = set(zip(model.network.source.tolist(), model.network.target.tolist()))
    assert not any((a, p) in edges for a, p in zip(author.tolist(), agent[rec].tolist()))  # never a followee's
    # A post is recommended to a person at most once, and never after they saw it another way.
    first_seen = events.assign(item=item).groupby(["item", "agent_id"])["step"].transform("min")
    assert not events[rec].assign(item=item[rec]).duplicated(["item", "agent_id"]).any()
    assert (events["step"][rec] == first_seen[rec]).all()
    # Recommendations come after the in-network posts of the same feed.
    last_in = events[~rec].groupby(["step", "agent_id"])["position"].max()
    first_rec = events[rec].groupby(["step", "agent_id"])["position"].min()
    both = last_in.index.intersection(first_rec.index)
    assert len(both) and (first_rec[both] > last_in[both]).all()


def test_of_equally_similar_posts_the_recommender_keeps_the_newest_as_candidates(tmp_path: Path):
    """A pool repeats its texts, so many posts are exactly as similar to a persona as each other. The running
    top list by similarity keeps the newest of them: an old copy must not hold a slot a fresh one could take
    (the candidates would otherwise be posts just written or posts a day old, and nothing in between)."""
    from lsbm_sim import SocialModel
    from lsbm_sim.engine.recommend import CANDIDATES

    pool = tmp_path / "one_text.jsonl"
    pool.write_text('{"text": "A new bridge opens across the river", "topic": "news"}\n')
    model = SocialModel(platform(steps=8, posting={"rate": 0.1, "pool": str(pool)},
                                 feed={"policy": "chronological", "size": 10, "recommender": "interest"}))  # fmt: skip
    model.run()
    recent = model.recommender._recent(model.steps - 1)
    assert len(recent) > 2 * CANDIDATES  # more equally similar posts than the list holds
    kept = np.sort(model.recommender._similar[model.recommender._similar >= 0].reshape(len(model.recommender._similar), -1), axis=1)
    newest = np.sort(recent)[-CANDIDATES:]
    assert (kept == newest).all()


class ScienceOnly:
    """A user's recommender (named in the scenario as module:Class): science posts, and nothing else."""

    temperature = 0.01
    calls = 0

    def score(self, candidates):
        type(self).calls += 1
        assert len(candidates.item) == len(candidates.similarity) == len(candidates.age) == len(candidates.archetype)
        texts = [candidates.texts[i] for i in candidates.item.tolist()]
        science = ("comet", "battery chemistry", "deep-sea", "Mars", "octopuses", "vaccine trial")
        return np.array([1.0 if any(w in t for w in science) else 0.0 for t in texts])


def test_a_user_recommender_named_in_the_scenario_ranks_the_candidates(tmp_path: Path, monkeypatch):
    from lsbm_sim import SocialModel
    from lsbm_sim.engine.recommend import RECOMMENDED

    module = tmp_path / "my_recommender.py"
    module.write_text("from test_platform import ScienceOnly\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(Path(__file__).parent))

    def science_share(recommender: str) -> float:
        model = SocialModel(platform(feed={"policy": "chronological", "size": 10, "recommender": recommender},
                                     posting={"rate": 0.1, "pool": str(POOL)}))  # science posts in every step
        model.run()
        events = model.result().events
        rec = events[events["parent_id"] == RECOMMENDED]
        topic = rec["item_id"].astype(str).map(dict(zip(model.item_ids, model.item_topics)))
        return float((topic == "science").mean())

    assert science_share("my_recommender:ScienceOnly") > 0.95 and ScienceOnly.calls > 0
    assert science_share("random") < 0.4


def test_same_seed_same_platform_run():
    a = run(platform(feed={"policy": "popularity", "size": 6, "recommender": "random"}))
    b = run(platform(feed={"policy": "popularity", "size": 6, "recommender": "random"}))
    pd.testing.assert_frame_equal(a.events, b.events)
    assert len(a.events) > 100


def test_a_platform_sweep_is_the_same_with_one_or_two_workers():
    """People posting and a recommender draw on their own random streams: a run depends on its scenario and seed
    only, not on which process ran it or beside what."""
    from lsbm_sim.studies.sweep import sweep

    grid = {"feed.recommender": ["random", "popularity"]}
    base = platform(steps=8, feed={"policy": "random", "size": 6})
    one = sweep(base, grid, replications=2, workers=1)
    two = sweep(base, grid, replications=2, workers=2)
    columns = [c for c in one.columns if c != "seconds"]
    pd.testing.assert_frame_equal(one[columns], two[columns])
    assert one["item_id"].nunique() > 20 and one["reach"].sum() > 0


def test_a_recommender_needs_a_capped_feed_and_a_loadable_class():
    with pytest.raises(ScenarioError, match="feed.size"):
        platform(feed={"policy": "all", "size": None, "recommender": "interest"})
    from lsbm_sim import SocialModel

    with pytest.raises(ScenarioError, match="no_such_module"):
        SocialModel(platform(feed={"recommender": "no_such_module:Thing"}))


def test_the_readme_recommender_from_a_file_and_the_summary_of_many_posts(tmp_path: Path):
    from lsbm_sim.cli import SUMMARY_POSTS
    from lsbm_sim.engine.recommend import RECOMMENDED

    (tmp_path / "newest.py").write_text(
        "class Newest:\n    temperature = 0.05\n\n    def score(self, candidates):\n"
        "        return -candidates.age.astype(float)\n"
    )

    def recommended_age(recommender: str):
        res = run(platform(steps=10, feed={"policy": "chronological", "size": 10, "recommender": recommender},
                           posting={"rate": 0.05, "pool": str(POOL)}))  # fmt: skip
        rec = res.events[res.events["parent_id"] == RECOMMENDED]
        entered = rec["item_id"].astype(str).map(dict(zip(res.items["item_id"], res.items["entered"])))
        return float((rec["step"] - entered).mean()), res

    newest, res = recommended_age(f"{tmp_path / 'newest.py'}:Newest")
    anything, _ = recommended_age("random")
    assert newest < 0.5 * anything, (newest, anything)

    # The summary lists the posts of widest reach; the totals count every post.
    assert len(res.items) > SUMMARY_POSTS
    top = res.summary(top=SUMMARY_POSTS)
    assert len(top) == SUMMARY_POSTS and top["reach"].min() >= res.items["reach"].nlargest(SUMMARY_POSTS).min()
    totals = res.totals()
    assert totals["posts"] == len(res.items) and totals["share"] == res.items["share"].sum()
    assert totals["exposures"] == len(res.events)


def test_validate_reads_the_pool_and_loads_the_recommender(tmp_path: Path):
    from lsbm_sim.errors import DataError
    from lsbm_sim.engine.validate import check_scenario

    assert check_scenario(platform())["agents"] == 400
    with pytest.raises(DataError, match="file not found"):
        check_scenario(platform(posting={"rate": 0.1, "pool": str(tmp_path / "missing.csv")}))
    with pytest.raises(ScenarioError, match="cannot load"):
        check_scenario(platform(feed={"recommender": f"{tmp_path / 'none.py'}:Thing"}))
