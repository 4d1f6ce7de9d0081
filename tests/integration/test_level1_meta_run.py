"""Level 1 end to end: 3 inner iterations with the scripted LLM against real tinygpt training in steps mode,
real Prefect flows and MLflow on SQLite; then a re-run of the same meta-run id resumes instead of repeating."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.meta_run import meta_run
from search.config import SearchConfig
from search.run_spec import Budget, MetaRunSpec
from tests.integration.scripted import launches, llm_calls, proposal, scripted_settings, wired_resources, write_script

pytestmark = pytest.mark.integration

HOSTILE = proposal({"DEPTH": "__import__('os').system('touch /tmp/pwned')"})


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("level1")
    script = write_script(
        tmp / "answers.json",
        answers={"propose": [
            proposal({"MATRIX_LR": 0.01, "EMBEDDING_LR": 0.01}, "higher learning rates converge faster"),
            HOSTILE,  # iteration 1, first attempt: refused, the error goes back to the LLM
            proposal({"DEVICE_BATCH_SIZE": 3}, "smaller micro-batches"),  # iteration 2: crashes (divisibility)
        ]},
        by_key={"propose/g0/t0/i1/r0/c0/a1": proposal({"WARMUP_RATIO": 0.0}, "no warmup in a short run")},
    )
    settings = scripted_settings(tmp, script)
    spec = MetaRunSpec(meta_run_id="level1-test", generations=1, iterations=3, levels=["1"],
                       budget=Budget(mode="steps", value=8), seed=0, search=SearchConfig(confirm_seed=1))
    res = wired_resources(settings)
    summary = meta_run(spec, res)
    return spec, settings, res, summary


def test_trace_decisions_and_outcomes(finished) -> None:
    spec, settings, res, summary = finished
    from infra.runs import read_trace

    trace = read_trace(settings.runs_dir, spec.meta_run_id)
    baseline, first, second, third = trace.experiments
    assert baseline.outcome.status == "ok" and baseline.kept
    assert first.changes == {"MATRIX_LR": 0.01, "EMBEDDING_LR": 0.01} and first.outcome.status == "ok"
    assert first.kept == (first.measured < baseline.measured)  # the default rule: strictly lower
    assert second.changes == {"WARMUP_RATIO": 0.0} and second.proposal_attempts == 2
    assert "DEPTH: expected an int" in second.proposal_errors[0]
    assert third.outcome.status == "crash" and not third.kept
    assert "must be a multiple of DEVICE_BATCH_SIZE" in third.outcome.error_tail
    assert summary.experiments == 3 and summary.crashes == 1
    assert summary.best_val_bpb == min(e.measured for e in trace.experiments if e.measured is not None)
    assert not Path("/tmp/pwned").exists()


def test_confirmation_runs_happen_exactly_for_would_be_keeps(finished) -> None:
    spec, settings, res, summary = finished
    from infra.runs import read_trace

    trace = read_trace(settings.runs_dir, spec.meta_run_id)
    current = trace.experiments[0].measured
    for experiment in trace.experiments[1:]:
        primary = experiment.outcome.val_bpb if experiment.outcome.ok else None
        would_keep = primary is not None and primary < current
        assert (experiment.confirm is not None) == would_keep
        if experiment.confirm is not None:
            assert experiment.confirm.seed == 1
            assert experiment.measured == pytest.approx((primary + experiment.confirm.val_bpb) / 2)
        if experiment.kept:
            current = experiment.measured


def test_every_training_ran_once_and_llm_was_asked_as_expected(finished) -> None:
    spec, settings, res, summary = finished
    from infra.runs import read_trace

    confirms = sum(e.confirm is not None for e in read_trace(settings.runs_dir, spec.meta_run_id).experiments)
    # baseline + 3 candidates (the crash counts as a launch) + the confirmation runs
    assert len(launches(settings)) == 4 + confirms
    calls = llm_calls(settings)
    assert [c["call_key"] for c in calls] == [
        "propose/g0/t0/i0/r0/c0/a0", "propose/g0/t0/i1/r0/c0/a0", "propose/g0/t0/i1/r0/c0/a1", "propose/g0/t0/i2/r0/c0/a0",
    ]
    assert summary.llm.calls == 4 and summary.llm.total_tokens > 0


def test_mlflow_holds_runs_params_metrics_and_artifacts(finished) -> None:
    spec, settings, res, summary = finished
    tracker = res.tracker
    runs = tracker.runs_of("bilevel/default", spec.meta_run_id)
    kinds = sorted(r.data.tags["bilevel.kind"] for r in runs)
    assert kinds == ["baseline", "generation", "iteration", "iteration", "iteration", "meta_run"]
    parent = next(r for r in runs if r.data.tags["bilevel.kind"] == "meta_run")
    assert parent.info.status == "FINISHED" and parent.data.params["levels"] == "1"
    history = tracker.client.get_metric_history(parent.info.run_id, "best_val_bpb")
    assert sorted(m.step for m in history) == [0, 1, 2, 3]
    assert history[-1].value == pytest.approx(summary.best_val_bpb)
    first = next(r for r in runs if r.data.tags.get("bilevel.index") == "1")
    assert first.data.params["change.MATRIX_LR"] == "0.01"
    assert "val_bpb" in first.data.metrics and first.data.metrics["llm_tokens"] > 0
    assert first.data.tags["mlflow.parentRunId"] != parent.info.run_id  # nested under the generation run
    artifacts = {a.path for a in tracker.client.list_artifacts(first.info.run_id)}
    assert {"train.py", "diff_vs_best.patch", "log_tail.txt", "experiment.json"} <= artifacts
    diff = Path(tracker.client.download_artifacts(first.info.run_id, "diff_vs_best.patch")).read_text()
    assert "-MATRIX_LR = 0.003" in diff and "+MATRIX_LR = 0.01" in diff
    crashed = next(r for r in runs if r.data.tags.get("bilevel.index") == "3")
    assert crashed.info.status == "FAILED" and crashed.data.tags["bilevel.status"] == "crash"


def test_rerun_with_same_id_resumes_without_repeating_work(finished) -> None:
    spec, settings, res, summary = finished
    before_launches, before_calls = len(launches(settings)), len(llm_calls(settings))
    again = meta_run(spec, res)
    assert len(launches(settings)) == before_launches  # every training came from the persisted results
    assert len(llm_calls(settings)) == before_calls  # every LLM answer too
    assert again.best_val_bpb == summary.best_val_bpb and again.experiments == summary.experiments
    runs = res.tracker.runs_of("bilevel/default", spec.meta_run_id)
    assert len(runs) == 6  # found by tag, not duplicated
