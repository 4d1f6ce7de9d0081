"""Level 1 end to end: 4 inner iterations with the scripted LLM against real subprocess runs of the toy script
workload, real Prefect flows and MLflow on SQLite; then a re-run of the same meta-run id resumes instead of
repeating. The toy workload trains in milliseconds, so this tests the flows, not a training."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.meta_run import meta_run
from infra.runs import RunFolder
from search.config import SearchConfig
from search.run_spec import Budget, MetaRunSpec, WorkloadRef
from tests.integration.scripted import (
    launches,
    llm_calls,
    proposal,
    runs_of,
    scripted_settings,
    wired_resources,
    write_script,
)

pytestmark = pytest.mark.integration

HOSTILE = proposal({"DEPTH": "__import__('os').system('touch /tmp/pwned')"})
CRASH_WIDTH = 48


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("level1")
    script = write_script(
        tmp / "answers.json",
        answers={"propose": [
            proposal({"LEARNING_RATE": 0.05, "MOMENTUM": 0.8}, "higher learning rate converges faster"),
            HOSTILE,  # iteration 1, first attempt: refused, the error goes back to the LLM
            proposal({"WIDTH": CRASH_WIDTH}, "wider"),  # iteration 2: the script crashes at this width
            proposal({"DEPTH": 12}, "deeper"),  # iteration 3: breaks WIDTH >= 4 * DEPTH; WIDTH is moved to repair it
        ]},
        by_key={"propose/g0/t0/i1/r0/c0/a1": proposal({"OPTIMIZER": "adam"}, "adam")},
    )
    settings = scripted_settings(tmp, script)
    spec = MetaRunSpec(meta_run_id="level1-test", workload=WorkloadRef(reference="toy"), generations=1, iterations=4, levels=["1"],
                       budget=Budget(mode="steps", value=100), seed=0, search=SearchConfig(confirm_seed=1),
                       noise_repeats=2, noise_multiple=1.0)
    res = wired_resources(settings)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TOY_CRASH_WIDTH", str(CRASH_WIDTH))  # not a secret: the run sees it
        summary = meta_run(spec, res)
    return spec, settings, res, summary


def trace_of(settings, spec):
    return RunFolder(settings.runs_dir, spec.meta_run_id).read_trace()


def test_trace_decisions_and_outcomes(finished) -> None:
    spec, settings, res, summary = finished
    trace = trace_of(settings, spec)
    baseline, first, second, third, fourth = trace.experiments
    assert trace.objective.name == "loss" and baseline.outcome.status == "ok" and baseline.kept
    assert first.changes == {"LEARNING_RATE": 0.05, "MOMENTUM": 0.8} and first.outcome.status == "ok"
    assert first.kept == (first.measured < baseline.measured)  # the default rule: strictly lower
    assert second.changes == {"OPTIMIZER": "adam"} and second.proposal_attempts == 2
    assert "DEPTH: expected an int" in second.proposal_errors[0]
    assert third.outcome.status == "crash" and not third.kept and "toy crash at WIDTH=48" in third.outcome.error_tail
    assert fourth.changes["DEPTH"] == 12 and fourth.changes["WIDTH"] >= 48 and fourth.proposal_attempts == 1
    assert summary.experiments == 4 and summary.crashes == 1 and summary.objective.name == "loss"
    assert summary.best_value == min(e.measured for e in trace.experiments if e.measured is not None)
    assert not Path("/tmp/pwned").exists()


def test_the_noise_floor_is_measured_and_sets_the_keep_margin(finished) -> None:
    spec, settings, res, summary = finished
    trace = trace_of(settings, spec)
    assert [run.seed for run in trace.noise_runs] == [1, 2] and all(run.ok for run in trace.noise_runs)
    assert summary.noise_floor == pytest.approx(trace.noise_floor) and 0 < summary.noise_floor < 0.05
    assert trace.generations[0].config.min_improvement == pytest.approx(summary.noise_floor)


def test_confirmation_runs_happen_exactly_for_would_be_keeps(finished) -> None:
    spec, settings, res, summary = finished
    trace = trace_of(settings, spec)
    current = trace.experiments[0].measured
    margin = trace.generations[0].config.min_improvement
    would_keeps = []
    for experiment in trace.decided:
        primary = experiment.outcome.value if experiment.outcome.ok else None
        would_keep = primary is not None and primary < current - margin
        would_keeps.append(would_keep)
        assert (experiment.confirm is not None) == would_keep
        if experiment.confirm is not None:
            assert experiment.confirm.seed == 1
            assert experiment.measured == pytest.approx((primary + experiment.confirm.value) / 2)
        if experiment.kept:
            current = experiment.measured
    # Both branches ran: the four candidates include would-be keeps (confirmed) and others (not confirmed).
    assert len(would_keeps) == 4 and True in would_keeps and False in would_keeps, would_keeps


def test_every_training_ran_once_and_llm_was_asked_as_expected(finished) -> None:
    spec, settings, res, summary = finished
    confirms = sum(e.confirm is not None for e in trace_of(settings, spec).experiments)
    # baseline, 2 noise runs of it, 4 candidates (the crash counts as a launch), the confirmation runs
    assert len(launches(settings)) == 1 + 2 + 4 + confirms
    calls = llm_calls(settings)
    assert [c["call_key"] for c in calls] == [
        "propose/g0/t0/i0/r0/c0/a0", "propose/g0/t0/i1/r0/c0/a0", "propose/g0/t0/i1/r0/c0/a1",
        "propose/g0/t0/i2/r0/c0/a0", "propose/g0/t0/i3/r0/c0/a0",
    ]
    assert summary.llm.calls == 5 and summary.llm.total_tokens > 0


def test_mlflow_holds_runs_params_metrics_and_artifacts_under_the_objective(finished) -> None:
    spec, settings, res, summary = finished
    tracker = res.tracker
    runs = runs_of(tracker, spec.meta_run_id)
    kinds = sorted(r.data.tags["bilevel.kind"] for r in runs)
    assert kinds == ["baseline", "generation", "iteration", "iteration", "iteration", "iteration", "meta_run"]
    parent = next(r for r in runs if r.data.tags["bilevel.kind"] == "meta_run")
    assert parent.info.status == "FINISHED" and parent.data.params["levels"] == "1"
    assert parent.data.params["workload"] == "toy" and "minimise loss" in parent.data.params["objective"]
    history = tracker.client.get_metric_history(parent.info.run_id, "best_loss")
    assert sorted(m.step for m in history) == [0, 1, 2, 3, 4]
    assert history[-1].value == pytest.approx(summary.best_value)
    assert "final_best_loss" in parent.data.metrics and "delta_loss" in parent.data.metrics
    first = next(r for r in runs if r.data.tags.get("bilevel.index") == "1")
    assert first.data.params["change.LEARNING_RATE"] == "0.05"
    assert "loss" in first.data.metrics and "val_bpb" not in first.data.metrics and first.data.metrics["llm_tokens"] > 0
    assert first.data.tags["mlflow.parentRunId"] != parent.info.run_id  # nested under the generation run
    artifacts = {a.path for a in tracker.client.list_artifacts(first.info.run_id)}
    assert {"toy.py", "diff_vs_best.patch", "log_tail.txt", "experiment.json"} <= artifacts
    diff = Path(tracker.client.download_artifacts(first.info.run_id, "diff_vs_best.patch")).read_text()
    assert "-LEARNING_RATE = 0.01" in diff and "+LEARNING_RATE = 0.05" in diff
    crashed = next(r for r in runs if r.data.tags.get("bilevel.index") == "3")
    assert crashed.info.status == "FAILED" and crashed.data.tags["bilevel.status"] == "crash"


def test_every_llm_call_is_an_mlflow_trace_under_its_iteration(finished) -> None:
    spec, settings, res, summary = finished
    client = res.tracker.client
    second = next(r for r in runs_of(res.tracker, spec.meta_run_id) if r.data.tags.get("bilevel.index") == "2")
    traces = client.search_traces(locations=[second.info.experiment_id], run_id=second.info.run_id)
    assert len(traces) == 2  # the refused hostile answer and the re-ask, both under iteration 1's run
    spans = [trace.data.spans[0] for trace in traces]
    asked = " ".join(m["content"] for span in spans for m in span.inputs["messages"])
    assert "minimise loss (lower is better)" in asked and "refused" in asked
    assert {span.attributes["call_key"] for span in spans} == {"propose/g0/t0/i1/r0/c0/a0", "propose/g0/t0/i1/r0/c0/a1"}
    assert any("adam" in span.outputs["answer"] for span in spans) and all(span.attributes["prompt_tokens"] > 0 for span in spans)


def test_rerun_with_same_id_resumes_without_repeating_work(finished) -> None:
    spec, settings, res, summary = finished
    before_launches, before_calls = len(launches(settings)), len(llm_calls(settings))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TOY_CRASH_WIDTH", str(CRASH_WIDTH))
        again = meta_run(spec, res)
    assert len(launches(settings)) == before_launches  # every training came from the persisted results
    assert len(llm_calls(settings)) == before_calls  # every LLM answer too
    assert again.best_value == summary.best_value and again.experiments == summary.experiments
    assert len(runs_of(res.tracker, spec.meta_run_id)) == 7  # found by tag, not duplicated


def test_progress_lines_reach_the_prefect_flow_run_logs(finished) -> None:
    """The Prefect UI shows what the CLI shows: one log line per experiment in the flow runs' logs."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    spec, settings, res, summary = finished
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        # the first flow run of this id (the module's resume test runs it again)
        parent = min(client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[spec.meta_run_id]))),
                     key=lambda run: run.created)
        runs = {run.id: run for run in client.read_flow_runs()}
        parent_of = {run.id: client.read_task_run(run.parent_task_run_id).flow_run_id
                     for run in runs.values() if run.parent_task_run_id is not None}
        family = {parent.id}
        while grown := {run for run, up in parent_of.items() if up in family} - family:
            family |= grown  # the generation flows, then their inner loops
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=sorted(family))))
    lines = [log.message for log in logs]
    assert any(line.startswith("baseline  0  0  ok") for line in lines), lines
    assert sum(line.startswith("experiment  ") for line in lines) == summary.experiments, lines
    assert any("generation 0 done: best" in line for line in lines), lines
