"""Level 1: the inner loop of one track. plan -> propose -> screen -> train -> accept -> observe -> record."""

from __future__ import annotations

from typing import Any

from prefect import flow
from pydantic import BaseModel, Field

from infra.resources import Resources
from mechanisms.active import ActiveSet, open_runtime
from mechanisms.api import PlanAdvice, build_context, candidate_view, experiment_view
from search.acceptance import default_keep, needs_confirmation
from search.config import SearchConfig
from search.iteration import hook_seed, invalid_outcome, make_experiment, measured_value
from search.params import ParamSpec
from search.prompts import proposal_messages, screen_rejection_messages
from search.proposal import Proposal
from search.random_proposal import random_proposal
from search.run_spec import MetaRunSpec
from search.state import SearchState, state_from_trace
from search.trace import Experiment, LLMUsage, Trace, config_with
from tasks.propose import ProposalRequest, propose
from search.tpe_proposal import tpe_proposal
from flows.steps import source_for, train
from tasks.record import record_experiment


class InnerLoopResult(BaseModel):
    experiments: list[Experiment] = Field(default_factory=list)
    liveness: dict[str, dict[str, Any]] = Field(default_factory=dict)


def _choose_candidate(
    res: Resources, spec: MetaRunSpec, runtime: Any, ctx: dict[str, Any], state: SearchState,
    messages: list[dict[str, str]], specs: list[ParamSpec], config: SearchConfig, advice: PlanAdvice,
    generation: int, track: int, iteration: int, seq: int, tried: list[dict[str, Any]],
) -> tuple[Proposal | None, LLMUsage, int, list[str], str]:
    """Propose candidates and let the screen hooks pick one (or reject all: ask again, bounded)."""
    usage, attempts, errors, note = LLMUsage(), 0, [], ""
    fallback: Proposal | None = None
    for screen_round in range(spec.screen_rounds):
        batch = propose(res.llm, ProposalRequest(
            meta_run_id=spec.meta_run_id, generation=generation, track=track, iteration=iteration, seq=seq,
            screen_round=screen_round, messages=messages, specs=specs, current=state.current.config,
            tried=tried, frozen=list(config.frozen), n_candidates=advice.n_candidates or config.n_candidates,
            attempts=spec.propose_attempts,
            temperature=config.temperature if advice.temperature is None else advice.temperature,
        ))
        usage, attempts, errors = usage + batch.usage, attempts + batch.attempts, errors + batch.errors
        if not batch.candidates:
            break
        if runtime is None:
            return batch.candidates[0], usage, attempts, errors, note
        views = [candidate_view(c.changes, c.hypothesis, config_with(state.current.config, c.changes)) for c in batch.candidates]
        verdict = runtime.screen(ctx, views)
        if verdict is None:
            return batch.candidates[0], usage, attempts, errors, note
        if not verdict.reject:
            return batch.candidates[verdict.choose or 0], usage, attempts, errors, note
        fallback = batch.candidates[0]
        note = f"screen rejected round {screen_round}: {verdict.reason}"
        messages = screen_rejection_messages(messages, verdict.reason)
    if fallback is not None:
        note += "; screen rounds exhausted, trained the last first candidate"
    return fallback, usage, attempts, errors, note


def _control_proposal(spec: MetaRunSpec, specs: list[ParamSpec], trace: Trace, state: SearchState,
                      config: SearchConfig, seed: int) -> tuple[Proposal | None, LLMUsage, int, list[str], str]:
    """Control arms: random search or Optuna TPE over the same space, no LLM."""
    if spec.proposer == "random":
        proposal = random_proposal(specs, state.current.config, config.frozen, seed, trace.tried_configs())
    else:
        proposal = tpe_proposal(specs, trace, state.current.config, config.frozen, seed)
    return (proposal if proposal.changes else None), LLMUsage(), 0, [], spec.proposer


def run_iteration(
    res: Resources, spec: MetaRunSpec, runtime: Any, trace: Trace, config: SearchConfig, specs: list[ParamSpec],
    *, generation: int, track: int, iteration: int, visible_from: int,
) -> Experiment:
    """One inner iteration. `visible_from` hides older experiments from prompts and hooks (restart arm)."""
    state = state_from_trace(trace)
    visible = Trace(experiments=[trace.experiments[0], *trace.experiments[max(1, visible_from):]])
    index = len(trace)
    ctx = build_context(trace=visible, state=state, specs=specs, config=config, generation=generation, track=track,
                        seed=hook_seed(spec.meta_run_id, spec.seed, index, track))
    ctx["iteration"] = index
    advice = runtime.plan(ctx) if runtime is not None else PlanAdvice()
    messages = proposal_messages(
        workload_text=res.workload.describe(spec.budget.mode), specs=specs, state=state, trace=visible, config=config,
        plan_guidance=advice.guidance, focus=advice.focus, avoid=advice.avoid,
    )
    seq = generation * spec.iterations + iteration
    if spec.proposer == "llm":
        proposal, usage, attempts, errors, note = _choose_candidate(
            res, spec, runtime, ctx, state, messages, specs, config, advice, generation, track, iteration, seq,
            trace.tried_configs(),
        )
    else:
        proposal, usage, attempts, errors, note = _control_proposal(spec, specs, visible, state, config, ctx["seed"])
    confirm = None
    override, decided_by = None, None
    if proposal is None:
        outcome = invalid_outcome(errors, spec.seed)
        changes, hypothesis = {}, ""
    else:
        changes, hypothesis = proposal.changes, proposal.hypothesis
        source = source_for(res, config_with(state.current.config, changes))
        outcome = train(res, spec, generation=generation, track=track, iteration=iteration, purpose="candidate",
                        source=source, seed=spec.seed)
        if needs_confirmation(state, measured_value(outcome, None), config.min_improvement, config.confirm_seed):
            confirm = train(res, spec, generation=generation, track=track, iteration=iteration, purpose="confirm",
                            source=source, seed=config.confirm_seed)
        if runtime is not None:
            default = default_keep(state, measured_value(outcome, confirm), config.min_improvement)
            view = {**candidate_view(changes, hypothesis, config_with(state.current.config, changes)),
                    "index": index, "status": outcome.status, "val_bpb": measured_value(outcome, confirm),
                    "default_kept": default}
            keep, decided_by = runtime.accept(ctx, view, default)
            override = keep if decided_by else None
    experiment = make_experiment(
        trace=trace, generation=generation, track=track, iteration=iteration, changes=changes,
        hypothesis=hypothesis, outcome=outcome, confirm=confirm, state=state,
        min_improvement=config.min_improvement, override=override, decided_by=decided_by, mechanisms=[],
        llm=usage, attempts=attempts, errors=errors, note=note,
    )
    if runtime is not None:
        runtime.observe(ctx, experiment_view(experiment))
        experiment = experiment.model_copy(update={"mechanisms": runtime.take_activity()})
    return experiment


@flow(name="inner-loop", flow_run_name="g{generation}-t{track}", validate_parameters=False)
def inner_loop(
    spec: MetaRunSpec,
    res: Resources,
    *,
    generation: int,
    track: int,
    trace: Trace,
    config: SearchConfig,
    active: ActiveSet,
    run_ids: dict[str, str],
    visible_from: int = 0,
) -> InnerLoopResult:
    """K iterations on one track, starting from the shared trace. The active mechanisms run in this loop's own
    sandbox, their state rebuilt by replaying `observe` over the trace. Returns this track's new experiments."""
    specs = res.workload.params()
    runtime = open_runtime(active, trace, specs, config,
                           seed_for=lambda index, track_: hook_seed(spec.meta_run_id, spec.seed, index, track_),
                           allow_weak_sandbox=res.settings.sandbox_allow_weak)
    local = trace
    result = InnerLoopResult()
    try:
        for iteration in range(spec.iterations):
            incumbent = state_from_trace(local).best  # the diff is taken against the best this experiment had to beat
            experiment = run_iteration(res, spec, runtime, local, config, specs, generation=generation, track=track,
                                       iteration=iteration, visible_from=visible_from)
            local = local.appended(experiment)
            state = state_from_trace(local)
            record_experiment(
                res.tracker, spec, meta_run_run_id=run_ids["meta_run"], generation_run_id=run_ids["generation"],
                experiment=experiment, source=source_for(res, experiment.config) if experiment.changes else "",
                best_source=source_for(res, incumbent.config), best_val_bpb=state.best.val_bpb,
                incumbent_val_bpb=incumbent.val_bpb,
            )
            result.experiments.append(experiment)
            res.emit("experiment", experiment=experiment, best=state.best.val_bpb, baseline=state.baseline.val_bpb)
        if runtime is not None:
            result.liveness = runtime.liveness()
    finally:
        if runtime is not None:
            runtime.close()
    return result
