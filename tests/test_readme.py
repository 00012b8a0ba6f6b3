"""The README's Python examples and the SimulationResult docstring's run as written: in a scratch copy of the
project's layout (the shipped scenarios, and the real data beside it as `../shared/data`), after the README's own
commands that make the folders a block reads."""

import re
import shlex
import textwrap

from conftest import ROOT, SHARED_DATA

from lsbm_sim import results
from lsbm_sim.cli import main


def python_blocks(text: str) -> list[str]:
    # A block inside a list item is indented as a whole; it runs as written once that indent is removed.
    return [textwrap.dedent(block) for block in re.findall(r"```python\n(.*?)```", text, flags=re.S)]


def run_commands(text: str) -> dict[str, list[str]]:
    """The README's `lsbm-sim run ... --out FOLDER` commands (continued lines joined), as arguments by folder."""
    commands = {}
    for line in text.replace("\\\n", " ").splitlines():
        if line.startswith("lsbm-sim run ") and "--out " in line:
            args = shlex.split(line)[1:]
            commands[args[args.index("--out") + 1]] = args
    return commands


def docstring_examples(doc: str) -> str:
    return "\n".join(re.sub(r"#\s*doctest:.*$", "", line.strip()[4:]) for line in doc.splitlines() if line.strip().startswith(">>> "))


def test_the_readmes_python_examples_run(tmp_path, monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text()
    blocks = python_blocks(readme)
    assert len(blocks) >= 2
    project = tmp_path / "project"
    project.mkdir()
    (project / "scenarios").symlink_to(ROOT / "scenarios")
    if SHARED_DATA.is_dir():
        (tmp_path / "shared").symlink_to(SHARED_DATA.parent)
    monkeypatch.chdir(project)
    namespace: dict = {}
    skipped = []
    for block in blocks:
        if "../shared/data" in block and not SHARED_DATA.is_dir():
            skipped.append(block)
            continue
        for folder, args in run_commands(readme).items():  # the run a block reads, made as the README makes it
            if f'"{folder}"' in block and not (project / folder).exists():
                assert main(args) == 0, capsys.readouterr().err
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 (our own documentation)
    from lsbm_sim.agents import UserAgent

    assert isinstance(namespace["agent"], UserAgent)
    assert {"ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high"} <= set(namespace["summary"].columns)
    assert (project / "results" / "ab-sweep" / "sweep.parquet").is_file()
    assert len(skipped) <= 1

    exec(compile(docstring_examples(results.SimulationResult.__doc__), "SimulationResult", "exec"), namespace)  # noqa: S102


def test_the_docs_python_examples_run(tmp_path, monkeypatch):
    """Every Python block of the documentation site runs as written, from a project folder with the shipped
    scenarios, as the README's do."""
    blocks = [(page.name, block) for page in sorted((ROOT / "docs").glob("*.md")) for block in python_blocks(page.read_text())]
    assert blocks, "the docs have no Python example to run"
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    monkeypatch.chdir(tmp_path)
    for name, block in blocks:
        exec(compile(block, name, "exec"), {})  # noqa: S102 (our own documentation)
