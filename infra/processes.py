"""Stop the processes a command leaves behind (e.g. flow-run subprocesses of a Prefect runner), by PID."""

from __future__ import annotations

import logging

import psutil

log = logging.getLogger(__name__)


def stop_descendants(grace_s: float = 10.0) -> list[int]:
    """SIGTERM every descendant of this process, SIGKILL those alive after `grace_s`; the PIDs it stopped."""
    children = psutil.Process().children(recursive=True)
    for child in children:
        try:
            log.warning("stopping leftover child process %d: %s", child.pid, " ".join(child.cmdline())[:160])
            child.terminate()
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(children, timeout=grace_s)
    for child in alive:
        try:
            log.warning("child process %d ignored SIGTERM for %.0f s; sending SIGKILL", child.pid, grace_s)
            child.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=grace_s)
    return [child.pid for child in children]
