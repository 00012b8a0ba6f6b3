"""The scenario schema: defaults, errors that name the field, overrides by dotted path, relative paths."""

from pathlib import Path

import pytest
from conftest import small_scenario

from lsbm_sim.errors import ScenarioError
from lsbm_sim.scenario import BetaActivity, Scenario


def test_minimal_scenario_gets_documented_defaults():
    s = Scenario.from_dict({"population": {"size": 10}, "content": [{"id": "a", "text": "hi"}]})
    assert s.feed.policy == "chronological" and s.feed.size == 10
    assert s.behavior.backend == "surrogate"
    assert s.behavior.reactions == ["ignore", "like", "share", "comment"]
    assert s.network.kind == "barabasi_albert"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"bogus": 1}, "bogus", "unknown field"),
        ({"population": {"size": -5}}, "population.size", "greater than 0"),
        ({"population": {"size": "many"}}, "population.size", "valid integer"),
        ({"population": {"size": 10, "activity": 1.5}}, "population.activity", "less than or equal to 1"),
        ({"network": {"kind": "small_world"}}, "network.kind", "barabasi_albert"),
        ({"feed": {"policy": "chronological", "size": 0}}, "feed.size", "greater than 0"),
        ({"behavior": {"backend": "independent_cascade"}}, "behavior", "behavior.p"),
        ({"behavior": {"backend": "independent_cascade", "p": 2}}, "behavior.p", "less than or equal to 1"),
        ({"content": []}, "content", "at least 1"),
        ({"steps": 1}, "content[1].step", "not before the last step"),
    ],
)
def test_bad_fields_are_named(change, field, words):
    with pytest.raises(ScenarioError) as err:
        Scenario.from_dict(small_scenario(**change), source="s.yaml")
    message = str(err.value)
    assert field in message and words in message
    assert message.startswith("s.yaml: ")


def test_interventions_must_name_existing_posts():
    data = small_scenario(interventions=[{"kind": "label", "step": 1, "item": "nope", "text": "False."}])
    with pytest.raises(ScenarioError, match=r"interventions\[0\]\.item: no post with id 'nope'"):
        Scenario.from_dict(data)


def test_activity_distribution_is_parsed():
    s = Scenario.from_dict(small_scenario(population={"size": 5, "activity": {"distribution": "beta", "a": 2, "b": 3}}))
    assert isinstance(s.population.activity, BetaActivity)
    with pytest.raises(ScenarioError, match=r"population\.activity\.b: required field is missing"):
        Scenario.from_dict(small_scenario(population={"size": 5, "activity": {"distribution": "beta", "a": 2}}))


def test_overrides_set_any_field_by_dotted_path():
    s = Scenario.from_dict(small_scenario())
    t = s.with_overrides(["feed.size=3", "network.params.m=2", "content.0.text=Changed", "behavior.probabilities.like=0.2", "feed.size=null"])
    assert t.feed.size is None
    assert t.network.params == {"m": 2}
    assert t.content[0].text == "Changed"
    assert t.behavior.probabilities["like"] == 0.2
    assert s.feed.size == 5  # the original is untouched


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("feed.sise=3", "'feed.sise' is not a scenario field"),
        ("content.7.text=x", "'content.7' is not an index"),
        ("feed.size", "expected PATH=VALUE"),
        ("population.size=-1", "population.size: Input should be greater than 0"),
    ],
)
def test_bad_overrides_are_named(override, words):
    with pytest.raises(ScenarioError, match=words.replace("(", r"\(").replace(")", r"\)")):
        Scenario.from_dict(small_scenario()).with_overrides([override])


def test_yaml_round_trip_and_relative_paths(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "s.yaml"
    path.write_text(Scenario.from_dict(small_scenario(network={"kind": "edgelist", "path": "edges.txt"})).to_yaml())
    s = Scenario.from_yaml(path)
    assert s.resolve(s.network.path) == tmp_path / "sub" / "edges.txt"


def test_yaml_syntax_error_names_the_line(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nsteps: [1, 2\npopulation: {size: 3}\n")
    with pytest.raises(ScenarioError, match=r"broken.yaml: line \d+"):
        Scenario.from_yaml(path)


def test_a_post_cannot_be_promoted_before_it_is_posted():
    data = small_scenario(interventions=[{"kind": "promote", "step": 1, "item": "b", "k": 5}])
    with pytest.raises(ScenarioError, match=r"interventions\[0\].step: 'b' is promoted at step 1, before it is posted \(step 2\)"):
        Scenario.from_dict(data)


def test_set_paths_resolve_against_the_working_directory_and_file_paths_against_the_file(tmp_path, monkeypatch):
    from lsbm_sim.engine.validate import check_scenario

    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "edges.txt").write_text("a b\nb c\n")  # beside the scenario file
    (tmp_path / "edges.txt").write_text("a b\nb c\nc d\n")  # in the working directory
    scenario_file = folder / "s.yaml"
    scenario_file.write_text(
        "network: {kind: edgelist, path: edges.txt}\ncontent: [{id: a, text: hello}]\n"
        "behavior: {backend: constant, probabilities: {share: 0.1}}\n"
    )
    monkeypatch.chdir(tmp_path)
    from_file = Scenario.from_yaml(scenario_file)
    assert from_file.resolve(from_file.network.path) == folder / "edges.txt"
    assert check_scenario(from_file)["agents"] == 3
    overridden = Scenario.from_yaml(scenario_file, overrides=["network.path=edges.txt"])
    assert overridden.resolve(overridden.network.path) == tmp_path / "edges.txt"
    assert check_scenario(overridden)["agents"] == 4
    assert check_scenario(from_file, overrides=["network.path=edges.txt"])["agents"] == 4  # with_overrides too
    absolute = Scenario.from_yaml(scenario_file, overrides=[f"network.path={folder / 'edges.txt'}"])
    assert absolute.resolve(absolute.network.path) == folder / "edges.txt"
    # A path inside a section the scenario may leave out (posting is optional) is read from the command line too.
    with_pool = Scenario.from_yaml(scenario_file, overrides=["posting.rate=0.5", "posting.pool=pool.csv"])
    assert with_pool.resolve(with_pool.posting.pool) == tmp_path / "pool.csv"


SHIPPED = sorted((Path(__file__).resolve().parents[1] / "scenarios").glob("*.yaml")) + sorted(
    (Path(__file__).resolve().parents[1] / "scenarios" / "replications" / "worlds").glob("*.yaml")
)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_scenario_survives_being_written_out_and_read_back(path: Path):
    """Overrides, sweeps' workers, checkpoints and `to_yaml` all dump a scenario and validate the dump again: a
    dump that its own schema refuses breaks every one of them for that scenario."""
    import yaml

    shipped = Scenario.from_yaml(path)
    assert shipped.with_overrides([]) == shipped
    assert Scenario.from_dict(yaml.safe_load(shipped.to_yaml()), base_dir=path.parent) == shipped
