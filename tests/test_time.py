"""A step has a real duration (`time.step_minutes`): a post's age reaches the behavior model in minutes, and every
time column of the results comes in minutes."""

import numpy as np
import pytest
from conftest import small_scenario

from lsbm_sim import Scenario, SocialModel, run
from lsbm_sim.behavior.base import BehaviorQuery, SocialContext
from lsbm_sim.behavior.prompts import render_context
from lsbm_sim.errors import ScenarioError


def scenario(minutes: float | None, **changes) -> Scenario:
    doc = small_scenario(steps=10, population={"size": 400, "activity": 0.5}, **changes)
    if minutes is not None:
        doc["time"] = {"step_minutes": minutes}
    return Scenario.from_dict(doc)


def test_a_shorter_step_divides_every_time_column_and_changes_nothing_else():
    # The constant model does not read a post's age: the runs are the same but for the clock.
    hourly, quarterly = (run(scenario(m), seed=3) for m in (60, 15))
    assert hourly.events.equals(quarterly.events)
    for table in ("cascades", "items"):
        a, b = getattr(hourly, table), getattr(quarterly, table)
        assert (a["half_time"] > 0).any(), "no cascade spread over several steps: the check would be empty"
        np.testing.assert_allclose(b["half_time"], a["half_time"] / 4)
        assert a.drop(columns="half_time").equals(b.drop(columns="half_time"))


def test_the_default_step_is_an_hour():
    default, hourly = (run(scenario(m), seed=3) for m in (None, 60))
    assert default.cascades.equals(hourly.cascades)
    assert Scenario.from_dict(small_scenario()).time.step_minutes == 60


def test_the_behavior_model_is_told_a_posts_age_in_minutes():
    model = SocialModel(scenario(15), seed=1)
    model.step()
    model.step()
    model.step()  # step 2: post "a" (entered at step 0) is 30 minutes old, "b" just posted
    ages = dict(zip(model.item_ids, model.age_minutes(2).tolist()))
    assert ages == {"a": 30, "b": 0}


def test_sharing_fades_with_a_posts_age_in_real_time():
    from lsbm_sim.behavior.surrogate import SurrogateModel

    surrogate = SurrogateModel()
    persona, post = "Follows news about the environment.", "A new park opens downtown."
    ask = lambda minutes: surrogate.predict_proba([BehaviorQuery(persona, post, SocialContext(age=minutes))])[0]
    assert ask(0)[2] > ask(60)[2] > ask(240)[2]


def test_prompts_give_the_age_in_words():
    assert "Posted just now." in render_context(SocialContext(age=0))
    assert "Posted 30 minutes ago." in render_context(SocialContext(age=30))
    assert "Posted 4 hours ago." in render_context(SocialContext(age=240))


@pytest.mark.parametrize("value", [0, -15, "soon"])
def test_a_step_must_last_some_minutes(value):
    with pytest.raises(ScenarioError, match="time.step_minutes"):
        Scenario.from_dict(small_scenario(time={"step_minutes": value}))
