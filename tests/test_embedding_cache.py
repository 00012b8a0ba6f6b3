"""The on-disk embedding cache: hits skip the model, bad entries are recomputed, the flag turns it off, each
encoder has its own entries, concurrent writers leave whole entries, and a warm cache changes no event log."""

import multiprocessing
import os
import shutil

import numpy as np
import pytest

from lsbm_sim import SocialModel
from lsbm_sim.behavior.embedding_cache import HEADER, EmbeddingCache
from lsbm_sim.behavior.surrogate import SentenceEncoder, SurrogateModel

TEXTS = [
    "Follows news about environment and science. Aged 25-34, politically left, often shares and comments on posts.",
    "Just launched our new eco-friendly product line!",
    "Local team wins the championship",
]


def entry_files(root):
    return sorted(p for p in root.rglob("*.emb"))


def test_a_hit_returns_the_same_vectors_without_loading_the_model(tmp_path):
    cache = EmbeddingCache(tmp_path)
    first = SentenceEncoder(cache=cache)
    computed = first.encode(TEXTS)
    assert first._model is not None and len(entry_files(tmp_path)) == 1

    second = SentenceEncoder(cache=cache)
    read = second.encode(TEXTS)
    assert second._model is None  # the sentence-transformers model was never constructed
    assert read.dtype == np.float32 and read.tobytes() == computed.tobytes()
    assert second.dim == 384 and second._model is None


@pytest.mark.parametrize("damage", ["truncate", "flip a byte", "bad magic", "empty"])
def test_a_corrupt_entry_is_recomputed_not_trusted(tmp_path, damage, caplog):
    cache = EmbeddingCache(tmp_path)
    truth = SentenceEncoder(cache=cache).encode(TEXTS)
    [entry] = entry_files(tmp_path)
    blob = bytearray(entry.read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) - 100]
    elif damage == "flip a byte":  # a vector's value changes; only the checksum can tell
        blob[HEADER.size + 500] ^= 0x10
    elif damage == "bad magic":
        blob[:8] = b"NOTANEMB"
    else:
        blob = bytearray()
    entry.write_bytes(bytes(blob))

    encoder = SentenceEncoder(cache=cache)
    again = encoder.encode(TEXTS)
    assert encoder._model is not None  # the damaged entry sent it back to the model
    assert again.tobytes() == truth.tobytes()
    assert "recomputing" in caplog.text
    assert cache.get(encoder.identity, TEXTS).tobytes() == truth.tobytes()  # and the entry is sound again


def test_the_flag_turns_the_cache_off(tmp_path, monkeypatch):
    monkeypatch.setenv("LSBM_CACHE", str(tmp_path))
    monkeypatch.setenv("LSBM_EMBEDDING_CACHE", "off")
    encoder = SentenceEncoder()
    assert encoder.disk_cache is None
    encoder.encode(TEXTS)
    assert not list(tmp_path.rglob("*"))  # nothing written

    monkeypatch.delenv("LSBM_EMBEDDING_CACHE")
    encoder = SentenceEncoder()
    encoder.encode(TEXTS)
    assert [p.parent.parent.parent for p in entry_files(tmp_path)] == [tmp_path / "embeddings"]


@pytest.fixture(scope="module")
def other_encoder_folder(tmp_path_factory):
    """A second, real encoder: MiniLM's folder with every weight perturbed (its vectors differ)."""
    from safetensors.numpy import load_file, save_file

    source = SentenceEncoder(cache=None).path
    folder = tmp_path_factory.mktemp("other") / "encoder"
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("README.md", "data_config.json"))
    weights = load_file(folder / "model.safetensors")
    rng = np.random.default_rng(0)
    noisy = {
        k: (v + rng.normal(0, 0.05, v.shape).astype(v.dtype)) if v.dtype.kind == "f" else v for k, v in weights.items()
    }
    save_file(noisy, folder / "model.safetensors")
    return folder


def test_each_encoder_has_its_own_entries(tmp_path, other_encoder_folder):
    cache = EmbeddingCache(tmp_path)
    minilm = SentenceEncoder(cache=cache).encode(TEXTS)
    other = SentenceEncoder(other_encoder_folder, cache=cache)
    got = other.encode(TEXTS)
    assert other._model is not None  # MiniLM's entry was not taken for this encoder's
    assert got.tobytes() == SentenceEncoder(other_encoder_folder, cache=None).encode(TEXTS).tobytes()
    assert not np.allclose(got, minilm, atol=1e-3)
    assert len(entry_files(tmp_path)) == 2
    assert SentenceEncoder(cache=cache).identity != SentenceEncoder(cache=cache, batch_size=8).identity


def _rewrite(root, rounds, seed):
    cache = EmbeddingCache(root)
    rng = np.random.default_rng(seed)
    for _ in range(rounds):
        cache.put("enc", TEXTS * 400, rng.random((1200, 384), dtype=np.float32))
    os._exit(0)  # a forked child: skip the parent's exit handlers


def test_concurrent_writers_leave_only_whole_entries(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put("enc", TEXTS * 400, np.zeros((1200, 384), dtype=np.float32))
    # fork: the writers need only numpy and the cache module, which the test process has loaded
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_rewrite, args=(tmp_path, 40, seed)) for seed in range(2)]
    for w in writers:
        w.start()
    reads = 0
    while any(w.is_alive() for w in writers):
        assert cache.get("enc", TEXTS * 400) is not None  # never a torn entry
        reads += 1
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert reads > 10 and len(entry_files(tmp_path)) == 1 and not list(tmp_path.rglob("*.tmp"))


def test_the_event_log_is_the_same_with_the_cache_cold_warm_or_off(tmp_path):
    def events(cache):
        encoder = SentenceEncoder(cache=cache)
        model = SocialModel("scenarios/eco_product_launch.yaml", overrides=["population.size=300", "steps=10"],
                            behavior=SurrogateModel(encoder=encoder))  # fmt: skip
        model.run()
        return model.result().events, encoder

    cold, _ = events(EmbeddingCache(tmp_path))
    warm, encoder = events(EmbeddingCache(tmp_path))
    off, _ = events(None)
    assert encoder._model is None and len(cold) > 100
    assert cold.equals(warm) and cold.equals(off)
