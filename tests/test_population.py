"""Personas: drawn from trait distributions into a bounded set of archetypes, or read from a CSV."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import small_scenario

from lsbm_sim import Scenario, SocialModel
from lsbm_sim.errors import DataError, ScenarioError
from lsbm_sim.world import population as population_module
from lsbm_sim.world.population import check_fits_in_memory, draw_population, memory_needed, read_population
from lsbm_sim.scenario import PopulationSpec


def test_drawn_traits_follow_their_weights_and_personas_are_archetypes():
    spec = PopulationSpec(traits={"leaning": {"left": 1, "right": 3}})
    pop = draw_population(spec, 20_000, np.random.default_rng(0))
    share_right = (pop.traits["leaning"] == "right").mean()
    assert abs(share_right - 0.75) < 0.02
    # Far fewer persona texts than people: archetypes are the distinct trait combinations.
    bound = 6 * 28 * 2 * 3  # age bands x pairs of 8 interests x leanings x susceptibility levels
    assert len(pop.personas) <= bound and pop.archetype.max() == len(pop.personas) - 1
    text = pop.personas[pop.archetype[0]]
    interests = pop.traits["interests"][0].split(";")
    assert text.startswith("Follows news about") and all(i in text for i in interests)
    assert len(set(interests)) == 2  # two distinct interests per person by default


def test_activity_distributions():
    beta = draw_population(PopulationSpec(activity={"distribution": "beta", "a": 2, "b": 8}), 5000, np.random.default_rng(1))
    assert abs(beta.activity.mean() - 0.2) < 0.01
    fixed = draw_population(PopulationSpec(activity=0.3), 10, np.random.default_rng(1))
    assert np.allclose(fixed.activity, 0.3)


def test_personas_from_csv_are_aligned_to_the_network_nodes(tmp_path: Path):
    (tmp_path / "edges.txt").write_text("alice bob\nbob carol\ncarol alice\n")
    (tmp_path / "people.csv").write_text(
        "node,persona,activity,department\n"
        "carol,A nurse who follows health news.,1.0,health\n"
        "alice,A teacher who follows science news.,0.5,school\n"
        "bob,A nurse who follows health news.,0.2,health\n"
    )
    data = small_scenario(
        population={"path": "people.csv"},
        network={"kind": "edgelist", "path": "edges.txt"},
        content=[{"id": "a", "text": "Flu season tips", "author": {"strategy": "community", "trait": "department", "value": "school"}}],
    )
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    model = SocialModel(Scenario.from_yaml(path))
    labels = model.network.node_labels
    assert labels == ["alice", "bob", "carol"]
    personas = [model.population.personas[a] for a in model.population.archetype]
    assert personas[labels.index("alice")].startswith("A teacher")
    assert model.population.activity.tolist() == pytest.approx([0.5, 0.2, 1.0])
    assert len(model.population.personas) == 2  # two distinct texts
    assert model.posts[0].authors.tolist() == [labels.index("alice")]


@pytest.mark.parametrize(
    ("csv", "words"),
    [
        ("persona\n", "no rows"),
        ("persona\nA nurse.\n\n   \n", "empty 'persona' text on line(s) [3, 4]"),
        ("persona,activity\nA nurse.,0.5\nA cook.,1.7\nA vet.,x\n", "column 'activity' must be a number in [0, 1] (line(s) [3, 4])"),
        ("persona,susceptibility\nA nurse.,huge\n", "column 'susceptibility' must be low, medium or high (line(s) [2])"),
        ("name\nA nurse.\n", "needs a 'persona' column or the trait columns"),
    ],
)
def test_bad_persona_files_name_the_lines(tmp_path: Path, csv: str, words: str):
    path = tmp_path / "people.csv"
    path.write_text(csv)
    with pytest.raises(DataError) as err:
        read_population(PopulationSpec(path=path), path, np.random.default_rng(0))
    assert words in str(err.value) and "people.csv" in str(err.value)


def test_real_email_network_with_department_personas(shared_data: Path, tmp_path: Path):
    folder = shared_data / "snap_email_eu_core"
    rows = [line.split() for line in (folder / "email-Eu-core-department-labels.txt").read_text().split("\n") if line.strip()]
    (tmp_path / "people.csv").write_text(
        "node,persona,department\n" + "".join(f"{n},Works in department {d} of a research institute.,{d}\n" for n, d in rows)
    )
    data = small_scenario(
        population={"path": str(tmp_path / "people.csv"), "activity": 0.5},
        network={"kind": "edgelist", "path": str(folder / "email-Eu-core.txt"), "directed": True},
        content=[{"id": "memo", "text": "New travel policy for all departments", "author": {"strategy": "community", "trait": "department", "value": "4"}}],
        steps=6,
    )
    model = SocialModel(Scenario.from_dict(data))
    model.run()
    assert model.num_agents == 1005 and model.network.directed
    assert model.result().items.loc[0, "reach"] > 0


def test_a_population_is_refused_exactly_when_its_estimated_peak_exceeds_the_machines_memory(monkeypatch):
    monkeypatch.setattr(population_module, "physical_memory", lambda: 24 * 2**30)
    largest = (24 * 2**30 - population_module.BASE_BYTES) // population_module.BYTES_PER_AGENT
    check_fits_in_memory(largest)  # fits: no error
    check_fits_in_memory(10_000_000)  # the living platform at ten million people was measured within 16 GB here
    with pytest.raises(ScenarioError, match=r"population.size: 17,[0-9,]+ people need about 24 GiB of memory; this machine has 24 GiB"):
        check_fits_in_memory(largest + 1)
    assert memory_needed(1_000_000) > 2.18 * 2**30  # a million people on the platform peaked at 2.18 GiB here
    monkeypatch.setattr(population_module, "physical_memory", lambda: None)  # a system that does not say
    check_fits_in_memory(10**12)


def test_the_agents_table_holds_each_persons_traits_as_plain_values():
    # The agents table gathers a categorical trait's categories by code (faster than to_numpy at a million rows):
    # the same values, of the same dtype, as to_numpy gives, missing values included.
    import pandas as pd

    from lsbm_sim.analysis.tables import plain_values

    for column in (pd.Series(pd.Categorical(["a", "b", None, "a"])), pd.Series(pd.Categorical([1, 2, 1])),
                   pd.Series(pd.Categorical([1.5, None])), pd.Series(["p", "q"])):  # fmt: skip
        expected, got = column.to_numpy(), plain_values(column)
        assert got.dtype == expected.dtype and pd.Series(got).equals(pd.Series(expected))
    model = SocialModel(Scenario.from_dict(small_scenario(steps=4, population={"size": 300})), seed=1)
    model.run()
    agents = model.result().agents
    for trait in ("age_band", "interests", "leaning", "susceptibility"):
        assert agents[trait].tolist() == model.population.traits[trait].astype(str).tolist()
