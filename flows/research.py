"""Level 2: one research session (mechanisms/research_session.py) composed with its effects: the population of
parents, the LLM rounds, validation, the simulated benefit and publication run as Prefect tasks; the session decides.
The activated mechanism joins the active set with its simulated benefit; every checked sample is stored and logged,
a mutant with its parent."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel, Field

from flows.inner_loop import replay_source
from infra.mlflow_schema import experiment_name, run_key, run_tags
from infra.resources import Resources
from mechanisms.active import ActiveMechanism, ActiveSet
from mechanisms.benefit import next_config
from mechanisms.novelty import assess
from mechanisms.population import Parent, lineage_parents
from mechanisms.research_session import (
    Attempt,
    CodeResult,
    Messages,
    Published,
    RoundResult,
    SessionInputs,
    SessionPorts,
    SessionReport,
    run_session,
)
from search.research import failure_modes
from search.run_spec import PLAN_ADVICE_FOLLOWERS, MetaRunSpec
from search.simulate import SimulatedGain, SimulationSettings
from search.trace import LLMUsage, Trace
from tasks.record import close_run
from tasks.research import (
    SimulationRequest,
    ValidationRequest,
    generate_samples,
    load_population,
    publish_mechanism,
    research_round,
    simulate_candidate,
    validate_candidate,
)

MAX_SIMULATED_ITERATIONS = 64
# The hybrid proposer asks the optimiser for 2 suggestions and offers those the LLM did not take after the LLM's own
# candidates (tasks/propose.py): one, when the LLM takes or edits the other.
HYBRID_UNTAKEN = 1


class ResearchOutcome(BaseModel):
    active: ActiveSet
    verdict: str
    usage: LLMUsage
    accepted: str | None = Field(None, description="name@VersionId of the activated mechanism, if any.")
    simulated: SimulatedGain | None = Field(None, description="The activated mechanism's simulated benefit.")
    samples: list[dict] = Field(default_factory=list, description="Per checked sample (SampleReport): round, sample, "
                                "the stage it failed at (None: activated; `benefit`: live, no simulated gain), "
                                "decisions changed on replay, hooks, simulated benefit, novelty, a mutant's parent and "
                                "change.")
    unusable: list[dict] = Field(default_factory=list, description="Per answer that reached no check "
                                 "(UnusableAnswer): round, sample, why, a mutant's parent and change.")


def simulation_settings(spec: MetaRunSpec) -> SimulationSettings:
    """The simulated next generation is as long as the real one (all its tracks' iterations), and its stand-in offers
    what the run's proposer would: under the hybrid also the optimiser's suggestion the LLM did not take; under an
    optimiser arm one candidate, whatever a plan asks for."""
    return SimulationSettings(iterations=min(MAX_SIMULATED_ITERATIONS, spec.iterations * spec.tracks),
                              confirm_seeds=spec.research_confirm_seeds,
                              extra_offers=HYBRID_UNTAKEN if spec.proposer == "hybrid" else 0,
                              asks_honoured=spec.proposer in PLAN_ADVICE_FOLLOWERS)


def _ports(spec: MetaRunSpec, res: Resources, generation: int, trace: Trace, active: ActiveSet, run_id: str) -> SessionPorts:
    """The session's effects as Prefect tasks."""
    source = replay_source(spec, trace, generation)
    space = res.workload.space
    parents = [m.version for m in active.mechanisms if m.version != "library"]
    allow_weak = res.settings.sandbox_allow_weak

    def ask_round(round_name: str, messages: Messages) -> RoundResult:
        return research_round(res.llm, spec, generation=generation, round_name=round_name, messages=messages,
                              run_id=run_id)

    def generate(round_index: int, messages: Messages, samples: int) -> list[CodeResult]:
        # answered as a patch of the skeleton (search/research.fill_answer): the session splices it in
        return generate_samples(res.llm, spec, generation=generation, round_index=round_index, messages=messages,
                                samples=samples, run_id=run_id, require_class=False)

    def mutate(round_index: int, messages: Messages, sample: int) -> CodeResult:
        return generate_samples(res.llm, spec, generation=generation, round_index=round_index, messages=messages,
                                samples=1, run_id=run_id, first=sample, require_class=False)[0]

    def request(name: str, attempt: int, code: str) -> ValidationRequest:
        return ValidationRequest(meta_run_id=spec.meta_run_id, generation=generation, attempt=attempt, name=name,
                                 source=code)

    def validate(name: str, attempt: int, code: str) -> dict:
        return validate_candidate(request(name, attempt, code), trace, space, source, allow_weak_sandbox=allow_weak)

    def simulate(name: str, attempt: int, code: str) -> SimulatedGain:
        return simulate_candidate(SimulationRequest(validation=request(name, attempt, code),
                                                    settings=simulation_settings(spec)),
                                  active, trace, space, source, next_config(trace, spec.search),
                                  screen_rounds=spec.screen_rounds, allow_weak_sandbox=allow_weak)

    def publish(name: str, attempt: Attempt, status: str) -> Published:
        mutation = attempt.mutation
        lineage = {"parent": mutation.parent.label, "change": mutation.kind} if mutation else {}
        stored = publish_mechanism(res.store, res.tracker, spec, generation=generation, name=name, source=attempt.code,
                                   status=status, parents=lineage_parents(parents, mutation.parent if mutation else None),
                                   model=res.llm.model,
                                   report={**attempt.report, "novelty": attempt.novelty, **lineage,
                                           "benefit": attempt.simulated.model_dump() if attempt.simulated
                                           else attempt.benefit_error},
                                   research_run_id=run_id, attempt=attempt.attempt_id, simulated=attempt.simulated,
                                   novelty=attempt.novelty, mutated_from=lineage.get("parent"),
                                   mutation=lineage.get("change"))
        return Published(version_id=stored["version_id"], sha256=stored["sha256"])

    def novelty(code: str, parent: Parent | None) -> str:
        return assess(code, parent=(parent.label, parent.source) if parent else None).label

    return SessionPorts(ask_round=ask_round, generate=generate, validate=validate, simulate=simulate, publish=publish,
                        describe_novelty=novelty, mutate=mutate)


@flow(name="research", flow_run_name="{spec.meta_run_id}-g{generation}-research", validate_parameters=False)
def research(spec: MetaRunSpec, res: Resources, *, generation: int, trace: Trace, active: ActiveSet,
             parent_run_id: str) -> ResearchOutcome:
    """The active set for the next generation (with the new mechanism if a sample beat the current search in
    simulation), the verdict and what the session cost."""
    if res.store is None:
        raise RuntimeError("Level 2 needs the mechanism store; build resources with the store")
    tracker = res.tracker
    run_id, _ = tracker.ensure_run(
        experiment_name(spec.name), run_key(spec.meta_run_id, f"g{generation}", "research"),
        run_name=f"research g{generation}", tags=run_tags("research", spec.meta_run_id, generation=generation),
        parent_run_id=parent_run_id,
    )
    stats = failure_modes(trace, res.workload.space)
    inputs = SessionInputs(stats=stats, workload_text=res.workload.describe(spec.budget.mode),
                           objective_text=trace.objective.describe(), metric_name=trace.objective.name,
                           active=[(m.name, m.source) for m in active.mechanisms], program=spec.program,
                           samples=spec.research_samples, repairs=spec.research_repairs,
                           population=tuple(load_population(
                               res.store, res.settings.runs_dir,
                               only_meta_run=spec.meta_run_id if spec.population == "own" else None)),
                           mutants=spec.research_mutants, proposer=spec.proposer)
    report = run_session(inputs, _ports(spec, res, generation, trace, active, run_id))
    return _recorded(spec, res, generation, active, run_id, stats, report)


def _recorded(spec: MetaRunSpec, res: Resources, generation: int, active: ActiveSet, run_id: str, stats: dict,
              report: SessionReport) -> ResearchOutcome:
    """The session's report logged on its MLflow run, and the outcome for the meta-run."""
    tracker = res.tracker
    accepted = None
    if report.accepted is not None:
        chosen = report.accepted
        context = [m.version for m in active.mechanisms if m.version != "library"]
        accepted = ActiveMechanism(name=chosen.name, version=chosen.version_id, sha256=chosen.sha256, source=chosen.code,
                                   parents=lineage_parents(context, chosen.parent),
                                   origin=f"{spec.meta_run_id}/g{generation}", simulated=chosen.simulated,
                                   novelty=chosen.novelty)
    tracker.log_dict(run_id, {"transcript": report.transcript, "stats": stats, "verdict": report.verdict,
                              "samples": [s.model_dump(mode="json") for s in report.samples],
                              "unusable": [u.model_dump(mode="json") for u in report.unusable]}, "transcript.json")
    metrics: dict[str, float | None] = {"llm_tokens": report.usage.total_tokens, "llm_seconds": report.usage.seconds,
                                 "samples": len(report.samples),
                                 "valid_samples": sum(s.stage_failed in (None, "benefit") for s in report.samples)}
    if report.accepted is not None:
        metrics.update(simulated_delta=report.accepted.simulated.delta, simulated_ci_high=report.accepted.simulated.ci_high)
    tracker.log(run_id, tags={"verdict": report.verdict[:500]}, metrics=metrics)
    close_run(tracker, run_id, "FINISHED" if accepted else "FAILED")
    return ResearchOutcome(active=active.with_added(accepted) if accepted is not None else active,
                           verdict=report.verdict, usage=report.usage, accepted=accepted.label if accepted else None,
                           simulated=report.accepted.simulated if report.accepted else None,
                           samples=[s.model_dump(mode="json") for s in report.samples],
                           unusable=[u.model_dump(mode="json") for u in report.unusable])
