"""Test-wide settings: keep every tool's files inside the project and off the network."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"

os.environ.setdefault("MPLCONFIGDIR", str(CACHE / "matplotlib"))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HOME", str(CACHE / "huggingface"))
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("SOLARA_TELEMETRY_MIXPANEL_ENABLE", "False")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_TMPDIR", str(CACHE / "ray"))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("LSBM_CACHE", str(CACHE / "lsbm-sim"))  # the sentence-embedding cache, inside the project

SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real data sets beside the project; tests that need them skip, saying so, when they are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not present at {SHARED_DATA}")
    return SHARED_DATA


def small_scenario(**changes) -> dict:
    """A minimal valid scenario dict for tests (surrogate-free by default: a constant model is instant)."""
    scenario = {
        "name": "small",
        "seed": 5,
        "steps": 8,
        "population": {"size": 300, "activity": 0.6},
        "network": {"kind": "barabasi_albert", "params": {"m": 3}},
        "content": [
            {"id": "a", "text": "Just launched our new eco-friendly product line!", "author": {"strategy": "influencer"}},
            {"id": "b", "text": "Local team wins the championship", "step": 2},
        ],
        "feed": {"policy": "chronological", "size": 5},
        "behavior": {"backend": "constant", "probabilities": {"like": 0.1, "share": 0.15, "comment": 0.05}},
    }
    for key, value in changes.items():
        scenario[key] = value
    return scenario
