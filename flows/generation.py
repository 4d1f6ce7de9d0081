"""One outer generation: the tracks' inner loops, then Level 1.5 (config) and, every M, Level 2 (mechanisms), each
decision written to the trace as it is made."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor

from prefect import flow
from pydantic import BaseModel

from flows.inner_loop import InnerLoopResult, inner_loop
from infra.mlflow_schema import MetricNames
from infra.resources import Resources
from infra.runs import TraceWriter
from mechanisms.active import ActiveSet, review_active_set
from search.config import SearchConfig
from search.iteration import merge_tracks
from search.resume import GenerationSplit, begin_generation, split_generation
from search.run_spec import MetaRunSpec, RunLimits, StopReason
from search.trace import ConfigDecision, GenerationEnd, MechanismDecision, Trace
from tasks.adjust_config import adjust_config
from tasks.record import close_run, open_generation
from tasks.report_artifacts import publish_generation_table


class GenerationOutcome(BaseModel):
    trace: Trace
    config: SearchConfig
    active: ActiveSet
    notes: list[str] = []
    stop_reason: StopReason = "finished"
    stop_detail: str = ""


def _run_track(spec: MetaRunSpec, res: Resources, generation: int, track: int, split: GenerationSplit, active: ActiveSet,
               run_ids: dict[str, str], limits: RunLimits, writer: TraceWriter) -> InnerLoopResult:
    loop = res.with_task_runner(inner_loop)
    return loop(spec, res, generation=generation, track=track, trace=split.base, decided=split.of_track(track),
                active=active, run_ids=run_ids, limits=limits, writer=writer)


def _run_tracks(spec: MetaRunSpec, res: Resources, generation: int, trace: Trace, active: ActiveSet,
                run_ids: dict[str, str], limits: RunLimits, writer: TraceWriter) -> tuple[Trace, InnerLoopResult | None]:
    """The tracks of the generation, each continuing after its decided experiments; their experiments merge
    deterministically. Returns the merged trace and the first track that stopped at a run limit, if any."""
    split = split_generation(trace, generation)
    writer.open_tracks(split.base, split.decided)
    args = (split, active, run_ids, limits, writer)
    if spec.tracks == 1:
        results = [_run_track(spec, res, generation, 0, *args)]
    else:
        with ThreadPoolExecutor(max_workers=min(spec.tracks, res.settings.max_workers)) as pool:
            futures = [pool.submit(contextvars.copy_context().run, _run_track, spec, res, generation, track, *args)
                       for track in range(spec.tracks)]
            results = [future.result() for future in futures]
    trace = merge_tracks(split.base, [[*split.of_track(track), *result.experiments]
                                      for track, result in enumerate(results)])
    writer.commit(trace)
    return trace, next((r for r in results if r.stop_reason != "finished"), None)


@flow(name="generation", flow_run_name="{spec.meta_run_id}-g{generation}", validate_parameters=False)
def generation(
    spec: MetaRunSpec,
    res: Resources,
    *,
    generation: int,
    trace: Trace,
    config: SearchConfig,
    active: ActiveSet,
    meta_run_run_id: str,
    limits: RunLimits,
    writer: TraceWriter,
) -> GenerationOutcome:
    """Tracks run in parallel threads (bounded by max_workers). A run limit reached during the tracks ends the
    generation there (no Level 1.5 or 2). Each step is recorded in the trace as it is decided (the tracks'
    experiments, the review of the mechanisms, Level 1.5, Level 2), and a resume skips the recorded ones."""
    generation_run_id = open_generation(res.tracker, spec, meta_run_run_id, generation)
    run_ids = {"meta_run": meta_run_run_id, "generation": generation_run_id}
    trace = begin_generation(trace, generation, config, active, spec.restart_each_generation)
    writer.commit(trace)
    end = trace.generation_end(generation)
    if end is None:
        trace, stopped = _run_tracks(spec, res, generation, trace, active, run_ids, limits, writer)
        if stopped is not None:  # the generation stays open: a resume continues its tracks
            notes = [f"stopped: {stopped.stop_detail}"]
            _close(spec, res, generation, generation_run_id, trace, active, notes)
            return GenerationOutcome(trace=trace, config=config, active=active, notes=notes,
                                     stop_reason=stopped.stop_reason, stop_detail=stopped.stop_detail)
        reviewed, notes = review_active_set(active, trace.mechanism_liveness(generation))
        end = GenerationEnd(generation=generation, config=config, active=reviewed, notes=notes)
        trace = _decided(writer, trace, end)
    if spec.has_level("1.5") and end.level15 is None:
        adjusted = adjust_config(res.llm, spec, trace=trace, config=end.config, space=res.workload.space,
                                 generation=generation, run_id=generation_run_id)
        decision = ConfigDecision(config=adjusted.config, source=adjusted.source, change=adjusted.change,
                                  reason=adjusted.reason, llm=adjusted.usage)
        note = f"level 1.5 ({adjusted.source}): {adjusted.change}; {adjusted.reason}"
        end = end.model_copy(update={"level15": decision, "config": adjusted.config, "notes": [*end.notes, note]})
        trace = _decided(writer, trace, end)
        res.tracker.log(generation_run_id, tags={"level15.source": adjusted.source, "level15.change": adjusted.change[:500],
                                                 "level15.reason": adjusted.reason[:500],
                                                 "level15.model_reason": adjusted.model_reason[:500]},
                        metrics={"level15_llm_tokens": adjusted.usage.total_tokens})
    is_last = generation == spec.generations - 1
    if spec.has_level("2") and (generation + 1) % spec.research_every == 0 and not is_last and end.level2 is None:
        from flows.research import research

        researched = research(spec, res, generation=generation, trace=trace, active=end.active,
                              parent_run_id=generation_run_id)
        decision2 = MechanismDecision(verdict=researched.verdict, accepted=researched.accepted, llm=researched.usage)
        end = end.model_copy(update={"level2": decision2, "active": researched.active,
                                     "notes": [*end.notes, f"level 2: {researched.verdict}"]})
        trace = _decided(writer, trace, end)
    trace = _decided(writer, trace, end.model_copy(update={"done": True}))
    _close(spec, res, generation, generation_run_id, trace, end.active, end.notes)
    return GenerationOutcome(trace=trace, config=end.config, active=end.active, notes=end.notes)


def _close(spec: MetaRunSpec, res: Resources, generation: int, generation_run_id: str, trace: Trace, active: ActiveSet,
           notes: list[str]) -> None:
    """The generation's table (Prefect), its MLflow run closed, and the line the user sees."""
    state = trace.state()
    publish_generation_table(spec, generation, trace, active, notes)
    close_run(res.tracker, generation_run_id, metrics={MetricNames(trace.objective).best: state.best.value})
    res.emit("generation", generation=generation, best=state.best.value,
             active=[m.label for m in active.mechanisms], notes=notes)


def _decided(writer: TraceWriter, trace: Trace, end: GenerationEnd) -> Trace:
    """The trace with this step of the generation's end recorded, and written."""
    trace = trace.with_end(end)
    writer.commit(trace)
    return trace
