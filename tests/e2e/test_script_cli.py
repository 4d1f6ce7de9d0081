"""Bring your own script, as a new user does, through the command line: the example scripts (another domain, a
maximised metric) run end to end with no Python from the user; resume and report find the workload again; every
prompt, the summary, MLflow and the report use the script's metric and direction; bad references fail in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.scripted import proposal, write_script

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def user(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("byo")
    script = write_script(tmp / "answers.json", answers={
        "propose": [proposal({"DEGREE": 7, "LEARNING_RATE": 0.5}, "a richer curve"),
                    proposal({"MOMENTUM": 0.9}, "momentum"),
                    proposal({"HIDDEN": 64, "LEARNING_RATE": 1.0}, "a wider network"),
                    proposal({"ACTIVATION": "relu"}, "relu")],
        "adjust_config": [{"freeze": [], "unfreeze": [], "strategy": "balanced", "guidance": "", "reason": "fine"}],
    }, by_key={"propose/g0/t0/i0/*": proposal({"HIDDEN": 64, "LEARNING_RATE": 1.0}, "a wider network")})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILEVEL_", "PREFECT_"))}
    env.update(BILEVEL_STATE_DIR=str(tmp / "state"), BILEVEL_MODEL="scripted/replay",
               BILEVEL_SCRIPTED_ANSWERS=str(script), COLUMNS="200")

    def run(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "bilevel.cli", *args], env=env, capture_output=True, text=True,
                              timeout=timeout, cwd=tmp)
        if check:
            assert done.returncode == 0, f"bilevel {' '.join(args)}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        return done

    return run, tmp / "state", script


def requests(script: Path) -> list[dict]:
    path = Path(f"{script}.requests.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_minimised_script_metric_end_to_end(user) -> None:
    run, state, script = user
    done = run("run", "--workload", str(EXAMPLES / "fit_curve" / "train.py"), "--metric", "val_mse",
               "--fixed", "SEED,STEPS", "--iterations", "2", "--generations", "1", "--levels", "1", "--id", "mse")
    assert "minimise val_mse (lower is better)" in done.stdout and "best val_mse" in done.stdout
    assert "val_bpb" not in done.stdout
    summary = json.loads((state / "runs" / "mse" / "summary.json").read_text())
    assert summary["objective"] == {"name": "val_mse", "goal": "minimize"} and summary["experiments"] == 2
    assert summary["best_value"] < summary["baseline_value"]  # DEGREE 7 fits the sine better
    prompts = [r for r in requests(script) if r["call_key"].startswith("propose/")]
    text = "\n".join(m["content"] for r in prompts for m in r["messages"])
    assert "minimise val_mse (lower is better)" in text and "val_bpb" not in text
    assert "SEED" not in text.split("Parameters you may change")[1].split("\n\n")[0]  # fixed names are not offered


def test_a_maximised_metric_with_resume_and_report(user) -> None:
    run, state, script = user
    args = ("--workload", str(EXAMPLES / "classify" / "train.py"), "--metric", "val_accuracy", "--goal", "maximize",
            "--fixed", "SEED", "--budget-param", "EPOCHS", "--iterations", "2", "--generations", "2",
            "--levels", "1,1.5")
    done = run("run", *args, "--id", "acc")
    assert "maximise val_accuracy (higher is better)" in done.stdout
    trace = json.loads((state / "runs" / "acc" / "trace.json").read_text())
    first = trace["experiments"][1]
    assert first["changes"] == {"HIDDEN": 64, "LEARNING_RATE": 1.0}
    assert first["outcome"]["value"] > trace["experiments"][0]["outcome"]["value"] and first["kept"]  # higher: kept
    adjust = [r for r in requests(script) if r["purpose"] == "adjust_config"]
    assert adjust and "maximise val_accuracy" in adjust[0]["messages"][1]["content"]
    launched = len((state / "logs" / "launches.jsonl").read_text().splitlines())
    resumed = run("resume", "acc")
    assert "maximise val_accuracy" in resumed.stdout
    assert len((state / "logs" / "launches.jsonl").read_text().splitlines()) == launched  # nothing trained again
    report = run("report", "acc")
    page = (state / "reports" / "acc" / "index.html").read_text()
    assert "report:" in report.stdout and "val_accuracy" in page and "val_bpb" not in page
    listing = run("runs").stdout
    assert "maximise val_accuracy" in listing and "minimise val_mse" in listing


@pytest.mark.parametrize(("args", "message"), [
    (("--workload", "nonesuch"), "unknown workload 'nonesuch'"),
    (("--workload", "missing/train.py", "--metric", "x"), "workload script missing/train.py not found"),
    (("--workload", str(EXAMPLES / "classify" / "train.py")), "needs its metric"),
    (("--workload", "no_such_pkg:Thing"), "importing 'no_such_pkg' failed"),
    (("--workload", str(EXAMPLES / "classify" / "train.py"), "--metric", "val_accuracy", "--fixed", "NOPE"),
     "fixed parameters NOPE are not in"),
])
def test_bad_workload_references_fail_in_one_line_before_anything_starts(user, args: tuple, message: str) -> None:
    run, state, _ = user
    done = run("run", *args, "--id", "bad", check=False)
    assert done.returncode == 1 and message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (state / "runs" / "bad").exists()
