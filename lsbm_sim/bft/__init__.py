"""Behavior instruction fine-tuning (LCBM's BFT): from engagement data to an LSBM checkpoint, and its evaluation.

    data.py          load, check, rate, split, level the user's table
    instructions.py  behavior instructions (seed-card words and behavior tokens, rate bins) -> a prepared folder
    train.py         transformers Trainer, LoRA or full, resume, export with `lsbm_behavior.json`
    evaluate.py      tuned vs base vs simple baselines: accuracy, macro-F1, Spearman, ECE, pairwise accuracy
    cli.py           `lsbm-sim bft prepare | train | eval`

>>> from lsbm_sim.bft import EngagementColumns, SplitSpec, prepare_dataset  # doctest: +SKIP
>>> prepare_dataset("ab.csv", EngagementColumns("headline", "clicks", "impressions", group="test_id"),
...                 "data/bft", SplitSpec.parse("time:week"))  # doctest: +SKIP
>>> from lsbm_sim.bft.train import TrainSettings, train_lsbm  # doctest: +SKIP
>>> train_lsbm("data/bft", "path/to/base", "models/lsbm", TrainSettings(lora=True))  # doctest: +SKIP

Training and evaluation import torch and transformers; import them from their modules when needed.
"""

import importlib
from typing import Any

_HOMES = {
    "LEVELS": "lsbm_sim.bft.data",
    "EngagementColumns": "lsbm_sim.bft.data",
    "LevelScheme": "lsbm_sim.bft.data",
    "RateBins": "lsbm_sim.bft.data",
    "SplitSpec": "lsbm_sim.bft.data",
    "load_table": "lsbm_sim.readers",
    "PreparedData": "lsbm_sim.bft.instructions",
    "prepare_dataset": "lsbm_sim.bft.instructions",
    "render_level_prompt": "lsbm_sim.bft.instructions",
}
"""Each public name and its module, imported on first use (pandas and the data code load only when asked for,
not when the command line lists `lsbm-sim bft`)."""

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'lsbm_sim.bft' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
