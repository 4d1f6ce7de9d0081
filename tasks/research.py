"""Level-2 tasks: one research round (a cached LLM call, validated, re-asked once), the population of parents,
code generation, validation of a candidate (cached by its sha), and publication to the store and MLflow."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from infra.llm import LLMClient
from infra.mlflow_schema import experiment_name, run_key, run_tags
from infra.tracking import Tracker
from mechanisms.active import ActiveMechanism, ActiveSet
from mechanisms.population import MAX_CREDITED, Parent, build_population
from mechanisms.replay import ReplaySource
from mechanisms.research_session import CodeResult, RoundResult
from search.config import SearchConfig
from search.research import CODE_STOP, SAMPLE_TEMPERATURES, decode_code_answer, parse_round, round_schema
from search.run_spec import MetaRunSpec
from search.simulate import SimulatedGain, SimulationSettings
from search.space import SearchSpace
from search.trace import LLMUsage, Trace
from tasks.llm_call import LLMCall, LLMOverflow, ask_within_context, converse

log = logging.getLogger(__name__)

ROUND_ATTEMPTS = 2
GENERATE_MAX_TOKENS = 1000


@task(name="research-round", cache_policy=NO_CACHE, task_run_name="level-2 {round_name} g{generation}")
def research_round(llm: LLMClient, spec: MetaRunSpec, *, generation: int, round_name: str,
                   messages: list[dict[str, str]], run_id: str | None = None) -> RoundResult:
    """One JSON round (explore or specify). Each LLM call is a cached `ask`."""
    exchange = converse(llm, meta_run_id=spec.meta_run_id, call_key=f"research/g{generation}/{round_name}",
                        purpose=f"research.{round_name}", messages=messages,
                        parse=lambda text: parse_round(round_name, text), attempts=ROUND_ATTEMPTS, seq=generation,
                        json_schema=round_schema(round_name), temperature=0.5, max_tokens=700, run_id=run_id,
                        refuse_overflow=True)  # a prompt too long for the model ends the session without an answer
    return RoundResult(answer=exchange.value.model_dump() if exchange.value is not None else None,
                       messages=exchange.messages, usage=exchange.usage,
                       transcript=[{"round": round_name, **entry} for entry in exchange.transcript])


@task(name="research-population", cache_policy=NO_CACHE, task_run_name="level-2 population")
def load_population(store: Any, runs_dir: Path, limit: int = MAX_CREDITED, only_meta_run: str | None = None) -> list[Parent]:
    """The parents mutants start from: earlier runs' best-credited mechanisms (infra/lineage.py; `only_meta_run`'s
    own when given), read back from the store with their sources, then the library. A version the store cannot give
    back is left out with a warning."""
    from infra.lineage import credited_versions
    from infra.store import StoreError

    credited = []
    for credit, version in credited_versions(store, runs_dir, limit, meta_run_id=only_meta_run):
        try:
            source, _ = store.get(version.name, version.version_id)
        except StoreError as error:
            log.warning("level 2 population: %s@%s left out: %s", version.name, version.version_id, error)
            continue
        credited.append(Parent(label=f"{version.name}@{version.version_id}", name=version.name, source=source,
                               version_id=version.version_id, credited_delta=credit))
    return build_population(credited, limit)


@task(name="research-generate", cache_policy=NO_CACHE, task_run_name="level-2 generate g{generation} r{round_index}")
def generate_samples(llm: LLMClient, spec: MetaRunSpec, *, generation: int, round_index: int,
                     messages: list[dict[str, str]], samples: int, run_id: str | None = None,
                     first: int = 0, require_class: bool = True) -> list[CodeResult]:
    """Best-of-N: `samples` completions of the same prompt at mixed temperatures (round 0 generates, later rounds
    repair), numbered from `first` (a mutant is one sample of its own prompt; `require_class=False`: its answer is a
    patch, the methods it changes). Each is its own cached `ask`; a local model reuses the prompt's KV cache across
    them."""
    results = []
    for sample in range(first, first + samples):
        temperature = SAMPLE_TEMPERATURES[sample % len(SAMPLE_TEMPERATURES)]
        call = LLMCall(meta_run_id=spec.meta_run_id, call_key=f"research/g{generation}/generate/r{round_index}/n{sample}",
                       purpose="research.generate", messages=messages, seq=generation * 100 + round_index * 10 + sample,
                       temperature=temperature, max_tokens=GENERATE_MAX_TOKENS, stop=CODE_STOP, run_id=run_id)
        reply = ask_within_context(llm, call)
        if isinstance(reply, LLMOverflow):  # a refused sample, like one without a class: the session goes on
            log.warning("level 2 sample %d of round %d: %s", sample, round_index, reply.reason)
            results.append(CodeResult(sample=sample, temperature=temperature, code=None, text="",
                                      error="the prompt did not fit the model's context window", usage=LLMUsage(calls=1)))
            continue
        # A reply persisted before finish_reason existed unpickles without it (pydantic sets __dict__ as saved).
        finish_reason = getattr(reply, "finish_reason", "stop")
        code, error = decode_code_answer(reply.text, finish_reason, GENERATE_MAX_TOKENS, require_class)
        results.append(CodeResult(sample=sample, temperature=temperature, code=code, error=error, text=reply.text,
                                  usage=reply.usage))
    return results


class ValidationRequest(BaseModel):
    meta_run_id: str
    generation: int
    attempt: int
    name: str
    source: str

    @property
    def cache_key(self) -> str:
        sha = hashlib.sha256(self.source.encode()).hexdigest()[:16]
        return f"validate/{self.meta_run_id}/g{self.generation}/a{self.attempt}/{sha}"


def _validation_key(_context: Any, parameters: dict[str, Any]) -> str:
    return parameters["request"].cache_key


@task(name="validate-mechanism", cache_key_fn=_validation_key, persist_result=True,
      task_run_name="validate {request.name} a{request.attempt}")
def validate_candidate(request: ValidationRequest, trace: Trace, space: SearchSpace, source: ReplaySource,
                       allow_weak_sandbox: bool = False) -> dict:
    """Policy -> static checks -> sandbox import -> smoke test replaying the real trace -> liveness. JSON report."""
    from mechanisms.replay import replay_steps
    from mechanisms.validate import validate_mechanism

    report = validate_mechanism(request.source, replay_steps(trace, space, source), name=request.name, space=space,
                                metric_name=trace.objective.name, allow_weak_sandbox=allow_weak_sandbox)
    return report.model_dump(mode="json")


class SimulationRequest(BaseModel):
    """A candidate's simulated benefit is cached like its validation: by session, attempt and code."""

    validation: ValidationRequest
    settings: SimulationSettings = Field(default_factory=SimulationSettings)

    @property
    def cache_key(self) -> str:
        s = self.settings
        return ("simulate/" + self.validation.cache_key.removeprefix("validate/") + f"/i{s.iterations}s{s.seeds}"
                + "".join(f"/{name}" for name in s.landscapes))


def _simulation_key(_context: Any, parameters: dict[str, Any]) -> str:
    return parameters["request"].cache_key


@task(name="simulate-mechanism", cache_key_fn=_simulation_key, persist_result=True,
      task_run_name="simulate {request.validation.name} a{request.validation.attempt}")
def simulate_candidate(request: SimulationRequest, active: ActiveSet, trace: Trace, space: SearchSpace,
                       source: ReplaySource, config: SearchConfig, screen_rounds: int = 2,
                       allow_weak_sandbox: bool = False) -> SimulatedGain:
    """The candidate's simulated Δ over the current active set (search/simulate.py); SurrogateError when the trace
    cannot support a surrogate."""
    from mechanisms.benefit import simulated_benefit

    candidate = ActiveMechanism.from_source(request.validation.name, request.validation.source)
    return simulated_benefit(candidate, active, trace, space, source, config, settings=request.settings,
                             screen_rounds=screen_rounds, allow_weak_sandbox=allow_weak_sandbox)


@task(name="publish-mechanism", cache_policy=NO_CACHE, task_run_name="publish {name} ({status})")
def publish_mechanism(res_store: Any, tracker: Tracker, spec: MetaRunSpec, *, generation: int, name: str, source: str,
                      status: str, parents: list[str], model: str, report: dict, research_run_id: str,
                      attempt: int, simulated: SimulatedGain | None = None, novelty: str | None = None,
                      mutated_from: str | None = None, mutation: str | None = None) -> dict[str, Any]:
    """Store the version (accepted or rejected: both are data for improving Level 2) and log a mechanism run
    tagged with its store key, VersionId, sha256, parents, simulated benefit and, for a mutant, the parent it was
    mutated from (`library:<name>` or `<name>@<VersionId>`) and the kind of change. Idempotent on resume."""
    from infra.store import VersionMeta

    stored = res_store.put(name, source, VersionMeta(meta_run_id=spec.meta_run_id, generation=generation,
                                                      parents=tuple(parents), status=status, model=model[:120]))
    res_store.put_document(name, stored.version_id, "validation", report)
    benefit = ({"simulated_delta": f"{simulated.delta:.6g}", "simulated_ci": f"{simulated.ci_low:.6g},{simulated.ci_high:.6g}",
                "simulated_seeds": simulated.seeds,
                "simulated_landscapes": "; ".join(entry.describe() for entry in simulated.landscapes)[:250]}
               if simulated is not None else {})
    if novelty is not None:
        benefit["novelty"] = novelty[:250]
    if mutated_from is not None:
        benefit.update(mutated_from=mutated_from[:250], mutation=(mutation or "-")[:40])
    run_id, finished = tracker.ensure_run(
        experiment_name(spec.name), run_key(spec.meta_run_id, f"g{generation}", "mechanism", f"a{attempt}"),
        run_name=f"mechanism {name} ({status})",
        tags=run_tags("mechanism", spec.meta_run_id, generation=generation, mechanism=name, status=status,
                      store_key=stored.key, version_id=stored.version_id, sha256=stored.sha256,
                      parents=",".join(parents) or "none", **benefit),
        parent_run_id=research_run_id,
    )
    if not finished:
        tracker.log_text(run_id, source, "mechanism.py")
        tracker.log_dict(run_id, report, "validation.json")
        if simulated is not None:
            tracker.log_dict(run_id, simulated.model_dump(mode="json"), "simulated.json")
        tracker.finish(run_id, "FINISHED" if status == "accepted" else "FAILED")
    return {"key": stored.key, "version_id": stored.version_id, "sha256": stored.sha256, "mlflow_run_id": run_id}
