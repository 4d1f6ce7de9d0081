"""`bilevel serve` without a Prefect server: it starts a local one (whose scheduler creates the runs), runs the
scheduled nightly meta-runs, and stops everything it started on Ctrl-C or SIGTERM, without waiting for a running
flow (the meta-run it interrupted resumes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from infra.settings import Settings
from tests.integration.scripted import launches, proposal, write_script
from tests.integration.stopping import cli_env, descendants, is_training, signal_and_wait, still_alive

pytestmark = pytest.mark.integration
# How fast a stop is, is measured by benchmarks/stop_latency.py; here a hang fails through the waits' own limits.


def test_serve_runs_the_schedule_and_cleans_up(tmp_path: Path) -> None:
    script = write_script(tmp_path / "answers.json", answers={"propose": [proposal({"MATRIX_LR": 0.006}),
                                                                          proposal({"EMBEDDING_LR": 0.006})]})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILEVEL_", "PREFECT_"))}
    env.update(BILEVEL_STATE_DIR=str(tmp_path / "state"), BILEVEL_MODEL="scripted/replay",
               BILEVEL_SCRIPTED_ANSWERS=str(script), BILEVEL_LEVELS="1", BILEVEL_GENERATIONS="1",
               BILEVEL_ITERATIONS="1", BILEVEL_BUDGET_MODE="steps", BILEVEL_BUDGET="4")
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen([sys.executable, "-m", "bilevel.cli", "serve", "--cron", "* * * * *", "--mechanisms",
                              "none"], env=env, stdout=log, stderr=subprocess.STDOUT)
    runs = tmp_path / "state" / "runs"
    try:
        deadline = time.monotonic() + 240
        while not list(runs.glob("nightly-*/summary.json")):
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no scheduled run finished: " + (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(2)
        children = psutil.Process(serve.pid).children(recursive=True)
        assert any("server" in " ".join(c.cmdline()) and "prefect" in " ".join(c.cmdline()) for c in children)
    finally:
        started = time.monotonic()
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
    seconds = time.monotonic() - started
    print(f"\nSIGINT to bilevel serve (idle): exited in {seconds:.1f} s")
    summary = json.loads(next(runs.glob("nightly-*/summary.json")).read_text())
    assert summary["meta_run_id"].startswith("nightly-2") and summary["experiments"] == 1
    assert serve.returncode == 130, (tmp_path / "serve.log").read_text()[-3000:]  # not killed after the 60 s wait
    assert still_alive(children) == []  # the Prefect server and its uvicorn too


def test_sigterm_to_serve_mid_training_stops_the_flow_run_and_it_resumes(tmp_path: Path) -> None:
    script = write_script(tmp_path / "answers.json", answers={"propose": [proposal({"MATRIX_LR": 0.006}),
                                                                          proposal({"EMBEDDING_LR": 0.006})]})
    state = tmp_path / "state"
    env = cli_env(state, script)
    log = tmp_path / "serve.log"
    serve = subprocess.Popen([sys.executable, "-m", "bilevel.cli", "serve", "--cron", "* * * * *", "--mechanisms",
                              "none"], env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=tmp_path)
    settings = Settings(state_dir=state)
    try:
        deadline = time.monotonic() + 300
        while True:  # a scheduled meta-run is training, in a flow-run process of the runner
            assert serve.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "no scheduled training started: " + log.read_text()[-3000:]
            tree = descendants(serve.pid)
            if launches(settings) and any(is_training(p, settings.state_path) for p in tree):
                break
            time.sleep(0.1)
        seconds = signal_and_wait(serve, signal.SIGTERM)
    finally:
        if serve.poll() is None:
            serve.kill()
    print(f"\nSIGTERM to bilevel serve mid-training: exited in {seconds:.1f} s")
    assert serve.returncode == 143, log.read_text()[-3000:]
    assert log.read_text().strip().splitlines()[-1].startswith("stopped: "), log.read_text()[-3000:]
    assert still_alive(tree) == []  # the Prefect server, the flow-run process, the training

    run_id = next(path.name for path in settings.runs_dir.glob("nightly-*"))
    assert not (settings.runs_dir / run_id / "summary.json").exists()
    resumed = subprocess.run([sys.executable, "-m", "bilevel.cli", "resume", run_id], env=env, capture_output=True,
                             text=True, timeout=900, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    summary = json.loads((settings.runs_dir / run_id / "summary.json").read_text())
    assert summary["stop_reason"] == "finished" and summary["experiments"] == 2
