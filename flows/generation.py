"""One outer generation: the tracks' inner loops, then Level 1.5 (config) and, every M, Level 2 (mechanisms)."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor

from prefect import flow
from pydantic import BaseModel

from infra.resources import Resources
from flows.inner_loop import InnerLoopResult, inner_loop
from mechanisms.active import ActiveSet, review_active_set
from search.config import SearchConfig
from search.iteration import merge_tracks
from search.run_spec import MetaRunSpec
from search.state import state_from_trace
from search.trace import LLMUsage, Trace
from tasks.adjust_config import adjust_config
from tasks.record import close_run, open_generation
from tasks.report_artifacts import publish_generation_table


class GenerationOutcome(BaseModel):
    trace: Trace
    config: SearchConfig
    active: ActiveSet
    liveness: dict[str, dict]
    notes: list[str] = []
    outer_llm: LLMUsage = LLMUsage()  # what Level 1.5 and Level 2 cost (experiments carry their own)


def _run_track(spec: MetaRunSpec, res: Resources, generation: int, track: int, trace: Trace, config: SearchConfig,
               active: ActiveSet, run_ids: dict[str, str], visible_from: int) -> InnerLoopResult:
    loop = res.with_task_runner(inner_loop)
    return loop(spec, res, generation=generation, track=track, trace=trace, config=config, active=active,
                run_ids=run_ids, visible_from=visible_from)


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
) -> GenerationOutcome:
    """Tracks run in parallel threads (bounded by max_workers); their experiments merge deterministically."""
    generation_run_id = open_generation(res.tracker, spec, meta_run_run_id, generation)
    run_ids = {"meta_run": meta_run_run_id, "generation": generation_run_id}
    # The restart-only control arm hides earlier generations from prompts and hooks (it still starts from best).
    visible_from = len(trace) if spec.restart_each_generation else 0
    if spec.tracks == 1:
        results = [_run_track(spec, res, generation, 0, trace, config, active, run_ids, visible_from)]
    else:
        with ThreadPoolExecutor(max_workers=min(spec.tracks, res.settings.max_workers)) as pool:
            futures = [
                pool.submit(contextvars.copy_context().run, _run_track, spec, res, generation, track, trace, config,
                            active, run_ids, visible_from)
                for track in range(spec.tracks)
            ]
            results = [future.result() for future in futures]
    trace = merge_tracks(trace, [result.experiments for result in results])
    liveness = _merge_liveness([result.liveness for result in results])
    active, notes = review_active_set(active, liveness)
    outer_llm = LLMUsage()
    if spec.has_level("1.5"):
        adjusted = adjust_config(res.llm, spec, trace=trace, config=config, specs=res.workload.params(),
                                 generation=generation)
        config = adjusted.config
        outer_llm = outer_llm + adjusted.usage
        notes.append(f"level 1.5 ({adjusted.source}): {adjusted.change}; {adjusted.reason}")
        res.tracker.log(generation_run_id, tags={"level15.source": adjusted.source, "level15.change": adjusted.change[:500],
                                                 "level15.reason": adjusted.reason[:500]},
                        metrics={"level15_llm_tokens": adjusted.usage.total_tokens})
    is_last = generation == spec.generations - 1
    if spec.has_level("2") and (generation + 1) % spec.research_every == 0 and not is_last:
        from flows.research import research

        researched = research(spec, res, generation=generation, trace=trace, config=config, active=active,
                              parent_run_id=generation_run_id)
        active, outer_llm = researched.active, outer_llm + researched.usage
        notes.append(f"level 2: {researched.verdict}")
    state = state_from_trace(trace)
    publish_generation_table(spec, generation, trace, active, liveness, notes)
    close_run(res.tracker, generation_run_id, metrics={"best_val_bpb": state.best.val_bpb})
    res.emit("generation", generation=generation, best=state.best.val_bpb, active=[m.label for m in active.mechanisms],
             notes=notes)
    return GenerationOutcome(trace=trace, config=config, active=active, liveness=liveness, notes=notes,
                             outer_llm=outer_llm)


def _merge_liveness(per_track: list[dict[str, dict]]) -> dict[str, dict]:
    """Sum hook calls and changed decisions of each mechanism over the tracks."""
    merged: dict[str, dict] = {}
    for liveness in per_track:
        for name, counts in liveness.items():
            target = merged.setdefault(name, {"calls": {}, "changed": {}, "quarantined": False, "reason": ""})
            for field in ("calls", "changed"):
                for hook, count in counts.get(field, {}).items():
                    target[field][hook] = target[field].get(hook, 0) + count
            if counts.get("quarantined"):
                target["quarantined"] = True
                target["reason"] = counts.get("reason", "")
    return merged
