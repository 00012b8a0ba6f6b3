"""bft train: a real tiny Llama, real Trainer and peft; interruption and resumption; the exported folder."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from lsbm_sim.behavior.checkpoint import BehaviorCheckpoint
from lsbm_sim.bft.cli import run_bft_cli
from lsbm_sim.bft.data import EngagementColumns, SplitSpec
from lsbm_sim.bft.instructions import PreparedData, prepare_dataset
from lsbm_sim.bft.train import TrainSettings, checkpoint_folder, train_lsbm

from bft_fixtures import one_torch_thread, tiny_base_model, write_planted_csv  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A small planted-signal corpus prepared with the behavior named 'like' (the seed card's prompt), with both
    tasks (level in words and behavior tokens, numeric rate bin), and a base model."""
    root = tmp_path_factory.mktemp("bft_train")
    csv = write_planted_csv(root, n_tests=60)
    columns = EngagementColumns("headline", "clicks", "impressions", group="test_id")
    prepare_dataset(csv, columns, root / "data", SplitSpec.parse("time:week"), behavior_name="like")
    return root / "data", tiny_base_model(root / "base")


class PowerCut(Exception):
    """Stands for whatever stops a run midway (a killed job, a lost machine)."""


class CutAtStep(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise PowerCut(f"stopped at step {self.step}")


def test_interrupted_training_resumes_from_the_last_checkpoint_and_finishes(prepared, tmp_path):
    data, base = prepared
    settings = TrainSettings(steps=40, batch_size=8, learning_rate=3e-3, save_steps=10, progress=False)
    out = tmp_path / "model"
    with pytest.raises(PowerCut):
        train_lsbm(data, str(base), out, settings, callbacks=[CutAtStep(25)])
    checkpoints = checkpoint_folder(out)
    assert {p.name for p in checkpoints.glob("checkpoint-*")} == {"checkpoint-10", "checkpoint-20"}
    assert not out.exists()  # nothing looks finished

    report = train_lsbm(data, str(base), out, settings)
    assert report.resumed_from == "checkpoint-20" and report.steps == 40
    assert (out / "model.safetensors").is_file() and not checkpoints.exists()
    assert json.loads((out / "train_report.json").read_text())["resumed_from"] == "checkpoint-20"

    # Resuming restores weights, optimizer, scheduler, data order and random state: same result as no interruption.
    straight = train_lsbm(data, str(base), tmp_path / "straight", settings)
    assert straight.resumed_from is None
    resumed = AutoModelForCausalLM.from_pretrained(out).state_dict()
    reference = AutoModelForCausalLM.from_pretrained(tmp_path / "straight").state_dict()
    assert all(torch.allclose(resumed[k], reference[k], atol=1e-6) for k in reference)


def test_checkpoints_of_another_configuration_are_not_resumed(prepared, tmp_path, capsys):
    data, base = prepared
    out = tmp_path / "model"
    settings = TrainSettings(steps=20, batch_size=8, learning_rate=3e-3, save_steps=10, progress=False)
    with pytest.raises(PowerCut):
        train_lsbm(data, str(base), out, settings, callbacks=[CutAtStep(15)])
    code = run_bft_cli(["train", str(data), "--base", str(base), "--out", str(out), "--steps", "20",
                        "--batch-size", "8", "--lr", "0.01", "--save-steps", "10", "--no-progress"])  # fmt: skip
    assert code == 2
    assert "settings.learning_rate" in capsys.readouterr().err


def test_disk_safe_settings_keep_weights_only_or_no_checkpoints(prepared, tmp_path):
    # Full fine-tuning of 3.2B parameters writes 38.6 GB per checkpoint with the optimizer; these settings fit a disk.
    data, base = prepared
    common = dict(steps=20, batch_size=8, learning_rate=3e-3, save_steps=5, save_total_limit=5, progress=False)
    out = tmp_path / "weights-only"
    with pytest.raises(PowerCut):
        train_lsbm(data, str(base), out, TrainSettings(save_only_model=True, **common), callbacks=[CutAtStep(12)])
    saved = sorted(checkpoint_folder(out).glob("checkpoint-*"))
    assert [p.name for p in saved] == ["checkpoint-10", "checkpoint-5"]
    assert all((p / "model.safetensors").is_file() and not (p / "optimizer.pt").exists() for p in saved)

    out = tmp_path / "none"
    with pytest.raises(PowerCut):
        train_lsbm(data, str(base), out, TrainSettings(save_checkpoints=False, **common), callbacks=[CutAtStep(12)])
    assert not list(checkpoint_folder(out).glob("checkpoint-*"))
    report = train_lsbm(data, str(base), out, TrainSettings(save_checkpoints=False, **common))
    assert report.steps == 20 and report.resumed_from is None and (out / "model.safetensors").is_file()


def test_lora_export_is_a_plain_checkpoint_with_behavior_tokens_and_the_behavior_file(prepared, tmp_path):
    data, base = prepared
    out = tmp_path / "lsbm"
    settings = TrainSettings(lora=True, steps=40, batch_size=8, learning_rate=3e-3, save_steps=1000, progress=False)
    report = train_lsbm(data, str(base), out, settings)
    assert report.trainable_parameters < report.total_parameters
    assert report.examples == 3 * PreparedData.read(data).counts["train"]  # level (2 forms) and rate bin per row

    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert not any("lora" in name for name in model.state_dict())  # merged, not an adapter
    base_model = AutoModelForCausalLM.from_pretrained(base)
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(model.state_dict()[name], base_model.state_dict()[name])

    # Behavior tokens: one token each, rows added to the embeddings, trained away from the word they started as.
    token_ids = [tokenizer.convert_tokens_to_ids(f"<|{level}|>") for level in ("low", "medium", "high")]
    assert all(tokenizer(f"<|{level}|>", add_special_tokens=False)["input_ids"] == [i]
               for level, i in zip(("low", "medium", "high"), token_ids))  # fmt: skip
    embeddings = model.get_input_embeddings().weight
    assert embeddings.shape[0] == len(tokenizer) > base_model.get_input_embeddings().weight.shape[0]
    low_word = tokenizer(" low", add_special_tokens=False)["input_ids"]
    assert not torch.allclose(embeddings[token_ids[0]], embeddings[low_word].mean(dim=0))

    checkpoint = BehaviorCheckpoint.read(out)
    prepared_data = PreparedData.read(data)
    assert checkpoint.levels == ["low", "medium", "high"] and checkpoint.behavior == "like"
    assert checkpoint.level_rates == prepared_data.level_rates
    assert checkpoint.behavior_tokens and checkpoint.reaction == "share"


def test_bad_base_model_exits_2(prepared, tmp_path, capsys):
    data, _ = prepared
    code = run_bft_cli(["train", str(data), "--base", str(tmp_path / "no-such-model"), "--out", str(tmp_path / "m")])
    assert code == 2
    err = capsys.readouterr().err
    assert "no-such-model" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m").exists()


def test_gpu_benchmark_runs_its_cpu_path_through_the_whole_pipeline():
    # benchmarks/gpu_bft.py is run on a lent GPU machine; its --tiny path is the same code on a tiny model.
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_bft.py"
    spec = importlib.util.spec_from_file_location("gpu_bft", path)
    gpu_bft = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_bft)
    report = gpu_bft.run_benchmark(tiny=True, steps=8)
    assert report["steps"] == 8 and report["steps_per_second"] > 0 and report["tokens_per_second"] > 0
    assert report["trainable_parameters"] < report["total_parameters"]  # LoRA
    assert {"lsbm_behavior.json", "model.safetensors", "train_report.json"} <= set(report["export_files"])
    assert report["evaluated_rows"] > 0
