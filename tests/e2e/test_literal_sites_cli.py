"""`bilevel run --edits literals` end to end on a user script with the scripted LLM: the prompt offers the literal
site with its line, the proposed change of the site trains (the trained script holds the new literal), the trace,
MLflow params and the diff record it, resume finds the edit mode again; an unknown edit mode fails in one line first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.scripted import proposal, write_script

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

FIT_CURVE = Path(__file__).resolve().parents[2] / "examples" / "fit_curve" / "train.py"
SITE = "main:13"  # weights = rng.normal(0.0, [[0.01]], size=DEGREE + 1): the initial weights' scale


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("sites")
    script = write_script(tmp / "answers.json", answers={
        "propose": [proposal({SITE: 0.05}, "larger initial weights"), proposal({"DEGREE": 5}, "a richer curve")],
    })
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILEVEL_", "PREFECT_"))}
    env.update(BILEVEL_STATE_DIR=str(tmp / "state"), BILEVEL_MODEL="scripted/replay", BILEVEL_PROPOSER="llm",
               BILEVEL_SCRIPTED_ANSWERS=str(script), COLUMNS="200")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "bilevel.cli", *args], env=env, capture_output=True, text=True,
                              timeout=600, cwd=tmp)
        if check:
            assert done.returncode == 0, f"bilevel {' '.join(args)}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        return done

    return run, tmp / "state", script


def test_a_proposed_literal_site_trains_and_is_recorded(cli) -> None:
    run, state, script = cli
    run("run", "--workload", str(FIT_CURVE), "--metric", "val_mse", "--fixed", "SEED,STEPS", "--edits", "literals",
        "--iterations", "2", "--generations", "1", "--levels", "1", "--id", "sites")
    folder = state / "runs" / "sites"
    assert json.loads((folder / "spec.json").read_text())["workload"]["edits"] == "literals"
    trace = json.loads((folder / "trace.json").read_text())
    first = trace["experiments"][1]
    assert first["changes"] == {SITE: 0.05} and first["config"][SITE] == 0.05 and first["outcome"]["status"] == "ok"
    assert trace["experiments"][0]["config"][SITE] == 0.01  # the baseline's literal is a parameter value
    # The script that trained holds the new literal, and nothing else of it changed.
    # (When that edit is kept, the second proposal trains on top of it with DEGREE = 5, so look for the copy, not
    # the first of the scripts that hold the new literal: their order on disk is arbitrary.)
    expected = FIT_CURVE.read_text().replace("rng.normal(0.0, 0.01, size=DEGREE + 1)",
                                             "rng.normal(0.0, 0.05, size=DEGREE + 1)")
    trained = [p.read_text() for p in state.rglob("train.py") if "rng.normal(0.0, 0.05, size=DEGREE + 1)" in p.read_text()]
    assert expected in trained, f"{len(trained)} trained scripts hold the new literal, none is otherwise unchanged"
    # The prompt showed the site with its line; the data lines marked `# bilevel: fixed` were not offered.
    prompts = [json.loads(line) for line in Path(f"{script}.requests.jsonl").read_text().splitlines()]
    text = prompts[0]["messages"][1]["content"]
    assert f"{SITE}: float in [0.001, 0.1], log scale; baseline 0.01. init, line 28: " \
           "weights = rng.normal(0.0, [[0.01]], size=DEGREE + 1)" in text
    assert "np.sin" not in text
    # MLflow: the change as a param of the iteration run, the diff as its artifact.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{state / 'mlflow' / 'mlflow.db'}")
    [experiment] = [e for e in client.search_experiments() if e.name == "bilevel/default"]
    runs = client.search_runs([experiment.experiment_id], f"params.`change.{SITE}` = '0.05'")
    assert len(runs) == 1
    meta = client.search_runs([experiment.experiment_id], "params.edits = 'literals'")
    assert len(meta) == 1
    diff = (Path(runs[0].info.artifact_uri.removeprefix("file://")) / "diff_vs_best.patch").read_text()
    assert "-    weights = rng.normal(0.0, 0.01, size=DEGREE + 1)" in diff
    assert "+    weights = rng.normal(0.0, 0.05, size=DEGREE + 1)" in diff
    # Resume uses the recorded edit mode: everything is reused, nothing trains again.
    launches = (state / "logs" / "launches.jsonl").read_text().count("\n")
    run("resume", "sites")
    assert (state / "logs" / "launches.jsonl").read_text().count("\n") == launches


def test_an_unknown_edit_mode_is_refused_in_one_line_before_anything_starts(cli) -> None:
    run, state, _ = cli
    done = run("run", "--workload", str(FIT_CURVE), "--metric", "val_mse", "--edits", "free", "--id", "free",
               check=False)
    assert done.returncode == 1 and "edits: Input should be 'block', 'literals' or 'code'" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (state / "runs" / "free").exists()
