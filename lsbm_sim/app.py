"""The SolaraViz page: step through a scenario and watch posts spread.

    lsbm-sim app scenarios/eco_product_launch.yaml        (or: solara run lsbm_sim/app.py)

Controls pick the scenario, feed policy, feed size and population size, starting at the values the scenario
file sets; the page plots reactions and reach per step (from Mesa's DataCollector), lists the 20 posts of widest
reach with their cascade metrics, and draws the largest cascade tree so far.
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
DEFAULT_SCENARIO = os.environ.get("LSBM_APP_SCENARIO", str(SCENARIO_DIR / "eco_product_launch.yaml"))


class AppModel(SocialModel):
    """A SocialModel built from the page's controls (SolaraViz rebuilds the model from keyword arguments). A
    control left unset keeps the scenario's own value, so the page opens the scenario as it was written."""

    def __init__(
        self,
        scenario: str = DEFAULT_SCENARIO,
        feed_policy: str | None = None,
        feed_size: int | None = None,
        population_size: int | None = None,
        seed: int | None = None,
        rng=None,
    ):
        overrides = [
            f"{field}={value}"
            for field, value in (("feed.policy", feed_policy), ("feed.size", feed_size), ("population.size", population_size))
            if value is not None
        ]
        super().__init__(scenario, seed=None if seed is None else int(seed), overrides=overrides)


def scenario_settings(path: str) -> dict:
    """The feed policy, feed size and population size the scenario file sets (the controls start there)."""
    from lsbm_sim.scenario import Scenario

    s = Scenario.from_yaml(path)
    return {"feed_policy": s.feed.policy, "feed_size": s.feed.size or 10, "population_size": s.population.size or 2000}


OPENED = scenario_settings(DEFAULT_SCENARIO)


def scenario_choices() -> list[str]:
    choices = sorted(str(p) for p in SCENARIO_DIR.glob("*.yaml"))
    return choices if DEFAULT_SCENARIO in choices else [DEFAULT_SCENARIO, *choices]


MODEL_PARAMS = {
    "scenario": {"type": "Select", "value": DEFAULT_SCENARIO, "values": scenario_choices(), "label": "Scenario"},
    "feed_policy": {
        "type": "Select",
        "value": OPENED["feed_policy"],
        "values": ["chronological", "popularity", "random", "all"],
        "label": "Feed policy",
    },
    "feed_size": {"type": "SliderInt", "value": OPENED["feed_size"], "min": 1, "max": max(30, OPENED["feed_size"]),
                  "step": 1, "label": "Posts looked at per step"},  # fmt: skip
    "population_size": {"type": "SliderInt", "value": OPENED["population_size"], "min": 200,
                        "max": max(20000, OPENED["population_size"]), "step": 200, "label": "People"},  # fmt: skip
}


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


def make_page(model: SocialModel | None = None):
    """The SolaraViz page for a model (a default AppModel if none is given)."""
    model = model if model is not None else AppModel()
    reactions = [r for r in model.reactions if r != "ignore"]
    return SolaraViz(
        model,
        components=[
            make_plot_component(reactions),
            make_plot_component(["reach", "exposures"]),
            PostTable,
            CascadeView,
        ],
        model_params=MODEL_PARAMS,
        name="lsbm-sim",
    )


page = make_page() if os.environ.get("LSBM_APP_NO_PAGE") != "1" else None
