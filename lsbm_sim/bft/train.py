"""Behavior instruction fine-tuning: train a causal LM on a prepared folder's instructions, export a checkpoint.

The loss is the answer's (the prompt's tokens are labelled -100), as in instruction tuning. Behavior tokens
(`<|low|>` ...) are added to the tokenizer, the embeddings resized, and each new row started from the embedding
of the word it stands for (" low"), so the tuned model begins from what the base model knows about the word.

LoRA (peft, every linear layer; the behavior tokens' embedding rows trained too) or full fine-tuning, with
transformers' Trainer: bf16 on a GPU that has it, float32 elsewhere, a progress bar, a fixed seed, a checkpoint
every `save_steps` steps in `OUT.checkpoints/`. Running the same command again after an interruption resumes
from the last checkpoint. The exported folder `OUT` (LoRA merged into the weights) loads with
`AutoModelForCausalLM.from_pretrained` and with `behavior.backend: hf`: it holds `lsbm_behavior.json`, which tells
the hf scorer the prompt, the levels and each level's mean training rate.

>>> settings = TrainSettings(lora=True)
>>> report = train_lsbm("data/bft", "meta-llama/Llama-3.2-3B", "models/lsbm", settings)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lsbm_sim.behavior.prompts import behavior_token
from lsbm_sim.bft.instructions import PreparedData, staged_folder
from lsbm_sim.errors import LsbmError

RUN_FILE = "bft_run.json"
REPORT_FILE = "train_report.json"
# Settings that may differ between an interrupted run and its resumption without changing what is trained.
RESUMABLE_DIFFERENCES = {"progress", "keep_checkpoints", "save_steps", "save_total_limit", "eval_batch_size"}


@dataclass
class TrainSettings:
    """Everything a training run is configured by (the Trainer's settings in lsbm-sim's words).

    `steps`: optimizer steps (None: `epochs` passes over the training instructions). `learning_rate` None:
    2e-4 for LoRA, 2e-5 for full fine-tuning (a randomly initialised model needs more, e.g. 3e-3). `tasks`:
    which instruction tasks to train on (None: all the folder has). `precision` "auto": bf16 where the GPU
    supports it, else float32.

    Disk: a checkpoint of full fine-tuning holds the float32 weights and AdamW's two moments, 12 bytes a
    parameter (38.6 GB for Llama 3.2 3B's 3.2 billion), and `save_total_limit` of them are kept. `save_only_model`
    keeps the weights alone (4 bytes a parameter, 12.9 GB), without the optimizer's state, so an interrupted run cannot resume
    exactly from it; `save_checkpoints` False writes none at all before the export.
    """

    lora: bool = False
    steps: int | None = None
    epochs: float = 1.0
    batch_size: int = 8
    gradient_accumulation: int = 1
    learning_rate: float | None = None
    warmup_fraction: float = 0.03
    weight_decay: float = 0.0
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    save_steps: int = 200
    save_total_limit: int = 2
    save_checkpoints: bool = True
    save_only_model: bool = False
    seed: int = 0
    tasks: tuple[str, ...] | None = None
    max_length: int = 512
    precision: str = "auto"
    gradient_checkpointing: bool = False
    keep_checkpoints: bool = False
    progress: bool = True
    eval_batch_size: int = 32

    def resolved_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-4 if self.lora else 2e-5


@dataclass
class TrainReport:
    """What a run did: steps, losses, time, the checkpoint it resumed from, and where the result is."""

    out: str
    base: str
    steps: int
    examples: int
    train_loss: float | None
    val_loss: float | None
    seconds: float
    resumed_from: str | None
    trainable_parameters: int
    total_parameters: int
    behavior_tokens: list[str]
    device: str
    precision: str
    settings: dict[str, Any] = field(default_factory=dict)
    behavior_file: bool = True
    log: list[dict[str, Any]] = field(default_factory=list)


# -------------------------------------------------------------------------------------------- the model


def load_base(base: str, dtype: Any) -> tuple[Any, Any]:
    """The base model's tokenizer and model (a folder, or a hub id already on this machine)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LsbmError(f"--base {base}: could not load the base model ({first})") from None
    if tokenizer.pad_token_id is None:
        # Llama 3 has no padding token; padding positions are masked, so any id will do.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model


def add_behavior_tokens(tokenizer: Any, model: Any, tokens: Sequence[str]) -> list[int]:
    """Add `tokens` (`<|low|>` ...) to the tokenizer and the model; return their ids.

    New embedding rows start as the mean embedding of the word each token stands for (`<|low|>` -> " low"), in
    the input and, if not tied to it, the output embeddings.
    """
    import torch

    new = [t for t in tokens if t not in tokenizer.get_vocab()]
    if new:
        tokenizer.add_tokens(list(new), special_tokens=True)
        # Grow the embeddings only when the new ids fall outside them: some checkpoints have spare rows, and a
        # tokenizer smaller than its model's embedding must not shrink it.
        if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
        token_ids = [tokenizer.convert_tokens_to_ids(t) for t in new]
        word_ids = [tokenizer(" " + t[2:-2], add_special_tokens=False)["input_ids"] for t in new]
        with torch.no_grad():
            for matrix in {id(m): m for m in (model.get_input_embeddings().weight,
                                              model.get_output_embeddings().weight)}.values():  # fmt: skip
                for token_id, ids in zip(token_ids, word_ids):
                    matrix[token_id] = matrix[ids].mean(dim=0)
    return [tokenizer.convert_tokens_to_ids(t) for t in tokens]


def wrap_lora(model: Any, settings: TrainSettings, trainable_token_ids: Sequence[int]) -> Any:
    """A peft LoRA model on every linear layer, with the behavior tokens' embedding rows trainable too."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise LsbmError("--lora needs the peft package (pip install peft)") from None
    options: dict[str, Any] = {}
    if trainable_token_ids and "trainable_token_indices" in LoraConfig.__dataclass_fields__:
        # Trains only these rows of the (possibly tied) embedding; older peft leaves them at their initial value.
        options["trainable_token_indices"] = list(trainable_token_ids)
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules="all-linear",
        **options,
    )
    return get_peft_model(model, config)


# ----------------------------------------------------------------------------------------------- the data


def tokenize_instructions(
    records: Sequence[dict[str, Any]], tokenizer: Any, max_length: int
) -> list[dict[str, list[int]]]:
    """input_ids / attention_mask / labels per instruction; only the answer and the end token carry labels.

    The prompt is tokenized as the hf scorer tokenizes it (with the tokenizer's BOS); a prompt too long for
    `max_length` loses tokens from its start, after BOS, so the question and answer options stay.
    """
    prompts = tokenizer([r["prompt"] for r in records], add_special_tokens=True)["input_ids"]
    answers = tokenizer([r["completion"] for r in records], add_special_tokens=False)["input_ids"]
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    features = []
    for prompt, answer in zip(prompts, answers):
        answer = list(answer) + eos
        room = max_length - len(answer)
        if len(prompt) > room:
            keep_first = 1 if prompt and prompt[0] == tokenizer.bos_token_id else 0
            prompt = prompt[:keep_first] + prompt[len(prompt) - (room - keep_first) :]
        ids = list(prompt) + answer
        features.append(
            {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [-100] * len(prompt) + answer}
        )
    return features


class InstructionDataset:
    """A list of tokenized instructions as the map-style dataset Trainer wants."""

    def __init__(self, features: list[dict[str, list[int]]]):
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.features[i]


# ---------------------------------------------------------------------------------------------- training


def checkpoint_folder(out: Path | str) -> Path:
    """Where a run's intermediate checkpoints go: beside the result, `OUT.checkpoints/`."""
    out = Path(out)
    return out.with_name(out.name + ".checkpoints")


def train_lsbm(
    data_dir: Path | str,
    base: str,
    out: Path | str,
    settings: TrainSettings | None = None,
    callbacks: Sequence[Any] = (),
    overwrite: bool = False,
) -> TrainReport:
    """Fine-tune `base` on the instructions in `data_dir`; export the merged model to `out`.

    If `OUT.checkpoints/` holds checkpoints from an earlier run with the same settings, training resumes from
    the last one. `callbacks` are transformers TrainerCallbacks (progress reporting, early stopping, ...).
    """
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    settings = settings or TrainSettings()
    out = Path(out)
    if out.exists() and not overwrite:
        raise LsbmError(f"{out} already exists; choose another --out or pass --overwrite")
    data = PreparedData.read(data_dir)
    tasks = tuple(settings.tasks) if settings.tasks else tuple(data.tasks)
    unknown = sorted(set(tasks) - set(data.tasks))
    if unknown:
        raise LsbmError(f"{data_dir} has no instructions for task(s) {unknown}; it has {data.tasks}")
    train_records = [r for r in data.instructions("train") if r["task"] in tasks]
    val_records = [r for r in data.instructions("val") if r["task"] in tasks]
    if not train_records:
        raise LsbmError(f"{data_dir}/train.jsonl has no instructions for tasks {list(tasks)}")

    cuda = torch.cuda.is_available()
    if settings.precision not in ("auto", "bf16", "fp32"):
        raise LsbmError(f"--precision {settings.precision!r}: use auto, bf16 or fp32")
    bf16 = settings.precision == "bf16" or (settings.precision == "auto" and cuda and torch.cuda.is_bf16_supported())
    # LoRA keeps the frozen base in bf16 (half the memory); full fine-tuning keeps float32 master weights and
    # lets autocast run the matmuls in bf16.
    load_dtype = torch.bfloat16 if bf16 and settings.lora else torch.float32

    checkpoints = checkpoint_folder(out)
    run_description = {"data": str(Path(data_dir).resolve()), "base": base, "settings": asdict(settings)}
    resume_from = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if resume_from is not None:
        check_same_run(checkpoints / RUN_FILE, run_description)
    checkpoints.mkdir(parents=True, exist_ok=True)
    (checkpoints / RUN_FILE).write_text(json.dumps(run_description, indent=2, default=list))

    set_seed(settings.seed)
    tokenizer, model = load_base(base, load_dtype)
    tokens = data.behavior_tokens
    token_ids = add_behavior_tokens(tokenizer, model, tokens) if tokens else []
    model.config.use_cache = False  # the cache is for generation; training would only keep it in memory
    if settings.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
    if settings.lora:
        model = wrap_lora(model, settings, token_ids)

    train_set = InstructionDataset(tokenize_instructions(train_records, tokenizer, settings.max_length))
    val_set = InstructionDataset(tokenize_instructions(val_records, tokenizer, settings.max_length))
    steps_per_epoch = max(1, -(-len(train_set) // (settings.batch_size * settings.gradient_accumulation)))
    total_steps = settings.steps or max(1, int(round(settings.epochs * steps_per_epoch)))
    args = TrainingArguments(
        output_dir=str(checkpoints),
        max_steps=total_steps,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.eval_batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation,
        learning_rate=settings.resolved_learning_rate(),
        lr_scheduler_type="cosine",
        warmup_steps=int(settings.warmup_fraction * total_steps),
        weight_decay=settings.weight_decay,
        bf16=bf16,
        logging_steps=max(1, min(50, total_steps // 20)),
        save_strategy="steps" if settings.save_checkpoints else "no",
        save_steps=settings.save_steps,
        save_total_limit=settings.save_total_limit,
        save_only_model=settings.save_only_model,
        seed=settings.seed,
        data_seed=settings.seed,
        report_to="none",
        disable_tqdm=not settings.progress,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=not cuda,
    )
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100,
                                      pad_to_multiple_of=8 if cuda else None)  # fmt: skip
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=val_set if len(val_set) else None,
        data_collator=collator,
        callbacks=list(callbacks),
    )
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume_from)
    val_loss = float(trainer.evaluate()["eval_loss"]) if len(val_set) else None
    seconds = time.perf_counter() - started

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    report = TrainReport(
        out=str(out),
        base=base,
        steps=int(trainer.state.global_step),
        examples=len(train_set),
        train_loss=float(result.training_loss) if result.training_loss is not None else None,
        val_loss=val_loss,
        seconds=round(seconds, 2),
        resumed_from=Path(resume_from).name if resume_from else None,
        trainable_parameters=int(trainable),
        total_parameters=int(total),
        behavior_tokens=list(tokens),
        device="cuda" if cuda else "cpu",
        precision="bf16" if bf16 else "fp32",
        settings=asdict(settings),
        log=list(trainer.state.log_history),
    )
    export_checkpoint(trainer.model, tokenizer, data, out, report, overwrite=overwrite)
    if not settings.keep_checkpoints:
        shutil.rmtree(checkpoints, ignore_errors=True)
    return report


def check_same_run(path: Path, description: dict[str, Any]) -> None:
    """Refuse to resume checkpoints that another configuration made (their weights would be mixed up)."""
    if not path.is_file():
        raise LsbmError(f"{path.parent} holds checkpoints of unknown origin (no {RUN_FILE}); remove it to start afresh")
    earlier = json.loads(path.read_text())
    now = json.loads(json.dumps(description, default=list))
    differences = [k for k in ("data", "base") if earlier.get(k) != now[k]]
    differences += [
        f"settings.{k}" for k, v in now["settings"].items()
        if k not in RESUMABLE_DIFFERENCES and earlier.get("settings", {}).get(k) != v
    ]  # fmt: skip
    if differences:
        raise LsbmError(
            f"{path.parent} holds checkpoints of a run with different {', '.join(differences)}; "
            "use the same settings to resume, or remove that folder to start afresh"
        )


# ------------------------------------------------------------------------------------------------ export


def export_checkpoint(model: Any, tokenizer: Any, data: PreparedData, out: Path, report: TrainReport,
                      overwrite: bool = False) -> Path:  # fmt: skip
    """Write the tuned model (LoRA merged), its tokenizer, `lsbm_behavior.json` and `train_report.json` to `out`."""
    import torch
    from transformers import PreTrainedModel

    if not isinstance(model, PreTrainedModel):  # a peft model: fold the adapters into the weights
        model = model.merge_and_unload()
    if report.precision == "bf16":
        model = model.to(torch.bfloat16)  # as it was trained and will be served: half the size of float32
    model.config.use_cache = True
    model.eval()
    with staged_folder(out, overwrite=overwrite) as staging:
        with torch.no_grad():
            model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        behavior = behavior_checkpoint(data, report)
        if behavior is None:
            report.behavior_file = False
        else:
            behavior.write(staging)
        (staging / REPORT_FILE).write_text(json.dumps(asdict(report), indent=2, default=str))
    return out


def behavior_checkpoint(data: PreparedData, report: TrainReport) -> Any:
    """The `lsbm_behavior.json` description for the hf backend, or None where the levels are not rates.

    A behavior given as a count with no exposure has level means that are counts, not probabilities, and a
    relative target's are log-rate differences; no reaction probability can be read from either.
    """
    from lsbm_sim.behavior.checkpoint import BehaviorCheckpoint
    from lsbm_sim.bft.instructions import RATE_TARGET

    if data.target != RATE_TARGET or not all(0.0 <= r <= 1.0 for r in data.level_rates.values()):
        return None
    return BehaviorCheckpoint(
        behavior=data.behavior,
        levels=list(data.levels),
        level_rates={k: float(v) for k, v in data.level_rates.items()},
        reaction=data.reaction,
        prompt=data.level_prompt,
        behavior_tokens="tokens" in data.forms and bool(report.behavior_tokens),
        metadata={
            "base": report.base,
            "data": data.source,
            "split": data.split,
            "counts": data.counts,
            "steps": report.steps,
            "lora": report.settings.get("lora"),
            "val_loss": report.val_loss,
            "level_tokens": [behavior_token(level) for level in data.levels],
        },
    )
