"""tinygpt for real: corpus provisioning, tiny training runs in subprocesses, crashes, timeouts, the harness metric."""

import json
import math
import os
import sys
import time
from pathlib import Path

import pytest

from infra.settings import load_settings
from search.run_spec import Budget
from workloads.subprocess_run import run_script
from workloads.tinygpt import data
from workloads.tinygpt.summary import parse_summary
from workloads.tinygpt.workload import TinyGPT

pytestmark = pytest.mark.integration

TINY_EVAL_BYTES = 1024  # the harness's test knob: a smaller slice, printed in the summary
TINY = Budget(mode="steps", value=3)
BASELINE_PARAMS = 229_384  # all trainable: the byte embedding and lm_head are counted
BASELINE_STEP_FLOPS = 6 * BASELINE_PARAMS * 2048  # 6 x params x TOTAL_BATCH_SIZE


@pytest.fixture(scope="module")
def launch_log(tmp_path_factory):
    return tmp_path_factory.mktemp("launches") / "launches.jsonl"


@pytest.fixture(scope="module")
def workload(launch_log):
    # The real shared cache: the corpus is downloaded once per machine, then reused.
    workload = TinyGPT(load_settings().cache_dir, device="cpu", launch_log=launch_log, eval_bytes=TINY_EVAL_BYTES)
    workload.prepare()
    return workload


def test_corpus_matches_the_pinned_hashes(workload):
    assert data.is_complete(workload.data_dir)
    manifest = json.loads((workload.data_dir / "manifest.json").read_text())
    assert manifest["documents"] == 605


def test_same_seed_same_val_bpb_and_the_launch_log(workload, tmp_path, launch_log):
    source = workload.editable_source()
    before = len(launch_log.read_text().splitlines()) if launch_log.exists() else 0
    first = workload.run(source, TINY, seed=1, run_dir=tmp_path / "a", timeout_s=120)
    second = workload.run(source, TINY, seed=1, run_dir=tmp_path / "b", timeout_s=120)
    other = workload.run(source, TINY, seed=2, run_dir=tmp_path / "c", timeout_s=120)
    assert first.ok, first.error_tail
    assert first.value == second.value  # bit for bit: fixed steps on one CPU thread
    assert other.ok and other.value != first.value
    assert (first.steps, first.tokens) == (3, 3 * 2048)
    assert 0 < first.value < 8.5 and first.num_params > 0 and first.peak_memory_mb > 0
    assert f"eval_bytes:     {TINY_EVAL_BYTES}" in (tmp_path / "a" / "train.log").read_text()
    lines = [json.loads(line) for line in launch_log.read_text().splitlines()]
    assert len(lines) - before == 3
    assert [entry["seed"] for entry in lines[-3:]] == [1, 1, 2]


def test_a_candidate_that_rewrites_the_harness_during_its_run_is_discarded(workload, tmp_path):
    source = workload.editable_source() + "\nopen('harness.py', 'a').write('\\n# val_bpb is whatever I say\\n')\n"
    outcome = workload.run(source, TINY, seed=1, run_dir=tmp_path / "a", timeout_s=120)
    assert outcome.status == "crash" and outcome.value is None
    assert "harness.py was modified during the run" in outcome.error_tail


def test_flops_budget_is_deterministic_and_a_bigger_batch_gets_fewer_steps(workload, tmp_path):
    budget = Budget(mode="flops", value=3.5 * BASELINE_STEP_FLOPS)  # the baseline trains ceil(3.5) = 4 steps
    source = workload.editable_source()
    first = workload.run(source, budget, seed=1, run_dir=tmp_path / "a", timeout_s=120)
    second = workload.run(source, budget, seed=1, run_dir=tmp_path / "b", timeout_s=120)
    assert first.ok, first.error_tail
    assert first.value == second.value  # bit for bit
    assert (first.steps, first.tokens, first.num_params) == (4, 4 * 2048, BASELINE_PARAMS)
    summary = parse_summary((tmp_path / "a" / "train.log").read_text())
    assert (summary.budget_mode, summary.train_flops) == ("flops", 4 * BASELINE_STEP_FLOPS)

    doubled = workload.run(workload.apply(source, {"TOTAL_BATCH_SIZE": 4096}), budget, seed=1, run_dir=tmp_path / "c", timeout_s=120)
    assert doubled.ok, doubled.error_tail
    assert (doubled.steps, doubled.tokens) == (2, first.tokens)  # half the steps, the same compute
    assert parse_summary((tmp_path / "c" / "train.log").read_text()).train_flops == summary.train_flops


def test_flops_budget_needs_the_model_and_honest_tokens(workload, tmp_path):
    budget = Budget(mode="flops", value=BASELINE_STEP_FLOPS)
    call = "run.training_steps(model, tokens_per_step=TOTAL_BATCH_SIZE)"
    source = workload.editable_source()
    assert call in source
    no_model = workload.run(source.replace(call, "run.training_steps()"), budget, seed=0, run_dir=tmp_path / "a", timeout_s=120)
    assert no_model.status == "crash" and "a flops budget needs the model" in no_model.error_tail
    understated = source.replace(call, "run.training_steps(model, tokens_per_step=TOTAL_BATCH_SIZE // 2)")
    cheat = workload.run(understated, budget, seed=0, run_dir=tmp_path / "b", timeout_s=120)
    assert cheat.status == "crash" and "drew 2048 training tokens, but tokens_per_step is 1024" in cheat.error_tail


def test_declared_constraints_refuse_the_edits_that_used_to_crash(workload):
    from search.params import ParamError

    with pytest.raises(ParamError, match="HEAD_DIM % 2 == 0"):
        workload.apply(workload.editable_source(), {"HEAD_DIM": 33})
    with pytest.raises(ParamError, match=r"TOTAL_BATCH_SIZE % \(DEVICE_BATCH_SIZE \* SEQ_LEN\) == 0"):
        workload.apply(workload.editable_source(), {"TOTAL_BATCH_SIZE": 1000})


def test_crashing_edit_reports_the_traceback(workload, tmp_path):
    # Past the declared constraints (a raw literal edit), the script's own check still crashes with a traceback.
    from workloads.hyperblock import apply_changes

    source = apply_changes(workload.editable_source(), {"HEAD_DIM": 33})
    outcome = workload.run(source, TINY, seed=0, run_dir=tmp_path, timeout_s=120)
    assert outcome.status == "crash" and outcome.value is None
    assert "Traceback (most recent call last)" in outcome.error_tail
    assert "HEAD_DIM must be even" in outcome.error_tail


def test_timeout_kills_the_run(workload, tmp_path):
    outcome = workload.run(workload.editable_source(), Budget(mode="steps", value=10_000), seed=0, run_dir=tmp_path, timeout_s=1.0)
    # "timeout" is the supervisor's kill at the deadline (a run that ends by itself is ok or a crash), and it
    # names the 1 s timeout; 10,000 steps take minutes, and the run was killed before its summary.
    assert outcome.status == "timeout" and outcome.value is None
    assert "killed after the 1 s timeout" in outcome.error_tail
    assert "val_bpb:" not in outcome.log_tail and outcome.steps is None


def test_time_budget_counts_training_seconds(workload, tmp_path):
    outcome = workload.run(workload.editable_source(), Budget(mode="time", value=1.0), seed=0, run_dir=tmp_path, timeout_s=120)
    assert outcome.ok, outcome.error_tail
    # It stopped itself (ok, not the 120 s timeout) once training time reached the budget; that it stops at the first
    # step past it is tested with a controlled clock (tests/unit/test_tinygpt_budget.py).
    assert outcome.budget_mode == "time" and outcome.train_seconds >= 1.0
    assert outcome.wall_seconds > outcome.train_seconds  # startup and evaluation are not training time


def test_timeout_kills_grandchildren(tmp_path):
    marker = tmp_path / "grandchild.pid"
    script = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(marker)!r}, 'w').write(str(child.pid))\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n"
    )
    result = run_script([sys.executable, "-c", script], cwd=tmp_path, env=dict(os.environ), timeout_s=2.0, log_path=tmp_path / "log")
    assert result.timed_out and result.returncode is None and "started" in result.tail
    time.sleep(0.2)
    assert not _running(int(marker.read_text()))


def _running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (an orphan's zombie waits for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_log_is_bounded(tmp_path, monkeypatch):
    from workloads import subprocess_run

    monkeypatch.setattr(subprocess_run, "MAX_LOG_BYTES", 10_000)
    script = "import sys\nfor i in range(5000): print('x' * 99)\nprint('the end')\n"
    result = run_script([sys.executable, "-c", script], cwd=tmp_path, env=dict(os.environ), timeout_s=30, log_path=tmp_path / "log")
    assert result.returncode == 0
    assert (tmp_path / "log").stat().st_size == 10_000
    assert result.dropped_bytes == 5000 * 100 + len("the end\n") - 10_000
    assert result.tail_lines(1) == "the end"  # the real end of the output, not the end of the capped log


# --- the harness's metric (imports torch) ---------------------------------------------------------------



@pytest.mark.parametrize("context", [1, 100, 128, 4096, 10_000])
def test_eval_windows_predict_exactly_the_slice(harness, context):
    import torch

    val = torch.arange(50_000, dtype=torch.int64).remainder(256).to(torch.uint8)
    batches = harness.eval_windows(val, harness.EVAL_BYTES, context)
    assert sum(targets.numel() for _, targets in batches) == harness.EVAL_BYTES
    for inputs, targets in batches:
        assert inputs.shape == targets.shape and inputs.size(1) <= min(context, harness.EVAL_BYTES // harness.EVAL_CHUNKS)
        assert torch.equal((inputs + 1) % 256, targets)  # targets are the next byte


def test_uniform_model_scores_eight_bits(harness):
    import torch

    class Uniform(torch.nn.Module):
        def forward(self, idx):
            return torch.zeros(*idx.shape, harness.VOCAB_SIZE)

    val = torch.randint(0, 256, (40_000,), dtype=torch.uint8)
    assert math.isclose(harness.evaluate_bpb(Uniform(), val, 64, torch.device("cpu")), 8.0, rel_tol=1e-6)  # float32 sums


def test_non_causal_model_is_refused(harness):
    import torch

    class PeeksAhead(torch.nn.Module):
        def forward(self, idx):
            logits = torch.zeros(*idx.shape, harness.VOCAB_SIZE)
            return logits + idx.float().sum(dim=1, keepdim=True)[..., None] / 10  # every position sees the last byte

    val = torch.randint(0, 256, (40_000,), dtype=torch.uint8)
    with pytest.raises(harness.HarnessError, match="not causal"):
        harness.evaluate_bpb(PeeksAhead(), val, 64, torch.device("cpu"))


def test_wrong_logits_shape_is_refused(harness):
    import torch

    class WrongVocab(torch.nn.Module):
        def forward(self, idx):
            return torch.zeros(*idx.shape, 300)

    with pytest.raises(harness.HarnessError, match="logits of shape"):
        harness.evaluate_bpb(WrongVocab(), torch.zeros(40_000, dtype=torch.uint8), 64, torch.device("cpu"))


def test_run_config_errors_are_actionable(harness):
    with pytest.raises(harness.HarnessError, match="BILEVEL_DATA_DIR"):
        harness.RunConfig.from_env({})
    with pytest.raises(harness.HarnessError, match="whole number"):
        harness.RunConfig.from_env({"BILEVEL_DATA_DIR": "/d", "BILEVEL_BUDGET_MODE": "steps", "BILEVEL_BUDGET": "2.5"})
    with pytest.raises(harness.HarnessError, match="multiple of 8"):
        harness.RunConfig.from_env({"BILEVEL_DATA_DIR": "/d", "BILEVEL_EVAL_BYTES": "100"})
    assert harness.RunConfig.from_env({"BILEVEL_DATA_DIR": "/d"}).eval_bytes == 32 * 1024
