"""Graceful stop of a command: SIGTERM or SIGINT kills the running trainings at once, unwinds the command (its
services stop), prints one line and exits 128+signal; a watchdog ends it all within STOP_DEADLINE_S regardless.

The signal is seen twice. Its C-level handler writes to a wakeup pipe that a watcher thread reads, so the trainings
die and the deadline starts even while the main thread sits in a long C call (the local model answering); the
Python-level handler then raises `Stopping` in the main thread, which unwinds the flow and the service contexts.
A second signal reaching that handler, or the deadline, stops every child (by PID) and exits at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
STOP_DEADLINE_S = 6.0  # from the signal to the hard exit; children get HARD_STOP_GRACE_S on top
HARD_STOP_GRACE_S = 1.0
DEFAULT_HINT = "resume with `bilevel resume <id>` (see `bilevel runs`)"


class Stopping(BaseException):
    """Raised in the main thread by SIGTERM or SIGINT. A BaseException, so that no `except Exception` (nor
    click's KeyboardInterrupt handling) swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.signum: int | None = None
        self.handled = 0  # signals the Python-level handler saw
        self.hint = DEFAULT_HINT
        self.verb = "interrupted"
        self.installed = False
        self.done = threading.Event()


_state = _State()


def set_hint(hint: str, verb: str = "interrupted") -> None:
    """What the stop line says after `<verb>:`, e.g. the resume command of the run in progress."""
    _state.hint, _state.verb = hint, verb


def message() -> str:
    return f"{_state.verb}: {_state.hint}" if _state.hint else _state.verb


def exit_code(signum: int | None = None) -> int:
    """128 + the signal: 130 for SIGINT (Ctrl-C), 143 for SIGTERM."""
    return 128 + (signum or _state.signum or signal.SIGINT)


def install() -> None:
    """Handle SIGTERM and SIGINT from now on (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread() or _state.installed:
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    for sig in STOP_SIGNALS:
        signal.signal(sig, _on_signal)
    threading.Thread(target=_watch, args=(read_fd,), name="bilevel-stop-watcher", daemon=True).start()
    _state.installed = True


def _on_signal(signum: int, _frame: Any) -> None:
    with _state.lock:
        _state.handled += 1
        count = _state.handled
    _begin(signum)
    if count == 1:
        raise Stopping(signum)
    hard_exit()  # a second signal


def _watch(read_fd: int) -> None:
    """The first signal, seen even while the main thread is stuck in C code. Repeats are left to the handler:
    Prefect's flow engine, which takes SIGTERM during a flow, sends the signal to the process again once it has
    recorded the crash, and that is not the user's second signal."""
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        for signum in data:
            if signum in STOP_SIGNALS:
                _begin(signum)


def _begin(signum: int) -> None:
    """The first sighting of the first signal: kill the running trainings, start the deadline."""
    with _state.lock:
        if _state.signum is not None:
            return
        _state.signum = signum
    from workloads.subprocess_run import kill_running_scripts

    kill_running_scripts()
    # What unwinds now (Prefect's "Crash detected!" for every nested flow, a killed training's task) is expected:
    # the user sees the one stop line instead.
    logging.disable(logging.CRITICAL)
    deadline = threading.Timer(STOP_DEADLINE_S, hard_exit)
    deadline.daemon = True
    deadline.start()


def stopping() -> bool:
    """Whether a stop signal has arrived."""
    return _state.signum is not None


def finish(signum: int | None = None) -> None:
    """Print the stop line, stop every child by PID, exit 128+signal (without waiting for worker threads)."""
    _exit(signum)


def hard_exit() -> None:
    """The deadline passed or a second signal came: stop every child now and exit."""
    _exit(None)


def _exit(signum: int | None) -> None:
    with _state.lock:
        first = not _state.done.is_set()
        _state.done.set()
    if not first:  # another thread is exiting: never return into a normal (exit code 0) shutdown
        while True:
            threading.Event().wait(3600)
    try:
        sys.stdout.flush()
        sys.stderr.write(f"{message()}\n")
        sys.stderr.flush()
        from infra.processes import stop_descendants

        stop_descendants(grace_s=HARD_STOP_GRACE_S, quiet=True, kill_wait_s=0.5)
    finally:
        os._exit(exit_code(signum))
