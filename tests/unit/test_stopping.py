"""bilevel/stopping.py in a real process: a stop signal kills the running script at once, unwinds, prints one line
and exits 128+signal; a command that will not unwind is ended by the deadline; a second signal ends it at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and process groups: Linux")
REPO = Path(__file__).resolve().parents[2]


def _program(tmp_path: Path, unwinds: bool, deadline_s: float = 60.0) -> str:
    """A command like the CLI's: stopping installed, a long script running in a worker thread, the main thread
    waiting for it; it prints the PIDs under it once the script runs. `unwinds=False`: it swallows the stop."""
    return textwrap.dedent(f"""
        import json, os, sys, threading, time
        sys.path.insert(0, {str(REPO)!r})
        import psutil
        from bilevel import stopping
        from workloads.subprocess_run import run_script
        stopping.STOP_DEADLINE_S = {deadline_s}
        stopping.install()
        stopping.set_hint("resume with `bilevel resume demo`")
        results = []
        def train():
            try:
                results.append(run_script(["bash", "-c", "sleep 300 & sleep 301"], cwd=__import__("pathlib").Path({str(tmp_path)!r}),
                                          env=dict(os.environ), timeout_s=600, log_path=__import__("pathlib").Path({str(tmp_path)!r}) / "log"))
            except BaseException as error:
                results.append(error)
        worker = threading.Thread(target=train)
        worker.start()
        while len([p for p in psutil.Process().children(recursive=True) if "sleep" in " ".join(p.cmdline())]) < 2:
            time.sleep(0.05)
        def swallow_forever():
            reported = False
            while True:
                try:
                    time.sleep(0.1)
                    if results and not reported:
                        print("script ended:", type(results[0]).__name__, flush=True)
                        reported = True
                except stopping.Stopping:
                    pass
        try:
            print(json.dumps([p.pid for p in psutil.Process().children(recursive=True)]), flush=True)
            while True:
                time.sleep(0.1)
        except stopping.Stopping as stop:
            if not {unwinds}:
                swallow_forever()
            stopping.finish(stop.signum)
    """)


def _start(tmp_path: Path, unwinds: bool, deadline_s: float = 60.0) -> tuple[subprocess.Popen, list[int]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    process = subprocess.Popen([sys.executable, "-c", _program(tmp_path, unwinds, deadline_s)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("["), line + (process.stderr.read() if process.stderr else "")
    return process, [int(pid) for pid in line.strip("[]\n").split(",")]


def _gone(pids: list[int], timeout_s: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.1)
    return alive


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_kills_the_script_prints_one_line_and_exits_128_plus_signal(tmp_path: Path, sig: int) -> None:
    process, tree = _start(tmp_path, unwinds=True)
    process.send_signal(sig)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + sig, err
    assert err.strip().splitlines() == ["interrupted: resume with `bilevel resume demo`"], err
    assert _gone(tree) == []


def test_the_deadline_ends_a_command_that_does_not_unwind(tmp_path: Path) -> None:
    process, tree = _start(tmp_path, unwinds=False, deadline_s=2.0)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "script ended: RunInterrupted" in out  # killed at once, and not reported as a finished script
    assert err.strip().splitlines()[-1] == "interrupted: resume with `bilevel resume demo`"
    assert _gone(tree) == []


def test_a_second_signal_ends_it_at_once(tmp_path: Path) -> None:
    process, tree = _start(tmp_path, unwinds=False, deadline_s=600.0)
    process.send_signal(signal.SIGTERM)
    time.sleep(1.0)
    assert process.poll() is None  # the first one was swallowed; the deadline is far away
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode in (130, 143), err
    assert _gone(tree) == []
