"""The SolaraViz page renders, and its components show the model as it steps."""

import time
import warnings
from pathlib import Path

import pytest
import yaml
from conftest import small_scenario

with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    solara = pytest.importorskip("solara")
    from lsbm_sim import app


POOL = Path(__file__).resolve().parents[1] / "scenarios" / "data" / "posts.jsonl"


def small_model():
    return app.AppModel(population_size=300, feed_size=5, seed=3)


def render(element):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return solara.render(element, handle_error=False)


def texts(box) -> str:
    """Every text the rendered widgets show (markdown, alerts, labels), for asserting what a reader sees."""
    import ipywidgets

    found, stack = [], [box]
    while stack:
        widget = stack.pop()
        for name in ("value", "children", "items", "label", "v_model", "template"):
            value = getattr(widget, name, None)
            if isinstance(value, str):
                found.append(value)
            elif isinstance(value, (list, tuple)):
                stack.extend(v for v in value if isinstance(v, ipywidgets.Widget))
                found.extend(v for v in value if isinstance(v, str))
    return "\n".join(found)


def people_posting_scenario(tmp_path, **changes) -> Path:
    """A platform with no hand-listed posts: people post from a pool, so step 0 starts with no post at all."""
    path = tmp_path / "posting.yaml"
    path.write_text(yaml.safe_dump(small_scenario(name="posting", description="People post. Who reads them?",
                                                  content=[], posting={"rate": 0.02, "pool": str(POOL)}, **changes)))
    return path


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
    assert params["scenario"]["value"] == "given"  # the page names the scenario, not its path
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
    first, first_rc = render(app.Page())  # two visitors: two render contexts
    second, second_rc = render(app.Page())
    deadline = time.monotonic() + 60
    while len(built) < 2 and time.monotonic() < deadline:  # each builds its model in a thread of its own
        time.sleep(0.05)
    assert len(built) == 2 and built[0] is not built[1]
    assert all(m.num_agents == 120 for m in built)  # each opened the scenario the page was given
    built[0].step()
    assert (built[0].steps_completed, built[1].steps_completed) == (1, 0)
    while "Step 0 of 8" not in texts(second) and time.monotonic() < deadline:  # the page once the model is built
        time.sleep(0.05)
    assert "small" in texts(second) and "120 people" in texts(second)
    first_rc.close(), second_rc.close()


def test_the_page_says_what_it_builds_while_it_builds(tmp_path, monkeypatch):
    path = people_posting_scenario(tmp_path)
    monkeypatch.setenv("LSBM_APP_SCENARIO", str(path))
    box, rc = render(app.Loading(str(path)))
    shown = texts(box)
    assert "posting" in shown and "People post. Who reads them?" in shown and "Building the world: 300 people" in shown
    rc.close()


def test_a_platform_with_no_posts_yet_opens_and_steps(tmp_path, monkeypatch):
    """People post from a pool, so before the first step there is no post: the page shows that, not a traceback."""
    path = people_posting_scenario(tmp_path, steps=3)
    monkeypatch.setenv("LSBM_APP_SCENARIO", str(path))
    model = app.AppModel()
    assert len(model.item_ids) == 0
    empty = model.items_table()  # the columns exist before any post does
    assert empty.empty and {"item_id", "text", "reach", "like", "share", "cascade_size", "depth"} <= set(empty.columns)
    box, rc = render(app.SessionPage(model))
    assert "no posts yet" in texts(box) and "Step 0 of 3" in texts(box) and "People post. Who reads them?" in texts(box)
    from mesa.visualization.utils import update_counter

    for _ in range(3):
        model.step()
    update_counter.value += 1  # what SolaraViz does after a step
    shown = texts(box)
    assert "Finished after 3 steps" in shown and "no posts yet" not in shown
    rc.close()


def test_the_post_table_puts_the_figures_first_and_the_text_last():
    model = small_model()
    for _ in range(4):
        model.step()
    table = app.post_table(model)
    assert list(table.columns[:2]) == ["item_id", "reach"] and table.columns[-1] == "text"
    reactions = [r for r in model.reactions if r != "ignore"]
    assert list(table.columns[2:2 + len(reactions) + 2]) == [*reactions, "cascade_size", "depth"]
    assert table["reach"].is_monotonic_decreasing and len(table) <= app.TOP_POSTS


def test_the_scenario_selector_names_scenarios_not_paths(tmp_path, monkeypatch):
    path = people_posting_scenario(tmp_path)
    monkeypatch.setenv("LSBM_APP_SCENARIO", str(path))
    params = app.model_params()
    assert params["scenario"]["value"] == "posting"
    assert {"platform_day", "eco_product_launch", "posting"} <= set(params["scenario"]["values"])
    assert not any("/" in v for v in params["scenario"]["values"])
    assert app.AppModel(scenario="posting").scenario.name == "posting"  # what Reset builds from the selector


def test_set_overrides_apply_to_the_scenario_the_page_opened(tmp_path, monkeypatch):
    path = people_posting_scenario(tmp_path)
    monkeypatch.setenv("LSBM_APP_SCENARIO", str(path))
    monkeypatch.setenv("LSBM_APP_SET", '["population.size=150", "steps=2"]')  # what `lsbm-sim app --set` sets
    assert app.model_params()["population_size"]["value"] == 150
    model = app.AppModel()
    assert model.num_agents == 150 and model.scenario.steps == 2


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
