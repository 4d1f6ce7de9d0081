"""Run a script in its own process group under a hard timeout, log its output (bounded), and return the tail.

Generic: knows nothing of training. The whole process group is killed on timeout, so a script that
started children cannot outlive its budget. A script runs cold (a new interpreter, under infra/supervise.py, so it
dies with this process, even a SIGKILLed one) or warm (forked from a worker with its imports done,
workloads/warm_pool.py, which kills its children when this process goes); a line watch may stop it early. When the
process stops (SIGTERM, Ctrl-C), `kill_running_scripts` kills every running script at once and the interrupted runs
raise RunInterrupted instead of reporting a crash. The child's environment is scrubbed of secrets.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from infra.supervise import supervised
from workloads.warm_pool import WarmSpec, zygote_for

# Names that suggest a secret, matched anywhere in an environment variable's name (case-insensitive).
SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")
# Inherited variables that would change what the child imports or runs at startup.
UNSAFE_PYTHON_VARIABLES = ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONINSPECT")
MAX_LOG_BYTES = 32 * 2**20  # a chatty or hostile script cannot fill the disk; the rest is counted, not written
TAIL_BYTES = 64 * 1024  # how much of the end of the log is read back
KILL_GRACE_S = 3.0  # between SIGTERM and SIGKILL of the process group
READ_CHUNK = 65536


_running: set[Child] = set()  # cold and warm runs alike
_running_lock = threading.Lock()
_stopping = threading.Event()


class RunInterrupted(RuntimeError):
    """The script was killed because this process is stopping: not the script's fault, and not a result."""


def kill_running_scripts() -> list[int]:
    """Kill the process group of every running script now, and refuse new ones: this process is stopping.
    Returns the PIDs of the groups killed. Safe from any thread."""
    _stopping.set()
    with _running_lock:
        running = list(_running)
    killed = []
    for process in running:
        try:
            os.killpg(process.pid, signal.SIGKILL)
            killed.append(process.pid)
        except (ProcessLookupError, PermissionError):
            continue
    return killed


@dataclass(frozen=True)
class ProcessResult:
    """How a script ended: exit code (None if killed on timeout), wall time and the end of its output."""

    returncode: int | None
    timed_out: bool
    wall_seconds: float
    tail: str
    log_path: Path
    dropped_bytes: int = 0
    stop_reason: str | None = None  # set when a line watch stopped the run early (it was killed)

    @property
    def stopped(self) -> bool:
        return self.stop_reason is not None

    def tail_lines(self, count: int) -> str:
        return "\n".join(self.tail.splitlines()[-count:])


def looks_secret(name: str) -> bool:
    upper = name.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


def scrubbed_environment(base: Mapping[str, str], drop_prefixes: Sequence[str] = ()) -> dict[str, str]:
    """`base` without secrets, startup-altering Python variables, and names starting with `drop_prefixes`."""
    return {
        name: value
        for name, value in base.items()
        if not looks_secret(name) and name not in UNSAFE_PYTHON_VARIABLES and not name.startswith(tuple(drop_prefixes))
    }


LineWatch = Callable[[str], "str | None"]  # sees each output line; a reason (not None) stops the run
MAX_WATCHED_LINE = 4096  # a longer line is not watched (no checkpoint line is that long)


class _BoundedCopy:
    """Copies the child's output into the log until MAX_LOG_BYTES, then only counts what is dropped.

    It keeps the last TAIL_BYTES itself: once the log is capped, the end of the output (where a summary
    or a traceback is printed) is no longer in the file. A `watch` sees every complete line as it arrives;
    the first reason it returns is kept in `stop_reason` (the supervisor then stops the run).
    """

    def __init__(self, log_path: Path, watch: LineWatch | None = None) -> None:
        self.log_path = log_path
        self.dropped_bytes = 0
        self.total_bytes = 0
        self._tail = bytearray()
        self._watch = watch
        self._line = bytearray()
        self._overlong = False
        self.stop_reason: str | None = None

    def run(self, source) -> None:
        written = 0
        with open(self.log_path, "ab") as log:
            for chunk in iter(lambda: source.read1(READ_CHUNK), b""):
                room = MAX_LOG_BYTES - written
                if room > 0:
                    log.write(chunk[:room])
                    log.flush()
                    written += min(room, len(chunk))
                self.dropped_bytes += max(0, len(chunk) - max(room, 0))
                self.total_bytes += len(chunk)
                self._tail += chunk
                del self._tail[:-TAIL_BYTES]
                if self._watch is not None:
                    self._see(chunk)

    def _see(self, chunk: bytes) -> None:
        lines = (bytes(self._line) + chunk).split(b"\n")
        self._line = bytearray(lines.pop())
        for line in lines:
            if self._overlong:  # the end of a line too long to watch
                self._overlong = False
                continue
            if self.stop_reason is None and len(line) <= MAX_WATCHED_LINE:
                reason = self._watch(line.decode("utf-8", errors="replace").rstrip("\r"))  # type: ignore[misc]
                if reason is not None:
                    self.stop_reason = reason
        if len(self._line) > MAX_WATCHED_LINE:
            self._line, self._overlong = bytearray(), True

    def tail(self) -> str:
        """The last TAIL_BYTES of the output as text (undecodable bytes replaced), from a line boundary."""
        text = self._tail.decode("utf-8", errors="replace")
        if self.total_bytes > TAIL_BYTES and "\n" in text:
            text = text.split("\n", 1)[1]  # drop the partial first line
        return text


class Child(Protocol):
    """What the supervisor needs of a started run: a Popen, or a child forked by a warm worker."""

    pid: int
    returncode: int | None

    def wait(self, timeout: float | None = None) -> int: ...

    def poll(self) -> int | None: ...


def _kill_group(process: Child) -> None:
    """SIGTERM the child's process group, then SIGKILL whatever is left after a grace period."""
    for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, KILL_GRACE_S)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:  # the group is already gone
            return
        try:
            process.wait(timeout=wait_s)
            if sig == signal.SIGKILL:
                return
        except subprocess.TimeoutExpired:
            continue
    process.wait()


def _reap_leftovers(process: Child) -> None:
    """Children the script left behind share its group: kill them once the script itself has exited."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # no process left in the group: the normal case
        pass


def _start_clock(timeout_s: float, log_path: Path) -> float:
    """Checks before any run (a positive timeout, this process not stopping), an empty log; the start time."""
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    if _stopping.is_set():
        raise RunInterrupted("not started: this process is stopping")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_bytes(b"")
    return time.perf_counter()


def run_script(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    log_path: Path,
    watch: LineWatch | None = None,
) -> ProcessResult:
    """Run `argv` in `cwd` with exactly `env`, output to `log_path`, killed with its group after `timeout_s`, or
    as soon as `watch` returns a reason to stop."""
    started = _start_clock(timeout_s, log_path)
    with _running_lock:
        process = subprocess.Popen(
            # The supervisor leads the group and dies with this thread, which waits for it below.
            supervised(list(argv), grace_s=KILL_GRACE_S, waited=True),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so the timeout kills grandchildren too
        )
        _running.add(process)
    assert process.stdout is not None
    return _supervise(process, process.stdout, started=started, timeout_s=timeout_s, log_path=log_path, watch=watch)


def run_warm(
    script: Path,
    args: Sequence[str] = (),
    *,
    python: str,
    spec: WarmSpec,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    log_path: Path,
    watch: LineWatch | None = None,
) -> ProcessResult:
    """`python script args` as run_script runs it, but forked from a warm worker that has `spec` imported (the
    worker is started with `env` minus the run's own BILEVEL_* variables). WarmStartError when no warm worker
    can take it: the caller then runs it cold."""
    zygote = zygote_for(python, static_environment(env), spec)
    started = _start_clock(timeout_s, log_path)
    read_fd, write_fd = os.pipe()
    try:
        with _running_lock:  # registered before a stop can look, like a cold run
            child = zygote.spawn(script, args, cwd=cwd, env=env, out_fd=write_fd)
            _running.add(child)
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    return _supervise(child, open(read_fd, "rb"), started=started, timeout_s=timeout_s,
                      log_path=log_path, watch=watch)


def static_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The part of a run's environment a warm worker is started with: all but the run's own BILEVEL_* variables."""
    return {name: value for name, value in env.items() if not name.startswith("BILEVEL_")}


POLL_S = 0.05  # how often the supervisor looks for a stop request while the run goes on


def _supervise(process: Child, stdout, *, started: float, timeout_s: float, log_path: Path,
               watch: LineWatch | None) -> ProcessResult:
    """Copy the output, wait for the end, kill the group on timeout, on a stop request or on interruption."""
    copy = _BoundedCopy(log_path, watch)
    reader = threading.Thread(target=copy.run, args=(stdout,), daemon=True)
    reader.start()
    timed_out = False
    deadline = started + timeout_s
    try:
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                timed_out = True
                _kill_group(process)
                break
            try:
                process.wait(timeout=min(remaining, POLL_S) if watch is not None else remaining)
                break
            except subprocess.TimeoutExpired:
                pass
            if copy.stop_reason is not None:
                _kill_group(process)
                break
    finally:
        if process.poll() is None:  # interrupted (e.g. KeyboardInterrupt): never leave the child running
            _kill_group(process)
        with _running_lock:
            _running.discard(process)
    wall = time.perf_counter() - started
    _reap_leftovers(process)
    # A leftover that escaped the group may hold the pipe open: do not wait on it forever.
    reader.join(timeout=KILL_GRACE_S)
    if not reader.is_alive():
        stdout.close()
    if _stopping.is_set() and process.returncode != 0:
        raise RunInterrupted(f"killed after {wall:.1f} s: this process is stopping")
    return ProcessResult(
        returncode=None if timed_out else process.returncode,
        timed_out=timed_out,
        wall_seconds=wall,
        tail=copy.tail(),
        log_path=log_path,
        dropped_bytes=copy.dropped_bytes,
        stop_reason=None if timed_out else copy.stop_reason,
    )
