"""The scenarios shipped with lsbm-sim: listed with a line each, and found by name.

    >>> sorted(shipped_scenarios())[:2]
    ['eco_product_launch', 'headline_ab_test']
    >>> find_scenario("platform_day").name
    'platform_day.yaml'

They live in the package (`lsbm_sim/scenarios/`), so `pip install lsbm-sim` brings them; in a source checkout that
folder is a link to the top-level `scenarios/`, the one copy that is edited.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from lsbm_sim.errors import LsbmError

SHIPPED_DIR = Path(str(resources.files("lsbm_sim") / "scenarios"))


def shipped_scenarios() -> dict[str, Path]:
    """Every shipped scenario by name (its file name without .yaml), in name order."""
    return {path.stem: path for path in sorted(SHIPPED_DIR.glob("*.yaml"))}


def find_scenario(scenario: str | Path) -> Path:
    """A scenario file: the path given when it exists, else the shipped scenario of that name."""
    path = Path(scenario)
    if path.exists():
        return path
    shipped = shipped_scenarios()
    name = path.name.removesuffix(".yaml") if path.parent == Path(".") else None
    if name in shipped:
        return shipped[name]
    raise LsbmError(
        f"{scenario}: scenario file not found, and no shipped scenario has that name "
        f"(shipped: {', '.join(shipped)}; `lsbm-sim scenarios` describes them)"
    )


def sentences(text: str) -> list[str]:
    """A text's sentences (split after . ? ! before a capital or a quote), whitespace folded."""
    return [s for s in re.split(r"(?<=[.?!])\s+(?=[A-Z\"'`])", " ".join(text.split())) if s]


def question(spec) -> str:
    """What a scenario asks: its `question` field, else the questions its description asks."""
    if spec.question:
        return " ".join(spec.question.split())
    return " ".join(s for s in sentences(spec.description) if s.endswith("?"))


def one_line(spec) -> str:
    """A scenario in a line: its question, else its description's first sentence."""
    return question(spec) or next(iter(sentences(spec.description)), "")
