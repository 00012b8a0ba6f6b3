"""The SolaraViz page: step through a scenario and watch posts spread.

    lsbm-sim app platform_day [--set population.size=2000]     (or: solara run lsbm_sim/app.py)

The page names the scenario and says what it asks; controls pick the scenario, feed policy, feed size and
population size, starting at the values the scenario file sets (Reset builds the world anew with them); it plots
reactions and reach per step (from Mesa's DataCollector), lists the 20 posts of widest reach with their cascade
metrics, and draws the largest cascade tree so far. Each browser session has a model of its own (`Page`), built
off the page's thread so that the page says what it is building while it builds.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

with warnings.catch_warnings():  # solara's hook checker complains about Mesa's own components at import
    warnings.simplefilter("ignore", UserWarning)
    import solara
    from mesa.visualization import SolaraViz, make_plot_component
    from mesa.visualization.utils import update_counter

from lsbm_sim.catalog import shipped_scenarios  # noqa: E402
from lsbm_sim.engine.model import SocialModel  # noqa: E402
from lsbm_sim.scenario import Scenario, load_scenario  # noqa: E402

SCENARIO_ENV = "LSBM_APP_SCENARIO"
"""The scenario file the page opens (`lsbm-sim app SCENARIO` sets it)."""
OVERRIDES_ENV = "LSBM_APP_SET"
"""`--set` overrides for that scenario, as a JSON list of PATH=VALUE strings (`lsbm-sim app --set ...` sets it)."""


def default_scenario() -> str:
    """The scenario the page opens: the one `lsbm-sim app SCENARIO` was given, else the seed model card's."""
    return os.environ.get(SCENARIO_ENV, str(shipped_scenarios()["eco_product_launch"]))


def opened_overrides() -> list[str]:
    """The --set overrides `lsbm-sim app` was opened with (passed to the page's process in the environment)."""
    return list(json.loads(os.environ.get(OVERRIDES_ENV, "[]")))


def scenario_choices(current: str | None = None) -> dict[str, str]:
    """The scenario selector's entries: a name for each shipped scenario and for the one the page was opened
    with (a path would be long and says where a file is, not what it is), and the file each name stands for."""
    current = str(Path(current or default_scenario()).resolve())
    choices = {name: str(path.resolve()) for name, path in shipped_scenarios().items()}
    if current not in choices.values():
        name = Path(current).stem
        choices[name if name not in choices else f"{name} ({Path(current).parent.name}/)"] = current
    return choices


def scenario_label(path: str) -> str:
    """The selector's name for a scenario file (a shipped scenario's name, or the file's name)."""
    resolved = str(Path(path).resolve())
    return next(label for label, file in scenario_choices(path).items() if file == resolved)


def scenario_file(scenario: str) -> str:
    """The file a selector entry names (a path is taken as it is)."""
    return scenario_choices().get(scenario, scenario)


def scenario_overrides(path: str) -> list[str]:
    """The `--set` overrides the page was opened with apply to the scenario it was opened with, not to others
    picked in the selector (a field of one scenario may not exist in another)."""
    return opened_overrides() if Path(path).resolve() == Path(default_scenario()).resolve() else []


class AppModel(SocialModel):
    """A SocialModel built from the page's controls (SolaraViz rebuilds the model from keyword arguments).
    A control left at None keeps the scenario's own value."""

    def __init__(
        self,
        scenario: str | None = None,
        feed_policy: str | None = None,
        feed_size: int | None = None,
        population_size: int | None = None,
        seed: int | None = None,
        rng=None,
    ):
        path = scenario_file(scenario) if scenario is not None else default_scenario()
        overrides = scenario_overrides(path)
        if feed_policy is not None:
            overrides.append(f"feed.policy={feed_policy}")
        if feed_size is not None:
            overrides.append(f"feed.size={int(feed_size)}")
        if population_size is not None:
            overrides.append(f"population.size={int(population_size)}")
        super().__init__(path, seed=None if seed is None else int(seed), overrides=overrides)
        self.scenario_path = str(path)


def model_params(scenario: str | None = None) -> dict:
    """The page's controls, starting at the scenario's own values (a control the scenario leaves open, such as
    the size of a population read from a file, is not offered)."""
    path = scenario_file(scenario) if scenario is not None else default_scenario()
    spec = load_scenario(path, scenario_overrides(path))
    choices = scenario_choices(path)
    params = {
        "scenario": {"type": "Select", "value": scenario_label(path), "values": list(choices), "label": "Scenario"},
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


TOP_POSTS = 20

CASCADE_COLUMNS = ["cascade_size", "depth", "max_breadth", "structural_virality", "half_time"]


def post_table(model: SocialModel) -> pd.DataFrame:
    """The posts of widest reach so far, the figures a reader compares first (reach, reactions, cascade) on
    the left and the text, the widest column, last."""
    table = model.items_table()
    first = ["item_id", "reach", *model.item_reaction_counts, *CASCADE_COLUMNS]
    order = first + [c for c in table.columns if c not in first and c != "text"] + ["text"]
    shown = table.sort_values(["reach", "item_id"], ascending=[False, True], kind="stable").head(TOP_POSTS)
    return shown[order].reset_index(drop=True)


def Paragraph(text: str):
    """Plain text in a paragraph. (solara.Markdown fetches KaTeX from a CDN for formulas: offline, every page
    with Markdown on it raises a script error in the browser.)"""
    return solara.v.Html(tag="p", children=[text])


@solara.component
def PostTable(model: SocialModel):
    """The posts of widest reach so far, with reactions and cascade metrics (a platform has thousands)."""
    update_counter.get()  # re-render after every step the page takes
    posts = int((model.entered >= 0).sum())
    if posts == 0:
        Paragraph(f"Step {model.steps_completed} of {model.scenario.steps}: no posts yet. "
                  "Step the model to see the first ones.")  # fmt: skip
        return
    table = post_table(model)
    Paragraph(f"Step {model.steps_completed} of {model.scenario.steps}: {posts:,} posts, "
              f"the {len(table)} of widest reach")  # fmt: skip
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


@solara.component
def ScenarioTitle(spec: Scenario):
    """The scenario's name and description, as plain text (a description is prose, not Markdown)."""
    solara.v.Html(tag="h2", children=[spec.name])
    Paragraph(" ".join(spec.description.split()))


@solara.component
def ScenarioHeader(model: SocialModel):
    """What the scenario is and asks, the world the page built, and where the run stands."""
    update_counter.get()  # re-render after every step the page takes
    spec = model.scenario
    ScenarioTitle(spec)
    feed = f"{spec.feed.policy} feed" + (f" of {spec.feed.size} posts per step" if spec.feed.size else "")
    solara.Text(f"{model.num_agents:,} people, {model.network.num_edges:,} follows, {feed}, seed {model.seed}")
    done = model.steps_completed
    if done >= spec.steps:
        solara.Success(f"Finished after {done} steps: the run is over. Reset starts it again (with the controls' values).")
    else:
        solara.Info(f"Step {done} of {spec.steps}: press Step or ▶ to go on.")


@solara.component
def Loading(path: str):
    """What a visitor sees while their model is built (a world of many thousands takes seconds)."""
    spec = Scenario.from_yaml(path, overrides=scenario_overrides(path))
    with solara.Column(style={"padding": "2em"}):
        ScenarioTitle(spec)
        size = f"{spec.population.size:,} people" if spec.population.size else "the population"
        solara.Text(f"Building the world: {size}, their follow graph and the behavior model...")
        solara.ProgressLinear(True)


# The sliders show their values all the time, not only while dragged (Mesa's controls do not say so themselves).
SLIDER_STYLE = """
.v-input__slider { padding-top: 26px; }
.v-slider__thumb-label-container { display: block !important; }
.v-slider__thumb-label { width: auto !important; min-width: 32px; padding: 0 4px; border-radius: 4px !important;
                         transform: translateY(-20%) translateX(-50%) !important; }
.v-slider__thumb-label > * { transform: none !important; }
"""


def make_page(model: SocialModel | solara.Reactive | None = None, scenario: str | None = None):
    """The SolaraViz page for a model (or a reactive holding one), or for a scenario (default: the one the page
    was opened with)."""
    if model is None:
        model = AppModel(scenario)
    current = model.value if isinstance(model, solara.Reactive) else model
    path = getattr(current, "scenario_path", None) or scenario or default_scenario()
    reactions = [r for r in current.reactions if r != "ignore"]
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
    return AppModel()


@solara.component
def SessionPage(first: AppModel):
    """The page around one session's model; Reset replaces the model inside the reactive, and the header
    follows it."""
    model = solara.use_reactive(first)
    with solara.Column() as main:
        solara.Style(SLIDER_STYLE)
        ScenarioHeader(model.value)
        make_page(model)
    return main


@solara.component
def Page():
    """What `solara run` serves. Each browser session (solara's virtual kernel) builds its own model once, in a
    thread, showing what it builds meanwhile: a module-level model would be one world stepped, reset and
    re-sized by every visitor at once."""
    # intrusive_cancel=False: the intrusive kind traces every line the build runs, which makes it far slower.
    built = solara.use_thread(new_session_model, dependencies=[], intrusive_cancel=False)
    if built.state == solara.ResultState.ERROR:
        return solara.Error(f"The scenario could not be built: {built.error}")
    if built.state != solara.ResultState.FINISHED:
        return Loading(default_scenario())
    return SessionPage(built.value)
