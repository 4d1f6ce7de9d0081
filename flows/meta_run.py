"""The top-level flow: one meta-run = the baseline, then G generations (or fewer at a run limit), then the summary.
A resume continues from the trace on disk (search/resume.py says what is decided)."""

from __future__ import annotations

import time

from prefect import flow

from flows.generation import generation
from flows.steps import train
from infra.mlflow_schema import MetricNames, experiment_name
from infra.resources import Resources
from infra.run_sync import publish_run
from infra.runs import RunFolder, TraceWriter
from mechanisms.active import ActiveSet, resolve_initial_set
from search.config import SearchConfig
from search.iteration import baseline_experiment
from search.resume import check_resumable, generation_inputs
from search.run_spec import MetaRunSpec, MetaRunSummary, RunLimits, StopReason, llm_usage, summarize
from search.trace import Trace
from tasks.record import close_run, open_meta_run, record_experiment

SECRET_SETTINGS = {"s3_access_key", "s3_secret_key"}


def _baseline(spec: MetaRunSpec, res: Resources, run_id: str) -> Trace:
    """Train the unedited script once: the reference every keep/discard is measured against; and, when the noise
    floor is measured, again on `noise_repeats` other seeds."""
    source = res.workload.editable_source()
    outcome = train(res, spec, generation=0, track=0, iteration=0, purpose="baseline", source=source, seed=spec.seed)
    noise = [train(res, spec, generation=0, track=0, iteration=0, purpose="noise", source=source,
                   seed=spec.seed + 1 + repeat) for repeat in range(spec.noise_repeats)]
    trace = Trace(objective=res.workload.objective, noise_runs=noise,
                  experiments=[baseline_experiment(outcome, res.workload.space.baseline_config())])
    trace.state()  # raises BaselineFailed with the traceback tail if the baseline crashed
    res.emit("baseline", experiment=trace.experiments[0], objective=trace.objective)
    return trace


def _record_baseline(spec: MetaRunSpec, res: Resources, run_id: str, trace: Trace) -> None:
    """The baseline's MLflow run (found by key, so a resume adds nothing twice)."""
    source = res.workload.editable_source()
    record_experiment(res.tracker, spec, trace.objective, meta_run_run_id=run_id, generation_run_id=run_id,
                      experiment=trace.experiments[0], source=source, best_source=source,
                      best_value=trace.state().baseline.value, script_name=res.workload.script_name)


def _after_each_write(res: Resources):
    """What follows every write of the trace (each decision): the user's hook, then the copy to the S3 store."""

    def hook(folder: RunFolder, trace: Trace) -> None:
        if res.on_trace_written is not None:
            res.on_trace_written(folder, trace)
        publish_run(res, folder)

    return hook


def _with_noise_margin(spec: MetaRunSpec, trace: Trace) -> SearchConfig:
    """The search rules, keeping only improvements beyond `noise_multiple` noise floors when that is asked for."""
    floor = trace.noise_floor
    if spec.noise_multiple <= 0 or floor is None:
        return spec.search
    margin = max(spec.search.min_improvement, spec.noise_multiple * floor)
    return spec.search.model_copy(update={"min_improvement": margin})


def _initial_active(spec: MetaRunSpec, res: Resources, trace: Trace) -> ActiveSet:
    """The mechanisms the run starts from: as generation 0 recorded them (a resume needs no store), else resolved."""
    record = trace.generation_start(0)
    if record is not None and record.active is not None:
        return record.active
    return resolve_initial_set(spec.mechanisms, res.store)


@flow(name="meta-run", flow_run_name="{spec.meta_run_id}", validate_parameters=False)
def meta_run(spec: MetaRunSpec, res: Resources) -> MetaRunSummary:
    """Run (or resume: same meta_run_id) a whole meta-run. The run folder's trace.json, written after every decision,
    is the source of truth: a resume takes every decided experiment, Level 1.5 and Level 2 decision from it and runs
    only what is undecided (Prefect's cached task results then only spare the work that was cut off). Deployments
    enter through flows/nightly.py, which builds the resources."""
    if spec.workload.reference != res.workload.ref.reference:
        raise ValueError(f"meta-run {spec.meta_run_id} names workload {spec.workload.reference!r}, but the resources "
                         f"hold {res.workload.ref.reference!r}")
    folder = RunFolder(res.settings.runs_dir, spec.meta_run_id)
    prior = folder.read_trace_if_any()
    if prior is not None:
        check_resumable(prior, spec, res.workload.objective)
    folder.write_spec(spec, res.settings.model_dump(mode="json", exclude=SECRET_SETTINGS))
    publish_run(res, folder)
    res.workload.prepare()
    limits = RunLimits.for_spec(spec, started=time.time(), elapsed_s=prior.elapsed_s if prior else 0.0)
    run_id = open_meta_run(res.tracker, spec, {"model": res.llm.model, "objective": res.workload.objective.describe()})
    try:
        if prior is not None and prior.experiments:
            trace = prior
            writer = TraceWriter(folder, trace, on_write=_after_each_write(res))
            _record_baseline(spec, res, run_id, trace)  # a no-op unless the run died between the trace and MLflow
            res.emit("resumed", trace=trace, experiments=len(trace.decided))
        else:
            trace = _baseline(spec, res, run_id)
            writer = TraceWriter(folder, trace, on_write=_after_each_write(res))
            writer.commit(trace)
            _record_baseline(spec, res, run_id, trace)
        config = _with_noise_margin(spec, trace)
        active = _initial_active(spec, res, trace)
        # The mechanisms a night starts from are its lineage parents (cross-night memory).
        res.tracker.log(run_id, tags={"seed_mechanisms": ",".join(f"{m.name}@{m.version}" for m in active.mechanisms) or "none"})
        stop_reason: StopReason = "finished"
        stop_detail = ""
        for index in range(spec.generations):
            end = trace.generation_end(index)
            if end is not None and end.done:  # decided in an earlier session
                config, active = end.config, end.active
            else:
                config, active = generation_inputs(trace, index, config, active)
                outcome = generation(spec, res, generation=index, trace=trace, config=config, active=active,
                                     meta_run_run_id=run_id, limits=limits, writer=writer)
                trace, config, active = outcome.trace, outcome.config, outcome.active
                folder.write_mechanisms(list(trace.mechanism_versions()))
                if outcome.stop_reason != "finished":
                    stop_reason, stop_detail = outcome.stop_reason, outcome.stop_detail
                    break
            reached = limits.reached(llm_usage(trace).cost_usd, time.time())
            if reached is not None and index < spec.generations - 1:
                stop_reason, stop_detail = reached
                break
        trace_path = writer.commit(trace)
        trace = writer.trace
        summary = summarize(spec, trace, run_id=run_id, trace_path=str(trace_path),
                            mechanisms=[m.model_dump(exclude={"source"}) for m in active.mechanisms],
                            experiment_name=experiment_name(spec.name), stop_reason=stop_reason,
                            stop_detail=stop_detail)
        folder.write_summary(summary)
        publish_run(res, folder)
        res.workload.remember_sources(trace.code_edits())  # edits = code: the best may be an edited script
        res.tracker.log_text(run_id, res.workload.source_for(summary.best_config), f"best_{res.workload.script_name}")
        names = MetricNames(trace.objective)
        close_run(res.tracker, run_id, "FINISHED", metrics={names.delta: summary.delta, names.final_best: summary.best_value},)
        return summary
    except BaseException:
        res.tracker.finish(run_id, "FAILED")
        raise
