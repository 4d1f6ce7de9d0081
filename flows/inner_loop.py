"""Level 1: the inner loop of one track: K decisions (search/iteration.py), each recorded and shown."""

from __future__ import annotations

import time
from collections.abc import Callable

from prefect import flow
from pydantic import BaseModel, Field

from flows.steps import Trainer
from infra.resources import Resources
from infra.runs import TraceWriter
from mechanisms.active import ActiveSet, open_runtime
from mechanisms.replay import ReplaySource
from search.context import DecisionPoint
from search.early_stop import early_stop_for
from search.hooks import NoHooks
from search.iteration import Proposer, run_iteration
from search.random_proposal import random_proposer
from search.run_spec import MetaRunSpec, RunLimits, StopReason, llm_usage
from search.state import SearchState
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
    if res.workload.edits == "code" and spec.proposer in ("llm", "hybrid"):  # free-form edits: the LLM writes code
        from tasks.propose_code import CodeProposer

        return CodeProposer(res.llm, res.workload, workload_text=res.workload.describe(spec.budget.mode),
                            program=spec.program, attempts=spec.propose_attempts, run_for=run_for)
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
    writer: TraceWriter,
    decided: list[Experiment] | None = None,
) -> InnerLoopResult:
    """K iterations on one track, starting from the shared trace (which records how this generation began) and
    after this track's `decided` experiments (a resume: they are neither trained nor asked again). The active
    mechanisms run in this loop's own sandbox, their state rebuilt by replaying `observe` over the track's history,
    the decided experiments included. Every decision is written to the trace (`writer`) before it is logged.
    Returns this track's new experiments, and why it stopped early if a run limit was reached."""
    start = trace.generation_start(generation)
    if start is None:
        raise ValueError(f"the trace has no record of how generation {generation} began")
    decided = decided or []
    space = res.workload.space
    local = trace.with_experiments([*trace.experiments, *decided])
    res.workload.remember_sources(local.code_edits())  # edits = code: the scripts a resume continues from
    runtime = open_runtime(active, local, space, replay_source(spec, local, generation),
                           allow_weak_sandbox=res.settings.sandbox_allow_weak,
                           time_budget_s=res.settings.mechanism_time_budget_s)
    hooks = runtime if runtime is not None else NoHooks()
    iteration_runs: dict[int, str] = {}
    proposer = proposer_for(spec, res, run_for=lambda point: iteration_runs.get(point.iteration))
    state = local.state()
    spent = llm_usage(local).cost_usd
    result = InnerLoopResult()
    if decided:  # its MLflow run is missing if the last session died between the trace write and the log
        before = local.with_experiments(local.experiments[:-1])
        _record(res, spec, run_ids, decided[-1], before.state(), local.state())
    try:
        for iteration in range(len(decided), spec.iterations):
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
                fix=getattr(proposer, "fix", None),  # edits = code: one fix attempt after a crash
            )
            writer.decided(track, experiment)  # the trace first: it is what a resume continues from
            incumbent = state  # the diff is taken against the best this experiment had to beat
            local, state = local.appended(experiment), state.after(experiment)
            spent += experiment.llm.cost_usd
            _record(res, spec, run_ids, experiment, incumbent, state)
            result.experiments.append(experiment)
            res.emit("experiment", experiment=experiment, best=state.best.value, baseline=state.baseline.value,
                     objective=trace.objective)
    finally:
        if runtime is not None:
            runtime.close()
    return result


def _record(res: Resources, spec: MetaRunSpec, run_ids: dict[str, str], experiment: Experiment, before: SearchState,
            after: SearchState) -> None:
    """The experiment's MLflow run (found by key: a resume writes nothing twice); `before` is the state it was decided
    in, whose best it had to beat, `after` the state it led to."""
    incumbent = before.best
    record_experiment(
        res.tracker, spec, before.objective, meta_run_run_id=run_ids["meta_run"],
        generation_run_id=run_ids["generation"], experiment=experiment,
        source=res.workload.source_for(experiment.config) if experiment.changes else "",
        best_source=res.workload.source_for(incumbent.config), best_value=after.best.value,
        incumbent_value=incumbent.value, script_name=res.workload.script_name,
    )
