"""Helpers for the stop tests and the stop-latency benchmark: a real `bilevel run` or `bilevel ui` started as a
user starts it, the processes under it, and waiting until they are gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from infra.prefect_server import free_port
from infra.services import find_free_s3_port
from infra.settings import Settings
from tests.integration.scripted import launches, proposal, write_script

REPO = Path(__file__).resolve().parents[2]
ITERATIONS = 2
STEPS = 60  # a candidate trains for a few seconds: long enough to be caught mid-training


def answers(folder: Path) -> Path:
    return write_script(folder / "answers.json", answers={"propose": [
        proposal({"MATRIX_LR": 0.006}), proposal({"EMBEDDING_LR": 0.01}), proposal({"HEAD_DIM": 16})]})


def cli_env(state: Path, script: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILEVEL_", "PREFECT_"))}
    env.update(BILEVEL_STATE_DIR=str(state), BILEVEL_MODEL="scripted/replay", BILEVEL_SCRIPTED_ANSWERS=str(script),
               BILEVEL_LEVELS="1", BILEVEL_ITERATIONS=str(ITERATIONS), BILEVEL_GENERATIONS="1",
               BILEVEL_BUDGET_MODE="steps", BILEVEL_BUDGET=str(STEPS), BILEVEL_LLM_RETRIES="0",
               BILEVEL_S3_PORT=str(find_free_s3_port()), PYTHONUNBUFFERED="1", COLUMNS="160",
               PYTHONPATH=str(REPO))
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bilevel.cli", *args]


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def command_line(proc: psutil.Process) -> str:
    try:
        return " ".join(proc.cmdline())
    except psutil.Error:
        return ""


def still_alive(procs: list[psutil.Process], timeout_s: float = 30.0) -> list[str]:
    """Command lines of the processes still running (zombies count as gone) after up to `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    alive = procs
    while True:
        alive = [p for p in alive if _running(p)]
        if not alive or time.monotonic() > deadline:
            return [f"{p.pid}: {command_line(p)[:200]}" for p in alive]
        time.sleep(0.2)


def is_training(proc: psutil.Process, state: Path) -> bool:
    """A training run: cold, a supervised `python train.py`; warm, a child forked by a zygote, whose command line is
    the zygote's. Either way it works in its own run folder under the state directory."""
    try:
        return proc.cwd().startswith(str(state / "runs")) and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stderr_of(log: Path) -> str:
    """What the command wrote to stderr (started by `start_run` or `start_ui` with stdout to `log`)."""
    path = log.with_suffix(".err")
    return path.read_text(errors="replace") if path.exists() else ""


def popen_logged(args: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen:
    # Files, not pipes: a full pipe would block the command.
    return subprocess.Popen(args, env=env, stdout=log.open("w"), stderr=log.with_suffix(".err").open("w"), cwd=cwd)


def start_run(state: Path, script: Path, log: Path, meta_run_id: str, *extra: str) -> subprocess.Popen:
    return popen_logged(cli("run", "--id", meta_run_id, *extra), cli_env(state, script), log, state.parent)


def wait_mid_training(process: subprocess.Popen, state: Path, log: Path, timeout_s: float = 600) -> list[psutil.Process]:
    """Wait until a candidate (not the baseline) is training; the processes under the CLI at that moment."""
    settings = Settings(state_dir=state)
    deadline = time.monotonic() + timeout_s
    while True:
        assert process.poll() is None, "ended before the signal: " + log.read_text()[-3000:] + stderr_of(log)[-3000:]
        assert time.monotonic() < deadline, "no candidate training started: " + log.read_text()[-3000:]
        tree = descendants(process.pid)
        if len(launches(settings)) >= 2 and any(is_training(p, state) for p in tree):
            return tree
        time.sleep(0.1)


def signal_and_wait(process: subprocess.Popen, sig: int, timeout_s: float = 60) -> float:
    """Send `sig`; seconds until the process exited (it is killed, and the test fails, after `timeout_s`)."""
    started = time.monotonic()
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_tree(process)
        raise AssertionError(f"still running {timeout_s:.0f} s after {signal.Signals(sig).name}") from None
    return time.monotonic() - started


def kill_tree(process: subprocess.Popen) -> None:
    for proc in [*descendants(process.pid), psutil.Process(process.pid)] if process.poll() is None else descendants(process.pid):
        try:
            proc.kill()
        except psutil.Error:
            pass
    process.wait(timeout=30)


def start_ui(state: Path, log: Path) -> tuple[subprocess.Popen, int]:
    """`bilevel ui` on a free port, once it answers HTTP."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILEVEL_", "PREFECT_"))}
    env.update(BILEVEL_STATE_DIR=str(state), PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    process = popen_logged(cli("ui", "--port", str(port)), env, log, state.parent)
    deadline = time.monotonic() + 180
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while True:
        assert process.poll() is None, "bilevel ui exited: " + log.read_text()[-2000:]
        assert time.monotonic() < deadline, "the MLflow UI never answered: " + log.read_text()[-2000:]
        try:
            with opener.open(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return process, port
        except OSError:
            time.sleep(0.5)
