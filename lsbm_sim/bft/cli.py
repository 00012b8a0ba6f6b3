"""`lsbm-sim bft`: prepare behavior instructions, fine-tune a model on them, evaluate it.

    lsbm-sim bft prepare DATA.csv --text headline --behavior clicks --exposure impressions --group test_id \\
             --split time:week --out data/bft
    lsbm-sim bft prepare DATA.csv --text headline --behavior clicks --exposure impressions \\
             --relative-to test_id --split time:week --drop-time 201326..201402 --out data/bft-relative
    lsbm-sim bft train data/bft --base PATH_OR_HUB_ID --lora --out models/lsbm
    lsbm-sim bft eval models/lsbm data/bft --baseline PATH_OR_HUB_ID
    lsbm-sim bft eval data/bft --baselines-only

Bad input raises LsbmError/DataError; the `lsbm-sim` command prints their message as one line and exits 2.
`run_bft_cli(argv)` does the same for these commands alone (for tests, and for `python -m lsbm_sim.bft.cli`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import typer

from lsbm_sim.errors import LsbmError

bft_app = typer.Typer(
    help="Behavior instruction fine-tuning: content-behavior data -> behavior instructions -> LSBM checkpoint.",
    no_args_is_help=True,
    add_completion=False,
)


def split_list(text: str) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']: a comma-separated option's values."""
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_range(text: str | None, flag: str = "--exclude-time") -> tuple[float, float] | None:
    """'201326..201402' -> (201326.0, 201402.0); `flag` names the option in the error message."""
    if not text:
        return None
    low, sep, high = text.partition("..")
    try:
        if not sep:
            raise ValueError
        low_value, high_value = float(low), float(high)
    except ValueError:
        raise LsbmError(f"{flag} {text!r}: write it as LOW..HIGH, e.g. 201326..201402") from None
    if low_value > high_value:
        raise LsbmError(f"{flag} {text!r}: LOW is above HIGH")
    return low_value, high_value


@bft_app.command()
def prepare(
    data: Path = typer.Argument(..., help="CSV, TSV, Parquet or JSONL file, one row per piece of content."),
    text: str = typer.Option(..., help="Column with the content (headline, post text)."),
    behavior: str = typer.Option(..., help="Column with the behavior count (clicks, likes) or rate."),
    out: Path = typer.Option(..., help="Folder to write train/val/test JSONL and bft.json into."),
    exposure: str | None = typer.Option(None, help="Column the count is out of (impressions, views)."),
    group: str | None = typer.Option(None, help="Column of groups kept on one side of the split (A/B test id)."),
    split: str = typer.Option("random", help="'random' (by group when --group is given) or 'time:COLUMN'."),
    val: float = typer.Option(0.1, help="Fraction of rows for validation."),
    test: float = typer.Option(0.1, help="Fraction of rows for test."),
    seed: int = typer.Option(0, help="Seed of the random split."),
    name: str | None = typer.Option(None, help="The behavior's name in prompts ('like' -> 'Predict the like level'); "
                                        "default: the behavior column."),
    reaction: str = typer.Option("share", help="Simulation reaction the behavior drives (hf backend)."),
    tasks: str = typer.Option("level,bin", help="Instruction tasks: level, bin (numeric rate bin)."),
    forms: str = typer.Option("words,tokens", help="Forms of the level task: words, tokens (<|low|> ...)."),
    bins: int = typer.Option(5, help="Number of rate bins of the bin task."),
    relative_to: str | None = typer.Option(
        None, help="Group column (A/B test id): levels of each row's log rate minus its group's mean, rows "
                   "weighted by inverse variance (few exposures count less); groups of one row are dropped."),
    test_file: Path | None = typer.Option(
        None, help="Held-out file (same columns) used as the test split; DATA is split into train and val."),
    drop_time: str | None = typer.Option(
        None, help="LOW..HIGH: drop rows whose time is in this inclusive range from every split, training too."),
    time: str | None = typer.Option(None, help="Time column for --drop-time (default: the time:COLUMN split's)."),
    overwrite: bool = typer.Option(False, help="Replace --out if it exists."),
) -> None:
    """Turn engagement data into behavior instructions (levels fitted on the training split only)."""
    from lsbm_sim.bft.data import EngagementColumns, SplitSpec
    from lsbm_sim.bft.instructions import prepare_dataset

    spec = SplitSpec.parse(split, val=val, test=test, seed=seed)
    if time is not None and spec.column not in (None, time):
        raise LsbmError(f"--time {time!r} and --split {split!r} name different time columns")
    prepared = prepare_dataset(
        data,
        EngagementColumns(text=text, behavior=behavior, exposure=exposure, group=group, time=time),
        out,
        spec,
        behavior_name=name,
        reaction=reaction,
        tasks=split_list(tasks),
        forms=split_list(forms),
        bins=bins,
        overwrite=overwrite,
        relative_to=relative_to,
        test_file=test_file,
        drop_time=parse_range(drop_time, "--drop-time"),
    )
    rates = ", ".join(f"{k} {v:.4g}" for k, v in prepared.level_rates.items())
    dropped = "".join(f"; dropped {n} rows ({why})" for why, n in prepared.dropped.items())
    typer.echo(
        f"wrote {out}: train {prepared.counts['train']}, val {prepared.counts['val']}, test {prepared.counts['test']} "
        f"rows{dropped}; level means of the {prepared.target} (training split): {rates}"
    )


@bft_app.command()
def train(
    data: Path = typer.Argument(..., help="Folder written by `bft prepare`."),
    base: str = typer.Option(..., help="Base model: a folder, or a hub id already on this machine."),
    out: Path = typer.Option(..., help="Folder for the tuned model (checkpoints go to OUT.checkpoints/)."),
    lora: bool = typer.Option(False, help="LoRA (peft) instead of full fine-tuning; merged on export."),
    steps: int | None = typer.Option(None, help="Optimizer steps (default: --epochs passes over the data)."),
    epochs: float = typer.Option(1.0, help="Passes over the training instructions when --steps is not given."),
    batch_size: int = typer.Option(8, help="Instructions per device per step."),
    gradient_accumulation: int = typer.Option(1, help="Steps of gradients added up per optimizer step."),
    lr: float | None = typer.Option(None, help="Learning rate (default 2e-4 with --lora, 2e-5 without)."),
    lora_r: int = typer.Option(16, help="LoRA rank."),
    lora_alpha: int = typer.Option(32, help="LoRA alpha."),
    save_steps: int = typer.Option(200, help="Save a checkpoint every this many steps."),
    save_checkpoints: bool = typer.Option(True, help="Save intermediate checkpoints (--no-save-checkpoints: none "
                                                     "before the export; an interrupted run starts again)."),
    save_only_model: bool = typer.Option(False, help="Checkpoints hold the weights only, not the optimizer state "
                                                     "(a quarter of the disk for full fine-tuning)."),
    seed: int = typer.Option(0, help="Seed of initialisation, data order and dropout."),
    tasks: str | None = typer.Option(None, help="Train on these tasks only (default: all the folder has)."),
    max_length: int = typer.Option(512, help="Longest instruction in tokens (longer prompts lose their start)."),
    precision: str = typer.Option("auto", help="auto (bf16 on a GPU that has it), bf16 or fp32."),
    gradient_checkpointing: bool = typer.Option(False, help="Trade compute for activation memory."),
    keep_checkpoints: bool = typer.Option(False, help="Keep OUT.checkpoints/ after a successful export."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    overwrite: bool = typer.Option(False, help="Replace --out if it exists."),
) -> None:
    """Fine-tune a causal LM on the instructions; resume from OUT.checkpoints/ if an earlier run left some."""
    from lsbm_sim.bft.train import TrainSettings, train_lsbm

    settings = TrainSettings(
        lora=lora,
        steps=steps,
        epochs=epochs,
        batch_size=batch_size,
        gradient_accumulation=gradient_accumulation,
        learning_rate=lr,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        save_steps=save_steps,
        save_checkpoints=save_checkpoints,
        save_only_model=save_only_model,
        seed=seed,
        tasks=tuple(split_list(tasks)) if tasks else None,
        max_length=max_length,
        precision=precision,
        gradient_checkpointing=gradient_checkpointing,
        keep_checkpoints=keep_checkpoints,
        progress=progress,
    )
    report = train_lsbm(data, base, out, settings, overwrite=overwrite)
    resumed = f", resumed from {report.resumed_from}" if report.resumed_from else ""
    val = f", val loss {report.val_loss:.4f}" if report.val_loss is not None else ""
    typer.echo(f"wrote {out}: {report.steps} steps in {report.seconds:.0f} s{resumed}{val}")


@bft_app.command("eval")
def evaluate(
    paths: list[Path] = typer.Argument(..., help="MODEL DATA: the tuned model folder (from `bft train`) and the "
                                                 "folder written by `bft prepare`; DATA alone with --baselines-only."),
    baselines_only: bool = typer.Option(False, help="Score the simple baselines (and --baseline) with no tuned model."),
    baseline: str | None = typer.Option(None, help="The untuned base model (folder or hub id) to compare with."),
    out: Path = typer.Option(None, help="Folder for eval.json and eval.md (default: MODEL.eval beside the model, "
                                        "or DATA.eval with --baselines-only)."),
    split: str = typer.Option("test", help="Split to evaluate on: test or val."),
    exclude_time: str | None = typer.Option(None, help="Time range LOW..HIGH left out of pairwise comparisons."),
    encoder: bool = typer.Option(True, help="Include the sentence-encoder baseline."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    batch_tokens: int = typer.Option(8192, help="Tokens per forward pass when scoring."),
) -> None:
    """Tuned vs base vs simple baselines: pairwise accuracy, level accuracy, macro-F1, Spearman, ECE."""
    from lsbm_sim.bft.evaluate import evaluate_lsbm

    if split not in ("test", "val"):
        raise LsbmError(f"--split {split!r}: use test or val")
    if baselines_only and len(paths) != 1:
        raise LsbmError("with --baselines-only give the prepared DATA folder alone (no MODEL)")
    if not baselines_only and len(paths) != 2:
        raise LsbmError("give MODEL and DATA (a tuned model folder and a prepared folder), or DATA --baselines-only")
    model, data = (None, paths[0]) if baselines_only else (paths[0], paths[1])
    report = evaluate_lsbm(
        model, data, baseline=baseline, split=split, exclude_time=parse_range(exclude_time),
        sentence_encoder=encoder, device=device, batch_tokens=batch_tokens,
    )  # fmt: skip
    named = model if model is not None else data
    folder = report.write(out or named.with_name(named.name + ".eval"))
    typer.echo(report.markdown())
    typer.echo(f"wrote {folder}/eval.json and eval.md")


def run_bft_cli(argv: Sequence[str]) -> int:
    """Run `lsbm-sim bft ARGV` and return its exit code: a user error prints one line and gives 2.

    >>> run_bft_cli(["prepare", "missing.csv", "--text", "t", "--behavior", "b", "--out", "x"])  # doctest: +SKIP
    error: missing.csv: data file not found
    2
    """
    import click

    command = typer.main.get_command(bft_app)
    try:
        command.main(args=list(argv), prog_name="lsbm-sim bft", standalone_mode=False)
    except LsbmError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_bft_cli(sys.argv[1:]))
