"""tinygpt workload without training: schema of the real train.py, edits, presets, harness check, env, outcomes."""

import json
from pathlib import Path

import pytest

from search.params import ParamError, ParamKind
from search.run_spec import Budget
from tests.unit.script_fixture import current_values
from workloads.hyperblock import parse_params
from workloads.subprocess_run import ProcessResult, scrubbed_environment
from workloads.tinygpt.presets import H100, apply_preset, param_line, preset_source
from workloads.tinygpt.workload import (
    TRAIN_PATH,
    TinyGPT,
    error_tail,
    outcome_from_process,
    run_environment,
)

REQUIRED_PARAMS = {
    "DEPTH", "ASPECT_RATIO", "HEAD_DIM", "SEQ_LEN", "TOTAL_BATCH_SIZE", "DEVICE_BATCH_SIZE", "EMBEDDING_LR",
    "UNEMBEDDING_LR", "MATRIX_LR", "SCALAR_LR", "WEIGHT_DECAY", "ADAM_BETAS", "WARMUP_RATIO", "WARMDOWN_RATIO",
    "FINAL_LR_FRAC", "OPTIMIZER",
}  # fmt: skip


@pytest.fixture
def workload(tmp_path):
    return TinyGPT(tmp_path / "cache", device="cpu", launch_log=tmp_path / "launches.jsonl")


def test_real_train_py_schema_parses_and_ranges_contain_the_baseline():
    specs = parse_params(TRAIN_PATH.read_text())
    names = {spec.name for spec in specs}
    assert REQUIRED_PARAMS <= names
    for spec in specs:
        assert spec.description, f"{spec.name} has no description for the prompt"
        if spec.kind is ParamKind.CHOICE:
            assert spec.value in spec.choices
        elif spec.kind is ParamKind.FLOAT_TUPLE:
            assert all(spec.low <= v <= spec.high for v in spec.value)
        elif spec.kind is not ParamKind.BOOL:
            assert spec.low <= spec.value <= spec.high, spec.name
    assert next(s for s in specs if s.name == "OPTIMIZER").choices == ("adamw", "muon")


def test_baseline_batch_is_consistent():
    values = current_values(TRAIN_PATH.read_text())
    assert values["TOTAL_BATCH_SIZE"] % (values["DEVICE_BATCH_SIZE"] * values["SEQ_LEN"]) == 0
    assert values["WARMUP_RATIO"] + values["WARMDOWN_RATIO"] <= 1


def test_apply_on_real_train_py_changes_only_the_named_lines(workload):
    source = workload.editable_source()
    edited = workload.apply(source, {"OPTIMIZER": "muon", "MATRIX_LR": 0.02, "ADAM_BETAS": [0.8, 0.95]})
    values = current_values(edited)
    assert (values["OPTIMIZER"], values["MATRIX_LR"], values["ADAM_BETAS"]) == ("muon", 0.02, (0.8, 0.95))
    changed = [(a, b) for a, b in zip(source.splitlines(), edited.splitlines()) if a != b]
    assert len(changed) == 3 and len(source.splitlines()) == len(edited.splitlines())


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"DEPTH": 100}, "outside the allowed range"),
        ({"OPTIMIZER": "sgd"}, "not one of"),
        ({"MATRIX_LR": "__import__('os')"}, "expected a float"),
        ({"NOT_A_PARAM": 1}, "unknown parameter"),
    ],
)
def test_apply_refuses_invalid_changes(workload, changes, message):
    with pytest.raises(ParamError, match=message):
        workload.apply(workload.editable_source(), changes)


def test_h100_preset_rewrites_values_and_ranges():
    source = preset_source(TRAIN_PATH.read_text(), "h100")
    specs = {spec.name: spec for spec in parse_params(source)}
    for name, setting in H100.items():
        expected = tuple(setting.value) if isinstance(setting.value, tuple) else setting.value
        assert specs[name].value == expected, name
        if setting.low is not None:
            assert (specs[name].low, specs[name].high) == (setting.low, setting.high)
    assert specs["TOTAL_BATCH_SIZE"].value % (specs["DEVICE_BATCH_SIZE"].value * specs["SEQ_LEN"].value) == 0
    # Lines outside the block are untouched.
    assert source.split("# --- end hyperparameters")[1] == TRAIN_PATH.read_text().split("# --- end hyperparameters")[1]


def test_preset_value_outside_its_range_is_refused():
    from workloads.hyperblock import ScriptError
    from workloads.tinygpt.presets import Setting

    with pytest.raises(ScriptError, match="outside the allowed range"):
        apply_preset(TRAIN_PATH.read_text(), {"DEPTH": Setting(50, 1, 24)})
    with pytest.raises(ScriptError, match="unknown hyperparameters"):
        apply_preset(TRAIN_PATH.read_text(), {"NOPE": Setting(1)})
    with pytest.raises(ValueError, match="unknown tinygpt preset"):
        preset_source(TRAIN_PATH.read_text(), "tpu")


def test_param_line_round_trips_every_real_line():
    specs = parse_params(TRAIN_PATH.read_text())
    rendered = "\n".join(["# --- hyperparameters ---", *map(param_line, specs), "# --- end hyperparameters ---"])
    assert parse_params(rendered) == specs


def test_environment_has_run_variables_and_no_secrets():
    parent = {
        "PATH": "/usr/bin",
        "OPENAI_API_KEY": "sk-1",
        "AWS_SESSION_TOKEN": "t",
        "BILEVEL_S3_SECRET_KEY": "s",
        "DB_PASSWORD": "p",
        "GOOGLE_APPLICATION_CREDENTIALS": "/c.json",
        "BILEVEL_EVAL_BYTES": "64",  # a leftover test knob must not leak into a real run
        "PYTHONPATH": "/elsewhere",
    }
    env = run_environment(parent, budget=Budget(mode="steps", value=350), seed=7, data_dir=Path("/d"), device="cpu", eval_bytes=None)
    assert env["PATH"] == "/usr/bin"
    assert (env["BILEVEL_BUDGET_MODE"], env["BILEVEL_BUDGET"], env["BILEVEL_SEED"]) == ("steps", "350", "7")
    assert (env["BILEVEL_DATA_DIR"], env["BILEVEL_DEVICE"], env["OMP_NUM_THREADS"]) == ("/d", "cpu", "1")
    for name in ("OPENAI_API_KEY", "AWS_SESSION_TOKEN", "BILEVEL_S3_SECRET_KEY", "DB_PASSWORD", "GOOGLE_APPLICATION_CREDENTIALS", "BILEVEL_EVAL_BYTES", "PYTHONPATH"):
        assert name not in env
    timed = run_environment({}, budget=Budget(mode="time", value=300), seed=0, data_dir=Path("/d"), device="cuda", eval_bytes=1024)
    assert (timed["BILEVEL_BUDGET"], timed["BILEVEL_EVAL_BYTES"]) == ("300.0", "1024")


def test_scrub_is_case_insensitive():
    assert scrubbed_environment({"github_token": "x", "HOME": "/root"}) == {"HOME": "/root"}


def _process(tail: str, returncode: int | None = 0, timed_out: bool = False) -> ProcessResult:
    return ProcessResult(returncode=returncode, timed_out=timed_out, wall_seconds=1.5, tail=tail, log_path=Path("x"))


SUMMARY = "---\nval_bpb: 2.5\neval_bytes: 32768\nsteps: 3\ntokens: 6144\ntrain_seconds: 0.5\nnum_params: 10\npeak_memory_mb: 100.0\n"


def test_outcome_ok_carries_the_summary():
    outcome = outcome_from_process(_process("step 0\n" + SUMMARY), seed=3, timeout_s=60)
    assert outcome.ok and outcome.value == 2.5 and outcome.steps == 3 and outcome.tokens == 6144
    assert outcome.seed == 3 and outcome.wall_seconds == 1.5 and "val_bpb" in outcome.log_tail


def test_outcome_crash_carries_the_traceback_tail():
    log = "\n".join(f"noise {i}" for i in range(100)) + '\nTraceback (most recent call last):\n  File "train.py"\nAssertionError: HEAD_DIM must be even\n'
    outcome = outcome_from_process(_process(log, returncode=1), seed=0, timeout_s=60)
    assert outcome.status == "crash" and outcome.value is None
    assert outcome.error_tail.startswith("exit code 1\nTraceback")
    assert outcome.error_tail.endswith("HEAD_DIM must be even")


def test_outcome_exit_zero_without_summary_is_a_crash():
    outcome = outcome_from_process(_process("done\n"), seed=0, timeout_s=60)
    assert outcome.status == "crash" and "no summary block" in outcome.error_tail


def test_outcome_timeout():
    outcome = outcome_from_process(_process("step 0\n", returncode=None, timed_out=True), seed=0, timeout_s=5)
    assert outcome.status == "timeout" and "5 s timeout" in outcome.error_tail


def test_error_tail_bounds_long_output():
    text = "\n".join(str(i) for i in range(1000))
    assert error_tail(text).splitlines() == [str(i) for i in range(960, 1000)]


def test_describe_and_settings(tmp_path):
    from infra.settings import Settings

    cpu = TinyGPT.from_settings(Settings(cache_dir=tmp_path, device="auto"))
    gpu = TinyGPT.from_settings(Settings(cache_dir=tmp_path, device="cuda"))
    assert current_values(cpu.editable_source())["DEPTH"] == 4
    assert current_values(gpu.editable_source())["DEPTH"] == 8
    assert "val_bpb" in cpu.describe("flops") and "bits per byte" in cpu.describe("flops")
    assert "cannot buy more compute" in cpu.describe("flops") and "cannot buy" not in cpu.describe("steps")
    assert "gets it" in cpu.describe("steps") and "wall-clock" in cpu.describe("time")
    assert cpu.data_dir == tmp_path / "data" / "tinygpt-django-5.1.4"


def test_launch_log_entry_is_json(workload, tmp_path):
    workload._log_launch(tmp_path / "run", "source", Budget(mode="steps", value=3), 1, 60)
    entry = json.loads((tmp_path / "launches.jsonl").read_text())
    assert entry["seed"] == 1 and entry["budget"] == {"mode": "steps", "value": 3.0} and len(entry["source_sha256"]) == 64
