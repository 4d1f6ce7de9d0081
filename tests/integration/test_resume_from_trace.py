"""A meta-run resumes from its trace alone: killed mid-generation, its Prefect results deleted and its state directory
moved, `bilevel resume` trains and asks only what the trace does not hold; a seeded control arm (random, TPE)
stopped by SIGTERM and resumed ends with the trace of an uninterrupted run, and the trace the stop leaves holds every
decision made before it. Real CLI processes, the toy workload and the scripted LLM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from infra.runs import RunFolder
from infra.settings import Settings
from infra.tracking import Tracker
from search.trace import Trace
from tests.integration.scripted import launches, llm_calls, proposal, runs_of, write_script
from tests.integration.stopping import REPO, kill_tree, popen_logged, signal_and_wait, stderr_of

pytestmark = pytest.mark.integration

ITERATIONS, GENERATIONS = 3, 2


def _env(state: Path, script: Path, proposer: str = "llm") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILEVEL_", "PREFECT_"))}
    env.update(BILEVEL_STATE_DIR=str(state), BILEVEL_MODEL="scripted/replay", BILEVEL_SCRIPTED_ANSWERS=str(script),
               BILEVEL_WORKLOAD="toy", BILEVEL_LEVELS="1,1.5", BILEVEL_ITERATIONS=str(ITERATIONS),
               BILEVEL_GENERATIONS=str(GENERATIONS), BILEVEL_BUDGET_MODE="steps", BILEVEL_BUDGET="100",
               BILEVEL_PROPOSER=proposer, BILEVEL_LLM_RETRIES="0", PYTHONUNBUFFERED="1", COLUMNS="160",
               PYTHONPATH=str(REPO))
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bilevel.cli", *args]


def _run(args: list[str], env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900, cwd=cwd)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _trace(state: Path, meta_run_id: str) -> Trace:
    return RunFolder(Settings(state_dir=state).runs_dir, meta_run_id).read_trace()


def _comparable(trace: Trace) -> list[tuple]:
    return [(e.index, e.generation, e.iteration, json.dumps(e.config, sort_keys=True), e.outcome.status, e.measured,
             e.kept, e.decided_by, e.proposed_by) for e in trace.experiments]


def _wait_for(process: subprocess.Popen, log: Path, state: Path, meta_run_id: str, ready) -> None:
    """Poll the run's trace.json until `ready(trace)` holds (the file is written atomically after each decision)."""
    path = RunFolder(Settings(state_dir=state).runs_dir, meta_run_id).trace_path
    deadline = time.monotonic() + 600
    while True:
        assert process.poll() is None, "ended before the stop: " + log.read_text()[-2000:] + stderr_of(log)[-2000:]
        assert time.monotonic() < deadline, "the run never got there: " + log.read_text()[-2000:]
        if path.is_file() and ready(Trace.model_validate_json(path.read_text())):
            return
        time.sleep(0.05)


def _label(name: str) -> tuple[int, int, int, str]:
    """(generation, track, iteration, purpose) of a training folder name g0-t0-i2-candidate-s0."""
    g, t, i, purpose, _ = name.split("-")
    return int(g[1:]), int(t[1:]), int(i[1:]), purpose


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_script(tmp_path_factory.mktemp("resume") / "answers.json", answers={
        "propose": [proposal({"LEARNING_RATE": 0.05}), proposal({"MOMENTUM": 0.8}), proposal({"OPTIMIZER": "adam"}),
                    proposal({"WIDTH": 32}), proposal({"LEARNING_RATE": 0.08}), proposal({"MOMENTUM": 0.85})],
        "adjust_config": [{"freeze": [], "unfreeze": [], "strategy": "exploit", "guidance": "refine",
                           "reason": "it helped"}],
    })


def test_killed_moved_and_stripped_of_prefect_results_it_resumes_from_the_trace(tmp_path: Path, script: Path) -> None:
    reference_state = tmp_path / "reference"
    _run(_cli("run", "--id", "ref"), _env(reference_state, script), tmp_path)
    reference = _trace(reference_state, "ref")
    reference_launches = [Path(e["run_dir"]).name for e in launches(Settings(state_dir=reference_state))]
    reference_calls = [c["call_key"] for c in llm_calls(Settings(state_dir=reference_state)) if "error" not in c]

    state, log = tmp_path / "first-machine", tmp_path / "victim.log"
    process = popen_logged(_cli("run", "--id", "victim"), _env(state, script), log, tmp_path)
    try:  # killed in generation 1, after Level 1.5 of generation 0 and at least one decision of generation 1
        _wait_for(process, log, state, "victim", lambda trace: len(trace.in_generation(1)) >= 1)
    finally:
        kill_tree(process)  # SIGKILL, as a lost machine
    decided = _trace(state, "victim")
    assert decided.generation_end(0) is not None and decided.generation_end(0).done
    assert decided.generation_end(0).level15 is not None and len(decided.decided) < GENERATIONS * ITERATIONS
    calls_before = len(llm_calls(Settings(state_dir=state)))
    launches_before = len(launches(Settings(state_dir=state)))

    shutil.rmtree(state / "prefect" / "results")  # no cached task result survives
    moved = tmp_path / "elsewhere" / "state"
    moved.parent.mkdir()
    shutil.move(str(state), str(moved))
    _run(_cli("resume", "victim"), _env(moved, script), tmp_path)

    trace = _trace(moved, "victim")
    assert _comparable(trace)[: len(decided)] == _comparable(decided)  # the decided experiments, identical
    assert _comparable(trace) == _comparable(reference)
    assert trace.generation_end(0) == decided.generation_end(0)  # Level 1.5 of generation 0 was not asked again
    settings = Settings(state_dir=moved)

    # Trained after the resume: exactly the trainings of undecided experiments (the uninterrupted run's list).
    taken = {(e.generation, e.track, e.iteration) for e in decided.decided}
    undecided = Counter(name for name in reference_launches
                        if _label(name)[3] in ("candidate", "confirm") and _label(name)[:3] not in taken)
    assert Counter(Path(e["run_dir"]).name for e in launches(settings)[launches_before:]) == undecided
    # Asked after the resume: exactly the undecided iterations' LLM calls (the cut-off one again: no cache left).
    asked = [c["call_key"] for c in llm_calls(settings)[calls_before:] if "error" not in c]
    assert not [key for key in asked if key.startswith("adjust/g0/")]
    assert sorted(asked) == sorted(key for key in reference_calls if key.startswith(("propose/", "adjust/"))
                                   and not any(key.startswith(f"propose/g{g}/t{t}/i{i}/") for g, t, i in taken)
                                   and not key.startswith("adjust/g0/"))

    runs = runs_of(Tracker(settings.resolved_tracking_uri), "victim")
    keys = [r.data.tags["bilevel.key"] for r in runs]
    assert len(keys) == len(set(keys)) == 1 + GENERATIONS + 1 + GENERATIONS * ITERATIONS  # none duplicated
    summary = RunFolder(settings.runs_dir, "victim").read_summary()
    assert summary is not None and summary.experiments == GENERATIONS * ITERATIONS and summary.stop_reason == "finished"
    assert trace.elapsed_s > decided.elapsed_s  # both sessions' time counts towards --max-hours


@pytest.mark.parametrize("proposer", ["random", "tpe"])
def test_a_seeded_arm_stopped_by_sigterm_and_resumed_ends_with_the_uninterrupted_trace(
        tmp_path: Path, script: Path, proposer: str) -> None:
    _run(_cli("run", "--id", "arm"), _env(tmp_path / "reference", script, proposer), tmp_path)
    reference = _trace(tmp_path / "reference", "arm")
    assert {e.proposed_by for e in reference.decided} == {proposer}

    state, log = tmp_path / "stopped", tmp_path / "stopped.log"
    process = popen_logged(_cli("run", "--id", "arm"), _env(state, script, proposer), log, tmp_path)
    try:
        _wait_for(process, log, state, "arm", lambda trace: len(trace.decided) >= 2)
        before = _trace(state, "arm")  # what had been decided when the signal was sent
        signal_and_wait(process, signal.SIGTERM)
    finally:
        if process.poll() is None:
            kill_tree(process)
    assert process.returncode == 128 + signal.SIGTERM, stderr_of(log)[-3000:]
    stopped = _trace(state, "arm")
    # A clean boundary: every decision made before the stop is in the trace on disk, exportable as it is.
    assert _comparable(stopped)[: len(before)] == _comparable(before)
    settings = Settings(state_dir=state)
    logged = {int(r.data.tags["bilevel.index"]) for r in runs_of(Tracker(settings.resolved_tracking_uri), "arm", "iteration")
              if r.info.status in ("FINISHED", "FAILED")}
    assert logged <= {e.index for e in stopped.decided}  # nothing MLflow holds is missing from the trace

    _run(_cli("resume", "arm"), _env(state, script, proposer), tmp_path)
    assert _comparable(_trace(state, "arm")) == _comparable(reference)
