"""`bilevel run --edits code` end to end on a user script with the scripted LLM: a free-form SEARCH/REPLACE edit
trains and is kept, the next edit is made on top of it, crashes, gets one fix attempt with its traceback and the fix
trains; the trace, MLflow (the change, the diff against the best) and the trained scripts record it; `bilevel runs`
and `bilevel report` read the run; `bilevel resume` retrains nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.scripted import write_script

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

FIT_CURVE = Path(__file__).resolve().parents[2] / "examples" / "fit_curve" / "train.py"
LOOP = "    for step in range(STEPS):\n"
LONGER = "    for step in range(STEPS * 4):\n"  # four times the steps: a lower val_mse, so it is kept
VELOCITY = "    velocity = np.zeros_like(weights)\n"
BROKEN = "    velocity = np.zeros(DEGREE)\n"  # one entry short: broadcasting fails at the first step
FIXED = "    velocity = np.zeros(DEGREE + 1)\n"


def edit(hypothesis: str, search: str, replace: str, file: str = "train.py") -> str:
    return (f"HYPOTHESIS: {hypothesis}\n{file}\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n")


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("code")
    script = write_script(tmp / "answers.json", answers={
        "propose": [edit("train four times longer", LOOP, LONGER), edit("velocity without the bias", VELOCITY, BROKEN)],
        "fix": [edit("velocity sized like the weights", BROKEN, FIXED)],
    }, by_key={
        # the first answer of iteration 1 edits the read-only harness of tinygpt: refused, asked again
        "propose/g0/t0/i1/r0/c0/a0": edit("cheat", "EVAL_BYTES = 1\n", "EVAL_BYTES = 2\n", file="harness.py"),
        "propose/g0/t0/i1/r0/c0/a1": edit("velocity without the bias", VELOCITY, BROKEN),
    })
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILEVEL_", "PREFECT_"))}
    env.update(BILEVEL_STATE_DIR=str(tmp / "state"), BILEVEL_MODEL="scripted/replay", BILEVEL_PROPOSER="llm",
               BILEVEL_SCRIPTED_ANSWERS=str(script), COLUMNS="200")

    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "bilevel.cli", *args], env=env, capture_output=True, text=True,
                              timeout=600, cwd=tmp)
        assert done.returncode == 0, f"bilevel {' '.join(args)}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        return done

    return run, tmp / "state", script


def test_a_free_form_edit_trains_is_kept_becomes_the_base_and_a_crash_gets_one_fix(cli) -> None:
    run, state, script = cli
    run("run", "--workload", str(FIT_CURVE), "--metric", "val_mse", "--fixed", "SEED,STEPS", "--edits", "code",
        "--iterations", "2", "--generations", "1", "--levels", "1", "--id", "code")
    folder = state / "runs" / "code"
    assert json.loads((folder / "spec.json").read_text())["workload"]["edits"] == "code"
    baseline_source = FIT_CURVE.read_text()
    trace = json.loads((folder / "trace.json").read_text())
    first, second = trace["experiments"][1], trace["experiments"][2]
    # Iteration 0: the edit trained, was kept, and its config names its source (kept in the trace).
    assert first["outcome"]["status"] == "ok" and first["kept"], first
    assert first["code"]["source"] == baseline_source.replace(LOOP, LONGER)
    assert first["changes"] == {"source": first["code"]["key"]} and first["config"]["source"] == first["code"]["key"]
    assert first["hypothesis"] == "train four times longer"
    # Iteration 1: the harness edit was refused and asked again; the edit was made on top of the kept one, crashed,
    # and its one fix trained; the experiment records the fixed edit, as one edit of the kept script.
    assert any("harness.py" in error and "only train.py may be edited" in error for error in second["proposal_errors"])
    assert "the first version crashed" in second["note"] and "trained its fix" in second["note"], second["note"]
    assert second["outcome"]["status"] == "ok"
    assert second["code"]["source"] == baseline_source.replace(LOOP, LONGER).replace(VELOCITY, FIXED)
    assert second["code"]["base"] == first["code"]["key"] and second["code"]["fixed_after"]
    # What trained: the crashed version and its fix, both on top of the kept edit.
    trained = [p.read_text() for p in state.rglob("train.py") if "runs" in p.parts]
    assert any(LONGER in t and FIXED in t for t in trained)
    # The LLM saw the current script, then the crash's traceback with the script that crashed.
    requests = [json.loads(line) for line in Path(f"{script}.requests.jsonl").read_text().splitlines()]
    proposing = [r for r in requests if r["purpose"] == "propose"]
    assert VELOCITY.strip() in proposing[0]["messages"][1]["content"]
    assert LONGER.strip() in proposing[-1]["messages"][1]["content"]  # iteration 1 edits the kept script
    [fixing] = [r for r in requests if r["purpose"] == "fix"]
    assert "ValueError" in fixing["messages"][1]["content"] and BROKEN.strip() in fixing["messages"][1]["content"]
    # MLflow: the meta-run's edit mode, the change as a param, the diff against the best as the artifact.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{state / 'mlflow' / 'mlflow.db'}")
    [experiment] = [e for e in client.search_experiments() if e.name == "bilevel/default"]
    [meta] = client.search_runs([experiment.experiment_id], "params.edits = 'code'")
    [fixed_run] = client.search_runs([experiment.experiment_id], f"params.`change.source` = '{second['code']['key']}'")
    diff = (Path(fixed_run.info.artifact_uri.removeprefix("file://")) / "diff_vs_best.patch").read_text()
    assert f"-{VELOCITY}" in diff and f"+{FIXED}" in diff and LOOP.strip() not in diff  # against the kept edit
    # The meta-run's best script is the edited one (the fix beat the kept edit, or the kept edit stayed the best).
    best = (Path(meta.info.artifact_uri.removeprefix("file://")) / "best_train.py").read_text()
    assert best in (first["code"]["source"], second["code"]["source"])
    # The run's list and report read it; resume retrains nothing.
    assert "code" in run("runs").stdout
    run("report", "code")
    launches = (state / "logs" / "launches.jsonl").read_text().count("\n")
    assert launches == 4  # the baseline, the first edit, the crash and its fix
    # The LLM wrote code, so every training ran in the training sandbox (train_sandbox = auto).
    entries = [json.loads(line) for line in (state / "logs" / "launches.jsonl").read_text().splitlines()]
    assert all(entry["sandboxed"] and not entry["warm"] for entry in entries), entries
    run("resume", "code")
    assert (state / "logs" / "launches.jsonl").read_text().count("\n") == launches
