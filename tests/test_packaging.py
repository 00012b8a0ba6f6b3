"""The shipped scenarios travel with the package: a wheel holds them and the files they read, and a scenario runs
by name from the installed package, far from any source checkout."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))


def files_named(spec: dict) -> set[str]:
    """The data files a scenario names (a path relative to the scenario, as `data/posts.jsonl` is)."""
    found = set()
    for key, value in (spec.items() if isinstance(spec, dict) else enumerate(spec if isinstance(spec, list) else [])):
        if isinstance(value, (dict, list)):
            found |= files_named(value)
        elif isinstance(value, str) and key in {"pool", "path", "personas", "cache"} and not value.startswith("/"):
            found.add(value)
    return found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the project (so that the build leaves nothing in the checkout)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    ignore = shutil.ignore_patterns(".venv", ".git", ".cache", "results", "build", "dist", "*.egg-info", "__pycache__")
    shutil.copytree(ROOT, source, symlinks=True, ignore=ignore)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(source),
                            "-w", str(work / "dist")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    (path,) = (work / "dist").glob("lsbm_sim-*.whl")
    return path


@pytest.mark.slow
def test_the_wheel_holds_every_shipped_scenario_and_the_files_it_reads(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert SCENARIOS
    for path in SCENARIOS:
        assert f"lsbm_sim/scenarios/{path.name}" in names, path.name
        for data in files_named(yaml.safe_load(path.read_text())):
            assert f"lsbm_sim/scenarios/{data}" in names, f"{path.name} reads {data}, which the wheel lacks"
    assert "lsbm_sim/scenarios/data/posts.jsonl" in names  # platform_day's pool: files_named must find it
    replications = sorted((ROOT / "scenarios" / "replications").rglob("*"))
    assert any(p.suffix == ".yaml" for p in replications)
    for path in replications:
        if path.is_file():
            inside = f"lsbm_sim/scenarios/{path.relative_to(ROOT / 'scenarios').as_posix()}"
            assert inside in names, f"the wheel lacks {inside}"
    assert not any(n.startswith("scenarios/") for n in names)  # inside the package, not a top-level folder


@pytest.mark.slow
def test_an_installed_package_lists_and_runs_a_shipped_scenario_by_name(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # what pip install puts in site-packages
    elsewhere = tmp_path / "elsewhere"  # no scenarios/ folder here: the name must come from the package
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    listed = subprocess.run([sys.executable, "-m", "lsbm_sim.cli", "scenarios"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    for path in SCENARIOS:
        assert path.stem in listed.stdout
    ran = subprocess.run([sys.executable, "-c", "import lsbm_sim, sys; from lsbm_sim.cli import main; "
                          "print(lsbm_sim.__file__); sys.exit(main(sys.argv[1:]))",
                          "run", "platform_day", "--out", "day", "--set", "population.size=300", "--steps", "2", "-q"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert ran.stdout.splitlines()[0].startswith(str(site))  # the installed copy ran, not the checkout
    assert (elsewhere / "day" / "manifest.json").is_file()
    # The landmark experiments run by name too, with the worlds and data their files name.
    replicated = subprocess.run([sys.executable, "-m", "lsbm_sim.cli", "replicate", "labels_pennycook2020",
                                 "--replications", "2", "--workers", "1", "--set", "population.size=300",
                                 "--set", "steps=4"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert replicated.returncode == 0, replicated.stderr[-3000:]
    assert "labels_pennycook2020" in replicated.stdout and "fit: labeled (share)" in replicated.stdout
