"""Behavior models: "how would this person react to this post?"

`make_behavior_model(spec, scenario)` builds the backend a scenario names. Language-model backends are imported
only when chosen, so that a missing optional dependency (vLLM) matters only to those who use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lsbm_sim.behavior.base import (
    DEFAULT_REACTIONS,
    BehaviorModel,
    BehaviorModelBase,
    BehaviorModelError,
    BehaviorQuery,
    QueryBatch,
    SocialContext,
)
from lsbm_sim.behavior.broker import Broker

if TYPE_CHECKING:
    from lsbm_sim.scenario import BehaviorSpec, Scenario

__all__ = [
    "DEFAULT_REACTIONS",
    "BehaviorModel",
    "BehaviorModelBase",
    "BehaviorModelError",
    "BehaviorQuery",
    "Broker",
    "QueryBatch",
    "SocialContext",
    "make_behavior_model",
]


def make_behavior_model(spec: BehaviorSpec, scenario: Scenario | None = None) -> BehaviorModel:
    """The behavior model a scenario's `behavior` section describes.

    Each backend class has `from_spec(spec, resolve)`, where `resolve` turns a path written in the scenario into
    one relative to the scenario file's folder.
    """
    from pathlib import Path

    resolve = scenario.resolve if scenario is not None else (lambda p: Path(p).expanduser())
    backend = spec.backend
    if backend == "surrogate":
        from lsbm_sim.behavior.surrogate import SurrogateModel as cls
    elif backend == "independent_cascade":
        from lsbm_sim.behavior.classic import IndependentCascadeModel as cls
    elif backend == "linear_threshold":
        from lsbm_sim.behavior.classic import LinearThresholdModel as cls
    elif backend == "constant":
        from lsbm_sim.behavior.classic import ConstantModel as cls
    elif backend == "hf" and spec.factorized is not None:
        from lsbm_sim.behavior import factorized

        return factorized.from_spec(spec, resolve)
    elif backend == "hf":
        from lsbm_sim.behavior.hf import HFScorer as cls
    elif backend == "vllm":
        from lsbm_sim.behavior.vllm import VLLMScorer as cls
    elif backend == "openai":
        from lsbm_sim.behavior.openai import OpenAIScorer as cls
    else:  # the schema's Literal makes this unreachable; kept for direct callers
        raise ValueError(f"unknown behavior backend {backend!r}")
    return cls.from_spec(spec, resolve)
