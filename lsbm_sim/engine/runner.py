"""Running a scenario as the command line does: to a results folder published atomically, with partial results,
checkpoints and resume (`run`); and sampling the questions a scenario asks its behavior model (`sample_queries`,
for distillation). Checking a scenario without running it is `lsbm_sim.engine.validate`."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from lsbm_sim.engine import checkpoint, interrupts
from lsbm_sim.engine.agents import UserAgent
from lsbm_sim.behavior import BehaviorModel
from lsbm_sim.behavior.base import BehaviorModelBase, QueryBatch, as_batch
from lsbm_sim.errors import LsbmError
from lsbm_sim.engine.model import SocialModel
from lsbm_sim.analysis.results import (
    EVENTS,
    SimulationResult,
    check_output_folder,
    partial_dir,
    publish,
    staging_dir,
    write_tables,
)
from lsbm_sim.scenario import Scenario, load_scenario


def run(
    scenario: Scenario | str | Path,
    seed: int | None = None,
    out: Path | str | None = None,
    overrides: Sequence[str] = (),
    behavior: BehaviorModel | None = None,
    agent_class: type[UserAgent] = UserAgent,
    progress: Callable[[int, int], None] | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
) -> SimulationResult:
    """Run a scenario to the end and return its results; with `out`, also write the results folder.

    >>> res = run("scenarios/eco_product_launch.yaml", seed=7)  # doctest: +SKIP
    >>> res.events.head()  # doctest: +SKIP

    A run that fails part-way raises; with `out`, what it had gathered is kept in `<out>.partial/` with
    `complete: false` in its manifest, and `out` itself is left as it was.

    `checkpoint_every` K (needs `out`): save the state to `<out>.checkpoint/` every K steps; with `out`, a run
    stopped by Ctrl-C or SIGTERM saves one there too. `resume`: continue from the checkpoint there (same scenario
    and seed, or it is refused). The checkpoint is removed once the results are published.
    """
    if (checkpoint_every or resume) and out is None:
        raise LsbmError("--checkpoint-every and --resume need --out: the checkpoint is kept beside the results")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise LsbmError(f"--checkpoint-every: {checkpoint_every} is not a positive number of steps")
    if out is None:
        model = SocialModel(scenario, seed=seed, overrides=overrides, behavior=behavior, agent_class=agent_class)
        try:
            model.run(progress)
        finally:
            model.broker.close()
        return model.result()

    out = Path(out)
    check_output_folder(out)
    kept = checkpoint.checkpoint_dir(out)
    if resume and not (kept / checkpoint.STATE).is_file():
        raise LsbmError(f"--resume: no checkpoint in {kept} (run with --checkpoint-every K first)")
    if not resume:
        checkpoint.remove(kept)  # an earlier run's checkpoint: this run starts afresh
    staging = staging_dir(out)
    model = None
    try:
        model = SocialModel(
            scenario, seed=seed, overrides=overrides, behavior=behavior, agent_class=agent_class,
            # The checkpoint folder is always there (it keeps the event log's row groups as they are written), so
            # that a signal can save a resumable checkpoint at the end of the step it arrives in.
            events_path=staging / EVENTS, checkpoint_dir=kept,
            checkpoint_every=checkpoint_every,
        )  # fmt: skip
        if resume:
            checkpoint.restore(model, kept)
        model.run(progress)
        result = model.result()
        write_tables(staging, result.steps, result.items, result.agents, result.manifest, result.cascades)
        publish(staging, out)
        checkpoint.remove(kept)
        result.path = out
        return result
    except BaseException as exc:
        partial = model is not None and model.steps_completed > 0 and _keep_partial(model, staging, out, exc)
        resumable = (kept / checkpoint.STATE).is_file()
        if not resumable:  # row groups with no state to resume from: nothing to keep
            checkpoint.remove(kept)
        if isinstance(exc, interrupts.Interrupted):
            exc.kept = _what_was_kept(out, partial, resumable, exc.not_saved)
        elif isinstance(exc, checkpoint.CheckpointError) and partial:
            raise checkpoint.CheckpointError(f"{exc}; the finished steps are kept in {partial_dir(out)}/") from None
        raise
    finally:
        if model is not None:
            model.broker.close()
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _what_was_kept(out: Path, partial: bool, resumable: bool, not_saved: str | None) -> str:
    """The line a stopped run ends with: where its finished steps are, and whether and how it can go on."""
    said = [
        f"kept the finished steps in {partial_dir(out)}/ (load_results(path, allow_incomplete=True) reads it)"
        if partial else "stopped before the first step ended; nothing was kept"
    ]  # fmt: skip
    if not_saved is not None:
        said.append(not_saved)
    if resumable:
        last = "the last" if not_saved is not None else "the"
        said.append(f"the same command with --resume continues from {last} checkpoint in {checkpoint.checkpoint_dir(out)}/")
    elif not_saved is not None:
        said.append("--resume cannot continue this run")
    return "; ".join(said)


def _keep_partial(model: SocialModel, staging: Path, out: Path, exc: BaseException) -> bool:
    """Save what a failed run gathered to `<out>.partial/`, marked incomplete; whether it was saved."""
    try:
        model.events.close()
        steps = model.datacollector.get_model_vars_dataframe().reset_index(drop=True)
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        write_tables(staging, steps, model.items_table(), model.agents_table(), model.manifest(False, message))
        target = partial_dir(out)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    except Exception:  # keeping the partial results must never hide the original error
        return False
    return True


def sample_queries(scenario: Scenario | str | Path, n: int, seed: int = 0, overrides: Sequence[str] = ()) -> QueryBatch:
    """A random sample of n distinct questions the scenario's agents are asked (run with the default surrogate).

    Used to distil a language model into the surrogate's head: the teacher answers these questions.
    """
    from lsbm_sim.behavior.surrogate import SurrogateModel

    scenario = load_scenario(scenario, overrides)
    recorder = QueryRecorder(SurrogateModel(reactions=scenario.behavior.reactions))
    model = SocialModel(scenario, seed=seed, behavior=recorder)
    model.run()
    batch = concat_batches(recorder.asked)
    if len(batch) > n:
        rows = np.sort(np.random.default_rng(seed).choice(len(batch), size=n, replace=False))
        batch = batch.take(rows)
    return batch


class QueryRecorder(BehaviorModelBase):
    """A behavior model that answers with another and keeps every batch it is asked (distinct questions only,
    since the broker asks each once)."""

    def __init__(self, inner: BehaviorModel):
        self.inner = inner
        self.reactions = tuple(inner.reactions)
        self.depends_on = tuple(getattr(inner, "depends_on", BehaviorModelBase.depends_on))
        self.asked: list[QueryBatch] = []

    def predict_proba(self, queries):
        batch = as_batch(queries)
        self.asked.append(batch)
        return self.inner.predict_proba(batch)


def concat_batches(batches: list[QueryBatch]) -> QueryBatch:
    """Join batches that share their text tables (batches of one simulation)."""
    if not batches:
        raise ValueError("no queries to join")
    first = batches[0]
    columns = ("persona_id", "item_id", "label_id", "sharers", "proof", "age", "seen", "promoted", "agent_id", "n_sharers")
    return QueryBatch(
        personas=first.personas,
        contents=first.contents,
        labels=list(batches[-1].labels),  # labels only grow during a run
        dispositions=first.dispositions,
        **{c: np.concatenate([getattr(b, c) for b in batches]) for c in columns},
    )


