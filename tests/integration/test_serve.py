"""`bilevel serve` without a Prefect server: it starts a local one (whose scheduler creates the runs), runs the
scheduled nightly meta-runs, and stops everything it started on Ctrl-C."""

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

from tests.integration.scripted import proposal, write_script

pytestmark = pytest.mark.integration


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
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
    summary = json.loads(next(runs.glob("nightly-*/summary.json")).read_text())
    assert summary["meta_run_id"].startswith("nightly-2") and summary["experiments"] == 1
    _, alive = psutil.wait_procs(children, timeout=30)  # serve has stopped them; give the OS a moment
    assert not [c for c in alive if c.status() != psutil.STATUS_ZOMBIE], [c.cmdline() for c in alive]
