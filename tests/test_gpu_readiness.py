"""The GPU benchmarks run the first time on a bare GPU machine (issue #12): torch, transformers, peft, numpy,
pandas, pyarrow, safetensors and tokenizers (and what they depend on), but no Mesa, no pydantic, no scipy or
scikit-learn, and no network.

Two imitations of that machine: a subprocess in which importing those packages fails (a meta-path blocker in a
sitecustomize), and a fresh virtual environment holding only the eight packages and their dependencies in
which benchmarks/gpu_all.sh installs its wheels and runs both benchmarks' --tiny paths.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ABSENT_ON_GPU = ("mesa", "pydantic", "pydantic_core", "scipy", "sklearn")
IMAGE = ("torch", "transformers", "peft", "numpy", "pandas", "pyarrow", "safetensors", "tokenizers")

BLOCKER = """
import sys


class Absent:
    '''Makes importing {names} fail, as on a machine that lacks them.'''

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {names!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (absent on the GPU image)", name=name)
        return None


sys.meta_path.insert(0, Absent())
"""


def blocker_folder(folder: Path, names=ABSENT_ON_GPU) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(BLOCKER.format(names=tuple(names)))
    return folder


def test_scorers_and_fine_tuning_import_without_mesa_pydantic_scipy_or_sklearn(tmp_path):
    code = (
        "import lsbm_sim.behavior.hf, lsbm_sim.bft, lsbm_sim.bft.train, lsbm_sim.bft.evaluate\n"
        "from lsbm_sim.behavior.hf import HFScorer\n"
        "from lsbm_sim.world.population import persona_text\n"
        "from lsbm_sim.behavior.tiny_models import llama_3b_config\n"
        "import lsbm_sim\n"
        "try:\n"
        "    lsbm_sim.Scenario\n"
        "except ModuleNotFoundError as exc:\n"
        "    print('the schema needs', exc.name)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{blocker_folder(tmp_path / 'site')}{os.pathsep}{ROOT}"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "the schema needs pydantic" in done.stdout  # the blocker works: what does need pydantic cannot import


def linked_environment(folder: Path, roots=IMAGE + ("pip",), absent=("pydantic", "mesa")) -> Path:
    """A fresh venv (no system site-packages) holding `roots` and their dependencies, linked from this one.

    Linking instead of installing takes a second instead of minutes (torch alone is 700 MB) and gives the same
    versions. The dependency walk stops at `absent`: the GPU image has no pydantic even where this machine's
    typer asks for it (transformers uses typer only for its command line).
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    venv.EnvBuilder(with_pip=False, symlinks=True).create(folder)
    site = next((folder / "lib").glob("python3*/site-packages"))
    seen: set[str] = set()
    todo = [canonicalize_name(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen or name in absent:
            continue
        seen.add(name)
        distribution = importlib.metadata.distribution(name)
        tops = {Path(str(f)).parts[0] for f in distribution.files or () if not str(f).startswith("..")}
        for top in tops:
            source = Path(distribution.locate_file(top))
            if source.exists() and not (site / top).exists() and top != "__pycache__":
                (site / top).symlink_to(source)
        for text in distribution.requires or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(requirement.name))
    return folder / "bin" / "python"


@pytest.mark.slow
def test_gpu_all_installs_its_wheels_and_runs_both_tiny_benchmarks_in_a_bare_environment(tmp_path):
    wheels = tmp_path / "wheels"
    fetched = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_wheels.sh")],
        env={**os.environ, "PYVER": f"{sys.version_info.major}.{sys.version_info.minor}", "WHEEL_DIR": str(wheels),
             "PIP": f"{sys.executable} -m pip"},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if fetched.returncode != 0:
        pytest.skip(f"benchmarks/gpu_wheels.sh could not fetch the wheels here: {fetched.stderr.strip()[-300:]}")
    assert sum(p.stat().st_size for p in wheels.glob("*.whl")) < 5e6

    python = linked_environment(tmp_path / "bare")
    absent = subprocess.run([str(python), "-c", "import pydantic"], capture_output=True, text=True)
    assert absent.returncode != 0 and "No module named 'pydantic'" in absent.stderr
    out = tmp_path / "results"
    env = {
        **os.environ,
        "PYTHON": str(python),
        "WHEEL_DIR": str(wheels),
        "OUT": str(out),
        # The benchmarks run with pydantic blocked even once its wheels are installed: they must not need it. (Only
        # what the wheels bring is blocked: torch probes for scikit-learn with find_spec, which must answer "not
        # here" rather than fail, and it is not here: the environment lacks it.)
        "PYTHONPATH": str(blocker_folder(tmp_path / "blocker", ("mesa", "pydantic", "pydantic_core"))),
        "LLM_ARGS": "--prompts 48",
        "BFT_ARGS": "--steps 4 --batch-size 2",
    }
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_all.sh"), "--tiny"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=800)  # fmt: skip
    logs = {p.name: p.read_text()[-2000:] for p in out.glob("*.log")}
    assert done.returncode == 0, (done.stdout[-3000:], logs)
    versions = (out / "versions.txt").read_text()
    assert f"python {sys.version_info.major}.{sys.version_info.minor}" in versions and "CUDA device: none" in versions
    assert "installed from the wheels: annotated-types 0.7.0, pydantic 2.13.5" in versions
    import json

    llm, bft = json.loads((out / "gpu_llm.json").read_text()), json.loads((out / "gpu_bft.json").read_text())
    assert llm["prompts"] == 48 and llm["results"][0]["prompts_per_second"] > 0
    assert llm["factorized"]["texts"] > 0 and llm["factorized"]["head_rows"] == 48
    assert bft["steps"] == 4 and bft["evaluated_rows"] > 0 and "lsbm_behavior.json" in bft["export_files"]
