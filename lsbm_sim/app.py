"""The SolaraViz page: step through a scenario and watch posts spread.

    lsbm-sim app scenarios/eco_product_launch.yaml        (or: solara run lsbm_sim/app.py)

Controls pick the scenario, feed policy, feed size and population size, starting at the values the scenario
file sets; the page plots reactions and reach per step (from Mesa's DataCollector), lists the 20 posts of widest
reach with their cascade metrics, and draws the largest cascade tree so far. Each browser session has a model of
its own (`Page`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402

with warnings.catch_warnings():  # solara's hook checker complains about Mesa's own components at import
    warnings.simplefilter("ignore", UserWarning)
    import solara
    from mesa.visualization import SolaraViz, make_plot_component
    from mesa.visualization.utils import update_counter

from lsbm_sim.model import SocialModel  # noqa: E402

SCENARIO_DIR = Path(__file__).resolve().parents[1] / "scenarios"


def default_scenario() -> str:
    """The scenario the page opens: the one `lsbm-sim app SCENARIO` was given (it sets LSBM_APP_SCENARIO)."""
    return os.environ.get("LSBM_APP_SCENARIO", str(SCENARIO_DIR / "eco_product_launch.yaml"))


DEFAULT_SCENARIO = default_scenario()


class AppModel(SocialModel):
    """A SocialModel built from the page's controls (SolaraViz rebuilds the model from keyword arguments).
    A control left at None keeps the scenario's own value."""

    def __init__(
        self,
        scenario: str = DEFAULT_SCENARIO,
        feed_policy: str | None = None,
        feed_size: int | None = None,
        population_size: int | None = None,
        seed: int | None = None,
        rng=None,
    ):
        overrides = []
        if feed_policy is not None:
            overrides.append(f"feed.policy={feed_policy}")
        if feed_size is not None:
            overrides.append(f"feed.size={int(feed_size)}")
        if population_size is not None:
            overrides.append(f"population.size={int(population_size)}")
        super().__init__(scenario, seed=None if seed is None else int(seed), overrides=overrides)
        self.scenario_path = str(scenario)


def scenario_choices(current: str = DEFAULT_SCENARIO) -> list[str]:
    choices = sorted(str(p) for p in SCENARIO_DIR.glob("*.yaml"))
    return choices if current in choices else [current, *choices]


def model_params(scenario: str = DEFAULT_SCENARIO) -> dict:
    """The page's controls, starting at the scenario's own values (a control the scenario leaves open, such as
    the size of a population read from a file, is not offered)."""
    from lsbm_sim.scenario import Scenario

    spec = Scenario.from_yaml(scenario)
    params = {
        "scenario": {"type": "Select", "value": str(scenario), "values": scenario_choices(str(scenario)), "label": "Scenario"},
        "feed_policy": {
            "type": "Select",
            "value": spec.feed.policy,
            "values": ["chronological", "popularity", "random", "all"],
            "label": "Feed policy",
        },
    }
    if spec.feed.size is not None:
        params["feed_size"] = {"type": "SliderInt", "value": spec.feed.size, "min": 1, "max": max(30, spec.feed.size),
                               "step": 1, "label": "Posts looked at per step"}  # fmt: skip
    if spec.population.size is not None:
        size = spec.population.size
        params["population_size"] = {"type": "SliderInt", "value": size, "min": min(200, size),
                                     "max": max(20000, size), "step": 100, "label": "People"}  # fmt: skip
    return params


MODEL_PARAMS = model_params()


TOP_POSTS = 20


@solara.component
def PostTable(model: SocialModel):
    """The posts of widest reach so far, with reactions and cascade metrics (a platform has thousands)."""
    update_counter.get()  # re-render after every step the page takes
    table = model.items_table().drop(columns=["text"])
    shown = table.sort_values(["reach", "item_id"], ascending=[False, True], kind="stable").head(TOP_POSTS)
    solara.Markdown(f"**Step {model.steps_completed}** of {model.scenario.steps}: {len(table):,} posts, "
                    f"the {len(shown)} of widest reach")  # fmt: skip
    table = shown
    solara.DataFrame(table, items_per_page=10)


def largest_cascade(model: SocialModel) -> tuple[str | None, nx.DiGraph]:
    """The post with the most sharers so far, and its cascade as a tree (author -> sharer edges)."""
    if not model._cascade:
        return None, nx.DiGraph()
    item, agent, parent, _ = (np.concatenate(parts) for parts in zip(*model._cascade))
    biggest = int(np.bincount(item).argmax())
    mine = item == biggest
    tree = nx.DiGraph()
    tree.add_nodes_from(agent[mine].tolist())
    tree.add_edges_from((int(p), int(a)) for a, p in zip(agent[mine], parent[mine]) if p >= 0)
    return model.item_ids[biggest], tree


@solara.component
def CascadeView(model: SocialModel):
    """The largest cascade so far, drawn as a tree with authors at the top."""
    update_counter.get()  # re-render after every step the page takes
    post_id, tree = largest_cascade(model)
    fig, ax = plt.subplots(figsize=(5, 4))
    if post_id is None:
        ax.text(0.5, 0.5, "no shares yet", ha="center")
    else:
        depth = {}
        for root in (n for n in tree if tree.in_degree(n) == 0):
            depth.update(nx.single_source_shortest_path_length(tree, root))
        for node, d in depth.items():
            tree.nodes[node]["layer"] = d
        pos = nx.multipartite_layout(tree, subset_key="layer", align="horizontal", scale=1)
        pos = {n: (x, -y) for n, (x, y) in pos.items()}
        nx.draw_networkx(tree, pos=pos, ax=ax, node_size=20, with_labels=False, arrows=False, width=0.5)
        ax.set_title(f"cascade of {post_id}: {tree.number_of_nodes()} accounts")
    ax.set_axis_off()
    solara.FigureMatplotlib(fig)
    plt.close(fig)


def make_page(model: SocialModel | None = None, scenario: str | None = None):
    """The SolaraViz page for a model, or for a scenario (default: the one the page was opened with)."""
    if model is None:
        model = AppModel(scenario or default_scenario())
    path = getattr(model, "scenario_path", None) or scenario or default_scenario()
    reactions = [r for r in model.reactions if r != "ignore"]
    return SolaraViz(
        model,
        components=[
            make_plot_component(reactions),
            make_plot_component(["reach", "exposures"]),
            PostTable,
            CascadeView,
        ],
        model_params=model_params(path),
        name="lsbm-sim",
    )


def new_session_model() -> AppModel:
    """The model a browser session starts with: the scenario the page was opened with, at its own settings."""
    return AppModel(default_scenario())


@solara.component
def Page():
    """What `solara run` serves. Each browser session (solara's virtual kernel) builds its own model on its
    first render: a module-level model would be one world stepped, reset and re-sized by every visitor at once."""
    model = solara.use_memo(new_session_model, dependencies=[])
    return make_page(model)
