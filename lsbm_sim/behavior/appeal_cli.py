"""`lsbm-sim appeal fit`: rebuild the content-appeal read-out from an Upworthy packages table.

    lsbm-sim appeal fit ../shared/data/upworthy/upworthy_packages_dev.csv --out lsbm_sim/behavior/data/appeal_upworthy.json

The recipe is `lsbm_sim.behavior.appeal.fit_upworthy`; the command prints the validation choice and the held-out
scores, and writes the read-out (with that report in its `meta`) only once everything has succeeded.
"""

from __future__ import annotations

from pathlib import Path

import typer

appeal_app = typer.Typer(help="Content appeal learned from real A/B tests: rebuild the read-out.",
                         no_args_is_help=True, add_completion=False)  # fmt: skip


@appeal_app.command()
def fit(
    data: Path = typer.Argument(..., help="Upworthy packages table (CSV or Parquet; see ../shared/data/upworthy)."),
    out: Path = typer.Option(..., help="JSON file to write the read-out to."),
    subset: int | None = typer.Option(None, help="Keep about this many tests per split (every k-th test id): a "
                                               "quick rebuild, for checks; the shipped file uses all."),
    threads: int = typer.Option(1, help="PyTorch threads for the encoder (1 is fastest on a busy machine)."),
) -> None:
    """Fit the read-out on the training weeks, choose its penalty on the validation weeks, score the test weeks."""
    import torch

    from lsbm_sim.behavior.appeal import fit_upworthy

    torch.set_num_threads(threads)
    readout, _ = fit_upworthy(data, subset=subset, log=typer.echo)
    typer.echo(f"wrote {readout.save(out)}")
