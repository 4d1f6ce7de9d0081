"""A meta-run killed with SIGKILL in the middle of a generation resumes where it died: no completed training runs
again, no LLM answer is asked twice, the trace equals an uninterrupted run's, and MLflow holds no duplicates."""

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

from infra.runs import RunFolder
from infra.settings import Settings
from infra.tracking import Tracker
from tests.integration.scripted import launches, llm_calls, proposal, runs_of, write_script

pytestmark = pytest.mark.integration

ITERATIONS = 4


def _env(state: Path, script: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILEVEL_", "PREFECT_"))}
    env.update(BILEVEL_STATE_DIR=str(state), BILEVEL_MODEL="scripted/replay", BILEVEL_SCRIPTED_ANSWERS=str(script),
               BILEVEL_LEVELS="1", BILEVEL_ITERATIONS=str(ITERATIONS), BILEVEL_GENERATIONS="1", BILEVEL_BUDGET_MODE="steps",
               BILEVEL_BUDGET="10",
               BILEVEL_LLM_RETRIES="0", PYTHONUNBUFFERED="1", COLUMNS="160")
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bilevel.cli", *args]


def _kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the meta-run and everything it started (as a reboot would)."""
    try:
        root = psutil.Process(process.pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    for child in tree:
        try:
            child.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    process.wait(timeout=30)


def _comparable(trace) -> list[tuple]:
    return [(e.index, json.dumps(e.changes, sort_keys=True), e.outcome.status, e.measured, e.kept)
            for e in trace.experiments]


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("kill")
    return write_script(folder / "answers.json", answers={"propose": [
        proposal({"MATRIX_LR": 0.006}), proposal({"EMBEDDING_LR": 0.01}), proposal({"HEAD_DIM": 16}),
        proposal({"UNEMBEDDING_LR": 0.006}), proposal({"WARMUP_RATIO": 0.0}),
    ]})


def test_sigkill_mid_generation_then_resume(tmp_path: Path, script: Path) -> None:
    # The reference: the same meta-run, uninterrupted.
    reference_state = tmp_path / "reference"
    done = subprocess.run(_cli("run", "--id", "ref"), env=_env(reference_state, script), capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    reference = RunFolder(Settings(state_dir=reference_state).runs_dir, "ref").read_trace()

    state = tmp_path / "killed"
    settings = Settings(state_dir=state)
    log = (tmp_path / "victim.log").open("w")
    process = subprocess.Popen(_cli("run", "--id", "victim"), env=_env(state, script), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while len(launches(settings)) < 3:  # baseline and one candidate done, the second candidate training now
            assert process.poll() is None, "ended before the kill: " + (tmp_path / "victim.log").read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(1.0)
    finally:
        _kill_tree(process)
    killed_launches = launches(settings)
    killed_calls = llm_calls(settings)

    started = time.perf_counter()
    resumed = subprocess.run(_cli("resume", "victim"), env=_env(state, script), capture_output=True, text=True,
                             timeout=900)
    resume_seconds = time.perf_counter() - started
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    trace = RunFolder(settings.runs_dir, "victim").read_trace()
    assert _comparable(trace) == _comparable(reference)

    all_launches = launches(settings)
    dirs = [Path(entry["run_dir"]).name for entry in all_launches]
    relaunched = [name for name in set(dirs) if dirs.count(name) > 1]
    assert len(relaunched) <= 1  # only the training that was killed mid-run ran again
    assert len(all_launches) == len(launches(Settings(state_dir=reference_state))) + len(relaunched)
    keys = [call["call_key"] for call in llm_calls(settings) if "error" not in call]
    assert len(keys) == len(set(keys))  # no LLM answer was asked twice

    tracker = Tracker(settings.resolved_tracking_uri)
    runs = runs_of(tracker, "victim")
    run_keys = [r.data.tags["bilevel.key"] for r in runs]
    assert len(run_keys) == len(set(run_keys)) == 2 + ITERATIONS + 1  # meta-run, generation, baseline, iterations
    assert {r.info.status for r in runs} <= {"FINISHED", "FAILED"}

    # Resume overhead: wall time of the resume minus the work it still had to do (trainings and LLM calls).
    new_runs = {Path(entry["run_dir"]).name for entry in all_launches[len(killed_launches):]}
    training_seconds = sum(e.outcome.wall_seconds for e in trace.experiments
                           if f"g{e.generation}-t{e.track}-i{e.iteration}-" in " ".join(new_runs)
                           and (e.index > 0 or any("baseline" in name for name in new_runs)))
    llm_seconds = sum(call["seconds"] for call in llm_calls(settings)[len(killed_calls):])
    print(f"\nkill-and-resume: launches before kill {len(killed_launches)}, after resume {len(all_launches)} "
          f"(uninterrupted run: {len(launches(Settings(state_dir=reference_state)))}), relaunched {relaunched}; "
          f"LLM calls before kill {len(killed_calls)}, after {len(keys)}; resume wall {resume_seconds:.1f} s, "
          f"of which remaining trainings {training_seconds:.1f} s and LLM {llm_seconds:.1f} s: "
          f"overhead {resume_seconds - training_seconds - llm_seconds:.1f} s")
