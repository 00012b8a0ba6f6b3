"""The documentation site's generated pages and its navigation: the command-line reference has every command and
option, the scenario reference every field, the nav every page and notebook, and a notebook without its real data
is rendered saying so. (`mkdocs build --strict` itself runs in .ci/run, with the docs extra installed.)"""

import importlib.util
import re

import nbformat
import typer.main
import yaml
from conftest import ROOT

from lsbm_sim.cli import app
from lsbm_sim.scenario import Scenario

spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
hooks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hooks)


def leaf_commands(group, path):
    ctx = group.context_class(group, info_name=path[-1])
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if hasattr(command, "list_commands"):
            yield from leaf_commands(command, [*path, name])
        else:
            yield " ".join([*path, name]), command


def test_the_cli_reference_has_every_command_and_option():
    page = hooks.cli_reference()
    sections = dict(re.findall(r"^### `(lsbm-sim [^`]+)`\n(.*?)(?=^### |\Z)", page, flags=re.S | re.M))
    commands = dict(leaf_commands(typer.main.get_command(app), ["lsbm-sim"]))
    assert {"lsbm-sim run", "lsbm-sim sweep", "lsbm-sim calibrate", "lsbm-sim bft train", "lsbm-sim appeal fit"} <= set(commands)
    assert set(sections) == set(commands)
    for name, command in commands.items():
        for param in command.params:
            for option in param.opts if param.param_type_name == "option" else [param.name.upper()]:
                assert f"`{option}`" in sections[name], f"{name}: {option} is missing from the reference"
    assert "<!-- generated: cli -->" in (ROOT / "docs" / "reference" / "cli.md").read_text()


def test_the_scenario_reference_has_every_field():
    page = hooks.scenario_reference()
    # Every property name anywhere in the schema, read from pydantic's JSON schema (not from the page's walker).
    schema = Scenario.model_json_schema()
    names = set(schema["properties"])
    for definition in schema.get("$defs", {}).values():
        names |= set(definition.get("properties", {}))
    listed = {path.rsplit(".", 1)[-1] for path in re.findall(r"^\| `([^`]+)` \|", page, flags=re.M)}
    assert names <= listed, f"fields missing from the reference: {sorted(names - listed)}"
    for path in ("population.size", "feed.recommender", "behavior.factorized.full_prompt.share", "interventions[].k",
                 "content[].author.quantiles", "posting.text_column", "time.step_minutes", "results.events"):
        assert f"| `{path}` |" in page, path
    assert "<!-- generated: scenario -->" in (ROOT / "docs" / "reference" / "scenario.md").read_text()


def test_the_nav_lists_every_page_and_notebook():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", "#"))

    def entries(nav):
        for item in nav:
            for value in item.values() if isinstance(item, dict) else [item]:
                yield from entries(value) if isinstance(value, list) else [value]

    nav = set(entries(config["nav"]))
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    notebooks = {f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert nav == pages | notebooks


def test_a_notebook_without_its_real_data_is_rendered_saying_so(tmp_path, monkeypatch):
    monkeypatch.setattr(hooks, "SHARED_DATA", tmp_path / "no-shared-data")
    written = {p.name: nbformat.read(p, as_version=4) for p in hooks.render_notebooks(tmp_path / "out", execute=False)}
    assert set(written) == {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    note = written["real_cascades.ipynb"].cells[1].source
    assert "needs real data" in note and "twitter16_cascades" in note
    assert "LSBM_DOCS_EXECUTE=0" in written["seeding_strategy.ipynb"].cells[1].source


def test_the_benchmark_page_includes_all_of_results_md_under_its_own_title():
    page = hooks.benchmark_results()
    source = (ROOT / "benchmarks" / "RESULTS.md").read_text().splitlines()
    shown = page.splitlines()
    assert len(shown) == len(source)
    for original, line in zip(source, shown):
        assert line.lstrip("#\\") == original.lstrip("#\\"), line
    assert not any(re.match(r"#[^#]", line) for line in shown), "a line that Markdown would make a second page title"
    assert "<!-- generated: benchmark results -->" in (ROOT / "docs" / "benchmarks.md").read_text()
