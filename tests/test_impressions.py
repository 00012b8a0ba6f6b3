"""Real per-impression data in: each reader on small files written here in the real formats (and their quirks),
bad input named by file and line, the real exports reproducing the figures their SOURCE.txt lists; a run's
impressions and audience; rates per impression compared."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import small_scenario
from scipy import stats

from lsbm_sim import Scenario
from lsbm_sim.cli import main
from lsbm_sim.errors import DataError
from lsbm_sim.analysis.impressions import (
    compare_rates,
    from_items,
    load_impressions,
    read_facebook_insights,
    read_generic,
    read_twitter_analytics,
)
from lsbm_sim.engine.runner import run

# The English export's first columns, as analytics.twitter.com writes them (every value quoted).
TWITTER_HEADER = ('"Tweet id","Tweet permalink","Tweet text","time","impressions","engagements","engagement rate",'
                  '"retweets","replies","likes","user profile clicks"\n')  # fmt: skip


def tweet(tid: str, text: str, impressions: str, retweets: str, replies: str, likes: str) -> str:
    link = f"https://twitter.com/someone/status/{tid}"
    return f'"{tid}","{link}","{text}","2021-01-30 12:56 +0000","{impressions}","9.0","0.01","{retweets}","{replies}","{likes}","1.0"\n'


def test_twitter_export_keeps_originals_by_default_and_reads_thousands(tmp_path: Path):
    path = tmp_path / "tweet_activity_metrics_someone_20210101_20210201_en.csv"
    path.write_text(TWITTER_HEADER + tweet("11", "New paper out!", "1,234.0", "3.0", "1.0", "20.0")
                    + tweet("12", "@bob I agree", "215.0", "0.0", "1.0", "1.0")
                    + tweet("13", "A thread, part 1", "800.0", "1.0", "0.0", "4.0")
                    + tweet("14", "Deleted?", "0.0", "0.0", "0.0", "0.0"))  # fmt: skip
    table = read_twitter_analytics(path)
    assert table[["post_id", "impressions", "shares", "comments", "likes"]].values.tolist() == [
        ["11", 1234.0, 3.0, 1.0, 20.0], ["13", 800.0, 1.0, 0.0, 4.0]]  # fmt: skip
    assert not table["is_reply"].any() and "original tweets only" in table.attrs["kept"]
    notes = table.attrs["notes"]
    assert notes["replies_left_out"] == 1 and notes["rows_without_impressions_dropped"] == 1 and notes["rows"] == 4
    every = read_twitter_analytics(path, replies=True)
    assert every["is_reply"].tolist() == [False, True, False] and "replies" in every.attrs["kept"]
    assert load_impressions(path).equals(table)  # told apart by its header


def test_twitter_folder_reads_every_month_once(tmp_path: Path):
    (tmp_path / "jan.csv").write_text(TWITTER_HEADER + tweet("1", "a", "100.0", "1.0", "0.0", "2.0")
                                      + tweet("2", "b", "50.0", "0.0", "0.0", "1.0"))  # fmt: skip
    (tmp_path / "feb.csv").write_text(TWITTER_HEADER + tweet("2", "b", "50.0", "0.0", "0.0", "1.0")
                                      + tweet("3", "c", "70.0", "0.0", "1.0", "0.0"))  # fmt: skip
    table = load_impressions(tmp_path)
    assert sorted(table["post_id"]) == ["1", "2", "3"] and table["impressions"].sum() == 220.0
    assert table.attrs["notes"]["duplicate_tweets_dropped"] == 1 and table.attrs["notes"]["files"] == 2


@pytest.mark.parametrize(
    "header, row",
    [
        ('"Tweet-ID","Tweet-Permalink","Tweet-Text","Zeit","Impressionen","Interaktionen","Retweets","Antworten","Gefällt mir"',
         '"7","https://x/7","Hallo","2021-01-01 10:00 +0000","2,000","9","2","1","5"'),
        ('"Tweet-ID","Tweet-Text","Zeit","Impressionen","Retweets","Antworten","Likes"',
         '"7","Hallo","2021-01-01 10:00 +0000","2000.0","2.0","1.0","5.0"'),
        ('"ID del Tweet","texto del Tweet","hora","impresiones","interacciones","retweets","respuestas","Me gusta"',
         '"7","Hola","2021-01-01 10:00 +0000","2000","9","2","1","5"'),
        ('"identifiant du Tweet","texte du Tweet","heure","impressions","Retweets","réponses","J\'aime"',
         '"7","Salut","2021-01-01 10:00 +0000","2000","2","1","5"'),
    ],
)
def test_localised_twitter_headers(tmp_path: Path, header: str, row: str):
    path = tmp_path / "export.csv"
    path.write_text(header + "\n" + row + "\n", encoding="utf-8")
    table = load_impressions(path)
    assert table[["post_id", "impressions", "shares", "comments", "likes"]].values.tolist() == [["7", 2000.0, 2.0, 1.0, 5.0]]
    assert table.attrs["platform"] == "twitter"


UCI_HEADER = ("Page_T_Likes;Type;Category;Month;Weekday;Hour;Paid;T_Reach;T_Impression;Engaged_Users;Consumers;"
              "Consumption;LP_Impression;LP_Reach;LP_Engage_With_Post;comment;like;share;T_Interactions\n")  # fmt: skip


def test_facebook_insights_uci_copy_and_original_headers(tmp_path: Path):
    path = tmp_path / "dataset_Facebook.csv"
    path.write_text(UCI_HEADER + "139441;Photo;2;12;4;3;0;2752;5091;178;109;159;3078;1640;119;4;79;17;100\n"
                    "139441;Status;2;12;3;10;1;10460;19057;1457;1361;1674;11710;6112;1108;5;130;29;164\n"
                    "139441;Photo;3;12;3;3;0;2413;4373;177;113;154;2812;1503;132;0;66;;66\n"  # share missing
                    "139441;Photo;2;12;2;10;;50128;87991;2211;790;1119;61027;32048;1386;58;1572;147;1777\n"  # Paid missing
                    "139441;Photo;2;12;2;3;0;7244;13594;671;410;580;6228;3200;396;19;325;49;393\n")  # fmt: skip
    table = load_impressions(path)
    assert table[["impressions", "likes", "shares", "comments", "paid"]].values.tolist() == [
        [5091, 79, 17, 4, 0], [13594, 325, 49, 19, 0]]  # fmt: skip
    assert table["reach"].tolist() == [2752, 7244] and table.attrs["platform"] == "facebook"
    notes = table.attrs["notes"]
    assert notes["paid_left_out"] == 1 and notes["rows_with_an_empty_count_dropped"] == 1
    assert notes["rows_without_paid_flag_dropped"] == 1 and "unpaid posts only" in table.attrs["kept"]
    assert len(read_facebook_insights(path, paid=True)) == 4  # the row without a share count is still dropped
    original = tmp_path / "insights.csv"
    original.write_text("Type,Paid,Lifetime Post Total Reach,Lifetime Post Total Impressions,comment,like,share\n"
                        'Photo,0,"2,752","5,091",4,79,17\n')  # fmt: skip
    assert load_impressions(original)[["impressions", "likes", "shares"]].values.tolist() == [[5091, 79, 17]]


def test_generic_csv_missing_columns_and_bad_rows(tmp_path: Path):
    path = tmp_path / "posts.csv"
    path.write_text("post_id,impressions,likes,shares\na,1000,12,3\nb,0,0,0\nc,-5,0,0\nd,\"2,500\",20,1\n")
    table = read_generic(path)
    assert table["post_id"].tolist() == ["a", "d"] and table["impressions"].tolist() == [1000.0, 2500.0]
    assert table["comments"].isna().all() and table.attrs["notes"]["missing_columns"] == ["comments"]
    assert table.attrs["notes"]["rows_without_impressions_dropped"] == 2
    bad = {
        "post_id,likes,shares\na,1,2\n": r"posts.csv:1: no impressions column",
        "post_id,impressions,likes\na,100,1\nb,lots,2\n": r"posts.csv:3: impressions 'lots' is not a number",
        "post_id,impressions,likes\na,100,1\nb,100,1.5.2\n": r"posts.csv:3: likes '1.5.2' is not a number",
        "post_id,impressions\na,0\n": r"posts.csv: no post with impressions left",
        "title,author\nx,y\n": r"posts.csv:1: not an impressions file",
    }
    for text, message in bad.items():
        path.write_text(text)
        with pytest.raises(DataError, match=message):
            load_impressions(path)
    (tmp_path / "twitter.csv").write_text(TWITTER_HEADER + tweet("1", "a", "100.0", "1.0", "0.0", "2.0"))
    path.write_text("post_id,impressions\na,10\n")
    with pytest.raises(DataError, match="different kinds"):
        load_impressions(tmp_path)


def test_compare_rates_figures_by_hand():
    rng = np.random.default_rng(3)
    n = 200
    impressions = rng.integers(50, 5000, n).astype(float)
    sim = pd.DataFrame({"item_id": [f"p{i}" for i in range(n + 1)], "impressions": [*impressions, 0],
                        "like": [*rng.binomial(impressions.astype(int), 0.01), 0],
                        "share": [*rng.binomial(impressions.astype(int), 0.002), 0],
                        "comment": [*rng.binomial(impressions.astype(int), 0.0005), 0]})  # fmt: skip
    real = pd.DataFrame({"post_id": [f"r{i}" for i in range(n)], "impressions": impressions,
                         "likes": rng.binomial(impressions.astype(int), 0.003).astype(float),
                         "shares": rng.binomial(impressions.astype(int), 0.0008).astype(float),
                         "comments": rng.binomial(impressions.astype(int), 0.0004).astype(float)})  # fmt: skip
    result = compare_rates(sim, real, floor_splits=10)
    rows = result.table.set_index("figure")
    assert result.sim.attrs["notes"]["posts_never_shown_left_out"] == 1 and len(result.sim) == n
    shown = sim.iloc[:n]
    assert rows.loc["shares_per_impression", "sim"] == shown["share"].sum() / impressions.sum()
    expected = np.log((shown["share"].sum() + 0.5) / (real["shares"].sum() + 0.5))  # same impressions on both sides
    assert rows.loc["shares_per_impression", "log_ratio"] == pytest.approx(expected)
    ks = stats.ks_2samp(shown["like"] / impressions, real["likes"] / impressions).statistic
    assert rows.loc["likes_per_impression_per_post", "ks"] == pytest.approx(ks)
    assert rows.loc["posts_without_comments", "sim"] == pytest.approx((shown["comment"] == 0).mean())
    assert rows.loc["likes_per_share", "real"] == pytest.approx(real["likes"].sum() / real["shares"].sum())
    pooled = [abs(rows.loc[f"{c}_per_impression", "log_ratio"]) for c in ("shares", "likes", "comments")]
    spread = [rows.loc[f"{c}_per_impression_per_post", "ks"] for c in ("shares", "likes", "comments")]
    assert result.score() == pytest.approx(np.mean(pooled) + np.mean(spread))
    assert 0 < rows.loc["likes_per_impression_per_post", "floor"] < 0.3
    same = compare_rates(from_items(shown.assign(item_id=shown["item_id"])), shown, floor_splits=0)
    assert same.score() == 0.0  # a table against itself: no distance at all
    # a real table without comments: comments are not compared, and the settings say so
    assert "comments" in compare_rates(sim, real.assign(comments=np.nan), floor_splits=0).settings["not compared"]


def test_a_runs_items_count_impressions_and_audience(tmp_path: Path):
    spec = small_scenario(steps=6)
    result = run(Scenario.from_dict(spec), out=tmp_path / "run")
    items = result.items.set_index("item_id")
    events = result.events
    per_post = events.groupby("item_id", observed=True).size()
    assert items["impressions"].sum() == result.manifest["exposures"] == len(events)
    assert (items.loc[per_post.index, "impressions"] == per_post).all()
    assert (items["impressions"] >= items["reach"]).all()
    # audience: followers of the author plus of every sharer
    followers = result.agents.set_index("agent_id")["followers"]
    sharers = events[events["reaction"] == "share"]
    for post, trees in result.cascades.groupby("item_id"):
        expected = followers.loc[trees["author"]].sum() + followers.loc[sharers[sharers["item_id"] == post]["agent_id"]].sum()
        assert items.loc[post, "audience"] == expected
    assert items["share"].sum() > 0  # there were sharers to count


def test_compare_command_with_impressions(tmp_path: Path, capsys):
    run(Scenario.from_dict(small_scenario(steps=6)), out=tmp_path / "run")
    real = tmp_path / "posts.csv"
    real.write_text("post_id,impressions,likes,shares,comments\n" + "".join(f"p{i},{100 + i},{i % 5},{i % 2},0\n" for i in range(30)))
    assert main(["compare", str(tmp_path / "run"), "--impressions", str(real), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    figures = {row["figure"]: row for row in data["rates"]["rates"]}
    assert figures["shares_per_impression"]["real"] == pytest.approx(15 / sum(100 + i for i in range(30)))
    assert main(["compare", str(tmp_path / "run"), "--impressions", str(real), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "rates.json").is_file() and "likes_per_share" in capsys.readouterr().out
    real.write_text("post_id,impressions,likes\na,100,1\nb,many,2\n")
    assert main(["compare", str(tmp_path / "run"), "--impressions", str(real)]) == 2
    assert "posts.csv:3: impressions 'many' is not a number" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "run")]) == 2
    assert "--impressions" in capsys.readouterr().err


def test_real_exports_reproduce_their_source_figures(shared_data: Path):
    folder = shared_data / "impressions"
    debruine = load_impressions(folder / "debruine_twitter" / "raw")

    def pooled(table, count):
        return table[count].sum() / table["impressions"].sum()

    # SOURCE.txt: originals n=1,077; pooled RT/impr 0.00081, likes 0.00326, replies 0.00038; 52% without RTs
    assert len(debruine) == 1077 and debruine.attrs["notes"]["replies_left_out"] == 2010
    assert round(pooled(debruine, "shares"), 5) == 0.00081 and round(pooled(debruine, "likes"), 5) == 0.00326
    assert round(pooled(debruine, "comments"), 5) == 0.00038 and round((debruine["shares"] == 0).mean(), 2) == 0.52
    assert len(load_impressions(folder / "debruine_twitter" / "raw", replies=True)) == 3087
    gtieng = load_impressions(folder / "gtieng_twitter" / "raw")  # renamed monthly files, the same export
    assert len(gtieng) == 829 and round(pooled(gtieng, "shares"), 5) == 0.00032 and round(pooled(gtieng, "likes"), 5) == 0.00628
    facebook = load_impressions(folder / "uci_facebook_metrics" / "raw" / "dataset_Facebook.csv")
    # SOURCE.txt: unpaid n=356; pooled shares/impr 0.00094, likes 0.00583, comments 0.00024
    assert len(facebook) == 356 and round(pooled(facebook, "shares"), 5) == 0.00094
    assert round(pooled(facebook, "likes"), 5) == 0.00583 and round(pooled(facebook, "comments"), 5) == 0.00024
    assert round(float((facebook["shares"] / facebook["impressions"]).median()), 5) == 0.00211
