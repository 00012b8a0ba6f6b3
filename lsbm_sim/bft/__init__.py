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

from lsbm_sim.bft.data import LEVELS, EngagementColumns, LevelScheme, RateBins, SplitSpec
from lsbm_sim.readers import load_table
from lsbm_sim.bft.instructions import PreparedData, prepare_dataset, render_level_prompt

__all__ = [
    "LEVELS",
    "EngagementColumns",
    "LevelScheme",
    "PreparedData",
    "RateBins",
    "SplitSpec",
    "load_table",
    "prepare_dataset",
    "render_level_prompt",
]
