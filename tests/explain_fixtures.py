"""A tiny real Llama taught that one planted word makes people share, for the explain and optimize tests.

The model is made the way any behavior model is: a byte-level BPE tokenizer and a random Llama (lsbm_sim.behavior.tiny_models),
then a few dozen AdamW steps on prompts rendered by the scorer's own template, whose answer is " share" when the
text holds the planted word and " ignore" otherwise. Nothing is hand-set: the word's pull on the answer is
learned, and the scorer, broker and explanation then have to find it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lsbm_sim.behavior.base import BehaviorQuery, SocialContext
from lsbm_sim.behavior.prompts import PromptTemplate

PLANTED = "kittens"
NEUTRAL = (
    "city", "river", "teacher", "garden", "music", "family", "winter", "doctor", "market", "school",
    "ocean", "bridge", "village", "kitchen", "library", "mountain", "festival", "student", "farmer", "island",
)  # fmt: skip
# A short prompt keeps the training cheap on a shared 2-core machine; the scorer is given the same template.
TEMPLATE = "Text: '{content}' Predict the reaction ({options}):"
REACTIONS = ("ignore", "like", "share", "comment")


def planted_sentence(rng: np.random.Generator, with_word: bool, n_words: int = 5) -> str:
    words = list(rng.choice(NEUTRAL, n_words, replace=False))
    if with_word:
        words[int(rng.integers(0, n_words))] = PLANTED
    return " ".join(words)


def save_planted_checkpoint(folder: Path, steps: int = 100, seed: int = 0) -> Path:
    """Train and save the planted-word model into `folder` (about 10-20 s on one CPU thread)."""
    import torch

    from lsbm_sim.behavior.tiny_models import random_llama, tiny_llama_config, train_tokenizer

    rng = np.random.default_rng(seed)
    texts = [planted_sentence(rng, k % 2 == 0) for k in range(200)]
    template = PromptTemplate(TEMPLATE)
    prompts = [template.render(BehaviorQuery("A typical reader.", t, SocialContext()), REACTIONS) for t in texts]
    tokenizer = train_tokenizer(prompts + [" ".join(f" {w}" for w in (*NEUTRAL, PLANTED))] * 20)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model gains nothing from threads, and the machine is shared
    try:
        model = random_llama(tiny_llama_config(len(tokenizer)), tokenizer, seed=seed)
        model.train()
        share, ignore = (tokenizer.convert_tokens_to_ids(tokenizer.tokenize(f" {w}"))[0] for w in ("share", "ignore"))
        targets = torch.tensor([share if PLANTED in t.split() else ignore for t in texts])
        encoded = tokenizer(prompts, add_special_tokens=True)["input_ids"]
        width = max(map(len, encoded))
        ids = torch.full((len(encoded), width), tokenizer.pad_token_id)
        mask = torch.zeros_like(ids)
        for i, e in enumerate(encoded):  # left padding, as the scorer pads
            ids[i, width - len(e) :] = torch.tensor(e)
            mask[i, width - len(e) :] = 1
        positions = (mask.cumsum(1) - 1).clamp(min=0)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        generator = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            rows = torch.randint(0, len(encoded), (32,), generator=generator)
            logits = model(input_ids=ids[rows], attention_mask=mask[rows], position_ids=positions[rows],
                           logits_to_keep=1).logits[:, -1]  # fmt: skip
            loss = torch.nn.functional.cross_entropy(logits, targets[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
    finally:
        torch.set_num_threads(threads)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder, safe_serialization=True)
    return folder
