"""Level 1: the inner loop of one track: K decisions (search/iteration.py), each recorded and shown."""

from __future__ import annotations

import time
from collections.abc import Callable

from prefect import flow
from pydantic import BaseModel, Field

from flows.steps import Trainer
from infra.resources import Resources
from mechanisms.active import ActiveSet, open_runtime
from mechanisms.replay import ReplaySource
from search.context import DecisionPoint
from search.early_stop import early_stop_for
from search.hooks import NoHooks
from search.iteration import Proposer, run_iteration
from search.random_proposal import random_proposer
from search.run_spec import MetaRunSpec, RunLimits, StopReason, llm_usage
from search.trace import Experiment, Trace
from tasks.propose import LLMProposer
from tasks.record import open_iteration, record_experiment


class InnerLoopResult(BaseModel):
    experiments: list[Experiment] = Field(default_factory=list)
    stop_reason: StopReason = "finished"
    stop_detail: str = ""


def replay_source(spec: MetaRunSpec, trace: Trace, generation: int) -> ReplaySource:
    """What the replay of this meta-run's decisions needs (the config of traces without generation records)."""
    record = trace.generation_start(generation)
    return ReplaySource(meta_run_id=spec.meta_run_id, run_seed=spec.seed,
                        fallback_config=record.config if record else spec.search,
                        restart_each_generation=spec.restart_each_generation)


def proposer_for(spec: MetaRunSpec, res: Resources, run_for: Callable[[DecisionPoint], str | None] | None = None) -> Proposer:
    """Who proposes in this meta-run: the LLM (default), or a control arm without it. `run_for` names the tracking
    run of a decision point (where its LLM calls are traced)."""
    llm = LLMProposer(res.llm, workload_text=res.workload.describe(spec.budget.mode), program=spec.program,
                      attempts=spec.propose_attempts, run_for=run_for)
    if spec.proposer == "llm":
        return llm
    if spec.proposer == "random":
        return random_proposer
    from search import tpe_proposal

    if spec.proposer == "tpe":
        return tpe_proposal.tpe_proposer
    if spec.proposer == "cmaes":
        return tpe_proposal.cmaes_proposer
    from tasks.propose import HybridProposer

    return HybridProposer(llm)


@flow(name="inner-loop", flow_run_name="g{generation}-t{track}", validate_parameters=False)
def inner_loop(
    spec: MetaRunSpec,
    res: Resources,
    *,
    generation: int,
    track: int,
    trace: Trace,
    active: ActiveSet,
    run_ids: dict[str, str],
    limits: RunLimits,
    outer_spent_usd: float = 0.0,
) -> InnerLoopResult:
    """K iterations on one track, starting from the shared trace (which records how this generation began). The
    active mechanisms run in this loop's own sandbox, their state rebuilt by replaying `observe` over the trace.
    Returns this track's new experiments, and why it stopped early if a run limit was reached."""
    start = trace.generation_start(generation)
    if start is None:
        raise ValueError(f"the trace has no record of how generation {generation} began")
    space = res.workload.space
    runtime = open_runtime(active, trace, space, replay_source(spec, trace, generation),
                           allow_weak_sandbox=res.settings.sandbox_allow_weak,
                           time_budget_s=res.settings.mechanism_time_budget_s)
    hooks = runtime if runtime is not None else NoHooks()
    iteration_runs: dict[int, str] = {}
    proposer = proposer_for(spec, res, run_for=lambda point: iteration_runs.get(point.iteration))
    local, state = trace, trace.state()
    spent = outer_spent_usd + llm_usage(trace).cost_usd
    result = InnerLoopResult()
    try:
        for iteration in range(spec.iterations):
            reached = limits.reached(spent, time.time())
            if reached is not None:
                result.stop_reason, result.stop_detail = reached
                break
            point = DecisionPoint(meta_run_id=spec.meta_run_id, run_seed=spec.seed, generation=generation, track=track,
                                  iteration=iteration, start=start.start, visible_from=start.visible_from,
                                  config=start.config)
            iteration_runs[iteration] = open_iteration(res.tracker, spec, run_ids["generation"], generation, track,
                                                       iteration)
            experiment = run_iteration(
                local=local, state=state, space=space, point=point, hooks=hooks, proposer=proposer,
                train=Trainer(res, spec, generation, track, iteration, early_stop=early_stop_for(
                    local, state.current.index, res.settings.early_stop_margin if res.settings.early_stop else None)),
                seq=generation * spec.iterations + iteration,
                screen_rounds=spec.screen_rounds, near=start.config.near_repeat,
            )
            incumbent = state.best  # the diff is taken against the best this experiment had to beat
            local, state = local.appended(experiment), state.after(experiment)
            spent += experiment.llm.cost_usd
            record_experiment(
                res.tracker, spec, trace.objective, meta_run_run_id=run_ids["meta_run"],
                generation_run_id=run_ids["generation"], experiment=experiment,
                source=res.workload.source_for(experiment.config) if experiment.changes else "",
                best_source=res.workload.source_for(incumbent.config), best_value=state.best.value,
                incumbent_value=incumbent.value, script_name=res.workload.script_name,
            )
            result.experiments.append(experiment)
            res.emit("experiment", experiment=experiment, best=state.best.value, baseline=state.baseline.value,
                     objective=trace.objective)
    finally:
        if runtime is not None:
            runtime.close()
    return result
