"""Small real language models built locally: for tests, CPU benchmarks and the GPU scripts (no download).

A byte-level BPE tokenizer is trained on a few texts with the `tokenizers` library; a Llama-architecture model is
initialised at random from a config (tiny for tests, Llama 3.2 3B's shape for GPU throughput figures). Both save
as an ordinary checkpoint folder that `AutoTokenizer`/`AutoModelForCausalLM.from_pretrained` load.

>>> folder = save_tiny_checkpoint(tmp_path / "tiny")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lsbm_sim.behavior.base import DEFAULT_REACTIONS

SPECIAL_TOKENS = ("<|begin_of_text|>", "<|end_of_text|>", "<|pad|>")

DEFAULT_CORPUS = (
    "Text: 'Just launched our new eco-friendly product line!' Predict the like level (low/medium/high): high",
    "Persona: Follows news about the environment. Context: Shared by 1 person you follow. No likes or comments yet. "
    "Posted just now. Text: 'Senate passes the climate bill' Predict the reaction (ignore/like/share/comment): share",
    "Local team wins championship in overtime thriller. Scientists find new species in the deep sea.",
    "New smartphone chip doubles battery life. Fact check: the viral study was retracted. Label: disputed.",
    "ignore like share comment low medium high clicks views likes shares comments",
)


def train_tokenizer(
    texts: Iterable[str] = DEFAULT_CORPUS,
    vocab_size: int = 600,
    extra_tokens: Sequence[str] = (),
    seed_words: Sequence[str] = (*DEFAULT_REACTIONS, "low", "medium", "high"),
) -> Any:
    """A byte-level BPE tokenizer trained on `texts`, as a transformers PreTrainedTokenizerFast.

    `seed_words` are repeated in the training data so that each (with a leading space) becomes one token, as
    answer words are in real LLM vocabularies. `extra_tokens` (e.g. behavior tokens `<|like|>`) are added as
    special tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = list(texts) + [" ".join(f" {w}" for w in seed_words)] * 50
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|begin_of_text|>",
        eos_token="<|end_of_text|>",
        pad_token="<|pad|>",
    )
    if extra_tokens:
        fast.add_special_tokens({"additional_special_tokens": list(extra_tokens)})
    return fast


def tiny_llama_config(vocab_size: int, **overrides: Any) -> Any:
    """A Llama config small enough for CPU tests (about 100k parameters)."""
    from transformers import LlamaConfig

    settings = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
    )
    settings.update(overrides)
    return LlamaConfig(**settings)


def llama_3b_config(vocab_size: int = 128_256, **overrides: Any) -> Any:
    """Llama 3.2 3B's architecture (random weights are made from it; nothing is downloaded)."""
    from transformers import LlamaConfig

    settings = dict(
        vocab_size=vocab_size,
        hidden_size=3072,
        intermediate_size=8192,
        num_hidden_layers=28,
        num_attention_heads=24,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=131_072,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500_000.0,
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    )
    settings.update(overrides)
    return LlamaConfig(**settings)


def random_llama(config: Any, tokenizer: Any | None = None, seed: int = 0) -> Any:
    """A LlamaForCausalLM with random weights (seeded), its special-token ids taken from `tokenizer`."""
    import torch
    from transformers import LlamaForCausalLM

    if tokenizer is not None:
        config.bos_token_id = tokenizer.bos_token_id
        config.eos_token_id = tokenizer.eos_token_id
        config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.eval()
    return model


def save_tiny_checkpoint(
    folder: Path | str,
    texts: Iterable[str] = DEFAULT_CORPUS,
    extra_tokens: Sequence[str] = (),
    seed: int = 0,
    **config_overrides: Any,
) -> Path:
    """Train a tokenizer, make a tiny random Llama, save both (safetensors) into `folder`; return it."""
    folder = Path(folder)
    tokenizer = train_tokenizer(texts, extra_tokens=extra_tokens)
    model = random_llama(tiny_llama_config(len(tokenizer), **config_overrides), tokenizer, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder, safe_serialization=True)
    return folder
