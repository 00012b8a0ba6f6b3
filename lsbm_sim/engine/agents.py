"""One simulated person, as a Mesa agent: the user's handle on that person.

The state lives in arrays owned by the model (a million people cost array operations, not a million Python
calls); a `UserAgent` reads its persona, counters and history from them. Subclass it to add behaviour: a
subclass that defines `step()` or `on_reaction()` has it called for its own agents only.

>>> class Skeptic(UserAgent):
...     def on_reaction(self, post_id, reaction, sharer):
...         if reaction == "share":
...             self.shared_posts.append(post_id)
"""

from __future__ import annotations

import itertools
import weakref
from typing import TYPE_CHECKING

import mesa
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from lsbm_sim.engine.model import SocialModel


class _AgentNumbers(weakref.WeakKeyDictionary):
    """Each model's counter of agent numbers, held weakly. Mesa 3 keeps these counters in a class-level dict keyed
    by the model itself, so every model ever built stays alive with all its arrays: a sweep or a calibration
    running one model after another in a process grew by the size of each (0.2 GB a run of 30,000 people)."""

    def __getitem__(self, model):
        try:
            return super().__getitem__(model)
        except KeyError:
            counter = itertools.count(1)
            self[model] = counter
            return counter


class UserAgent(mesa.Agent):
    """A person in the simulation. `agent_id` is their row in the model's arrays and the event log."""

    model: SocialModel
    _ids = _AgentNumbers()  # replaces mesa.Agent._ids (see _AgentNumbers)

    def __init__(self, model: SocialModel, agent_id: int):
        # A person added by hand before the model made its own agents (it makes them when first asked for) is
        # numbered after them, as it would have been.
        make_pending = getattr(model, "_make_pending_agents", None)
        if make_pending is not None:
            make_pending()
        super().__init__(model)
        self.agent_id = int(agent_id)

    # Hooks. The model calls them only for agent classes that override them.
    def on_reaction(self, post_id: str, reaction: str, sharer: int | None) -> None:
        """Called after this person reacted to a post (any reaction, `ignore` included). `sharer`: the agent
        whose share showed them the post, or None for a promoted or recommended post."""

    def step(self) -> None:
        """Called once per step, after every reaction of the step has been applied."""

    # What a user reads.
    @property
    def persona(self) -> str:
        return self.model.population.personas[self.model.population.archetype[self.agent_id]]

    @property
    def traits(self) -> dict:
        return self.model.population.traits.iloc[self.agent_id].to_dict()

    @property
    def activity(self) -> float:
        return float(self.model.population.activity[self.agent_id])

    @property
    def followers(self) -> np.ndarray:
        """Agents who see what this person shares."""
        return self.model.network.followers_of(self.agent_id)

    @property
    def following(self) -> np.ndarray:
        """Agents whose shares this person sees."""
        return self.model.network.following_of(self.agent_id)

    @property
    def counts(self) -> dict[str, int]:
        """Exposures and reactions so far, e.g. {'exposures': 12, 'like': 2, 'share': 1, 'comment': 0}."""
        m = self.model
        out = {"exposures": int(m.agent_exposures[self.agent_id])}
        out.update({r: int(c[self.agent_id]) for r, c in m.agent_reaction_counts.items()})
        return out

    @property
    def history(self) -> pd.DataFrame:
        """This person's rows of the event log so far."""
        events = self.model.events_so_far()
        return events[events["agent_id"] == self.agent_id].reset_index(drop=True)

    def __repr__(self) -> str:
        return f"UserAgent({self.agent_id}: {self.persona!r})"
