"""A command that dies with its parent: this file, run by path, supervises the command's process group and kills
it when the parent dies (even by SIGKILL) or when the supervisor is signalled.

Used for every service and training child (`supervised(argv)` wraps a command line; start it with
`start_new_session=True`). The supervisor leads the new session, so the command and whatever it starts share its
process group: signalling the group reaches all of them, as before. On top of that it

- notices the parent's death at once on Linux (PR_SET_PDEATHSIG, SIGTERM) and within POLL_S everywhere (its parent
  PID changes), then SIGTERMs the whole group and every descendant, and SIGKILLs what is left after a grace period;
- becomes a child subreaper (Linux), so a descendant that left the group (setsid, a double fork) is still found;
- sets PR_SET_PDEATHSIG=SIGKILL on the command itself, so the command dies even if the supervisor is SIGKILLed.

PR_SET_PDEATHSIG fires when the *thread* that forked the supervisor exits, so `supervised` asks for it only from
the main thread or from a thread that waits for the child (`waited=True`); the PID poll covers every other case.
This file imports nothing of ours (psutil only, lazily): it runs with `python -I`, outside the package.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
POLL_S = 0.1
DEFAULT_GRACE_S = 5.0
KILL_WAIT_S = 3.0
LEFTOVER_GRACE_S = 1.0  # for what the command left behind after it exited on its own
SUPERVISOR_PATH = Path(__file__).resolve()
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def supervised(argv: Sequence[str], *, grace_s: float = DEFAULT_GRACE_S, waited: bool = False) -> list[str]:
    """`argv` run under the supervisor, tied to this process: start it with `start_new_session=True`.

    `grace_s`: how long the command gets between SIGTERM and SIGKILL when it is stopped. `waited`: the calling
    thread waits for the child (so its exit means the process is going), which allows the immediate parent-death
    signal from a thread other than the main one."""
    command = [sys.executable, "-I", "-B", str(SUPERVISOR_PATH), "--parent", str(os.getpid()), "--grace", f"{grace_s:g}"]
    if sys.platform.startswith("linux") and (waited or threading.current_thread() is threading.main_thread()):
        command.append("--pdeathsig")
    return [*command, "--", *argv]


def command_of(cmdline: Sequence[str]) -> list[str]:
    """The supervised command inside a supervisor's command line (the command line itself when it is not one)."""
    if len(cmdline) > 3 and any(Path(part).name == SUPERVISOR_PATH.name for part in cmdline[1:4]) and "--" in cmdline:
        return list(cmdline[cmdline.index("--") + 1:])
    return list(cmdline)


def supervised_child(process: subprocess.Popen, timeout_s: float = 10.0) -> int | None:
    """The PID of the command a just-started supervisor runs (None if it exited first or took too long)."""
    import psutil

    deadline = time.monotonic() + timeout_s
    while process.poll() is None and time.monotonic() < deadline:
        try:
            children = psutil.Process(process.pid).children()
        except psutil.NoSuchProcess:
            return None
        if children:
            return children[0].pid
        time.sleep(0.01)
    return None


# -- the supervisor process ------------------------------------------------------------------------------


_LIBC: list[ctypes.CDLL] = []


def _libc() -> ctypes.CDLL | None:
    """The C library, loaded once (before forking: nothing is loaded between fork and exec)."""
    if not _LIBC:
        try:
            _LIBC.append(ctypes.CDLL(None, use_errno=True))
        except OSError:
            return None
    return _LIBC[0]


def _prctl(option: int, value: int) -> bool:
    libc = _libc()
    if libc is None or not hasattr(libc, "prctl"):
        return False
    return libc.prctl(ctypes.c_int(option), ctypes.c_ulong(value), ctypes.c_ulong(0), ctypes.c_ulong(0),
                      ctypes.c_ulong(0)) == 0


def _die_with_supervisor(supervisor: int) -> None:
    """In the command, between fork and exec (the supervisor is single-threaded, so this is safe)."""
    if sys.platform.startswith("linux"):
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != supervisor:  # the supervisor died before the line above took effect
        os._exit(1)


def _reap(child: int) -> int | None:
    """Collect every exited child (adopted orphans too); the command's exit code when it is among them."""
    code = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return code
        if pid == 0:
            return code
        if pid == child:
            code = os.waitstatus_to_exitcode(status)


def _members() -> list:
    """Every process this supervisor must stop: its descendants and the members of its process group."""
    import psutil

    me = os.getpid()
    found = {p.pid: p for p in psutil.Process(me).children(recursive=True)}
    for proc in psutil.process_iter():
        try:
            if proc.pid != me and proc.pid not in found and os.getpgid(proc.pid) == me:
                found[proc.pid] = proc
        except (OSError, psutil.Error):
            continue
    return list(found.values())


def _signal_all(procs: list, sig: int) -> None:
    import psutil

    for proc in procs:
        try:
            proc.send_signal(sig)  # psutil checks the PID still names the same process
        except psutil.Error:
            continue


def _wait_gone(procs: list, timeout_s: float) -> list:
    import psutil

    deadline = time.monotonic() + timeout_s
    alive = procs
    while alive and time.monotonic() < deadline:
        _reap(-1)
        _, alive = psutil.wait_procs(alive, timeout=min(POLL_S, max(0.0, deadline - time.monotonic())))
    _reap(-1)
    return alive


def stop_tree(grace_s: float) -> None:
    """SIGTERM the group and every descendant, SIGKILL whatever is still there after `grace_s`."""
    procs = _members()
    _signal_all(procs, signal.SIGTERM)
    alive = _wait_gone(procs, grace_s)
    late = {p.pid for p in _members()} - {p.pid for p in procs}  # started during the grace period
    if late:
        import psutil

        alive += [psutil.Process(pid) for pid in late if psutil.pid_exists(pid)]
    if alive:
        _signal_all(alive, signal.SIGKILL)
        _wait_gone(alive, KILL_WAIT_S)


def _exit_like(code: int) -> None:
    """Leave with the command's status: the same exit code, or death by the same signal."""
    sys.stdout.flush()
    sys.stderr.flush()
    if code < 0:
        if -code not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        time.sleep(1.0)
        os._exit(128 - code)
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="supervise", description=__doc__.splitlines()[0])
    parser.add_argument("--parent", type=int, required=True, help="the PID whose death stops the command")
    parser.add_argument("--grace", type=float, default=DEFAULT_GRACE_S, help="seconds between SIGTERM and SIGKILL")
    parser.add_argument("--pdeathsig", action="store_true", help="also stop on PR_SET_PDEATHSIG (Linux)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")

    stopped: list[int] = []
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda signum, _frame: stopped.append(signum))
    if os.getsid(0) != os.getpid():
        try:
            os.setsid()  # started without start_new_session: lead a group of our own anyway
        except OSError:
            pass
    if sys.platform.startswith("linux"):
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        if args.pdeathsig:
            _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != args.parent or stopped:  # the parent died (or we were stopped) before we could watch it
        _exit_like(-signal.SIGTERM)

    me = os.getpid()
    try:
        child = subprocess.Popen(command, preexec_fn=lambda: _die_with_supervisor(me))  # noqa: PLW1509
    except OSError as error:
        print(f"supervise: cannot start {command[0]}: {error}", file=sys.stderr)
        os._exit(127)
    code = None
    while code is None and not stopped and os.getppid() == args.parent:
        code = _reap(child.pid)
        if code is None:
            time.sleep(POLL_S)
    if code is None:
        code = _reap(child.pid)
    child.returncode = code if code is not None else -signal.SIGTERM  # reaped here: Popen must not wait again
    if code is None:  # stopped, or the parent is gone: the whole tree goes
        stop_tree(args.grace)
        _exit_like(-(stopped[0] if stopped else signal.SIGTERM))
    stop_tree(LEFTOVER_GRACE_S)  # the command exited on its own: what it left behind goes
    _exit_like(code)


if __name__ == "__main__":
    main()
