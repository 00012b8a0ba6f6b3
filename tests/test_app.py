"""The SolaraViz page renders, and its components show the model as it steps."""

import os
import warnings

import pytest

os.environ["LSBM_APP_NO_PAGE"] = "1"
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    solara = pytest.importorskip("solara")
    from lsbm_sim import app


def small_model():
    return app.AppModel(population_size=300, feed_size=5, seed=3)


def test_page_renders_with_the_controls():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        box, rc = solara.render(app.make_page(small_model()), handle_error=False)
    assert rc is not None and box is not None
    assert set(app.MODEL_PARAMS) == {"scenario", "feed_policy", "feed_size", "population_size"}


def test_components_follow_the_model_as_it_steps():
    model = small_model()
    for _ in range(6):
        model.step()
    post_id, tree = app.largest_cascade(model)
    assert post_id in model.item_ids and tree.number_of_nodes() >= 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        table_box, _ = solara.render(app.PostTable(model), handle_error=False)
        cascade_box, _ = solara.render(app.CascadeView(model), handle_error=False)
    assert table_box.children and cascade_box.children
    assert model.steps_completed == 6


def test_model_is_rebuilt_from_the_controls():
    model = app.AppModel(feed_policy="random", feed_size=3, population_size=400, seed=1)
    assert model.scenario.feed.policy == "random" and model.scenario.feed.size == 3 and model.num_agents == 400
