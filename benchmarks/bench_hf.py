"""CPU figures for the language-model backends, with a tiny real model built here (no download).

1. prompts per second of the `hf` scorer on simulation prompts, keeping only the last position's logits
   (`logits_to_keep=1`, what the scorer does) against keeping every position's (what a plain forward does);
2. the broker's overhead as a share of model time, in a whole scenario run through the `hf` backend;
3. the distinct-prompt ratio of the shipped scenarios: distinct questions the broker sends to a model per
   decision (the rest are answered by de-duplication and the cache).

    python benchmarks/bench_hf.py                      # all three
    python benchmarks/bench_hf.py --skip-scenarios     # 1 and 2 only (the shipped scenarios take minutes)
    python benchmarks/bench_hf.py --threads 1          # PyTorch threads (on a shared machine 1 is often faster)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402


def prompts_per_second(folder: Path, n: int, batch_tokens: int, repeats: int = 3) -> dict[str, float]:
    from gpu_llm import simulation_queries

    from lsbm_sim.behavior.base import QueryBatch
    from lsbm_sim.behavior.hf import HFScorer

    batch = QueryBatch.from_queries(simulation_queries(n))
    scorer = HFScorer(folder, batch_tokens=batch_tokens)
    prompt_ids = scorer.encode([scorer.plan.render(q) for q in batch])
    first = [ids[0] for ids in scorer.option_ids]
    scorer.predict_proba(batch.take(np.arange(min(64, n))))  # warm up

    def scored(keep: int) -> float:
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            for rows, logprobs in scorer.forward(prompt_ids, keep=keep):
                logprobs[:, -1, first].numpy()
            best = min(best, time.perf_counter() - started)
        return best

    started = time.perf_counter()
    scorer.predict_proba(batch)
    end_to_end = time.perf_counter() - started
    last_only, every_position = scored(1), scored(0)
    tokens = sum(len(p) for p in prompt_ids)
    return {
        "prompts": n,
        "mean_prompt_tokens": tokens / n,
        "prompts_per_second": n / end_to_end,
        "forward_prompts_per_second_logits_to_keep_1": n / last_only,
        "forward_prompts_per_second_all_logits": n / every_position,
    }


def broker_overhead(folder: Path, agents: int, steps: int) -> dict[str, float]:
    from lsbm_sim import run
    from lsbm_sim.scenario import Scenario

    data = {
        "name": "bench-hf", "seed": 1, "steps": steps,
        "population": {"size": agents, "activity": {"distribution": "beta", "a": 2.0, "b": 5.0}},
        "network": {"kind": "barabasi_albert", "params": {"m": 5}},
        "content": [
            {"id": "eco", "text": "Just launched our new eco-friendly product line!", "author": {"strategy": "influencer"}},
            {"id": "gadget", "text": "Our new smartphone doubles your battery life.", "step": 2},
        ],
        "behavior": {"backend": "hf", "model": str(folder), "batch_tokens": 8192},
    }  # fmt: skip
    started = time.perf_counter()
    result = run(Scenario.from_dict(data))
    broker = result.manifest["broker"]
    return {
        "agents": agents,
        "steps": steps,
        "decisions": broker["decisions"],
        "model_rows": broker["model_rows"],
        "model_seconds": broker["model_seconds"],
        "overhead_seconds": broker["overhead_seconds"],
        "overhead_share_of_model_time": broker["overhead_seconds"] / broker["model_seconds"],
        "prompts_per_second": broker["prompts_per_second"],
        "run_seconds": time.perf_counter() - started,
    }


def distinct_prompt_ratios() -> list[dict[str, float]]:
    """Each shipped scenario as written, with its own backend (the surrogate answers the same questions an
    LLM would be asked: both depend on the same prompt fields)."""
    from lsbm_sim import run

    rows = []
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        started = time.perf_counter()
        broker = run(path).manifest["broker"]
        rows.append({
            "scenario": path.stem,
            "decisions": broker["decisions"],
            "distinct_per_step_sum": broker["unique_queries"],
            "model_rows": broker["model_rows"],
            "distinct_ratio": broker["unique_queries"] / max(broker["decisions"], 1),
            "model_rows_ratio": broker["model_rows"] / max(broker["decisions"], 1),
            "seconds": time.perf_counter() - started,
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--batch-tokens", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: PyTorch's)")
    parser.add_argument("--agents", type=int, default=2000, help="agents in the broker-overhead run")
    parser.add_argument("--steps", type=int, default=8, help="steps in the broker-overhead run")
    parser.add_argument("--skip-scenarios", action="store_true")
    args = parser.parse_args()

    import torch

    from lsbm_sim.behavior.tiny_models import save_tiny_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="lsbm-bench-") as tmp:
        folder = save_tiny_checkpoint(Path(tmp) / "tiny")
        speed = prompts_per_second(folder, args.prompts, args.batch_tokens)
        print(f"hf, tiny Llama on CPU, {speed['prompts']} prompts of {speed['mean_prompt_tokens']:.0f} tokens: "
              f"{speed['prompts_per_second']:.0f} prompts/s end to end; forward only "
              f"{speed['forward_prompts_per_second_logits_to_keep_1']:.0f}/s with logits_to_keep=1, "
              f"{speed['forward_prompts_per_second_all_logits']:.0f}/s keeping every position's logits")  # fmt: skip
        over = broker_overhead(folder, args.agents, args.steps)
        print(f"broker, hf backend, {over['agents']} agents x {over['steps']} steps: {over['decisions']} decisions, "
              f"{over['model_rows']} model rows, model {over['model_seconds']:.2f} s, broker overhead "
              f"{over['overhead_seconds']:.2f} s = {100 * over['overhead_share_of_model_time']:.1f}% of model time")  # fmt: skip
    if not args.skip_scenarios:
        print("distinct prompts on the shipped scenarios (each as written):")
        for row in distinct_prompt_ratios():
            print(f"  {row['scenario']:28s} {row['decisions']:>9,} decisions  distinct per step {row['distinct_ratio']:.3f}"
                  f"  sent to the model {row['model_rows_ratio']:.3f}  ({row['seconds']:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
