"""Fuzzing the scenario and `--set`: every document and value either validates or ends in one line and exit 2,
never a traceback. Bounded example counts keep it to seconds."""

import yaml
from conftest import small_scenario
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsbm_sim.cli import main

FIELDS = [
    "seed", "steps", "name", "population.size", "population.activity", "population.interests_per_agent",
    "population.traits.leaning", "network.kind", "network.params.m", "network.params.p", "network.directed",
    "content.0.text", "content.0.step", "content.0.author.strategy", "content.0.author.count", "content.1.id",
    "feed.policy", "feed.size", "feed.max_age", "behavior.backend", "behavior.reactions", "behavior.probabilities",
    "behavior.p", "interventions", "colour", "feed.size.x", "content.7.text",
]  # fmt: skip
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 400), st.sampled_from([0, -1, 2**31, 10**11, 1e308]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["all", "random", "constant", "independent_cascade", "edgelist", "node", "nan", "[1, 2]", "{a: 1}"]),
)  # fmt: skip
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


def check(code: int, err: str, path, field: str) -> None:
    assert "Traceback" not in err, err
    assert code == 0 or (code == 2 and err.startswith("error:")), (code, err)
    if code == 2:
        # One line; a value with several bad parts (a list of two bad reactions) gets one line per part, each
        # naming the file and the field.
        lines = err.strip().splitlines()
        assert len(lines) == 1 or all(line.startswith(f"{path}: {field}") for line in lines[1:]), err


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS), value=values)
def test_any_set_value_validates_or_is_one_line(tmp_path, capsys, field, value):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(small_scenario(population={"size": 120, "activity": 0.5})))
    text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    code = main(["validate", str(path), "--set", f"{field}={text}"])
    err = capsys.readouterr().err
    assert code in (0, 2) and "Traceback" not in err, (code, err)
    check(code, err, path, field)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from(["seed", "steps", "population", "network", "content", "feed", "behavior",
                                                "interventions", "extra"]), values, max_size=3))  # fmt: skip
def test_any_scenario_document_validates_or_is_one_message(tmp_path, capsys, changes):
    path = tmp_path / "doc.yaml"
    path.write_text(yaml.safe_dump({**small_scenario(population={"size": 120, "activity": 0.5}), **changes}))
    code = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    # Several bad fields are named one per line, each line the file and the field.
    assert code == 0 or (code == 2 and err.startswith("error:")), (code, err)
