"""The names the scenario schema and the behavior models share: the reactions a person can have to a post, and
the features the embedded default's logistic head reads (`lsbm_sim.behavior.surrogate` says what each measures).

They live here, below both, so that validating a scenario never imports a behavior model.
"""

DEFAULT_REACTIONS: tuple[str, ...] = ("ignore", "like", "share", "comment")
"""The default reaction set. `ignore` comes first; `share` is the reaction that spreads a post."""

SURROGATE_FEATURES: tuple[str, ...] = (
    "similarity", "proof", "sharers", "labeled", "age", "seen", "promoted", "disposition", "appeal",
)  # fmt: skip
"""The default head's features, in the order of its coefficient vectors (`behavior.coefficients` names them)."""
