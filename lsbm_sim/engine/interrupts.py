"""Ctrl-C and SIGTERM: stop at a safe point, keep what was done, and exit with the signal's conventional code.

The command installs `handle_signals()` for its whole life. A signal then raises `Interrupted` at once, except
inside `deferred()` (a run's step loop), where it only sets a flag that `raise_if_requested()` turns into
`Interrupted` at the end of the step, so that the step's state and event rows are consistent when the partial
results are written. A second signal while a stop is pending raises at once: a user who presses Ctrl-C twice
means it.

Exit codes follow the shell's convention, 128 + the signal's number: 130 for SIGINT, 143 for SIGTERM.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Interrupted(BaseException):
    """The command was stopped by a signal; `exit_code` is 128 + its number, `kept` says what was saved, and
    `not_saved` why a checkpoint that the signal should have saved was not (None when it was, or none was due).

    Not a KeyboardInterrupt: typer turns those into a bare exit code, and the command line needs to know which
    signal it was and what the interrupted command kept."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)
        self.kept: str | None = None
        self.not_saved: str | None = None

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


_pending: int | None = None  # the signal received inside deferred(), not yet acted on
_deferring = 0  # depth of nested deferred() blocks


def _handler(signum: int, frame) -> None:
    global _pending
    if _deferring and _pending is None:
        _pending = signum
        return
    _pending = None
    raise Interrupted(signum)


@contextmanager
def handle_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into `Interrupted` for the duration (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def deferred() -> Iterator[None]:
    """Inside, a signal waits for `raise_if_requested()` (called at the end of each step)."""
    global _deferring, _pending
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring:
            _pending = None


def requested() -> bool:
    """Whether a signal is waiting for the end of the step (the run then saves a checkpoint before stopping)."""
    return _pending is not None


def raise_if_requested(not_saved: str | None = None) -> None:
    """Raise `Interrupted` if a signal arrived since the last check (`not_saved`: why the checkpoint it asked for
    could not be written)."""
    global _pending
    if _pending is not None:
        signum, _pending = _pending, None
        stop = Interrupted(signum)
        stop.not_saved = not_saved
        raise stop
