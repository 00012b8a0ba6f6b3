"""Checkpoints of a run: save the whole state every K steps, and continue from the last one after a kill.

A checkpoint lives in `<out>.checkpoint/` beside the results folder (not in the run's staging folder, which a
later run removes when its process is gone):

    state.pkl        the model's mutable state, written to a temporary file, fsynced and renamed into place
    events/NNNNNN.arrows    the batches of each row group the event log has written so far, one Arrow IPC
                            stream each (zstd); Arrow, not Parquet, because it keeps each batch's dictionary of
                            post ids as it was, and the Parquet writer's bytes depend on those dictionaries

The model is rebuilt from the scenario and seed (the world, the behavior model and its encoder, Mesa's agents,
the posting pool and the recommender's text similarities are deterministic functions of them), then everything
a step changes is put back: the per-post and per-(post, person) arrays (retired posts among them), every random
stream's bit-generator state (the posting draws too), the broker's answer memory and statistics, the feed
inboxes, the step counter, the DataCollector's rows and the event rows not yet written. The pickle refers to the
rebuilt, unchanging objects (scenario, population, network, behavior model, broker, posting, recommending, the
model itself) by name instead of copying them, so an encoder, its lock or a database handle is never pickled.

The engine's parts that hold both state and derived handles (`COMPONENTS`: posting, recommending) say what is
theirs to keep: `state_dict()` returns it (the recommender's running top lists and the attributes of the
recommender class, a user's own included) and `load_state_dict()` puts it into the freshly built part.
`check(model)` pickles all of it once before the first step, so that state which cannot be saved (a user's
recommender holding a lock, say) is refused with one line naming it, not at the first checkpoint.

On resume the kept row groups are copied, in order, into the new events file: the event log then continues
exactly where the checkpoint was taken, and the finished `events.parquet` is byte-identical to an uninterrupted
run's (tests/test_checkpoint.py). A checkpoint is a pickle: only load your own.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa

from lsbm_sim.errors import LsbmError

FORMAT = 2
"""Bumped whenever what a checkpoint holds changes; an older checkpoint is refused, not misread."""

STATE = "state.pkl"
SEGMENTS = "events"

COMPONENTS = ("posting", "recommender")
"""Parts of the model rebuilt from the scenario whose changing state is saved through their `state_dict()`."""

# Rebuilt from the scenario and seed rather than saved: unchanging, large, or unpicklable (Mesa's weak-keyed
# agent sets, the DataCollector's lambdas, the event log's open writer, the step method Mesa wraps, the sentence
# encoder the posting and the recommender use).
REBUILT = {
    "scenario", "population", "network", "behavior", "broker", "events", "datacollector", "status", "timings",
    "_agent_list", "_agents", "_agents_by_type", "_all_agents", "_hooked", "_deferred", "_pending_agents", "_user_step",
    "step",
    *COMPONENTS,
    "checkpoint_dir", "checkpoint_every",  # the resumed run's own settings
}  # fmt: skip


class CheckpointError(LsbmError):
    """A checkpoint cannot be saved: state that does not pickle, or a folder that cannot be written."""


def checkpoint_dir(out: Path) -> Path:
    """Where a run writing to `out` keeps its checkpoint: `<out>.checkpoint` beside it."""
    return out.parent / f"{out.name}.checkpoint"


def scenario_hash(scenario) -> str:
    """What a checkpoint must match: the resolved scenario (overrides applied), as JSON."""
    return hashlib.sha256(scenario.model_dump_json().encode()).hexdigest()


class _Pickler(pickle.Pickler):
    def __init__(self, file, shared: dict[int, str]):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._shared = shared

    def persistent_id(self, obj: Any) -> str | None:
        return self._shared.get(id(obj))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, shared: dict[str, Any]):
        super().__init__(file)
        self._shared = shared

    def persistent_load(self, pid: str) -> Any:
        return self._shared[pid]


def _shared(model) -> dict[str, Any]:
    """The rebuilt objects state may refer to (e.g. the recommender's `model`), by name."""
    names = ("scenario", "population", "network", "behavior", "broker", *COMPONENTS)
    shared = {name: getattr(model, name, None) for name in names} | {"model": model}
    return {name: obj for name, obj in shared.items() if obj is not None}


def _payload(model) -> dict[str, Any]:
    events = model.events
    return {
        "format": FORMAT,
        "scenario_hash": scenario_hash(model.scenario),
        "seed": model.seed,
        "steps_completed": model.steps_completed,
        "state": {name: value for name, value in model.__dict__.items() if name not in REBUILT},
        "components": {
            name: part.state_dict() for name in COMPONENTS if (part := getattr(model, name, None)) is not None
        },
        "broker": {"stats": model.broker.stats, "memory": model.broker._memory},
        "collector": model.datacollector.model_vars,
        "events": {
            "rows": events.rows, "exposures": events.exposures, "buffer": events._buffer,
            "buffered": events._buffered, "segments": events.flushes,
        },  # fmt: skip
    }


class _Discard:
    def write(self, data) -> None:
        pass


def check(model) -> None:
    """Pickle everything a checkpoint of `model` would hold, into nothing, and raise `CheckpointError` naming the
    part that cannot be saved (a run with --checkpoint-every calls this before its first step)."""
    payload = _payload(model)
    shared = {id(obj): name for name, obj in _shared(model).items()}
    parts = [(f"model.{name}", value) for name, value in payload.pop("state").items()]
    parts += [(f"model.{name}", value) for name, value in payload.pop("components").items()]
    parts += list(payload.items())
    for name, value in parts:
        try:
            _Pickler(_Discard(), shared).dump(value)
        except Exception as exc:
            part, remedy = _describe_part(model, name)
            raise CheckpointError(f"--checkpoint-every: {part} cannot be saved in a checkpoint "
                                  f"({type(exc).__name__}: {exc}){remedy}") from None  # fmt: skip


def _describe_part(model, name: str) -> tuple[str, str]:
    """What the user calls the part `name` of a checkpoint, and what they can do about it."""
    recommending = getattr(model, "recommender", None)
    if name == "model.recommender" and recommending is not None:
        cls = type(recommending.recommender)
        return (f"the recommender {recommending.name!r} (class {cls.__qualname__})",
                "; give it picklable attributes, or __getstate__ and __setstate__ that say what to keep")  # fmt: skip
    return name, ""


def save(model, folder: Path) -> int:
    """Write `model`'s state to `folder/state.pkl` atomically; returns its size in bytes. A save that fails
    leaves the previous checkpoint as it was.

    The event log's row groups written so far are already in `folder/events/` (see `EventLog.segments`)."""
    payload = _payload(model)
    shared = {id(obj): name for name, obj in _shared(model).items()}
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{STATE}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            _Pickler(f, shared).dump(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, folder / STATE)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if (folder / SEGMENTS).is_dir():
        _fsync_dir(folder / SEGMENTS)
    _fsync_dir(folder)
    return (folder / STATE).stat().st_size


def restore(model, folder: Path) -> None:
    """Put the state saved in `folder` into `model`, freshly built from the same scenario and seed, and copy the
    kept row groups into its (empty) event log. Refuses a checkpoint of another format, scenario or seed."""
    path = folder / STATE
    if not path.is_file():
        raise LsbmError(f"--resume: no checkpoint in {folder} (run with --checkpoint-every K first)")
    with open(path, "rb") as f:
        try:
            payload = _Unpickler(f, _shared(model)).load()
        except (ModuleNotFoundError, AttributeError) as exc:
            # The pickle names classes by module path: a checkpoint from a version laid out differently.
            raise LsbmError(f"--resume: {path} was written by another version of lsbm-sim ({exc}); rerun "
                            "without --resume") from None
        except Exception as exc:
            raise LsbmError(f"--resume: {path} cannot be read ({type(exc).__name__}: {exc})") from None
    if payload.get("format") != FORMAT:
        raise LsbmError(f"--resume: {path} is checkpoint format {payload.get('format')}, this version reads {FORMAT}")
    if payload["seed"] != model.seed:
        raise LsbmError(f"--resume: {path} is of seed {payload['seed']}, not {model.seed}")
    if payload["scenario_hash"] != scenario_hash(model.scenario):
        raise LsbmError(f"--resume: {path} is of another scenario (or other --set values) than this run's")

    model.__dict__.update(payload["state"])
    for name in COMPONENTS:
        part, saved = getattr(model, name, None), payload["components"].get(name)
        if (part is None) != (saved is None):  # the scenario hash matched, so this is a bug, not a user's error
            raise RuntimeError(f"checkpoint {path}: {name} is {'absent' if part is None else 'present'} in the "
                               "rebuilt model but not in the checkpoint")  # fmt: skip
        if part is not None:
            part.load_state_dict(saved)
    from lsbm_sim.engine.state import StatusView

    model.status = StatusView(model.state, lambda: len(model.item_ids))
    model.broker.stats = payload["broker"]["stats"]
    model.broker._memory = payload["broker"]["memory"]
    model.datacollector.model_vars = payload["collector"]

    events, saved = model.events, payload["events"]
    events.item_ids, events._dictionary = model.item_ids, None  # the log shares the model's growing list of posts
    segments = sorted((folder / SEGMENTS).glob("*.arrows"))
    kept, later = segments[: saved["segments"]], segments[saved["segments"] :]
    if len(kept) != saved["segments"]:
        raise LsbmError(f"--resume: {folder / SEGMENTS} holds {len(kept)} event row groups, the checkpoint {saved['segments']}")
    for segment in later:  # written after the checkpoint: the resumed run writes them again
        segment.unlink()
    for segment in kept:
        with pa.ipc.open_stream(segment) as reader:
            events.write_row_group(list(reader), keep_segment=False)
    events.rows, events.exposures = saved["rows"], saved["exposures"]
    events._buffer, events._buffered = saved["buffer"], saved["buffered"]


def remove(folder: Path) -> None:
    """Remove a checkpoint folder, if there is one."""
    shutil.rmtree(folder, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
