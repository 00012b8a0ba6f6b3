"""Behavior fine-tuning throughput on one GPU: LoRA on a Llama 3.2 3B-shaped model, with no download.

The whole `bft` pipeline at the size it is meant for: synthetic headline A/B tests are prepared into behavior
instructions (`prepare_dataset`), a Llama 3.2 3B configuration with random weights (bfloat16) and a tokenizer
trained here are saved as the base, `train_lsbm` fine-tunes it with LoRA (bf16, checkpoints, merge on export)
and `evaluate_lsbm` scores the test split with the exported checkpoint. It reports optimizer steps per second,
instructions and tokens per second, peak GPU memory, and the seconds spent saving, merging and scoring. Random
weights cost what trained ones cost: the figures depend on the shapes, not on the values; accuracy means nothing
here. The default run fits in 8 minutes on one H100.

    python benchmarks/gpu_bft.py                # on the GPU machine
    python benchmarks/gpu_bft.py --full         # full fine-tuning instead of LoRA (fp32 master weights, ~55 GB
                                                # of GPU memory; checkpoints keep weights only, ~12 GB on disk)
    python benchmarks/gpu_bft.py --tiny         # the CPU path: a tiny model and a few steps (a smoke test)
    python benchmarks/gpu_bft.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

WORDS = (
    "you", "won't", "believe", "what", "this", "teacher", "said", "to", "her", "students", "the", "reason", "why",
    "city", "finally", "changed", "its", "mind", "about", "climate", "watch", "a", "dad", "explain", "racism",
    "in", "two", "minutes", "these", "photos", "show", "how", "much", "food", "we", "waste", "every", "day",
    "here's", "one", "simple", "chart", "that", "explains", "health", "care", "better", "than", "congress",
)  # fmt: skip


def synthetic_ab_tests(n_tests: int, seed: int = 0) -> Any:
    """Headline A/B tests shaped like Upworthy's: 2-5 variants of 8-16 words, impressions, clicks, a week."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows = []
    for test in range(n_tests):
        for _ in range(int(rng.integers(2, 6))):
            impressions = int(rng.integers(2000, 6000))
            rows.append({
                "test_id": f"t{test}",
                "headline": " ".join(rng.choice(WORDS, int(rng.integers(8, 17)))).capitalize(),
                "impressions": impressions,
                "clicks": int(rng.binomial(impressions, rng.uniform(0.005, 0.03))),
                "week": 1 + test * 20 // n_tests,
            })  # fmt: skip
    return pd.DataFrame(rows)


def build_base(folder: Path, tiny: bool, texts: list[str], device: str) -> Path:
    """A random Llama 3.2 3B (or tiny) model and a tokenizer trained on `texts`, saved as an ordinary checkpoint."""
    import torch
    from transformers import LlamaForCausalLM

    from lsbm_sim.behavior.tiny_models import llama_3b_config, tiny_llama_config, train_tokenizer

    tokenizer = train_tokenizer(texts, vocab_size=600 if tiny else 8000)
    config = tiny_llama_config(len(tokenizer)) if tiny else llama_3b_config()  # 3B keeps Llama 3's vocabulary size
    config.bos_token_id, config.eos_token_id, config.pad_token_id = (
        tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)  # fmt: skip
    torch.manual_seed(0)
    # Initialise on the device in bf16: 3B parameters in fp32 on the CPU would take minutes.
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.float32 if tiny else torch.bfloat16)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return folder


class StepClock(TrainerCallback):
    """Notes when each optimizer step ends, so that steps after the warm-up can be timed."""

    def __init__(self):
        self.times: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()  # the step's kernels have finished, not just been queued
        self.times.append(time.perf_counter())


def run_benchmark(tiny: bool = False, lora: bool = True, steps: int | None = None, batch_size: int | None = None,
                  n_tests: int | None = None, evaluate: bool = True) -> dict[str, Any]:  # fmt: skip
    """Run the pipeline once and return its figures (see the module docstring)."""
    import torch
    import transformers
    from transformers import AutoTokenizer

    from lsbm_sim.bft.data import EngagementColumns, SplitSpec
    from lsbm_sim.bft.evaluate import evaluate_lsbm
    from lsbm_sim.bft.instructions import prepare_dataset, render_level_prompt
    from lsbm_sim.bft.train import TrainSettings, train_lsbm

    device = "cuda" if torch.cuda.is_available() else "cpu"
    steps = steps or (12 if tiny else 60)
    batch_size = batch_size or (4 if tiny else 16)
    n_tests = n_tests or (40 if tiny else 1500)
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "model": "tiny Llama" if tiny else "Llama 3.2 3B configuration, random weights",
        "method": "LoRA r=16 on every linear layer" if lora else "full fine-tuning",
        "steps": steps,
        "batch_size": batch_size,
    }
    try:
        import peft

        report["peft"] = peft.__version__
    except ImportError:
        if lora:
            report["note"] = "peft is not installed: LoRA could not be measured, so full fine-tuning was"
            lora = False
            report["method"] = "full fine-tuning"

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lsbm-gpu-bft-") as tmp:
        tmp = Path(tmp)
        table = synthetic_ab_tests(n_tests)
        table.to_csv(tmp / "ab.csv", index=False)
        columns = EngagementColumns("headline", "clicks", "impressions", group="test_id")
        data = prepare_dataset(tmp / "ab.csv", columns, tmp / "data", SplitSpec.parse("time:week"),
                               behavior_name="click", tasks=["level"])  # fmt: skip
        texts = list(table["headline"][:5000]) + [render_level_prompt("x", "click")] * 20
        t = time.perf_counter()
        base = build_base(tmp / "base", tiny, texts, device)
        report["build_and_save_base_seconds"] = round(time.perf_counter() - t, 1)

        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        clock = StepClock()
        # Full fine-tuning's checkpoints would hold fp32 weights and AdamW state, 38.6 GB each for 3.2B parameters
        # (two kept: 77 GB): keep the weights only (12.9 GB), one at a time, so that the bf16 base (6.4 GB), a
        # checkpoint being replaced by the next (2 x 12.9 GB) and the bf16 export (6.4 GB) stay within 64 GiB.
        settings = TrainSettings(lora=lora, steps=steps, batch_size=batch_size, save_steps=max(1, steps // 2),
                                 learning_rate=2e-4 if lora else 2e-5, progress=False, save_only_model=not lora,
                                 save_total_limit=2 if lora else 1)  # fmt: skip
        report["checkpoints"] = "weights only, 1 kept" if not lora else "full (adapter + optimizer), 2 kept"
        t = time.perf_counter()
        train = train_lsbm(tmp / "data", str(base), tmp / "lsbm", settings, callbacks=[clock])
        report["train_and_export_seconds"] = round(time.perf_counter() - t, 1)
        warm = min(5, len(clock.times) - 2)
        timed = np.diff(clock.times[warm:])
        tokenizer = AutoTokenizer.from_pretrained(tmp / "lsbm")
        records = data.instructions("train")
        lengths = [len(ids) for ids in tokenizer([r["prompt"] + r["completion"] for r in records])["input_ids"]]
        mean_tokens = float(np.mean(lengths))
        report.update({
            "instructions": train.examples,
            "trainable_parameters": train.trainable_parameters,
            "total_parameters": train.total_parameters,
            "precision": train.precision,
            "seconds_per_step": float(np.median(timed)),
            "steps_per_second": float(1 / np.median(timed)),
            "instructions_per_second": float(batch_size / np.median(timed)),
            "mean_tokens_per_instruction": round(mean_tokens, 1),
            "tokens_per_second": float(batch_size * mean_tokens / np.median(timed)),
            "train_loss": train.train_loss,
        })  # fmt: skip
        if device == "cuda":
            report["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            report["peak_gpu_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
            torch.cuda.empty_cache()
        report["export_files"] = sorted(p.name for p in (tmp / "lsbm").iterdir())

        if evaluate:
            t = time.perf_counter()
            # The tuned model alone: the simple baselines need scikit-learn, which the GPU image lacks.
            result = evaluate_lsbm(tmp / "lsbm", tmp / "data", sentence_encoder=False, bag_of_words=False)
            report["evaluate_seconds"] = round(time.perf_counter() - t, 1)
            report["evaluated_rows"] = result.test_rows
            report["tuned_pairwise_accuracy"] = result.result("LSBM tuned (words)")["pairwise_accuracy"]
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny model, few steps: the CPU smoke test")
    parser.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default 60; --tiny 12)")
    parser.add_argument("--batch-size", type=int, default=None, help="instructions per step (default 16; --tiny 4)")
    parser.add_argument("--skip-eval", action="store_true", help="do not score the test split afterwards")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    report = run_benchmark(tiny=args.tiny, lora=not args.full, steps=args.steps, batch_size=args.batch_size,
                           evaluate=not args.skip_eval)  # fmt: skip
    print(f"{report['device']}: {report['model']}, {report['method']}, {report['precision']}")
    print(f"  {report['steps_per_second']:.2f} steps/s, {report['instructions_per_second']:.1f} instructions/s, "
          f"{report['tokens_per_second']:.0f} tokens/s (batch {report['batch_size']}, "
          f"{report['mean_tokens_per_instruction']} tokens each), "
          f"trainable {report['trainable_parameters']:,} of {report['total_parameters']:,}")  # fmt: skip
    if "peak_gpu_memory_gib" in report:
        print(f"  peak GPU memory {report['peak_gpu_memory_gib']} GiB allocated, "
              f"{report['peak_gpu_reserved_gib']} GiB reserved")
    print(f"  base built and saved in {report['build_and_save_base_seconds']} s; train + merge + export "
          f"{report['train_and_export_seconds']} s; evaluate {report.get('evaluate_seconds', 'skipped')} s; "
          f"total {report['total_seconds']} s")  # fmt: skip
    if "note" in report:
        print(f"  note: {report['note']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
