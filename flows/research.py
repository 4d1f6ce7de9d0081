"""Level 2: a four-round research session (explore, critique, specify, generate), then validation with bounded
repairs; only a valid, live mechanism is activated. Every attempt is stored and logged."""

from __future__ import annotations

from prefect import flow
from pydantic import BaseModel

from infra.resources import Resources
from infra.tracking import run_key
from mechanisms.active import ActiveMechanism, ActiveSet
from mechanisms.api import __doc__ as API_TEXT
from mechanisms.library import list_library
from search.config import SearchConfig
from search.research import (CritiqueAnswer, ExploreAnswer, SpecifyAnswer, critique_messages, explore_messages,
                             failure_modes, generate_messages, repair_messages, specify_messages)
from search.run_spec import MetaRunSpec
from search.trace import LLMUsage, Trace
from tasks.record import close_run, experiment_name
from tasks.research import (ValidationRequest, generate_code, loop_source_excerpt, publish_mechanism, research_round,
                            validate_candidate)

class ResearchOutcome(BaseModel):
    active: ActiveSet
    verdict: str
    usage: LLMUsage


REPAIRS = 3  # generate once, then up to REPAIRS repairs with the validation error fed back


def _example_source(hooks: list[str]) -> str:
    """The reference mechanism closest to the specification (most shared hooks, then the shortest): a small
    model imitates structure, so the example should have the structure wanted."""
    entries = list_library()

    def closeness(entry) -> tuple[int, int]:
        shared = sum(f"def {hook}(self" in entry.source for hook in hooks)
        return (-shared, len(entry.source))

    return min(entries, key=closeness).source


@flow(name="research", flow_run_name="{spec.meta_run_id}-g{generation}-research", validate_parameters=False)
def research(spec: MetaRunSpec, res: Resources, *, generation: int, trace: Trace, config: SearchConfig,
             active: ActiveSet, parent_run_id: str) -> ResearchOutcome:
    """The active set for the next generation (with the new mechanism if one passed validation), the verdict
    and what the session cost."""
    if res.store is None:
        raise RuntimeError("Level 2 needs the mechanism store; build resources with the store")
    tracker = res.tracker
    run_id, _ = tracker.ensure_run(
        experiment_name(spec), run_key(spec.meta_run_id, f"g{generation}", "research"),
        run_name=f"research g{generation}",
        tags={"meta_run_id": spec.meta_run_id, "kind": "research", "generation": generation, "track": "-"},
        parent_run_id=parent_run_id,
    )
    specs = res.workload.params()
    usage = LLMUsage()
    transcript: list[dict] = []
    stats = failure_modes(trace, specs)
    messages = explore_messages(api_text=API_TEXT or "", loop_source=loop_source_excerpt(),
                                active=[(m.name, m.source) for m in active.mechanisms], stats=stats,
                                workload_text=res.workload.describe(spec.budget.mode))
    verdict, accepted = "no mechanism", None

    explore = research_round(res.llm, spec, generation=generation, round_name="explore", messages=messages)
    usage, transcript = usage + explore.usage, transcript + explore.transcript
    spec_answer = None
    if explore.answer is not None:
        ideas = ExploreAnswer.model_validate(explore.answer)
        critique = research_round(res.llm, spec, generation=generation, round_name="critique",
                                  messages=critique_messages(explore.messages, ideas))
        usage, transcript = usage + critique.usage, transcript + critique.transcript
        choice = CritiqueAnswer.model_validate(critique.answer).choice if critique.answer else 0
        idea = ideas.ideas[min(choice, len(ideas.ideas) - 1)]
        specify = research_round(res.llm, spec, generation=generation, round_name="specify",
                                 messages=specify_messages(critique.messages, idea))
        usage, transcript = usage + specify.usage, transcript + specify.transcript
        if specify.answer is not None:
            spec_answer = SpecifyAnswer.model_validate(specify.answer)
    if spec_answer is None:
        verdict = "research rounds gave no usable specification"
    else:
        parents = [m.version for m in active.mechanisms if m.version != "library"]
        code_messages = generate_messages(api_text=API_TEXT or "", example_source=_example_source(spec_answer.hooks),
                                          spec=spec_answer)
        for attempt in range(REPAIRS + 1):
            generated = generate_code(res.llm, spec, generation=generation, attempt=attempt, messages=code_messages)
            usage = usage + generated.usage
            transcript.append({"round": "generate", "attempt": attempt, "answer": generated.text})
            if generated.code is None:
                code_messages = [*code_messages, {"role": "assistant", "content": generated.text[:3000]},
                                 {"role": "user", "content": f"{generated.error}. Answer with one ```python block."}]
                continue
            report = validate_candidate(ValidationRequest(meta_run_id=spec.meta_run_id, generation=generation,
                                                          attempt=attempt, name=spec_answer.name, source=generated.code),
                                        trace, specs, config, allow_weak_sandbox=res.settings.sandbox_allow_weak)
            status = "accepted" if report["ok"] else "rejected"  # code and report go to its mechanism run
            stored = publish_mechanism(res.store, tracker, spec, generation=generation, name=spec_answer.name,
                                       source=generated.code, status=status, parents=parents, model=res.llm.model,
                                       report=report, research_run_id=run_id, attempt=attempt)
            transcript.append({"round": "validate", "attempt": attempt, "ok": report["ok"],
                               "stage_failed": report.get("stage_failed"), "error": report.get("error"),
                               "version_id": stored["version_id"]})
            if report["ok"]:
                accepted = ActiveMechanism(name=spec_answer.name, version=stored["version_id"],
                                           sha256=stored["sha256"], source=generated.code, parents=parents,
                                           origin=f"{spec.meta_run_id}/g{generation}")
                verdict = f"accepted {accepted.label} after {attempt} repair(s)"
                break
            verdict = f"rejected at {report.get('stage_failed')}: {(report.get('error') or '')[:200]}"
            code_messages = repair_messages(code_messages, generated.code, report.get("stage_failed") or "?",
                                            report.get("error") or "")
    tracker.log_dict(run_id, {"transcript": transcript, "stats": stats, "verdict": verdict}, "transcript.json")
    tracker.log(run_id, tags={"verdict": verdict[:500]}, metrics={"llm_tokens": usage.total_tokens,
                                                                   "llm_seconds": usage.seconds})
    close_run(res.tracker, run_id, "FINISHED" if accepted else "FAILED")
    return ResearchOutcome(active=active.with_added(accepted) if accepted is not None else active, verdict=verdict,
                           usage=usage)
