"""Every code block of the README and the documentation site runs as written, in a scratch copy of the project's
layout (the shipped scenarios, and the real data beside it as `../shared/data`):

- `python` blocks are executed (a block with `title="name.py"` is also written to that file, as the page says);
- `bash` blocks run line by line: `lsbm-sim ...` through the command's own entry point, other lines in bash;
- `yaml` blocks are read as scenarios (a fragment is laid over a shipped scenario) and validated;
- `text` blocks are output; the first run's output on the getting-started page must be what the run prints.

A block that cannot run here says why in a `<!-- not-run: REASON -->` line just above it; those are listed in
NOT_RUN below, so that a new one is a decision made in this file, not a comment slipped into a page. Blocks that
read `../shared/data` are skipped, saying so, where the real data is absent (a fresh clone).
"""

import os
import re
import shlex
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SHARED_DATA

from lsbm_sim.analysis import results
from lsbm_sim.cli import main
from lsbm_sim.scenario import Scenario

DOCS = ROOT / "docs"

# (page, the first words of the block): why it is not run.
NOT_RUN = {
    ("index.md", "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && pip install -e . &&"): "installs",
    ("index.md", 'python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && pip install -e ".[test]"'): "the test suite",
    ("index.md", "lsbm-sim app platform_day"): "a web server (tests/test_browser.py opens it in Chromium)",
    ("how-to/ray.md", 'pip install -e ".[ray]"'): "installs",
    ("how-to/ray.md", "lsbm-sim sweep platform_day --grid feed.recommender=interest,popularity"): "needs a Ray cluster",
    ("how-to/checkpoints.md", "lsbm-sim run eco_product_launch --set population.size=3000 --steps 12 --checkpoint-every 4 --out results/eco-ckpt --resume"): "needs a run killed part-way",
    ("how-to/gpu.md", "lsbm-sim serve --model /models/lsbm-3b"): "needs a fine-tuned checkpoint and a GPU",
    ("how-to/gpu.md", "lsbm-sim bft prepare DATA.csv"): "needs your data and a GPU",
}

FENCE = re.compile(
    r"(?:^<!-- not-run: (?P<reason>[^\n]*?) -->\n)?^(?P<indent>[ ]*)```(?P<lang>\w*)(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=indent)```",
    flags=re.S | re.M,
)


def code_blocks(text: str) -> list[dict]:
    """The fenced blocks of a Markdown text in order: language, info (`title="..."`), body (dedented) and the
    not-run reason, if any."""
    return [{"lang": m["lang"], "info": m["info"].strip(), "reason": m["reason"],
             "body": textwrap.dedent("\n".join(line.removeprefix(m["indent"]) for line in m["body"].splitlines()))}
            for m in FENCE.finditer(text)]  # fmt: skip


def docs_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def shell_commands(body: str) -> list[str]:
    """A bash block's commands, continued lines joined."""
    return [line.strip() for line in body.replace("\\\n", " ").splitlines() if line.strip() and not line.lstrip().startswith("#")]


def python_blocks(text: str) -> list[str]:
    return [b["body"] for b in code_blocks(text) if b["lang"] == "python"]


def docstring_examples(doc: str) -> str:
    return "\n".join(re.sub(r"#\s*doctest:.*$", "", line.strip()[4:]) for line in doc.splitlines() if line.strip().startswith(">>> "))


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A working folder laid out as a checkout: scenarios/ here, the real data at ../shared/data."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "scenarios").symlink_to(ROOT / "scenarios")
    if SHARED_DATA.is_dir():
        (tmp_path / "shared").symlink_to(SHARED_DATA.parent)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("PWD", str(folder))  # as a shell in that folder has it
    return folder


def test_the_readmes_example_runs(project, capsys):
    readme = (ROOT / "README.md").read_text()
    blocks = python_blocks(readme)
    assert len(blocks) == 1, "the README keeps one short example; the others live in docs/"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 (our own documentation)
    printed = capsys.readouterr().out
    assert re.search(r"^label: reach [\d,]+, shares [\d,]+$", printed, flags=re.M), printed
    assert re.search(r"^no label: reach [\d,]+, shares [\d,]+$", printed, flags=re.M), printed
    exec(compile(docstring_examples(results.SimulationResult.__doc__), "SimulationResult", "exec"), namespace)  # noqa: S102


def test_the_readme_keeps_the_two_commands_and_links_to_pages_that_exist():
    readme = (ROOT / "README.md").read_text()
    for marker in ("main-command", "test-command"):
        assert f"<!-- {marker} -->" in readme and f"<!-- /{marker} -->" in readme
    # docs/concepts.md includes this section of the README (pymdownx.snippets) until it moves there.
    assert "<!-- --8<-- [start:default-holds] -->" in readme and "<!-- --8<-- [end:default-holds] -->" in readme
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert len(links) >= 10 and all((ROOT / link).is_file() for link in links), [l for l in links if not (ROOT / l).is_file()]


def test_every_docs_code_block_runs(project, capsys):
    """Every block of every page, in page order, in one project folder (later pages reuse earlier results)."""
    not_run, skipped, ran = {}, [], 0
    for page in docs_pages():
        name = page.relative_to(DOCS).as_posix()
        blocks = code_blocks(page.read_text())
        for i, block in enumerate(blocks):
            where = f"{name}, block {i + 1} ({block['lang'] or 'no language'})"
            if block["reason"] is not None:
                not_run[(name, block["body"].strip())] = block["reason"]
                continue
            if "../shared/data" in block["body"] and not SHARED_DATA.is_dir():
                skipped.append(where)
                continue
            if block["lang"] == "python":
                title = re.search(r'title="([^"]+)"', block["info"])
                if title:
                    Path(title[1]).write_text(block["body"])
                exec(compile(block["body"], where, "exec"), {})  # noqa: S102 (our own documentation)
            elif block["lang"] == "bash":
                for command in shell_commands(block["body"]):
                    capsys.readouterr()
                    run_shell(command, where, capsys)
                    if command == "lsbm-sim run eco_product_launch --out results/eco":
                        printed = capsys.readouterr()
                        check_first_run_output(printed.out + printed.err, blocks[i + 1], where)
            elif block["lang"] == "yaml":
                check_yaml(block["body"], where)
            elif block["lang"] != "text":
                pytest.fail(f"{where}: a block must say its language (python, bash, yaml, or text for output)")
            ran += 1
    unlisted = [key for key in not_run if not any(key[0] == page and key[1].startswith(start) for page, start in NOT_RUN)]
    unmarked = [key for key in NOT_RUN if not any(key[0] == page and body.startswith(key[1]) for page, body in not_run)]
    assert not unlisted, f"not-run blocks missing from NOT_RUN (add them there, with the reason): {unlisted}"
    assert not unmarked, f"NOT_RUN lists blocks the pages no longer mark not-run: {unmarked}"
    assert ran >= 20, ran  # an empty docs folder, or a parser that finds no block, fails here
    assert len(skipped) <= 4, skipped


def run_shell(command: str, where: str, capsys) -> None:
    if command.startswith("lsbm-sim "):
        args = shlex.split(os.path.expandvars(command), comments=True)[1:]  # $PWD as bash expands it
        code = main(args)
        if code != 0:
            printed = capsys.readouterr()
            pytest.fail(f"{where}: `{command}` exited {code}: {(printed.out + printed.err)[-2000:]}")
    else:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", command], capture_output=True, text=True)
        assert done.returncode == 0, f"{where}: `{command}` exited {done.returncode}: {done.stderr[-2000:]}"


def check_first_run_output(printed: str, shown: dict, where: str) -> None:
    """The page shows the first run's real output: its table rows, totals and story are what the run prints
    (timings and speeds aside). When the default model changes, rerun the command and paste its output."""
    assert shown["lang"] == "text", f"{where}: the first run's output should follow it as a text block"
    flat = " ".join(printed.split())
    lines = [line for line in shown["body"].splitlines()
             if "│" in line or line.startswith(("The question:", "This run says:", "One run,", "2 posts |"))]  # fmt: skip
    assert len(lines) >= 6
    for line in lines:
        assert " ".join(line.split()) in flat, f"{where}: the page shows a line the run does not print:\n{line}\nThe run printed:\n{printed}"


def check_yaml(body: str, where: str) -> None:
    """A whole scenario validates as it is; a fragment (a `behavior:` section, say) validates laid over a
    shipped scenario, each top-level section it gives replacing that scenario's."""
    data = yaml.safe_load(body)
    if "name" not in data:
        base = yaml.safe_load((ROOT / "scenarios" / "eco_product_launch.yaml").read_text())
        data = {**base, **data}
    try:
        Scenario.from_dict(data)
    except Exception as exc:  # the schema's message names the field
        pytest.fail(f"{where}: {exc}")


def test_the_docs_say_why_each_not_run_block_is_not_run():
    for page in docs_pages():
        for block in code_blocks(page.read_text()):
            if block["reason"] is not None:
                assert len(block["reason"]) > 10, f"{page.name}: a not-run block needs its reason"
