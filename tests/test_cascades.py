"""Real cascades in: each loader on small hand-made files with every quirk, bad input named by file and line,
a run's own folder, the twitter16 file itself; compare's KS against scipy's."""

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import small_scenario
from scipy import stats

from lsbm_sim import Scenario
from lsbm_sim.analysis.cascades import (
    in_minutes,
    load_cascades,
    read_event_sequences,
    read_run,
    read_tree_csv,
    read_tree_file,
)
from lsbm_sim.analysis.compare import compare, ks, matched_ks, reach_per_follower, size_bins
from lsbm_sim.cli import main
from lsbm_sim.errors import DataError
from lsbm_sim.engine.runner import run

HEADER = "cascade_id\tparent_uid\tparent_tweet_id\tparent_delay_min\tchild_uid\tchild_tweet_id\tchild_delay_min\n"


def tree_lines(rows: list[str]) -> str:
    return HEADER + "".join(r.replace(" ", "\t") + "\n" for r in rows)


# Cascade 100: root u1 (the source tweet) -> u2, u3; u2 -> u4. Every quirk the twitter data has:
QUIRKY = [
    "100 ROOT ROOT 0.0 u1 100 0.0",
    "100 u1 100 0.0 u2 100 2.0",
    "100 u1 100 0.0 u2 100 2.0",  # a duplicate line
    "100 u1 100 0.0 u3 100 5.0",
    "100 u3 100 5.0 u3 100 5.0",  # a self loop
    "100 u2 100 2.0 u4 100 1.0",  # a child earlier than its parent: kept, with its own time
    "100 u3 100 5.0 u4 100 1.0",  # a second parent for u4: the first listed one is kept
    "100 u8 100 9.0 u9 100 9.5",  # under a parent that is never a child: does not reach the root, dropped
    # Cascade 200: the ROOT's child is a retweet, not the source tweet 200: it is still the root.
    "200 ROOT ROOT 0.0 u5 201 0.0",
    "200 u5 201 0.0 u6 201 3.0",
    "200 u6 201 3.0 u7 201 4.0",
]


def test_tree_file_handles_each_quirk(tmp_path: Path):
    path = tmp_path / "t_cascade_edges.tsv.gz"
    with gzip.open(path, "wt") as f:
        f.write(tree_lines(QUIRKY))
    table = read_tree_file(path).set_index("cascade_id")
    first = table.loc["100"]
    # u1 -> u2 -> u4 and u1 -> u3: size 4, depth 2, widest level 2, distances 1,1,2,2,3,1 over 6 pairs
    assert (first.cascade_size, first.depth, first.max_breadth) == (4, 2, 2)
    assert first.structural_virality == pytest.approx(10 / 6)
    assert first.half_time == 1.0  # times 0, 1 (u4, earlier than its parent), 2, 5: the 2nd arrives at 1.0
    second = table.loc["200"]
    assert (second.cascade_size, second.depth, second.structural_virality) == (3, 2, pytest.approx(4 / 3))
    notes = read_tree_file(path).attrs["notes"]
    assert notes["duplicate_lines"] == 1 and notes["self_loops"] == 1 and notes["extra_parents_dropped"] == 1
    assert notes["root_not_source_tweet"] == 1 and notes["nodes_not_reaching_root_dropped"] == 2
    assert notes["kept_edges_child_earlier_than_parent"] == 1
    assert load_cascades(tmp_path)["cascade_size"].tolist() == table["cascade_size"].tolist()  # a folder works too


def test_tree_file_cycles_are_dropped(tmp_path: Path):
    rows = ["1 ROOT ROOT 0.0 a 1 0.0", "1 a 1 0.0 b 1 1.0", "1 c 1 2.0 d 1 3.0", "1 d 1 3.0 c 1 2.0"]
    path = tmp_path / "x_cascade_edges.tsv"
    path.write_text(tree_lines(rows))
    table = read_tree_file(path)
    assert table["cascade_size"].tolist() == [2] and table.attrs["notes"]["nodes_not_reaching_root_dropped"] == 2


@pytest.mark.parametrize(
    "rows, message",
    [
        (["1 ROOT ROOT 0.0 a 1 0.0", "1 a 1 0.0 b 1 soon"], r"x_cascade_edges.tsv:3: child_delay_min 'soon' is not a number"),
        (["1 ROOT ROOT 0.0 a 1 0.0", "1 a 1 0.0 b 1 1.0 extra"], r"x_cascade_edges.tsv: .*line 3"),
        (["1 ROOT ROOT 0.0 a 1 0.0", "2 a 1 0.0 b 1 1.0"], r"x_cascade_edges.tsv:3: cascade 2 has no ROOT row"),
    ],
)
def test_tree_file_bad_input_names_file_and_line(tmp_path: Path, rows, message):
    path = tmp_path / "x_cascade_edges.tsv"
    path.write_text(tree_lines(rows))
    with pytest.raises(DataError, match=message):
        read_tree_file(path)


def test_tree_csv_roots_times_and_errors(tmp_path: Path):
    path = tmp_path / "trees.csv"
    path.write_text("cascade_id,node,parent,time\nA,r,,0\nA,x,r,2\nA,y,x,3\nA,y,x,3\nA,s,,1\nB,r,,0\n")
    table = read_tree_csv(path)
    # cascade A has two roots (two trees); the repeated line is read once
    assert table[["cascade_id", "root", "cascade_size", "depth"]].values.tolist() == [
        ["A", "r", 3, 2], ["A", "s", 1, 0], ["B", "r", 1, 0]]  # fmt: skip
    assert table.loc[0, "structural_virality"] == pytest.approx(4 / 3) and table.loc[0, "half_time"] == 2.0
    bad = {
        "cascade_id,node,parent\nA,r,\nA,x,q\n": r"trees.csv:3: parent 'q' is not a node of cascade 'A'",
        "cascade_id,node,parent\nA,r,\nA,x,r\nA,x,\n": r"trees.csv:4: node 'x' of cascade 'A' is listed twice",
        "cascade_id,node,parent\nA,r,\nA,x,y\nA,y,x\n": r"trees.csv:3: .*cycle",
        "cascade_id,node,parent,time\nA,r,,0\nA,x,r,later\n": r"trees.csv:3: time 'later' is not a number",
    }
    for text, message in bad.items():
        path.write_text(text)
        with pytest.raises(DataError, match=message):
            load_cascades(path)


def test_event_sequences_give_size_and_time_only(tmp_path: Path):
    path = tmp_path / "seq.csv"
    path.write_text("cascade_id,event_index,time_s,user\n1,0,100,a\n1,1,160,b\n1,2,400,c\n2,0,5,d\n")
    table = read_event_sequences(path).set_index("cascade_id")
    assert table["cascade_size"].tolist() == [3, 1]
    assert table.loc["1", "half_time"] == 60.0  # the 2nd of 3 events, 60 s after the first
    assert table["depth"].isna().all() and table.attrs["time_unit"] == "seconds"
    assert load_cascades(path)["cascade_size"].tolist() == [3, 1]


def test_a_runs_folder_gives_one_row_per_author_tree(tmp_path: Path):
    spec = small_scenario(steps=6)
    spec["content"][0]["author"] = {"strategy": "random", "count": 4}
    res = run(Scenario.from_dict(spec), out=tmp_path / "run")
    trees = read_run(tmp_path / "run")
    assert len(trees) == res.items["authors"].sum() == 5
    pd.testing.assert_series_equal(trees["cascade_size"], res.cascades["cascade_size"], check_names=False)
    # a post's nodes are its trees' nodes; its depth and breadth are its deepest and widest tree's
    per_post = res.cascades.groupby("item_id").agg(size=("cascade_size", "sum"), depth=("depth", "max"))
    items = res.items.set_index("item_id")
    assert (per_post["size"] == items.loc[per_post.index, "cascade_size"]).all()
    assert (per_post["depth"] == items.loc[per_post.index, "depth"]).all()
    assert items["cascade_size"].sum() > 5  # the constant model shared: there is something to measure


def test_compare_ks_is_scipys_and_matched_ks_is_per_bin_weighted():
    rng = np.random.default_rng(1)
    sim = pd.DataFrame({"cascade_size": rng.integers(1, 40, 400), "depth": rng.poisson(2.0, 400)})
    real = pd.DataFrame({"cascade_size": rng.integers(1, 40, 300), "depth": rng.poisson(2.5, 300)})
    result = compare(sim, real, metrics=("cascade_size", "depth"), bootstrap=50, floor_splits=10)
    row = result.table.set_index("metric").loc["depth"]
    expected = stats.ks_2samp(sim["depth"], real["depth"])
    assert row.ks_overall == expected.statistic and row.p_value == pytest.approx(expected.pvalue)
    # matched size by hand: KS within each log2 size bin, weighted by the real cascades in it
    sb, rb = size_bins(sim["cascade_size"]), size_bins(real["cascade_size"])
    parts = [(np.sum(rb == b), stats.ks_2samp(sim["depth"][sb == b], real["depth"][rb == b]).statistic)
             for b in np.unique(rb) if np.sum(rb == b) >= 5 and np.sum(sb == b) >= 5]  # fmt: skip
    assert row.ks_matched == pytest.approx(sum(w * d for w, d in parts) / sum(w for w, _ in parts))
    assert row.ks_overall_low <= row.ks_overall <= row.ks_overall_high
    assert 0 < row.floor_overall < 0.3
    same = compare(real, real, metrics=("depth",), bootstrap=0, floor_splits=0).table.iloc[0]
    assert same.ks_overall == 0.0 and same.ks_matched == 0.0
    apart = pd.DataFrame({"cascade_size": [1000] * 50, "depth": [9] * 50})  # no shared size bin at all
    assert matched_ks(apart["depth"].to_numpy(float), size_bins(apart["cascade_size"]), real["depth"].to_numpy(float),
                      rb, 5) == (1.0, 0.0)  # fmt: skip


def test_compare_command_writes_report_and_json(tmp_path: Path, capsys):
    spec = small_scenario(steps=6)
    spec["content"][0]["author"] = {"strategy": "random", "count": 30}
    run(Scenario.from_dict(spec), out=tmp_path / "run")
    real = tmp_path / "real.csv"
    real.write_text("cascade_id,node,parent,time\n" + "".join(
        f"{c},r,,0\n" + "".join(f"{c},n{k},r,{k}\n" for k in range(c % 4)) for c in range(40)))  # fmt: skip
    assert main(["compare", str(tmp_path / "run"), "--real", str(real), "--bootstrap", "20", "--out", str(tmp_path / "rep")]) == 0
    assert {p.name for p in (tmp_path / "rep").iterdir()} == {"report.html", "ccdf.png", "matched.png", "comparison.json"}
    assert "structural_virality" in (tmp_path / "rep" / "report.html").read_text()
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "run"), "--real", str(real), "--json", "--bootstrap", "0"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [m["metric"] for m in data["metrics"]][:2] == ["cascade_size", "depth"]
    bad = tmp_path / "bad.csv"
    bad.write_text("cascade_id,node,parent\nA,r,\nA,x,nobody\n")
    assert main(["compare", str(tmp_path / "run"), "--real", str(bad)]) == 2
    assert "bad.csv:3: parent 'nobody'" in capsys.readouterr().err


def test_compare_says_why_an_interval_can_lie_above_its_distance(tmp_path: Path, capsys):
    # A run against itself: distance 0, while resampled copies differ a little, so every interval lies above 0.
    spec = small_scenario(steps=6)
    spec["content"][0]["author"] = {"strategy": "random", "count": 30}
    run(Scenario.from_dict(spec), out=tmp_path / "run")
    assert main(["compare", str(tmp_path / "run"), "--real", str(tmp_path / "run"), "--bootstrap", "30",
                 "--out", str(tmp_path / "rep")]) == 0  # fmt: skip
    err = " ".join(capsys.readouterr().err.split())
    table = json.loads((tmp_path / "rep" / "comparison.json").read_text())["metrics"]
    above = [m["metric"] for m in table if m["ks_overall_low"] is not None and m["ks_overall_low"] > m["ks_overall"]]
    assert "cascade_size" in above
    assert f"note: {', '.join(above)}: the interval lies above the distance itself" in err and "biased upward" in err
    capsys.readouterr()
    near = tmp_path / "real.csv"  # apart: no note
    near.write_text("cascade_id,node,parent,time\n" + "".join(f"{c},r,,0\n" + "".join(f"{c},n{k},r,{k}\n" for k in range(12)) for c in range(40)))
    assert main(["compare", str(tmp_path / "run"), "--real", str(near), "--bootstrap", "30", "--out", str(tmp_path / "rep2")]) == 0
    assert "interval lies above" not in capsys.readouterr().err


def test_twitter16_loads_with_the_counts_its_source_lists(shared_data: Path):
    table = load_cascades(shared_data / "twitter16_cascades")
    notes = table.attrs["notes"]
    assert len(table) == 818 and notes["lines"] == 363_536
    assert notes["duplicate_lines"] == 10_549 and notes["self_loops"] == 450  # as SOURCE.txt counts them
    assert notes["root_not_source_tweet"] == 9
    assert 2_000 < notes["lines_child_earlier_than_parent"] < 2_400  # "~2.2k" in SOURCE.txt
    assert table["cascade_size"].between(20, 3_100).all() and table["depth"].median() == 3


def test_sizes_only_csv_and_its_errors(tmp_path: Path):
    path = tmp_path / "sizes.csv"
    path.write_text("cascade_id,size\na,1\nb,4\nc,12\n")
    table = load_cascades(path)
    assert table["cascade_size"].tolist() == [1, 4, 12] and table["depth"].isna().all() and table["half_time"].isna().all()
    path.write_text("cascade_id,size\na,1\nb,2.5\n")
    with pytest.raises(DataError, match=r"sizes.csv:3: size '2.5' is not a whole number from 1 up"):
        load_cascades(path)


def random_trees(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    size = rng.geometric(0.3, n)
    return pd.DataFrame({"cascade_id": np.arange(n).astype(str), "cascade_size": size,
                         "depth": np.minimum(size - 1, rng.integers(0, 6, n)),
                         "half_time": rng.exponential(30.0, n)})  # fmt: skip


def test_min_size_compares_both_sides_from_the_same_cut(tmp_path: Path, capsys):
    sim, real = random_trees(400, 1), random_trees(300, 2)
    columns = ["metric", "ks_overall", "ks_matched", "floor_overall", "n_sim", "n_real"]
    cut = compare(sim, real, min_size=3, bootstrap=20, floor_splits=5)
    filtered = compare(sim[sim.cascade_size >= 3], real[real.cascade_size >= 3], min_size=1, bootstrap=20, floor_splits=5)
    pd.testing.assert_frame_equal(cut.table[columns], filtered.table[columns])
    assert cut.table.loc[0, "n_sim"] == (sim.cascade_size >= 3).sum() < len(sim)
    # real data without small cascades was cut: the cut is read from it, applied to both sides and stated
    auto = compare(sim, real[real.cascade_size >= 4], bootstrap=0, floor_splits=0)
    assert auto.table.loc[0, "n_sim"] == (sim.cascade_size >= 4).sum()
    assert auto.settings["size cut"].startswith("4 nodes and more, read from the real data")
    # the command: --min-size on the files equals comparing the pre-filtered files
    for name, table in (("sim", sim), ("real", real)):
        (tmp_path / f"{name}.csv").write_text("cascade_id,size\n" + "".join(f"{i},{s}\n" for i, s in zip(table.cascade_id, table.cascade_size)))
        kept = table[table.cascade_size >= 3]
        (tmp_path / f"{name}_cut.csv").write_text("cascade_id,size\n" + "".join(f"{i},{s}\n" for i, s in zip(kept.cascade_id, kept.cascade_size)))
    outputs = []
    for args in (["sim.csv", "--real", "real.csv", "--min-size", "3"], ["sim_cut.csv", "--real", "real_cut.csv", "--min-size", "1"]):
        assert main(["compare", str(tmp_path / args[0]), "--real", str(tmp_path / args[2]), *args[3:], "--json", "--bootstrap", "10"]) == 0
        outputs.append(json.loads(capsys.readouterr().out)["metrics"])
    assert outputs[0] == outputs[1] and outputs[0][0]["n_real"] == (real.cascade_size >= 3).sum()
    assert main(["compare", str(tmp_path / "sim.csv"), "--real", str(tmp_path / "real.csv"), "--min-size", "500"]) == 2
    assert "--min-size 500: no real cascade has 500 nodes or more" in capsys.readouterr().err
    # no simulated cascade at the cut: every distance is 1, and the settings say why
    far = compare(sim.assign(cascade_size=1), real, min_size=2, bootstrap=0, floor_splits=3)
    assert far.table.set_index("metric").loc[["cascade_size", "depth"], "ks_overall"].tolist() == [1.0, 1.0]
    assert far.score(("cascade_size", "depth")) == 1.0 and far.table.loc[0, "floor_overall"] < 0.3
    assert "no simulated cascade at the cut" in far.settings


def test_half_time_in_minutes_and_skipped_without_spread():
    sim, real = random_trees(200, 3), random_trees(200, 4)
    sim.attrs["time_unit"], real.attrs["time_unit"] = "minutes", "seconds"
    result = compare(sim, real, metrics=("cascade_size", "half_time"), bootstrap=0, floor_splits=0)
    row = result.table.set_index("metric").loc["half_time"]
    assert row.ks_overall == stats.ks_2samp(sim["half_time"], real["half_time"] / 60).statistic  # seconds -> minutes
    assert result.settings["half_time scale"] == "minutes"
    flat = sim.assign(half_time=0.0)
    skipped = compare(flat, real, metrics=("cascade_size", "half_time"), bootstrap=0, floor_splits=0)
    assert pd.isna(skipped.table.set_index("metric").loc["half_time", "ks_overall"])
    assert "no spread in time" in skipped.settings["half_time"]
    # a run's tables without a time section: a step counts as 60 minutes
    assert "steps x" in in_minutes(sim, {"name": "x"})[1]["half_time"]
    assert (in_minutes(sim, {"name": "x"})[0]["half_time"] == sim["half_time"] * 60).all()


def test_reach_per_follower_of_sequences_and_runs(tmp_path: Path):
    path = tmp_path / "seq.csv"
    path.write_text("cascade_id,event_index,time_s,magnitude_followers,user\n1,0,0,1000,a\n1,1,60,200,b\n1,2,90,800,c\n2,0,0,50,d\n")
    table = read_event_sequences(path).set_index("cascade_id")
    assert table["shares"].tolist() == [2, 0] and table["audience"].tolist() == [2000, 50]
    figures = reach_per_follower(table.reset_index(), min_shares=2)
    assert figures["pooled"] == 2 / 2050 and figures["median_large"] == 2 / 2000 and figures["never_shared"] == 0.5
    spec = small_scenario(steps=6)
    run(Scenario.from_dict(spec), out=tmp_path / "run")
    trees = read_run(tmp_path / "run")
    assert trees["audience"].notna().all() and trees.attrs["time_unit"] == "minutes"
    result = compare(tmp_path / "run", path, bootstrap=0, floor_splits=0, min_shares=2)
    reach = result.reach.set_index("figure")
    assert reach.loc["pooled", "real"] == 2 / 2050
    assert reach.loc["pooled", "sim"] == trees["shares"].sum() / trees["audience"].sum() > 0


def test_auspol_reach_per_follower_as_its_source_gives(shared_data: Path):
    table = load_cascades(shared_data / "auspol_retweet_cascades")
    figures = reach_per_follower(table, min_shares=50)
    assert round(figures["pooled"], 5) == 0.00014  # 0.014% pooled
    assert round(figures["median_large"], 5) == 0.00039 and figures["large_cascades"] == 13  # ~0.039% at >= 50
    assert round(float((table["shares"] == 0).mean()), 2) == 0.49  # 49% never retweeted


def test_a_runs_half_times_are_read_in_minutes_as_its_scenario_says(tmp_path: Path):
    spec = small_scenario(steps=6, time={"step_minutes": 15})
    res = run(Scenario.from_dict(spec), out=tmp_path / "run")
    trees = read_run(tmp_path / "run")
    assert trees.attrs["time_unit"] == "minutes" and "time section" in trees.attrs["notes"]["half_time"]
    assert trees["half_time"].tolist() == res.cascades["half_time"].tolist()  # already minutes: not converted again
    assert (trees["half_time"] % 15 == 0).all() and trees["half_time"].max() > 0


def test_ks_distance_is_scipys_statistic_to_the_last_bit_with_ties_and_unequal_sizes():
    # Calibrations use this numpy KS instead of scipy.stats (a third of a second to import at every start): the
    # figures they report must not move by a bit.
    from scipy import stats

    rng = np.random.default_rng(7)
    for trial in range(400):
        n, m = rng.integers(1, 300, 2)
        a = rng.integers(0, rng.integers(2, 30), n).astype(float)  # heavy ties
        b = rng.random(m) * 20 if trial % 2 else rng.integers(0, 12, m).astype(float)
        assert ks(a, b) == stats.ks_2samp(a, b, method="asymp").statistic
    assert ks(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0 and ks(np.array([0.0]), np.array([1.0])) == 1.0
