"""The living platform: what the event log keeps, people posting from a pool, recommenders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lsbm_sim import Scenario, run
from lsbm_sim.errors import ScenarioError


def small(**extra) -> Scenario:
    data = {
        "name": "platform",
        "seed": 4,
        "steps": 8,
        "population": {"size": 400, "activity": 0.6},
        "network": {"kind": "barabasi_albert", "params": {"m": 3}},
        "content": [
            {"id": "a", "text": "first", "author": {"strategy": "influencer", "count": 3}},
            {"id": "b", "text": "second", "author": {"strategy": "random", "count": 5}, "step": 2},
        ],
        "feed": {"policy": "chronological", "size": 5},
        "behavior": {"backend": "constant", "probabilities": {"like": 0.1, "share": 0.25, "comment": 0.05}},
    }
    for dotted, value in extra.items():
        node = data
        *head, last = dotted.split("__")
        for part in head:
            node = node.setdefault(part, {})
        node[last] = value
    return Scenario.from_dict(data)


def test_results_events_keeps_all_engaged_or_none_and_the_tables_either_way(tmp_path: Path):
    full = run(small(), out=tmp_path / "all")
    engaged = run(small(results__events="engaged"), out=tmp_path / "engaged")
    nothing = run(small(results__events="none"), out=tmp_path / "none")

    assert len(full.events) > 100 and (full.events["reaction"] == "ignore").any()
    expected = full.events[full.events["reaction"] != "ignore"].reset_index(drop=True)
    pd.testing.assert_frame_equal(engaged.events.astype({"item_id": str, "reaction": str}),
                                  expected.astype({"item_id": str, "reaction": str}))  # fmt: skip
    assert len(nothing.events) == 0 and list(nothing.events.columns) == list(full.events.columns)
    for res in (engaged, nothing):  # the same run: per-step and per-post tables are whole
        pd.testing.assert_frame_equal(res.steps, full.steps)
        pd.testing.assert_frame_equal(res.items, full.items)
        assert res.manifest["exposures"] == len(full.events)
    assert nothing.manifest["event_rows"] == 0 and engaged.manifest["event_rows"] == len(expected)


def test_results_events_rejects_an_unknown_kind():
    with pytest.raises(ScenarioError, match="results.events"):
        small(results__events="some")
