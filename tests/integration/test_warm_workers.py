"""Warm tinygpt runs for real: bit for bit the same val_bpb (and steps, tokens, curve) as a cold run in the
deterministic budget modes, the same crash and timeout handling, early stopping of a hopeless run, and warm runs
inside a Dask worker (which owns its own warm worker)."""

from __future__ import annotations

import json
import os

import psutil
import pytest

from infra.settings import load_settings
from search.early_stop import EarlyStop
from search.run_spec import Budget
from workloads import warm_pool
from workloads.tinygpt.workload import TinyGPT

pytestmark = pytest.mark.integration

TINY_EVAL_BYTES = 1024
STEP_FLOPS = 6 * 229_384 * 2048  # the baseline's compute per step


def tinygpt(warm: bool, launch_log=None) -> TinyGPT:
    return TinyGPT(load_settings().cache_dir, device="cpu", eval_bytes=TINY_EVAL_BYTES, warm=warm, launch_log=launch_log)


@pytest.fixture(scope="module")
def workloads():
    cold = tinygpt(False)
    cold.prepare()
    yield cold, tinygpt(True)
    warm_pool.close_all()


def train_bpb(run_dir) -> str:
    return next(line for line in (run_dir / "train.log").read_text().splitlines() if line.startswith("train_bpb:"))


@pytest.mark.parametrize("budget", [Budget(mode="steps", value=8), Budget(mode="flops", value=5.5 * STEP_FLOPS)],
                         ids=["steps", "flops"])
def test_a_warm_run_measures_bit_for_bit_what_a_cold_run_measures(workloads, tmp_path, budget) -> None:
    cold, warm = workloads
    source = warm.source_for({"OPTIMIZER": "muon", "DEPTH": 2})  # a candidate, not only the baseline
    cold_outcome = cold.run(source, budget, seed=3, run_dir=tmp_path / "cold", timeout_s=300)
    warm_outcomes = [warm.run(source, budget, seed=3, run_dir=tmp_path / f"warm{i}", timeout_s=300) for i in range(2)]
    assert cold_outcome.ok, cold_outcome.error_tail
    for i, outcome in enumerate(warm_outcomes):
        assert outcome.ok, outcome.error_tail
        assert outcome.value == cold_outcome.value  # exactly: val_bpb to the last bit
        assert (outcome.steps, outcome.tokens, outcome.train_flops, outcome.num_params) == (
            cold_outcome.steps, cold_outcome.tokens, cold_outcome.train_flops, cold_outcome.num_params)
        assert outcome.curve == cold_outcome.curve and len(outcome.curve) == 3
        assert train_bpb(tmp_path / f"warm{i}") == train_bpb(tmp_path / "cold")
    assert cold_outcome.steps == 8 if budget.mode == "steps" else cold_outcome.steps > 8  # DEPTH 2: more steps
    other_seed = warm.run(source, budget, seed=4, run_dir=tmp_path / "other", timeout_s=300)
    assert other_seed.ok and other_seed.value != cold_outcome.value  # the test can tell runs apart


def test_a_crash_and_a_timeout_are_reported_as_in_a_cold_run(workloads, tmp_path) -> None:
    cold, warm = workloads
    broken = warm.editable_source().replace("    run = harness.setup()", "    run = harness.setup()\n    1 / 0")
    crashes = [w.run(broken, Budget(mode="steps", value=3), 0, tmp_path / name, 300)
               for w, name in ((cold, "cold"), (warm, "warm"))]
    assert [c.status for c in crashes] == ["crash", "crash"]
    cold_tail, warm_tail = ((c.error_tail or "").replace(str(tmp_path / name), "RUN") for c, name in
                            zip(crashes, ("cold", "warm"), strict=True))
    assert cold_tail == warm_tail and "ZeroDivisionError" in warm_tail and 'File "RUN/train.py"' in warm_tail
    slow = warm.run(warm.editable_source(), Budget(mode="steps", value=100_000), 0, tmp_path / "slow", timeout_s=5)
    assert slow.status == "timeout"
    after = warm.run(warm.editable_source(), Budget(mode="steps", value=3), 0, tmp_path / "after", 300)
    assert after.ok  # the warm worker outlived the killed run


def test_early_stopping_stops_a_hopeless_run_with_its_partial_curve(workloads, tmp_path) -> None:
    _, warm = workloads
    budget = Budget(mode="steps", value=40)
    incumbent = warm.run(warm.editable_source(), budget, 0, tmp_path / "incumbent", 300)
    assert incumbent.ok and [f for f, _ in incumbent.curve] == [0.25, 0.5, 0.75]
    hopeless = warm.source_for({"MATRIX_LR": 1e-4, "EMBEDDING_LR": 1e-4, "UNEMBEDDING_LR": 1e-4})
    rule = EarlyStop(margin=0.1, incumbent=tuple(incumbent.curve))
    stopped = warm.run(hopeless, budget, 0, tmp_path / "hopeless", 300, early_stop=rule)
    assert stopped.status == "stopped" and stopped.value is None, stopped.error_tail
    assert len(stopped.curve) == 1 and stopped.curve[0][0] == 0.25 and stopped.curve[0][1] > incumbent.curve[0][1] + 0.1
    assert "val_bpb:" not in (tmp_path / "hopeless" / "train.log").read_text()  # killed before its evaluation
    same = warm.run(warm.editable_source(), budget, 0, tmp_path / "same", 300, early_stop=rule)
    assert same.ok and same.value == incumbent.value  # a run level with the incumbent is not stopped


def test_warm_runs_in_a_dask_worker_use_that_workers_own_warm_worker(workloads, tmp_path) -> None:
    from distributed import Client

    from infra.runners import local_dask_cluster

    cold, _ = workloads
    budget = Budget(mode="steps", value=5)
    expected = cold.run(cold.editable_source(), budget, 1, tmp_path / "cold", 300)
    log = tmp_path / "launches.jsonl"
    remote = tinygpt(True, launch_log=log)
    with local_dask_cluster(1) as address, Client(address) as client:
        (worker_pid,) = client.run(os.getpid).values()
        outcomes = [client.submit(remote.run, remote.editable_source(), budget, 1, tmp_path / f"dask{i}", 300,
                                  pure=False).result() for i in range(2)]
        zygotes = [p for p in psutil.Process(worker_pid).children() if "zygote.py" in " ".join(p.cmdline())]
    assert [o.value for o in outcomes] == [expected.value, expected.value]
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["pid"], e["warm"]) for e in entries] == [(worker_pid, True)] * 2
    assert len(zygotes) == 1  # one warm worker in that Dask worker process, used by both runs
