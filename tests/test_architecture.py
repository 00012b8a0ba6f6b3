"""The package's plan holds: imports run one way down (ARCHITECTURE.md), and the simulator never loads `bft`.

Every import in every module counts, at the top or inside a function, under `TYPE_CHECKING` or not: a lazy
import against the grain is still a dependency against the grain.
"""

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "lsbm_sim"

# Each part of the package and the parts it may import (itself always). Top to bottom: the faces, the studies,
# the engine, then the world, the behavior models and the analysis of results side by side (none imports another),
# and the foundation they all stand on. The fine-tuning pipeline (`bft`) stands beside the simulator: it uses the
# behavior models' prompts and scorers, and only a face may call it.
FOUNDATION = {"lsbm_sim.errors", "lsbm_sim.scenario", "lsbm_sim.catalog", "lsbm_sim.readers", "lsbm_sim.abtests",
              "lsbm_sim.vocabulary"}  # fmt: skip
MAY_IMPORT: dict[str, set[str]] = {
    "faces": {"studies", "bft", "engine", "world", "behavior", "analysis", "foundation"},
    "studies": {"engine", "world", "behavior", "analysis", "foundation"},
    "bft": {"behavior", "foundation"},
    "engine": {"world", "behavior", "analysis", "foundation"},
    "world": {"foundation"},
    "behavior": {"foundation"},
    "analysis": {"foundation"},
    "foundation": set(),
}
FACES = {"lsbm_sim", "lsbm_sim.cli", "lsbm_sim.app", "lsbm_sim.serve", "lsbm_sim.behavior.appeal_cli"}
SUBPACKAGES = ("studies", "bft", "engine", "world", "behavior", "analysis")


def part_of(module: str) -> str:
    """The part of the package a module (dotted name) belongs to."""
    if module in FACES:
        return "faces"
    if module in FOUNDATION:
        return "foundation"
    for name in SUBPACKAGES:
        if module == f"lsbm_sim.{name}" or module.startswith(f"lsbm_sim.{name}."):
            return name
    raise AssertionError(f"{module}: in no part of the plan; add it to a subpackage or to tests/test_architecture.py")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every lsbm_sim import in a module; `from lsbm_sim import x` names the module it means."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("lsbm_sim")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lsbm_sim"):
            if node.module == "lsbm_sim":  # a submodule by name, or a public name re-exported by the package
                found += [(node.lineno, f"lsbm_sim.{alias.name}") if (PACKAGE / alias.name).exists()
                          or (PACKAGE / f"{alias.name}.py").exists() else (node.lineno, "lsbm_sim")
                          for alias in node.names]  # fmt: skip
            else:
                found.append((node.lineno, node.module))
    return found


def forbidden_imports(sources: dict[str, str]) -> list[str]:
    """Every import in `sources` (module name -> its text) that runs against the plan, as a readable line."""
    problems = []
    for module, text in sorted(sources.items()):
        mine = part_of(module)
        for line, target in imported_modules(ast.parse(text)):
            theirs = part_of(target)
            if theirs != mine and theirs not in MAY_IMPORT[mine]:
                allowed = ", ".join(sorted(MAY_IMPORT[mine] | {mine}))
                problems.append(f"{module} line {line} imports {target} ({theirs}); {mine} may import only {allowed}")
    return problems


def package_sources() -> dict[str, str]:
    files = [p for p in PACKAGE.rglob("*.py") if "scenarios" not in p.relative_to(PACKAGE).parts]
    return {module_name(p): p.read_text(encoding="utf-8") for p in files}


def test_imports_run_one_way_down():
    assert forbidden_imports(package_sources()) == []


def test_an_import_against_the_grain_is_caught():
    sources = package_sources()
    sources["lsbm_sim.world.population"] += "\n\ndef _late():\n    from lsbm_sim.engine.model import SocialModel\n"
    sources["lsbm_sim.scenario"] += "\nfrom lsbm_sim.behavior.surrogate import FEATURES\n"
    sources["lsbm_sim.engine.model"] += "\nfrom lsbm_sim.bft.data import SplitSpec\n"
    problems = forbidden_imports(sources)
    assert len(problems) == 3, problems
    assert any(p.startswith("lsbm_sim.world.population line") and "lsbm_sim.engine.model (engine)" in p for p in problems)
    assert any(p.startswith("lsbm_sim.scenario line") and "foundation may import only foundation" in p for p in problems)
    assert any(p.startswith("lsbm_sim.engine.model line") and "(bft)" in p for p in problems)


def test_every_module_has_a_place_in_the_plan():
    parts = {module: part_of(module) for module in package_sources()}  # part_of raises for a module with no place
    assert set(parts.values()) == set(MAY_IMPORT)  # every part of the plan holds modules, and only those parts do
    try:
        part_of("lsbm_sim.somewhere_new")
    except AssertionError as exc:
        assert "in no part of the plan" in str(exc)
    else:
        raise AssertionError("a module outside the plan was given a place")


def test_every_public_function_and_class_says_what_it_does():
    """A reader meets a module through its public names: each has a docstring (what it takes and gives)."""
    missing = []
    for module, text in sorted(package_sources().items()):
        tree = ast.parse(text)
        if ast.get_docstring(tree) is None and not module.endswith("__main__"):
            missing.append(f"{module}: no module docstring")
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                if ast.get_docstring(node) is None:
                    missing.append(f"{module}.{node.name} (line {node.lineno})")
    assert missing == [], "\n".join(missing)
