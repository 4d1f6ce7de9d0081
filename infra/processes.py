"""Stop the processes a command leaves behind (e.g. flow-run subprocesses of a Prefect runner), by PID, and make a
process that is not supervised end when its parent does."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import psutil

log = logging.getLogger(__name__)

PARENT_POLL_S = 0.5
_watching: list[threading.Thread] = []


def stop_descendants(grace_s: float = 10.0, quiet: bool = False) -> list[int]:
    """SIGTERM every descendant of this process, SIGKILL those alive after `grace_s`; the PIDs it stopped."""
    children = psutil.Process().children(recursive=True)
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
    psutil.wait_procs(alive, timeout=grace_s)
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
