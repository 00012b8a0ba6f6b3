"""lsbm-sim: agent-based social simulation driven by a Large Social Behavior Model.

>>> from lsbm_sim import run
>>> res = run("scenarios/eco_product_launch.yaml", seed=7)  # doctest: +SKIP
>>> res.items  # doctest: +SKIP
"""

from lsbm_sim.agents import UserAgent
from lsbm_sim.behavior import BehaviorModel, BehaviorQuery, QueryBatch, SocialContext
from lsbm_sim.errors import DataError, LsbmError, ScenarioError
from lsbm_sim.explain import explain, optimize
from lsbm_sim.model import SocialModel, run
from lsbm_sim.results import SimulationResult, load_results
from lsbm_sim.scenario import Scenario

__version__ = "0.1.0"

__all__ = [
    "BehaviorModel",
    "BehaviorQuery",
    "DataError",
    "LsbmError",
    "QueryBatch",
    "Scenario",
    "ScenarioError",
    "SimulationResult",
    "SocialContext",
    "SocialModel",
    "UserAgent",
    "explain",
    "load_results",
    "optimize",
    "run",
]
