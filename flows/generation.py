"""One outer generation: the tracks' inner loops, then Level 1.5 (config) and, every M, Level 2 (mechanisms)."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor

from prefect import flow
from pydantic import BaseModel

from flows.inner_loop import InnerLoopResult, inner_loop
from infra.mlflow_schema import MetricNames
from infra.resources import Resources
from mechanisms.active import ActiveSet, review_active_set
from search.config import SearchConfig
from search.iteration import merge_tracks
from search.run_spec import MetaRunSpec, RunLimits, StopReason
from search.trace import GenerationStart, LLMUsage, Trace
from tasks.adjust_config import adjust_config
from tasks.record import close_run, open_generation
from tasks.report_artifacts import publish_generation_table


class GenerationOutcome(BaseModel):
    trace: Trace
    config: SearchConfig
    active: ActiveSet
    notes: list[str] = []
    outer_llm: LLMUsage = LLMUsage()  # what Level 1.5 and Level 2 cost (experiments carry their own)
    stop_reason: StopReason = "finished"
    stop_detail: str = ""


def _run_track(spec: MetaRunSpec, res: Resources, generation: int, track: int, trace: Trace, active: ActiveSet,
               run_ids: dict[str, str], limits: RunLimits, outer_spent_usd: float) -> InnerLoopResult:
    loop = res.with_task_runner(inner_loop)
    return loop(spec, res, generation=generation, track=track, trace=trace, active=active, run_ids=run_ids,
                limits=limits, outer_spent_usd=outer_spent_usd)


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
    outer_spent_usd: float = 0.0,
) -> GenerationOutcome:
    """Tracks run in parallel threads (bounded by max_workers); their experiments merge deterministically. A run
    limit reached during the tracks ends the generation there (no Level 1.5 or 2)."""
    generation_run_id = open_generation(res.tracker, spec, meta_run_run_id, generation)
    run_ids = {"meta_run": meta_run_run_id, "generation": generation_run_id}
    # The restart-only control arm hides earlier generations from prompts and hooks (it still starts from best).
    start = GenerationStart(generation=generation, start=len(trace), config=config,
                            visible_from=len(trace) if spec.restart_each_generation else 0)
    trace = trace.with_generation(start)
    args = (trace, active, run_ids, limits, outer_spent_usd)
    if spec.tracks == 1:
        results = [_run_track(spec, res, generation, 0, *args)]
    else:
        with ThreadPoolExecutor(max_workers=min(spec.tracks, res.settings.max_workers)) as pool:
            futures = [pool.submit(contextvars.copy_context().run, _run_track, spec, res, generation, track, *args)
                       for track in range(spec.tracks)]
            results = [future.result() for future in futures]
    trace = merge_tracks(trace, [result.experiments for result in results])
    active, notes = review_active_set(active, trace.mechanism_liveness(generation))
    outcome = GenerationOutcome(trace=trace, config=config, active=active, notes=notes)
    stopped = next((r for r in results if r.stop_reason != "finished"), None)
    if stopped is not None:
        outcome.stop_reason, outcome.stop_detail = stopped.stop_reason, stopped.stop_detail
        notes.append(f"stopped: {stopped.stop_detail}")
    elif spec.has_level("1.5"):
        adjusted = adjust_config(res.llm, spec, trace=trace, config=config, space=res.workload.space,
                                 generation=generation, run_id=generation_run_id)
        outcome.config = adjusted.config
        outcome.outer_llm = outcome.outer_llm + adjusted.usage
        notes.append(f"level 1.5 ({adjusted.source}): {adjusted.change}; {adjusted.reason}")
        res.tracker.log(generation_run_id, tags={"level15.source": adjusted.source, "level15.change": adjusted.change[:500],
                                                 "level15.reason": adjusted.reason[:500],
                                                 "level15.model_reason": adjusted.model_reason[:500]},
                        metrics={"level15_llm_tokens": adjusted.usage.total_tokens})
    is_last = generation == spec.generations - 1
    if stopped is None and spec.has_level("2") and (generation + 1) % spec.research_every == 0 and not is_last:
        from flows.research import research

        researched = research(spec, res, generation=generation, trace=trace, active=active,
                              parent_run_id=generation_run_id)
        outcome.active, outcome.outer_llm = researched.active, outcome.outer_llm + researched.usage
        notes.append(f"level 2: {researched.verdict}")
    state = trace.state()
    publish_generation_table(spec, generation, trace, outcome.active, notes)
    close_run(res.tracker, generation_run_id, metrics={MetricNames(trace.objective).best: state.best.value})
    res.emit("generation", generation=generation, best=state.best.value,
             active=[m.label for m in outcome.active.mechanisms], notes=notes)
    return outcome
