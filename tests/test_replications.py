"""Landmark experiments in silico: replication files are validated like scenarios, each shipped replication
runs small with the sign its design implies, and every effect's interval comes from runs paired by seed."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, small_scenario

from lsbm_sim import SocialModel
from lsbm_sim.cli import main
from lsbm_sim.errors import ScenarioError
from lsbm_sim.engine.feed import held_out
from lsbm_sim.studies.replications import (
    figure_of,
    gini,
    load_replication,
    paired_interval,
    plot_replications,
    replicate,
    run_replication,
    shipped_replications,
)

SHIPPED = sorted((ROOT / "scenarios" / "replications").glob("*.yaml"))


# ------------------------------------------------------------------------------------------ the engine's parts


def test_planted_likes_show_as_proof_but_not_as_likes():
    spec = small_scenario(behavior={"backend": "surrogate"}, steps=3)
    spec["content"][0]["initial_likes"] = 1
    planted = SocialModel(spec_from(spec), seed=5)
    spec["content"][0]["initial_likes"] = 0
    plain = SocialModel(spec_from(spec), seed=5)
    for model in (planted, plain):
        model.run()
    first = {name: m.result().events.query("step == 0 and item_id == 'a'") for name, m in (("planted", planted), ("plain", plain))}
    # The same people see the post first (the planted like moves no random draw), and each likes it more readily.
    assert first["planted"]["agent_id"].tolist() == first["plain"]["agent_id"].tolist()
    assert (first["planted"]["p_like"].to_numpy() > first["plain"]["p_like"].to_numpy()).all()
    items = planted.result().items.set_index("item_id")
    events = planted.result().events
    assert items.loc["a", "like"] == int((events.query("item_id == 'a'")["reaction"] == "like").sum())


def test_held_out_pairs_never_reach_the_feed_and_the_rest_do():
    spec = small_scenario(feed={"policy": "chronological", "size": 50}, steps=6,
                          behavior={"backend": "constant", "probabilities": {"like": 0.05, "share": 0.5}})
    spec["population"]["activity"] = 1.0
    spec["feed"]["hidden_shares"] = 0.5
    model = SocialModel(spec_from(spec), seed=5)
    model.run()
    events = model.result().events
    item = events["item_id"].map(model.item_index).to_numpy()
    hidden = held_out(5, events["agent_id"].to_numpy(), item, 0.5)
    assert len(events) > 100 and not hidden.any()  # only pairs that were not held out were shown a post
    again = SocialModel(spec_from(spec), seed=5)
    again.run()
    assert again.result().events.equals(events)  # the holdout is a function of the seed, person and post
    spec["feed"]["hidden_shares"] = 0.0
    everyone = SocialModel(spec_from(spec), seed=5)
    everyone.run()
    assert len(everyone.result().events) > 1.5 * len(events)


def test_the_holdout_is_a_fair_coin_per_pair_and_depends_on_the_seed():
    agents, items = np.repeat(np.arange(400), 50), np.tile(np.arange(50), 400)
    a, b = held_out(1, agents, items, 0.3), held_out(2, agents, items, 0.3)
    assert abs(a.mean() - 0.3) < 0.01 and abs(b.mean() - 0.3) < 0.01
    assert 0.05 < (a & b).mean() < 0.13  # independent across seeds: about 0.3 x 0.3
    assert not held_out(1, agents, items, 0.0).any() and held_out(1, agents, items, 1.0).all()


def spec_from(data: dict):
    from lsbm_sim import Scenario

    return Scenario.from_dict(data)


# -------------------------------------------------------------------------------------------- the statistics


def test_the_interval_is_the_paired_designs_and_breaking_the_pairs_widens_it():
    rng = np.random.default_rng(3)
    world = rng.normal(10.0, 3.0, size=30)  # what a seed's world does to both arms alike
    control = world + rng.normal(0, 0.2, size=30)
    treated = 1.2 * world + rng.normal(0, 0.2, size=30)
    effect, low, high = paired_interval(treated, control, "ratio")
    _, low_unpaired, high_unpaired = paired_interval(treated, control, "ratio", paired=False)
    assert low < effect < high and low < 1.2 < high
    assert (high - low) < 0.25 * (high_unpaired - low_unpaired)
    diff, dlow, dhigh = paired_interval(treated, control, "difference")
    assert dlow < diff < dhigh and np.isclose(diff, treated.mean() - control.mean())


def test_gini_and_figures():
    assert gini(np.array([5.0, 5.0])) == 0.0 and np.isnan(gini(np.zeros(3)))
    outcomes = pd.DataFrame({"arm": ["a", "a", "b", "b"], "condition": ["", "", "x", "x"],
                             "replication": [1, 0, 0, 1], "value": [2.0, 1.0, 3.0, 4.0]})  # fmt: skip
    assert figure_of(outcomes, "a").tolist() == [1.0, 2.0] and figure_of(outcomes, "b:x").tolist() == [3.0, 4.0]


# ------------------------------------------------------------------------------------------------ validation


def write(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load((ROOT / "scenarios" / "replications" / "muchnik2013_first_vote.yaml").read_text())
    data["scenario"] = str(ROOT / "scenarios" / "replications" / "worlds" / "social_news_site.yaml")
    data.update(changes)
    path = tmp_path / "rep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("changes, named", [
    ({"role": "check"}, "fits: a check is fitted to nothing"),
    ({"fits": None}, "fits: a replication with role 'fit'"),
    ({"effect": {"kind": "ratio", "treatment": "treatd", "control": "control"}}, "effect.treatment: no arm 'treatd'"),
    ({"outcome": {"metric": "median"}}, "outcome.metric"),
    ({"published": {"checked": True, "source": "abstract"}}, "published: give the published effect"),
    ({"published": {"effect": 1.3, "low": 1.2, "checked": True, "source": "abstract"}}, "published: give both low and high"),
    ({"arms": {"control": [], "treated": ["content.0.likes=1"]}}, "arms.treated: --set content.0.likes"),
    ({"set": ["feed.size=-3"]}, "feed.size"),
    ({"colour": "red"}, "colour: unknown field"),
])  # fmt: skip
def test_a_bad_field_is_named_in_one_message(tmp_path, changes, named):
    path = write(tmp_path, **changes)
    with pytest.raises(ScenarioError) as err:
        replicate([path], replications=2)
    assert named in str(err.value) and str(path) in str(err.value)


def test_the_command_line_names_a_bad_field_and_exits_2(tmp_path, capsys):
    path = write(tmp_path, replications=1)
    assert main(["replicate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "replications" in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2
    assert main(["replicate", "no_such_experiment"]) == 2
    assert main(["replicate", "muchnik2013_first_vote", "--replications", "1"]) == 2


def test_every_shipped_replication_is_valid_cited_and_listed(capsys):
    assert {p.stem for p in SHIPPED} == set(shipped_replications()) and len(SHIPPED) >= 7
    for path in SHIPPED:
        rep = load_replication(path.stem)
        assert rep.name == path.stem
        assert rep.paper.citation.count("(") >= 1 and rep.design and rep.published.source
        rep.arm_scenarios()  # every arm's overrides apply to its world
    assert main(["replicate", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(p.stem in listed for p in SHIPPED)


# ----------------------------------------------------------------------------------- each replication, small

SMALL = {
    # name: (overrides, replications, the sign the design implies: the effect is above 1 or below 1)
    "muchnik2013_first_vote": (["population.size=600", "steps=16"], 3, "above"),
    "muchnik2013_final_score": (["population.size=1500", "steps=24", "content.0.posts=80"], 6, "above"),
    "glenski2017": (["population.size=1500", "steps=24", "content.0.posts=80"], 6, "above"),
    "labels_pennycook2020": (["population.size=600", "steps=12"], 3, "below"),
    "salganik2006": (["population.size=1000", "steps=32"], 4, "above"),
    "huszar2022": (["population.size=3000", "steps=48"], 3, "above"),
    "bakshy2012": (["population.size=1500", "steps=32"], 3, "above"),
}


def test_the_small_runs_cover_every_shipped_replication():
    assert set(SMALL) == {p.stem for p in SHIPPED}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_replication_runs_small_with_its_sign_and_a_paired_interval(name, tmp_path):
    overrides, count, sign = SMALL[name]
    result = run_replication(name, replications=count, overrides=overrides, workers=1, out=tmp_path)
    rep = result.replication
    assert result.outcomes["replication"].nunique() == count
    assert (result.low > 1) if sign == "above" else (result.high < 1), (result.effect, result.low, result.high)
    treatment, control = (figure_of(result.outcomes, getattr(rep.effect, side)) for side in ("treatment", "control"))
    # The reported interval is the paired bootstrap over replications ...
    assert (result.effect, result.low, result.high) == paired_interval(treatment, control, rep.effect.kind)
    # ... and pairing matters: matched to other seeds' runs, the same figures give another interval.
    shuffled = paired_interval(treatment, np.roll(control, 1), rep.effect.kind)
    assert (shuffled[1], shuffled[2]) != (result.low, result.high)
    # Replication r of every arm ran with the same seed (common random numbers).
    seeds = result.outcomes.groupby("replication")["seed"].nunique()
    assert (seeds == 1).all()
    assert (tmp_path / "outcomes.parquet").is_file()


def test_the_command_prints_published_simulated_agreement_and_role_and_plots(tmp_path, capsys):
    plot = tmp_path / "replications.png"
    code = main(["replicate", "labels_pennycook2020", "--replications", "2", "--workers", "1", "--out", str(tmp_path / "out"),
                 "--plot", str(plot), "--set", "population.size=400", "--set", "steps=8"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "labels_pennycook2020" in out and "0.753" in out and "fit: labeled (share)" in out
    assert plot.stat().st_size > 5000
    table = pd.read_parquet(tmp_path / "out" / "replications.parquet")
    assert table.loc[0, "experiment"] == "labels_pennycook2020" and table.loc[0, "runs"] == 4
    fig = plot_replications(table)
    assert len(fig.axes) == 1


def test_python_api_is_exported():
    import lsbm_sim

    assert lsbm_sim.replicate is replicate and "replicate" in lsbm_sim.__all__
    done = subprocess.run([sys.executable, "-c", "import lsbm_sim.studies.replications, lsbm_sim; print(callable(lsbm_sim.replicate))"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert done.stdout.strip() == "True", done.stderr
