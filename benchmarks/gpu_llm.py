"""Prompts per second of the language-model backends on one GPU, with no download.

A Llama 3.2 3B-shaped model with random weights (bfloat16) and a byte-level BPE tokenizer trained here on the
simulation's own prompts are saved to a temporary folder and loaded through the `hf` backend exactly as a
user's checkpoint would be; then 20,000 distinct simulation prompts (personas x posts x social contexts, as the
engine asks them) are scored, and the script prints prompts per second, tokens per second and the share of the
GPU's dense bf16 peak that the model's arithmetic implies. Then the factorized path (`behavior.factorized`): the
same model encodes the prompts' distinct persona and post texts once (texts per second), a head is distilled on
the full-prompt answers, and the head answers every question (rows per second). Where vLLM can be imported, its
engine scores the same prompts too. The whole run fits in 8 minutes on one H100 or H200.

    python benchmarks/gpu_llm.py                  # on the GPU machine
    python benchmarks/gpu_llm.py --tiny           # the CPU path: a tiny model and 400 prompts (a smoke test)

Random weights cost what trained ones cost: throughput depends on the shapes, not on the values.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from lsbm_sim.behavior.base import BehaviorQuery, SocialContext  # noqa: E402

# Dense bf16 tensor-core peaks (TFLOP/s) from NVIDIA's data sheets.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0}

POSTS = (
    "Just launched our new eco-friendly product line!",
    "Our new smartphone doubles your battery life. Pre-orders open today.",
    "Senate passes the climate bill after a marathon session.",
    "Fact check: the viral study linking coffee to memory loss was retracted.",
    "Local team wins championship in overtime thriller.",
    "Scientists find a new species of glowing shark in the deep sea.",
    "You won't believe what this city did with its old subway cars.",
    "Quarterly report: markets steady as inflation cools.",
)
LABELS = (None, "Disputed by independent fact-checkers.")


def simulation_queries(n: int, seed: int = 0) -> list[BehaviorQuery]:
    """n distinct questions shaped like the engine's: persona archetypes x posts x binned social contexts."""
    from lsbm_sim.world.population import DISPOSITION_TEXT, persona_text

    interests = ("environment", "technology", "politics", "health", "sports", "entertainment", "business", "science")
    ages = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
    personas = [
        persona_text(age, pair, leaning, s)
        for age in ages
        for pair in itertools.combinations(interests, 2)
        for leaning in ("left", "center", "right")
        for s in DISPOSITION_TEXT
    ]
    contexts = [
        SocialContext(sharers=sh, proof=pr, age=ag, seen=se, label=lab)
        for sh in (0, 1, 2, 3, 5)
        for pr in (0, 1, 3, 10, 30, 100)
        for ag in (0, 1, 2, 4)
        for se in (0, 1)
        for lab in LABELS
    ]
    rng = np.random.default_rng(seed)
    seen: set[tuple[int, int, int]] = set()
    queries: list[BehaviorQuery] = []
    while len(queries) < n:
        key = (int(rng.integers(len(personas))), int(rng.integers(len(POSTS))), int(rng.integers(len(contexts))))
        if key not in seen:
            seen.add(key)
            queries.append(BehaviorQuery(personas[key[0]], POSTS[key[1]], contexts[key[2]]))
    return queries


def build_checkpoint(folder: Path, tiny: bool, prompts: list[str], device: str) -> Path:
    """Train a tokenizer on the prompts (so prompt lengths in tokens are realistic), make a random model, save both."""
    import torch

    from lsbm_sim.behavior.tiny_models import llama_3b_config, tiny_llama_config, train_tokenizer

    tokenizer = train_tokenizer(prompts[:5000], vocab_size=600 if tiny else 16_000)
    if tiny:
        config = tiny_llama_config(len(tokenizer))
    else:
        config = llama_3b_config()  # Llama 3.2's 128,256-word vocabulary; the tokenizer uses its first ids
    config.bos_token_id, config.eos_token_id, config.pad_token_id = (
        tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)  # fmt: skip
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    # Initialise on the device in bf16: 3B parameters in fp32 on the CPU would take minutes.
    dtype = torch.float32 if tiny else torch.bfloat16
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return folder


def model_flops(folder: Path, prompt_tokens: int) -> float:
    """Forward FLOPs for the prompt tokens: 2 x the non-embedding parameters per token (attention over ~100
    tokens adds under 1% and is left out)."""
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(folder)
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    attn = c.hidden_size * head_dim * (2 * c.num_attention_heads + 2 * c.num_key_value_heads)
    mlp = 3 * c.hidden_size * c.intermediate_size
    return 2.0 * c.num_hidden_layers * (attn + mlp) * prompt_tokens


def peak_tflops(override: float | None) -> tuple[float | None, str]:
    import torch

    if not torch.cuda.is_available():
        return override, "cpu"
    name = torch.cuda.get_device_name(0)
    if override:
        return override, name
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value, name
    return None, name


def time_backend(label: str, scorer, queries, batch, warmup: int) -> dict:
    import torch

    scorer.predict_proba(batch.take(np.arange(min(warmup, len(batch)))))  # kernels, allocator, caches
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    tokens_before = scorer.stats["prompt_tokens"]
    started = time.perf_counter()
    probs = scorer.predict_proba(batch)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    tokens = scorer.stats["prompt_tokens"] - tokens_before
    assert probs.shape == (len(batch), len(scorer.reactions)) and np.isfinite(probs).all()
    return {"backend": label, "prompts": len(batch), "seconds": seconds, "prompt_tokens": tokens,
            "prompts_per_second": len(batch) / seconds, "tokens_per_second": tokens / seconds, "probs": probs}  # fmt: skip


def time_factorized(hf, batch, teacher_probs: np.ndarray, fit_rows: int) -> dict:
    """The factorized path on the full-prompt scorer's model: encode the distinct texts once (cold), distil a
    head on `fit_rows` full-prompt answers, answer every question with it."""
    import torch

    from lsbm_sim.behavior.factorized import FactorizedHead, FactorizedScorer, LMTextEncoder

    encoder = LMTextEncoder(hf, cache=None)
    encoder.persona_vectors(["warm-up persona"])  # kernels and allocator, as the full-prompt timing does
    encoder.stats.update(texts_encoded=0, text_tokens=0, text_passes=0, text_seconds=0.0)
    started = time.perf_counter()
    encoder.persona_vectors(list(batch.personas))
    encoder.post_vectors(list(batch.contents))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    encode_seconds = time.perf_counter() - started
    texts = int(encoder.stats["texts_encoded"])
    rows = np.arange(min(fit_rows, len(batch)))
    started = time.perf_counter()
    head = FactorizedHead.fit(batch.take(rows), teacher_probs[rows], encoder, hf.reactions)
    fit_seconds = time.perf_counter() - started
    model = FactorizedScorer(encoder, head)
    started = time.perf_counter()
    probs = model.predict_proba(batch)
    head_seconds = time.perf_counter() - started
    held = np.arange(len(rows), len(batch))
    return {
        "texts": texts,
        "text_tokens": int(encoder.stats["text_tokens"]),
        "encode_seconds": encode_seconds,
        "texts_per_second": texts / encode_seconds,
        "text_tokens_per_second": encoder.stats["text_tokens"] / encode_seconds,
        "fit_rows": int(len(rows)),
        "fit_seconds": fit_seconds,
        "head_rows": len(batch),
        "head_rows_per_second": len(batch) / head_seconds,
        "lm_rows_ratio": len(batch) / max(texts, 1),
        # Random weights: the agreement only shows that the path runs; a trained model's is in RESULTS.md.
        "heldout_mean_kl": mean_kl(teacher_probs[held], probs[held]) if len(held) else None,
    }


def mean_kl(p: np.ndarray, q: np.ndarray) -> float:
    """Mean KL(p || q) in nats (lsbm_sim.studies.distill.agreement's, without importing the scenario schema that this
    script's bare environment lacks)."""
    p, q = np.clip(p, 1e-12, 1.0), np.clip(q, 1e-12, 1.0)
    return float((p * (np.log(p) - np.log(q))).sum(axis=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny model, few prompts: the CPU smoke test")
    parser.add_argument("--prompts", type=int, default=None, help="prompts to score (default 20000; --tiny 400)")
    parser.add_argument("--batch-tokens", type=int, default=None, help="hf token budget per forward (default 65536)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the GPU's dense bf16 peak, if not known")
    parser.add_argument("--skip-vllm", action="store_true")
    parser.add_argument("--skip-factorized", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    import torch

    from lsbm_sim.behavior.base import QueryBatch
    from lsbm_sim.behavior.hf import HFScorer
    from lsbm_sim.behavior.prompts import PromptTemplate

    device = "cuda" if torch.cuda.is_available() else "cpu"
    n = args.prompts or (400 if args.tiny else 20_000)
    batch_tokens = args.batch_tokens or (4096 if args.tiny else 65_536)
    started = time.perf_counter()
    queries = simulation_queries(n)
    batch = QueryBatch.from_queries(queries)
    template = PromptTemplate()
    texts = [template.render(q, ("ignore", "like", "share", "comment")) for q in queries]
    report: dict = {"device": device, "torch": torch.__version__, "prompts": n, "batch_tokens": batch_tokens}
    import transformers

    report["transformers"] = transformers.__version__
    with tempfile.TemporaryDirectory(prefix="lsbm-gpu-") as tmp:
        folder = build_checkpoint(Path(tmp) / "model", args.tiny, texts, device)
        report["setup_seconds"] = round(time.perf_counter() - started, 1)
        results = []
        hf = HFScorer(folder, device=device, batch_tokens=batch_tokens)
        results.append(time_backend("hf", hf, queries, batch, warmup=256))
        report["hf_forward_passes"] = hf.stats["forward_passes"]
        report["hf_padding_share"] = round(1 - hf.stats["prompt_tokens"] / max(hf.stats["padded_tokens"], 1), 4)
        if not args.skip_factorized:
            report["factorized"] = time_factorized(hf, batch, results[0]["probs"], fit_rows=min(4000, n // 2))
        hf.close()
        del hf
        if device == "cuda":
            torch.cuda.empty_cache()
        if not args.skip_vllm:
            try:
                from lsbm_sim.behavior.vllm import VLLMScorer

                scorer = VLLMScorer(folder, gpu_memory_utilization=0.85)
                results.append(time_backend("vllm", scorer, queries, batch, warmup=256))
            except Exception as exc:  # vLLM is optional; say why it was not measured
                report["vllm"] = f"not measured: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        peak, gpu = peak_tflops(args.peak_tflops)
        report["gpu"] = gpu
        for r in results:
            r["tflops"] = model_flops(folder, r["prompt_tokens"]) / r["seconds"] / 1e12
            r["share_of_bf16_peak"] = r["tflops"] / peak if peak else None
        for r in results:
            r.pop("probs")
        report["results"] = results
    report["total_seconds"] = round(time.perf_counter() - started, 1)

    print(f"{gpu}: {n} simulation prompts, mean {results[0]['prompt_tokens'] / n:.0f} tokens, batch_tokens {batch_tokens}")
    for r in results:
        share = f", {100 * r['share_of_bf16_peak']:.0f}% of the bf16 peak" if r["share_of_bf16_peak"] else ""
        print(f"  {r['backend']:5s} {r['prompts_per_second']:9.0f} prompts/s  {r['tokens_per_second']:11.0f} tokens/s  "
              f"{r['tflops']:7.1f} TFLOP/s{share}")  # fmt: skip
    if "vllm" in report:
        print(f"  vllm  {report['vllm']}")
    if "factorized" in report:
        f = report["factorized"]
        print(f"  factorized: {f['texts']} distinct texts in {f['encode_seconds']:.2f} s ({f['texts_per_second']:.0f} texts/s, "
              f"{f['text_tokens_per_second']:.0f} tokens/s), head fitted on {f['fit_rows']} answers in "
              f"{f['fit_seconds']:.1f} s, head {f['head_rows_per_second']:.0f} rows/s; {f['lm_rows_ratio']:.1f} prompts "
              "per text encoded")  # fmt: skip
    print(f"  total {report['total_seconds']} s (setup {report['setup_seconds']} s)")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
