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


def test_post_table_and_cascade_view_redraw_after_each_step():
    from mesa.visualization.utils import update_counter

    model = small_model()
    calls = {"table": 0, "cascade": 0}
    items_table, cascade = model.items_table, app.largest_cascade

    def counted_table():
        calls["table"] += 1
        return items_table()

    def counted_cascade(m):
        calls["cascade"] += 1
        return cascade(m)

    model.items_table = counted_table
    app.largest_cascade = counted_cascade
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            solara.render(app.PostTable(model), handle_error=False)
            solara.render(app.CascadeView(model), handle_error=False)
            before = dict(calls)
            model.step()
            update_counter.value += 1  # what SolaraViz does after a step
    finally:
        app.largest_cascade = cascade
    assert calls["table"] > before["table"] and calls["cascade"] > before["cascade"]


def test_the_page_opens_the_scenario_as_written(tmp_path):
    import yaml
    from conftest import small_scenario

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(small_scenario(population={"size": 350, "activity": 0.5},
                                                  feed={"policy": "random", "size": 4})))  # fmt: skip
    model = app.AppModel(scenario=str(path), seed=2)
    assert model.num_agents == 350 and model.scenario.feed.policy == "random" and model.scenario.feed.size == 4
    assert app.scenario_settings(str(path)) == {"feed_policy": "random", "feed_size": 4, "population_size": 350}
