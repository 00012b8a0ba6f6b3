"""The run's tables, read from a model's state: one row per post, per person and per cascade tree, and the
manifest that says what ran. `SocialModel` has them as methods (this mixin), so a page or a notebook can ask for
them at any step, not only at the end."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd

from lsbm_sim.analysis.metrics import cascade_metrics, half_times, tree_table
from lsbm_sim.analysis.results import SimulationResult


def plain_values(column: pd.Series) -> np.ndarray:
    """The column's values as a numpy array; a categorical one of strings as its categories gathered by code,
    which gives the same array as `to_numpy()` several times faster (that converts every row's string alone)."""
    if not isinstance(column.dtype, pd.CategoricalDtype) or not pd.api.types.is_string_dtype(column.cat.categories):
        return column.to_numpy()
    codes = column.cat.codes.to_numpy()
    values = column.cat.categories.to_numpy(dtype=object)[codes]
    if (codes < 0).any():
        values[codes < 0] = np.nan  # a missing value, as to_numpy gives it
    return values


class ResultTables:
    """Tables of a `SocialModel` so far (mixed into it; reads its arrays, changes nothing)."""

    def events_so_far(self) -> pd.DataFrame:
        return self.events.frame()

    def _cascade_nodes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every cascade node so far as arrays: post index, agent, parent node index (-1 for an author), step."""
        if not self._cascade:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty, empty
        item, agent, parent, step = (np.concatenate(parts).astype(np.int64) for parts in zip(*self._cascade))
        # A share's parent is the node of the same post held by the agent whose share exposed it.
        key = item * self.num_agents + agent
        order = np.argsort(key, kind="stable")
        has_parent = parent >= 0
        parent_key = (item * self.num_agents + parent)[has_parent]
        where = np.minimum(np.searchsorted(key[order], parent_key), len(order) - 1)
        if not np.array_equal(key[order][where], parent_key):  # the engine attaches shares only to sharers
            raise RuntimeError("a share's parent is not in the post's cascade")
        parent_node = np.full(len(item), -1, dtype=np.int64)
        parent_node[has_parent] = order[where]
        return item, agent, parent_node, step

    def cascades_table(self) -> pd.DataFrame:
        """One row per cascade tree (one per author of each post that entered): the post, the author, and the
        tree's size, depth, max breadth, structural virality and half time in minutes, at the resolution of a step
        (see lsbm_sim.analysis.metrics)."""
        item, agent, parent, step = self._cascade_nodes()
        trees = tree_table(parent, step * self.scenario.time.step_minutes)
        roots = trees.pop("root").to_numpy()
        trees.insert(0, "item_id", [self.item_ids[i] for i in item[roots].tolist()])
        trees.insert(1, "author", agent[roots].astype(np.int64))
        return trees

    def items_table(self) -> pd.DataFrame:
        """One row per post: when it entered (a step), its impressions (times it was shown), reach (people shown
        it), audience (followers of its authors and sharers), reactions and cascade metrics (over its authors'
        trees, as lsbm_sim.analysis.metrics defines them for several roots; half time in minutes)."""
        item, agent, parent, step = self._cascade_nodes()
        per_post = {}
        if len(item):
            trees = tree_table(parent, step)
            trees["item"] = item[trees["root"].to_numpy()]
            trees["pairs"] = trees["cascade_size"] * (trees["cascade_size"] - 1) / 2
            trees["wiener"] = trees["structural_virality"] * trees["pairs"]
            grouped = trees.groupby("item").agg(
                cascade_size=("cascade_size", "sum"), depth=("depth", "max"), max_breadth=("max_breadth", "max"),
                pairs=("pairs", "sum"), wiener=("wiener", "sum"),
            )  # fmt: skip
            posted = np.unique(item)
            minutes = self.scenario.time.step_minutes
            half = half_times(np.searchsorted(posted, item), step * minutes, origin=self.entered[posted] * minutes)
            for k, (index, row) in enumerate(grouped.iterrows()):
                per_post[int(index)] = {
                    "cascade_size": int(row["cascade_size"]), "depth": int(row["depth"]),
                    "max_breadth": int(row["max_breadth"]),
                    "structural_virality": float(row["wiener"] / row["pairs"]) if row["pairs"] > 0 else 0.0,
                    "half_time": float(half[k]),
                }  # fmt: skip
        # The audience each post's cascade opened: the followers of its authors and of everyone who shared it.
        audience = np.bincount(item, weights=self.network.out_degree[agent], minlength=len(self.item_ids))
        rows = []
        for index, pid in enumerate(self.item_ids):
            post = self.posts[index] if self.entered[index] >= 0 else None
            rows.append(
                {
                    "item_id": pid,
                    "text": self.item_texts[index],
                    "topic": self.item_topics[index] if post else None,
                    "entered": int(self.entered[index]),
                    "authors": len(post.authors) if post else 0,
                    "label": self.labels[self.label_of[index]] or None,
                    "removed": bool(self.removed[index]),
                    "impressions": int(self.item_impressions[index]),
                    "reach": int(self.item_reach[index]),
                    "audience": int(audience[index]),
                    **{r: int(c[index]) for r, c in self.item_reaction_counts.items()},
                    **per_post.get(index, cascade_metrics(np.zeros(0, dtype=np.int64))),
                }
            )
        # The columns are named even before any post exists (a platform whose people have not posted yet), so
        # that a reader can select and sort them at step 0.
        columns = ["item_id", "text", "topic", "entered", "authors", "label", "removed", "impressions", "reach",
                   "audience", *self.item_reaction_counts, *cascade_metrics(np.zeros(0, dtype=np.int64))]  # fmt: skip
        return pd.DataFrame(rows, columns=columns)

    def agents_table(self) -> pd.DataFrame:
        frame = pd.DataFrame({"agent_id": np.arange(self.num_agents, dtype=np.int32)})
        if self.network.node_labels is not None:
            frame["node"] = pd.Series(self.network.node_labels, dtype=str).to_numpy()
        frame["archetype"] = self.population.archetype
        frame["activity"] = self.population.activity
        frame["followers"] = self.network.out_degree
        frame["following"] = self.network.in_degree
        for column in self.population.traits.columns:
            frame[column] = plain_values(self.population.traits[column])
        frame["exposures"] = self.agent_exposures
        for r, c in self.agent_reaction_counts.items():
            frame[r] = c
        return frame

    def manifest(self, complete: bool, error: str | None = None) -> dict[str, Any]:
        behavior_stats = dict(getattr(self.behavior, "stats", {}) or {})
        broker = self.broker.stats.as_dict()
        steps_seconds = sum(v for k, v in self.timings.items() if k != "setup_seconds")
        broker["prompts_per_second"] = broker["model_rows"] / broker["model_seconds"] if broker["model_seconds"] else None
        return {
            "format": "lsbm-sim results",
            "version": 1,
            "name": self.scenario.name,
            "seed": self.seed,
            "steps_run": int(self.steps_completed),
            "scenario": self.scenario.model_dump(mode="json"),
            "reactions": list(self.reactions),
            "items": self.item_ids,
            "backend": self.scenario.behavior.backend if not _is_custom(self.behavior) else type(self.behavior).__name__,
            "behavior_fingerprint": getattr(self.behavior, "fingerprint", None),
            "agents": self.num_agents,
            "follow_edges": self.network.num_edges,
            "exposures": self.events.exposures,
            "event_rows": self.events.rows,
            "timings": {**{k: round(v, 4) for k, v in self.timings.items()}, "steps_seconds": round(steps_seconds, 4)},
            "broker": broker,
            "behavior_stats": behavior_stats,
            "versions": package_versions(),
            "complete": complete,
            **({"error": error} if error else {}),
        }

    def result(self) -> SimulationResult:
        """The run's tables in memory (the event log too, unless it was streamed to a file)."""
        self.events.close()
        steps = self.datacollector.get_model_vars_dataframe().reset_index(drop=True)
        return SimulationResult(
            steps=steps,
            items=self.items_table(),
            agents=self.agents_table(),
            cascades=self.cascades_table(),
            manifest=self.manifest(complete=self.steps_completed >= self.scenario.steps),
            _events=self.events.frame() if self.events.path is None else None,
        )


def _is_custom(behavior: Any) -> bool:
    """A behavior model the user brought (the manifest then names its class, not a backend)."""
    return type(behavior).__module__.split(".")[0] != "lsbm_sim"


def package_versions() -> dict[str, str]:
    """Python's and the installed packages' versions that decide a run's numbers, for the manifest."""
    versions = {"python": platform.python_version()}
    for name in ("lsbm-sim", "mesa", "numpy", "networkx", "pandas", "pyarrow", "torch", "transformers"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions
