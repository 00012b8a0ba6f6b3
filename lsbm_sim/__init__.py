"""lsbm-sim: agent-based social simulation driven by a Large Social Behavior Model.

>>> from lsbm_sim import run
>>> res = run("scenarios/eco_product_launch.yaml", seed=7)  # doctest: +SKIP
>>> res.items  # doctest: +SKIP

The names below are imported when first used (PEP 562 `__getattr__`), not with the package: so the scorers and
the fine-tuning code (`lsbm_sim.behavior.hf`, `lsbm_sim.bft`) import on a GPU machine that has torch and
transformers but neither Mesa nor pydantic, which only the simulation and the scenario schema need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_HOMES = {
    "UserAgent": "lsbm_sim.engine.agents",
    "BehaviorModel": "lsbm_sim.behavior",
    "BehaviorQuery": "lsbm_sim.behavior",
    "QueryBatch": "lsbm_sim.behavior",
    "SocialContext": "lsbm_sim.behavior",
    "DataError": "lsbm_sim.errors",
    "LsbmError": "lsbm_sim.errors",
    "ScenarioError": "lsbm_sim.errors",
    "SocialModel": "lsbm_sim.engine.model",
    "run": "lsbm_sim.engine.runner",
    "SimulationResult": "lsbm_sim.analysis.results",
    "load_results": "lsbm_sim.analysis.results",
    "Scenario": "lsbm_sim.scenario",
    "replicate": "lsbm_sim.studies.replications",
    "plot_replications": "lsbm_sim.studies.replications",
    "explain": "lsbm_sim.studies.explain",
    "optimize": "lsbm_sim.studies.optimize",
}
"""Each public name and the module it lives in."""

__all__ = sorted(_HOMES)

if TYPE_CHECKING:
    from lsbm_sim.engine.agents import UserAgent
    from lsbm_sim.behavior import BehaviorModel, BehaviorQuery, QueryBatch, SocialContext
    from lsbm_sim.errors import DataError, LsbmError, ScenarioError
    from lsbm_sim.engine.model import SocialModel
    from lsbm_sim.engine.runner import run
    from lsbm_sim.analysis.results import SimulationResult, load_results
    from lsbm_sim.studies.explain import explain
    from lsbm_sim.studies.optimize import optimize
    from lsbm_sim.studies.replications import plot_replications, replicate
    from lsbm_sim.scenario import Scenario


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'lsbm_sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # later look-ups find it without coming here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
