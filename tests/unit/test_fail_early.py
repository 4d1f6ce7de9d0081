"""Bad input fails before any service starts, in one line: the model string, a non-finite budget, ids and paths
outside the state directory; and `bilevel runs` lists a run whose summary cannot be read as failed."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from bilevel.cli import app
from infra.model_names import OUR_PROVIDERS, check_model, litellm_providers
from infra.runs import RunFolder, list_meta_runs
from infra.settings import Settings

RUNNER = CliRunner()
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("model", ["local/qwen2.5-coder-1.5b", "scripted/replay", "openai/gpt-4o-mini",
                                   "ollama/llama3", "hosted_vllm/my-model", "gpt-4o"])
def test_servable_model_strings_pass(model: str) -> None:
    assert check_model(model) == model
    assert Settings(model=model).model == model


@pytest.mark.parametrize(("model", "says"), [
    ("nonsense/x", "unknown provider 'nonsense'"),
    ("locl/qwen2.5-coder-1.5b", "unknown provider 'locl'"),
    ("nonsense", "names no provider"),
    ("openai/", "but no model"),
    ("", "not a model string"),
    (" openai/gpt-4o", "not a model string"),
])
def test_unservable_model_strings_are_refused_with_what_is_wrong(model: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        check_model(model)
    with pytest.raises(ValidationError, match=says):
        Settings(model=model)


def test_the_offline_provider_list_is_litellms() -> None:
    import litellm

    # Registering our custom providers (any test that opened the LLM client) adds them to litellm's list.
    theirs = {str(getattr(p, "value", p)) for p in litellm.provider_list} - set(OUR_PROVIDERS)
    assert litellm_providers() == theirs


@pytest.mark.parametrize("budget", [math.inf, -math.inf, math.nan])
def test_a_non_finite_budget_is_refused_by_settings(budget: float) -> None:
    with pytest.raises(ValidationError, match="budget"):
        Settings(budget=budget)


@pytest.mark.parametrize("args", [["run", "--model", "nonsense/x"], ["run", "--budget", "inf"],
                                  ["run", "--budget", "nan"], ["ablate", "--budget", "inf"],
                                  ["run", "--id", "../escape"], ["run", "--id", "/tmp/elsewhere"]])
def test_the_cli_refuses_bad_input_in_one_line_before_any_service(tmp_path: Path, args: list[str]) -> None:
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILEVEL_", "PREFECT_API_URL"))}
    env.update(BILEVEL_STATE_DIR=str(state), PYTHONPATH=str(REPO), COLUMNS="100")
    done = subprocess.run([sys.executable, "-m", "bilevel.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    # Nothing started: no Prefect, MLflow or S3 state, no logs.
    assert not state.exists() or not any(state.iterdir()), sorted(p.name for p in state.iterdir())


@pytest.mark.parametrize(("args", "says"), [
    (["run", "--goal", "maximize"], "'tinygpt' does not take --goal maximize (it minimizes val_bpb)"),
    (["run", "--metric", "loss"], "'tinygpt' does not take --metric 'loss' (it measures val_bpb)"),
    (["run", "--workload", "toy", "--metric", "accuracy", "--goal", "maximize"],
     "'toy' does not take --metric 'accuracy' (it measures loss); --goal maximize (it minimizes loss): leave them out"),
    (["ablate", "--goal", "maximize"], "does not take --goal maximize"),
    (["ablate", "--workload", "toy", "--metric", "accuracy"], "does not take --metric 'accuracy'"),
    (["setup", "--metric", "loss"], "does not take --metric 'loss'"),
    (["run", "--budget-param", "STEPS"], "--budget-param 'STEPS' (it has no budget parameter)"),
    (["run", "--seed-param", "SEED"], "--seed-param 'SEED' (it has no seed parameter)"),
    (["run", "--workload", "toy", "--budget-param", "EPOCHS"], "--budget-param 'EPOCHS' (its budget parameter is 'STEPS')"),
    (["run", "--workload", "toy", "--command", "{python} {script} --fast"], "--command '{python} {script} --fast'"),
    (["run", "--workload", str(REPO / "examples" / "classify" / "train.py"), "--metric", "val_accuracy", "--budget", "9"],
     "trains for its script's own budget: --budget does not apply"),
])
def test_an_option_the_workload_would_ignore_is_refused_before_any_service(tmp_path: Path, args: list[str],
                                                                          says: str) -> None:
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILEVEL_", "PREFECT_API_URL"))}
    env.update(BILEVEL_STATE_DIR=str(state), PYTHONPATH=str(REPO), COLUMNS="100")
    done = subprocess.run([sys.executable, "-m", "bilevel.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], done.stderr
    # Nothing started: Prefect's home is set up before the workload is built (so a workload's own import of Prefect
    # sees it), and stays empty; no MLflow, S3, runs or logs.
    assert [p.name for p in state.iterdir()] == ["prefect"] and not any((state / "prefect").iterdir())


@pytest.mark.parametrize("target", ["/etc", "/etc/passwd", "../..", "a/../../b", "ok\n", "x" * 81, ".hidden"])
def test_ids_outside_the_runs_directory_are_refused(tmp_path: Path, target: str) -> None:
    with pytest.raises(ValueError, match="is not a meta-run id"):
        RunFolder(tmp_path, target)


@pytest.mark.parametrize("command", ["report", "resume"])
@pytest.mark.parametrize("target", ["/etc", str(Path.home()), "../outside"])
def test_report_and_resume_refuse_paths(tmp_path: Path, monkeypatch, command: str, target: str) -> None:
    monkeypatch.setenv("BILEVEL_STATE_DIR", str(tmp_path / "state"))
    result = RUNNER.invoke(app, [command, target])
    assert result.exit_code != 0
    assert "is not a meta-run id" in str(result.exception)


def test_runs_lists_a_run_with_a_corrupt_summary_as_failed(tmp_path: Path, monkeypatch) -> None:
    from tests.unit.report_fixtures import synthetic_trace, write_run

    runs_dir = tmp_path / "state" / "runs"
    for name in ("good-run", "bad-run", "binary-run"):
        write_run(runs_dir, name, synthetic_trace(1, experiments=6))
    (runs_dir / "bad-run" / "summary.json").write_text('{"meta_run_id": "bad-run", "best_value": ')
    (runs_dir / "binary-run" / "summary.json").write_bytes(b"\xff\xfe\x00garbage")
    listing = {item.id: item for item in list_meta_runs(runs_dir)}
    assert listing["bad-run"].state == "failed" and listing["bad-run"].problem
    assert listing["binary-run"].state == "failed"
    assert listing["good-run"].state != "failed"
    monkeypatch.setenv("BILEVEL_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COLUMNS", "200")
    result = RUNNER.invoke(app, ["runs"])
    assert result.exit_code == 0, result.output
    assert "bad-run" in result.output and "failed" in result.output and "good-run" in result.output
    json.loads((runs_dir / "good-run" / "summary.json").read_text())
