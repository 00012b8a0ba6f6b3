"""Shared helpers for the behavior fine-tuning tests: a synthetic A/B-test corpus with a planted signal, and a
tiny real Llama whose tokenizer knows its words.

The planted signal: every headline is five words; "up" words raise its click-through rate and "down" words
lower it (logit = -4 + 0.9 * (ups - downs) + small noise), so the level of a headline is, up to noise, the
number of up words minus down words. Clicks are drawn binomially from thousands of impressions, so the
observed rate follows the planted one closely and a model that reads the words can predict the level.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from lsbm_sim.behavior.tiny_models import save_tiny_checkpoint

UP_WORDS = ("amazing", "secret", "shocking", "incredible", "hilarious")
DOWN_WORDS = ("quarterly", "report", "policy", "minutes", "update")
NEUTRAL_WORDS = (
    "city", "river", "teacher", "garden", "music", "family", "winter", "doctor", "market", "school",
    "ocean", "bridge", "village", "kitchen", "library", "mountain", "festival", "student", "farmer", "island",
)  # fmt: skip

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
"""The project's real data (../shared/data beside the repository); tests using it skip when it is absent."""


def planted_corpus(n_tests: int = 240, seed: int = 0) -> pd.DataFrame:
    """A/B tests of 2-4 headline variants with impressions and clicks, 24 weeks; the rate follows the words.

    Columns: test_id, headline, impressions, clicks, week.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for test in range(n_tests):
        week = 1 + test * 24 // n_tests
        for _variant in range(int(rng.integers(2, 5))):
            ups, downs = rng.integers(0, 3), rng.integers(0, 3)
            words = list(rng.choice(UP_WORDS, ups, replace=False)) + list(rng.choice(DOWN_WORDS, downs, replace=False))
            words += list(rng.choice(NEUTRAL_WORDS, 5 - len(words), replace=False))
            rng.shuffle(words)
            rate = 1 / (1 + np.exp(-(-4.0 + 0.9 * (ups - downs) + rng.normal(0, 0.1))))
            impressions = int(rng.integers(2000, 6000))
            rows.append(
                {
                    "test_id": f"t{test:04d}",
                    "headline": " ".join(words).capitalize(),
                    "impressions": impressions,
                    "clicks": int(rng.binomial(impressions, rate)),
                    "week": week,
                }
            )
    return pd.DataFrame(rows)


def write_planted_csv(folder: Path, n_tests: int = 240, seed: int = 0) -> Path:
    path = Path(folder) / "ab_tests.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    planted_corpus(n_tests, seed).to_csv(path, index=False)
    return path


def tiny_base_model(folder: Path, behavior: str = "like", seed: int = 0, initializer_range: float = 0.2) -> Path:
    """A tiny random Llama (real weights, real tokenizer) whose vocabulary has the corpus's words and prompt words.

    Its tokenizer is trained on prompts in the seed card's shape over the corpus vocabulary, so each word is one
    token, as English words are in a real model's vocabulary; the model itself knows nothing yet.

    The weights start ten times wider than Llama's usual 0.02: with 0.02 a 64-wide model's (tied, frozen under
    LoRA) output layer cannot give any token a logit much above 2, so a LoRA could never make it answer
    confidently, whereas a pretrained model's output layer can.
    """
    words = (*UP_WORDS, *DOWN_WORDS, *NEUTRAL_WORDS)
    texts = [
        f"Text: '{' '.join(words[i:i + 5]).capitalize()}' Predict the {behavior} level (low/medium/high): high "
        f"Predict the {behavior} rate bin (1/2/3/4/5; 1 is lowest): 3"
        for i in range(len(words))
    ] + [" ".join(words), " ".join(w.capitalize() for w in words)]
    return save_tiny_checkpoint(folder, texts=texts * 20, seed=seed, initializer_range=initializer_range)


@pytest.fixture
def one_torch_thread():
    """Run torch on one thread: tiny models gain nothing from more, and on a shared machine several threads
    spin-wait for busy cores (a 40-step run took 10 s on two threads and 1.4 s on one while other jobs ran)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
