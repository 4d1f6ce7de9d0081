"""A stop signal ends a real `bilevel run` or `bilevel ui` within seconds and leaves no process: the running
training is killed (not waited for), every service stops, one line is printed, the exit code is 128+signal, and
the run resumes to the end. A SIGKILLed CLI takes its services and training along (they are supervised).

The target is 10 s from signal to exit (benchmarks/stop_latency.py measures it); the bounds here are generous
hang detectors for a loaded 2-core machine."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from infra.runs import RunFolder
from infra.settings import Settings
from tests.integration.scripted import launches
from tests.integration.stopping import (
    ITERATIONS,
    answers,
    cli,
    cli_env,
    command_line,
    descendants,
    is_training,
    kill_tree,
    popen_logged,
    signal_and_wait,
    start_run,
    start_ui,
    stderr_of,
    still_alive,
    wait_mid_training,
)

pytestmark = pytest.mark.integration
# How fast a stop is, is measured by benchmarks/stop_latency.py; here a hang fails in signal_and_wait.


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_mid_training_stops_everything_and_the_run_resumes(tmp_path: Path, sig: int) -> None:
    state, log = tmp_path / "state", tmp_path / "run.log"
    script = answers(tmp_path)
    # --mechanisms best: the S3 store is needed, so the embedded SeaweedFS runs too.
    process = start_run(state, script, log, "stopped", "--mechanisms", "best")
    try:
        tree = wait_mid_training(process, state, log)
        names = " ".join(command_line(p) for p in tree)
        assert any(is_training(p, state) for p in tree) and "weed" in names and "uvicorn" in names, names  # S3, Prefect
        seconds = signal_and_wait(process, sig)
    finally:
        if process.poll() is None:
            kill_tree(process)
    stderr = stderr_of(log)
    print(f"\n{signal.Signals(sig).name} to bilevel run mid-training: exited in {seconds:.1f} s")
    assert process.returncode == 128 + sig, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == "interrupted: resume with `bilevel resume stopped`", stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert still_alive(tree) == []

    settings = Settings(state_dir=state)
    folder = RunFolder(settings.runs_dir, "stopped")
    assert folder.exists() and not folder.summary_path.exists()  # resumable, not reported as finished
    before = [Path(entry["run_dir"]).name for entry in launches(settings)]
    resumed = subprocess.run(cli("resume", "stopped"), env=cli_env(state, script), capture_output=True, text=True,
                             timeout=900, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    summary = json.loads(folder.summary_path.read_text())
    assert summary["stop_reason"] == "finished" and summary["experiments"] == ITERATIONS
    after = [Path(entry["run_dir"]).name for entry in launches(settings)]
    assert after.count(before[-1]) == 2, after  # the killed candidate had not finished: it trained again
    assert [name for name in set(after) if after.count(name) > 1] == [before[-1]]  # nothing else did


def test_a_sigkilled_run_leaves_no_service_or_training_behind(tmp_path: Path) -> None:
    state, log = tmp_path / "state", tmp_path / "run.log"
    process = start_run(state, answers(tmp_path), log, "killed", "--mechanisms", "best")
    try:
        tree = wait_mid_training(process, state, log)
        process.kill()  # the CLI alone, as the OOM killer would
        process.wait(timeout=30)
        assert still_alive(tree) == []  # Prefect's server, SeaweedFS, the training and their supervisors
    finally:
        for proc in tree:
            try:
                proc.kill()
            except Exception:  # noqa: BLE001 - gone already
                pass


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_ui_stops_mlflow_and_its_workers(tmp_path: Path, sig: int) -> None:
    state = tmp_path / "state"
    state.mkdir()
    process, _ = start_ui(state, tmp_path / "ui.log")
    try:
        tree = descendants(process.pid)
        names = " ".join(command_line(p) for p in tree)
        assert "mlflow" in names and "uvicorn" in names, names
        seconds = signal_and_wait(process, sig)
        print(f"\n{signal.Signals(sig).name} to bilevel ui: exited in {seconds:.1f} s")
        if sig != signal.SIGKILL:
            assert process.returncode == 128 + sig
            assert stderr_of(tmp_path / "ui.log").strip().splitlines()[-1] == "MLflow UI stopped"
        assert still_alive(tree) == []
    finally:
        if process.poll() is None:
            kill_tree(process)


def test_sigterm_stops_an_ablation_mid_training_and_the_same_id_finishes_it(tmp_path: Path) -> None:
    state, log = tmp_path / "state", tmp_path / "ablate.log"
    script = answers(tmp_path)
    args = cli("ablate", "--id", "abl", "--arms", "A,random", "--repeats", "1", "--no-report")
    process = popen_logged(args, cli_env(state, script), log, tmp_path)
    try:
        tree = wait_mid_training(process, state, log)
        seconds = signal_and_wait(process, signal.SIGTERM)
    finally:
        if process.poll() is None:
            kill_tree(process)
    print(f"\nSIGTERM to bilevel ablate mid-training: exited in {seconds:.1f} s")
    stderr = stderr_of(log)
    assert process.returncode == 143, stderr[-3000:]
    assert stderr.strip().splitlines()[-1] == "interrupted: resume with `bilevel ablate --id abl` and the same options"
    assert still_alive(tree) == []

    again = subprocess.run(args, env=cli_env(state, script), capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    runs_dir = Settings(state_dir=state).runs_dir
    for arm in ("A", "random"):
        summary = json.loads((runs_dir / f"abl-{arm}-r0" / "summary.json").read_text())
        assert summary["stop_reason"] == "finished" and summary["experiments"] == ITERATIONS
