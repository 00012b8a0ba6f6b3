"""The README's Python examples and the SimulationResult docstring's run as written (in a scratch folder, with
the shipped scenarios beside them)."""

import re

from conftest import ROOT

from lsbm_sim import results


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def docstring_examples(doc: str) -> str:
    return "\n".join(re.sub(r"#\s*doctest:.*$", "", line.strip()[4:]) for line in doc.splitlines() if line.strip().startswith(">>> "))


def test_the_readmes_python_examples_run(tmp_path, monkeypatch):
    blocks = python_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 2
    (tmp_path / "scenarios").symlink_to(ROOT / "scenarios")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 (our own documentation)
    from lsbm_sim.agents import UserAgent

    assert isinstance(namespace["agent"], UserAgent)
    assert {"ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high"} <= set(namespace["summary"].columns)
    assert (tmp_path / "results" / "ab-sweep" / "sweep.parquet").is_file()

    exec(compile(docstring_examples(results.SimulationResult.__doc__), "SimulationResult", "exec"), namespace)  # noqa: S102
