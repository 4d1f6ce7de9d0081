"""infra/supervise.py: a supervised command, and what it started, dies with the supervisor's parent, even a
SIGKILLed one; a stop signal reaches the whole tree; the command's exit status passes through. Real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from infra.supervise import command_of, supervised, supervised_child
from workloads import subprocess_run

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups and /proc: Linux")
REPO = Path(__file__).resolve().parents[2]
# A shell that starts a child in its group, one that leaves the group (setsid) and one that ignores SIGTERM.
TREE = "sleep 300 & setsid sleep 301 & (trap '' TERM; sleep 302) & wait"


def _gone(pids: list[int], timeout_s: float = 30.0) -> list[int]:
    """The PIDs still alive (zombies count as gone) after waiting up to `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if _alive(pid)]
        time.sleep(0.1)
    return alive


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _tree(pid: int, count: int, timeout_s: float = 20.0) -> list[int]:
    """The descendants of `pid` once there are `count` of them."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [p.pid for p in psutil.Process(pid).children(recursive=True)]
        sleeps = [p for p in found if _cmd(p).startswith("sleep")]
        if len(sleeps) >= count:
            return found
        time.sleep(0.05)
    raise AssertionError(f"the tree under {pid} did not grow to {count} sleeps")


def _cmd(pid: int) -> str:
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return ""


def _parent_script(from_thread: bool) -> str:
    """A parent process that starts the supervised TREE (from its main thread, or from a thread that then exits),
    prints the supervisor's PID and sleeps until it is killed."""
    return textwrap.dedent(f"""
        import json, subprocess, sys, threading, time
        sys.path.insert(0, {str(REPO)!r})
        from infra.supervise import supervised
        started = []
        def start():
            started.append(subprocess.Popen(supervised(["bash", "-c", {TREE!r}], grace_s=1.0), start_new_session=True))
        def start_and_leave():
            start()
            time.sleep(2.0)  # long enough for the supervisor to have set up its parent-death signal
        if {from_thread}:
            thread = threading.Thread(target=start_and_leave)
            thread.start()
            thread.join()  # the forking thread is gone: a parent-death signal tied to it would have fired
        else:
            start()
        print(json.dumps({{"supervisor": started[0].pid}}), flush=True)
        time.sleep(600)
    """)


@pytest.mark.parametrize("from_thread", [False, True], ids=["main-thread", "finished-thread"])
def test_sigkill_of_the_parent_kills_the_whole_supervised_tree(from_thread: bool) -> None:
    parent = subprocess.Popen([sys.executable, "-c", _parent_script(from_thread)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        supervisor = json.loads(parent.stdout.readline())["supervisor"]
        tree = [supervisor, *_tree(supervisor, 3)]
        time.sleep(0.5)
        assert all(_alive(pid) for pid in tree), "a thread that finished must not take the service along"
        parent.kill()
        parent.wait(timeout=10)
        assert _gone(tree) == [], [(pid, _cmd(pid)) for pid in tree if _alive(pid)]
    finally:
        parent.kill()
        for proc in psutil.Process().children(recursive=True):
            try:
                proc.kill()
            except psutil.Error:
                pass


def test_sigterm_to_the_supervisor_stops_group_escapees_and_stubborn_ones() -> None:
    supervisor = subprocess.Popen(supervised(["bash", "-c", TREE], grace_s=1.0), start_new_session=True)
    tree = _tree(supervisor.pid, 3)
    supervisor.terminate()
    assert supervisor.wait(timeout=30) == -signal.SIGTERM
    assert _gone(tree) == []


def test_exit_status_passes_through_and_leftovers_go() -> None:
    assert subprocess.run(supervised(["bash", "-c", "exit 7"]), timeout=30).returncode == 7
    assert subprocess.run(supervised(["bash", "-c", "kill -9 $$"]), timeout=30).returncode == -signal.SIGKILL
    assert subprocess.run(supervised(["no-such-command-here"]), timeout=30, stderr=subprocess.DEVNULL).returncode == 127
    leftover = subprocess.run(supervised(["bash", "-c", "setsid sleep 303 & echo $!"]), capture_output=True, text=True,
                              timeout=30)
    assert leftover.returncode == 0 and _gone([int(leftover.stdout)]) == []


def test_the_command_is_found_inside_the_supervisor() -> None:
    process = subprocess.Popen(supervised(["sleep", "30"]), start_new_session=True)
    try:
        child = supervised_child(process)
        assert child is not None
        deadline = time.monotonic() + 20
        while _cmd(child) != "sleep 30" and time.monotonic() < deadline:  # forked, maybe not yet exec'd
            time.sleep(0.05)
        assert psutil.Process(child).cmdline() == ["sleep", "30"]
        assert command_of(psutil.Process(process.pid).cmdline()) == ["sleep", "30"]
        assert command_of(["weed", "mini"]) == ["weed", "mini"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_a_stop_kills_running_scripts_at_once_and_refuses_new_ones(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(subprocess_run, "_stopping", threading.Event())
    outcome: dict[str, BaseException | subprocess_run.ProcessResult] = {}

    def train() -> None:
        try:
            outcome["result"] = subprocess_run.run_script(["bash", "-c", "sleep 300 & sleep 301"], cwd=tmp_path,
                                                          env=dict(os.environ), timeout_s=600, log_path=tmp_path / "log")
        except BaseException as error:  # noqa: B036 - the test inspects it
            outcome["result"] = error

    worker = threading.Thread(target=train)
    worker.start()
    tree = _tree(os.getpid(), 2)
    assert subprocess_run.kill_running_scripts()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert isinstance(outcome["result"], subprocess_run.RunInterrupted)  # not a crashed result to cache
    assert _gone(tree) == []
    with pytest.raises(subprocess_run.RunInterrupted):
        subprocess_run.run_script(["true"], cwd=tmp_path, env=dict(os.environ), timeout_s=10, log_path=tmp_path / "l2")
