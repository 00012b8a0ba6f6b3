"""The SolaraViz page renders, and its components show the model as it steps."""

import warnings

import pytest
import yaml
from conftest import small_scenario

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    solara = pytest.importorskip("solara")
    from lsbm_sim import app


def small_model():
    return app.AppModel(population_size=300, feed_size=5, seed=3)


def test_the_page_opens_the_scenario_it_was_given(tmp_path, monkeypatch):
    # Values unlike the defaults of the page's controls, so that a page that ignored the scenario would show.
    path = tmp_path / "given.yaml"
    path.write_text(yaml.safe_dump(small_scenario(population={"size": 260, "activity": 0.6},
                                                  feed={"policy": "random", "size": 3})))  # fmt: skip
    monkeypatch.setenv("LSBM_APP_SCENARIO", str(path))  # what `lsbm-sim app SCENARIO` sets
    assert app.default_scenario() == str(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        page = app.make_page()
        box, _ = solara.render(page, handle_error=False)
    model, params = page.args[0], page.kwargs["model_params"]
    assert model.scenario.name == "small" and model.num_agents == 260
    assert model.scenario.feed.policy == "random" and model.scenario.feed.size == 3
    assert params["scenario"]["value"] == str(path)
    assert (params["feed_policy"]["value"], params["feed_size"]["value"], params["population_size"]["value"]) == ("random", 3, 260)
    # The controls at their starting values rebuild the same world (SolaraViz calls the class with them).
    rebuilt = app.AppModel(**{name: p["value"] for name, p in params.items()})
    assert rebuilt.num_agents == 260 and rebuilt.scenario.feed.size == 3 and rebuilt.scenario.feed.policy == "random"
    assert box is not None


def test_each_browser_session_steps_its_own_model(tmp_path, monkeypatch):
    path = tmp_path / "given.yaml"
    path.write_text(yaml.safe_dump(small_scenario(population={"size": 120, "activity": 0.6})))
    monkeypatch.setenv("LSBM_APP_SCENARIO", str(path))
    built = []
    real = app.new_session_model

    def recorded():
        built.append(real())
        return built[-1]

    monkeypatch.setattr(app, "new_session_model", recorded)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        first, _ = solara.render(app.Page(), handle_error=False)  # two visitors: two render contexts
        second, _ = solara.render(app.Page(), handle_error=False)
    assert len(built) == 2 and built[0] is not built[1]
    assert all(m.num_agents == 120 for m in built)  # each opened the scenario the page was given
    built[0].step()
    assert (built[0].steps_completed, built[1].steps_completed) == (1, 0)
    assert first is not None and second is not None


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
