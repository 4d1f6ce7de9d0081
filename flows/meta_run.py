"""The top-level flow: one meta-run = the baseline, then G generations, then the summary."""

from __future__ import annotations

from prefect import flow

from infra.resources import Resources
from flows.generation import generation
from flows.steps import source_for, train
from infra.runs import meta_run_dir, write_json_atomic, write_mechanisms, write_trace
from mechanisms.active import resolve_initial_set
from search.iteration import baseline_experiment
from search.params import json_value, values_of
from search.run_spec import MetaRunSpec, MetaRunSummary, summarize
from search.state import state_from_trace
from search.trace import LLMUsage, Trace
from tasks.record import close_run, open_meta_run, record_experiment


def _baseline(spec: MetaRunSpec, res: Resources, run_id: str) -> Trace:
    """Train the unedited script once: the reference every keep/discard is measured against."""
    source = res.workload.editable_source()
    outcome = train(res, spec, generation=0, track=0, iteration=0, purpose="baseline", source=source, seed=spec.seed)
    config = {name: json_value(value) for name, value in values_of(res.workload.params()).items()}
    trace = Trace(experiments=[baseline_experiment(outcome, config)])
    state = state_from_trace(trace)  # raises BaselineFailed with the traceback tail if the baseline crashed
    record_experiment(res.tracker, spec, meta_run_run_id=run_id, generation_run_id=run_id,
                      experiment=trace.experiments[0], source=source, best_source=source,
                      best_val_bpb=state.best.val_bpb)
    res.emit("baseline", experiment=trace.experiments[0])
    return trace


@flow(name="meta-run", flow_run_name="{spec.meta_run_id}", validate_parameters=False)
def meta_run(spec: MetaRunSpec, res: Resources) -> MetaRunSummary:
    """Run (or resume: same meta_run_id) a whole meta-run. Expensive tasks are cached by deterministic keys,
    so re-running a failed meta-run re-executes only what had not finished. Deployments enter through
    flows/nightly.py, which builds the resources."""
    # What `bilevel resume` and `bilevel runs` read: the spec, and the settings (no secrets) it ran with.
    folder = meta_run_dir(res.settings.runs_dir, spec.meta_run_id)
    write_json_atomic(folder / "spec.json", spec.model_dump(mode="json"))
    write_json_atomic(folder / "settings.json",
                      res.settings.model_dump(mode="json", exclude={"s3_access_key", "s3_secret_key"}))
    res.workload.prepare()
    run_id = open_meta_run(res.tracker, spec, {"workload": res.workload.name, "model": res.llm.model})
    try:
        trace = _baseline(spec, res, run_id)
        config = spec.search
        active = resolve_initial_set(spec.mechanisms, res.store)
        # The mechanisms a night starts from are its lineage parents (cross-night memory).
        res.tracker.log(run_id, tags={"seed_mechanisms": ",".join(f"{m.name}@{m.version}" for m in active.mechanisms) or "none"})
        seen = {m.label: m for m in active.mechanisms}
        outer_llm = LLMUsage()
        for index in range(spec.generations):
            outcome = generation(spec, res, generation=index, trace=trace, config=config, active=active,
                                 meta_run_run_id=run_id)
            trace, config, active = outcome.trace, outcome.config, outcome.active
            outer_llm = outer_llm + outcome.outer_llm
            seen.update({m.label: m for m in active.mechanisms})
            write_trace(res.settings.runs_dir, spec.meta_run_id, trace)
            write_mechanisms(res.settings.runs_dir, spec.meta_run_id, list(seen.values()))
        trace_path = write_trace(res.settings.runs_dir, spec.meta_run_id, trace)
        summary = summarize(spec, trace, run_id=run_id, trace_path=str(trace_path), outer_llm=outer_llm,
                            mechanisms=[m.model_dump(exclude={"source"}) for m in active.mechanisms])
        write_json_atomic(trace_path.parent / "summary.json", summary.model_dump(mode="json"))
        best_source = source_for(res, summary.best_config)
        res.tracker.log_text(run_id, best_source, "best_train.py")
        close_run(res.tracker, run_id, "FINISHED", metrics={"delta_val_bpb": summary.delta,
                                                            "final_best_val_bpb": summary.best_val_bpb})
        return summary
    except BaseException:
        res.tracker.finish(run_id, "FAILED")
        raise
