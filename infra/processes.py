"""Stop the processes a command leaves behind (e.g. flow-run subprocesses of a Prefect runner), by PID, and make a
process that is not supervised end when its parent does."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable

import psutil

log = logging.getLogger(__name__)

PARENT_POLL_S = 0.5
_watching: list[threading.Thread] = []


def stop_descendants(grace_s: float = 10.0, quiet: bool = False, *, children_only: bool = False,
                     spare: frozenset[int] = frozenset(), kill_wait_s: float | None = None) -> list[int]:
    """SIGTERM every descendant of this process (only its children with `children_only`; never those in `spare`),
    SIGKILL those alive after `grace_s` and wait `kill_wait_s` (default `grace_s`) for them; the PIDs it stopped."""
    children = [child for child in psutil.Process().children(recursive=not children_only) if child.pid not in spare]
    for child in children:
        try:
            if not quiet:
                log.warning("stopping leftover child process %d: %s", child.pid, " ".join(child.cmdline())[:160])
            child.terminate()
        except psutil.Error:
            continue
    _, alive = psutil.wait_procs(children, timeout=grace_s)
    for child in alive:
        try:
            if not quiet:
                log.warning("child process %d ignored SIGTERM for %.0f s; sending SIGKILL", child.pid, grace_s)
            child.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(alive, timeout=grace_s if kill_wait_s is None else kill_wait_s)
    return [child.pid for child in children]


def exit_with_parent(on_exit: Callable[[], None] | None = None, poll_s: float = PARENT_POLL_S) -> threading.Thread:
    """End this process (after `on_exit`, and stopping its children) once its parent is gone, e.g. a flow-run
    process whose `bilevel serve` was SIGKILLed. A daemon thread that watches the parent PID; one per process."""
    if _watching and _watching[0].is_alive():
        return _watching[0]
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        log.warning("parent process %d is gone: stopping", parent)
        try:
            if on_exit is not None:
                on_exit()
            stop_descendants(grace_s=2.0, quiet=True)
        finally:
            os._exit(143)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    _watching[:] = [thread]
    return thread


def on_stop_signal(callback: Callable[[], None]) -> None:
    """Run `callback` first when SIGTERM or SIGINT arrives, then whatever handled the signal before (Prefect's
    flow-run processes turn SIGTERM into a crash of the run). Main thread only; elsewhere a no-op."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: object, previous: object = previous) -> None:
            callback()
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_IGN:
                return
            elif signum == signal.SIGINT:
                raise KeyboardInterrupt
            else:
                raise SystemExit(128 + signum)

        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(sig, handler)
