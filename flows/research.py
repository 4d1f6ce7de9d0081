"""Level 2: a research session (explore, critique, specify), then code generation from a skeleton, best-of-N at mixed
temperatures, validation of every sample, and bounded repairs from the sample that got furthest. The valid, live
sample that changed the most decisions on replay is activated; every sample is stored and logged."""

from __future__ import annotations

import ast

from prefect import flow
from pydantic import BaseModel, Field

from flows.inner_loop import replay_source
from infra.mlflow_schema import experiment_name, run_key, run_tags
from infra.resources import Resources
from mechanisms.active import ActiveMechanism, ActiveSet
from mechanisms.api import API_TEXT, HOOK_DOCS
from mechanisms.autofix import autofix
from mechanisms.library import list_library
from mechanisms.validate import STAGES
from search.research import (
    LOOP_TEXT,
    CritiqueAnswer,
    ExploreAnswer,
    SpecifyAnswer,
    critique_messages,
    explore_messages,
    failure_modes,
    generate_messages,
    repair_messages,
    specify_messages,
)
from search.run_spec import MetaRunSpec
from search.trace import LLMUsage, Trace
from tasks.record import close_run
from tasks.research import (
    CodeResult,
    ValidationRequest,
    generate_samples,
    publish_mechanism,
    research_round,
    validate_candidate,
)

AUTOFIX_SAMPLE = 50  # the autofixed variant of sample n is sample 50 + n (at most 8 samples per round)


class ResearchOutcome(BaseModel):
    active: ActiveSet
    verdict: str
    usage: LLMUsage
    accepted: str | None = Field(None, description="name@VersionId of the activated mechanism, if any.")
    samples: list[dict] = Field(default_factory=list, description="Per validated sample: round, sample, the stage it "
                                "failed at (None: valid), decisions changed on replay, hooks.")


class Attempt(BaseModel):
    """One validated sample: how far it got, and on replay how many decisions it changed."""

    round_index: int
    sample: int
    code: str
    report: dict = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.report.get("ok"))

    @property
    def progress(self) -> int:
        """Stages passed (all of them for a valid sample): what "got furthest" means for a repair."""
        failed = self.report.get("stage_failed")
        return len(STAGES) if failed is None else STAGES.index(failed) if failed in STAGES else 0

    @property
    def decisions_changed(self) -> int:
        return int((self.report.get("liveness") or {}).get("decisions_changed") or 0)


def _example_source(hooks: list[str]) -> str:
    """The reference mechanism closest to the specification (most shared hooks, then the shortest): a small model
    imitates structure, so the example should have the structure wanted."""

    def closeness(entry) -> tuple[int, int]:
        shared = sum(f"def {hook}(self" in entry.source for hook in hooks)
        return (-shared, len(entry.source))

    return min(list_library(), key=closeness).source


def copied_example(code: str) -> str | None:
    """The name of the reference mechanism `code` copies verbatim (same syntax tree), if any."""
    try:
        tree = ast.dump(ast.parse(code))
    except SyntaxError:
        return None
    for entry in list_library():
        if ast.dump(ast.parse(entry.source)) == tree:
            return entry.name
    return None


def _copy_report(name: str) -> dict:
    error = (f"static stage failed: this is the worked example `{name}` copied verbatim; write the mechanism "
             "that was specified")
    return {"ok": False, "stage_failed": "static", "error": error, "stages": [], "liveness": {}}


def _specification(spec: MetaRunSpec, res: Resources, generation: int, trace: Trace, active: ActiveSet,
                   transcript: list[dict], run_id: str) -> tuple[SpecifyAnswer | None, LLMUsage, dict]:
    """The three JSON rounds: weaknesses from the trace statistics, the chosen idea, its specification."""
    stats = failure_modes(trace, res.workload.space)
    usage = LLMUsage()
    messages = explore_messages(api_text=API_TEXT, loop_source=LOOP_TEXT,
                                active=[(m.name, m.source) for m in active.mechanisms], stats=stats,
                                workload_text=res.workload.describe(spec.budget.mode))
    if spec.program.strip():
        messages[-1]["content"] = f"Research direction from the user: {spec.program.strip()[:1500]}\n\n" + messages[-1]["content"]
    explore = research_round(res.llm, spec, generation=generation, round_name="explore", messages=messages,
                             run_id=run_id)
    usage, transcript[:] = usage + explore.usage, [*transcript, *explore.transcript]
    if explore.answer is None:
        return None, usage, stats
    ideas = ExploreAnswer.model_validate(explore.answer)
    critique = research_round(res.llm, spec, generation=generation, round_name="critique",
                              messages=critique_messages(explore.messages, ideas, trace.objective.describe()),
                              run_id=run_id)
    usage, transcript[:] = usage + critique.usage, [*transcript, *critique.transcript]
    choice = CritiqueAnswer.model_validate(critique.answer).choice if critique.answer else 0
    idea = ideas.ideas[min(choice, len(ideas.ideas) - 1)]
    specify = research_round(res.llm, spec, generation=generation, round_name="specify",
                             messages=specify_messages(critique.messages, idea), run_id=run_id)
    usage, transcript[:] = usage + specify.usage, [*transcript, *specify.transcript]
    return (SpecifyAnswer.model_validate(specify.answer) if specify.answer else None), usage, stats


@flow(name="research", flow_run_name="{spec.meta_run_id}-g{generation}-research", validate_parameters=False)
def research(spec: MetaRunSpec, res: Resources, *, generation: int, trace: Trace, active: ActiveSet,
             parent_run_id: str) -> ResearchOutcome:
    """The active set for the next generation (with the new mechanism if a sample passed validation), the verdict
    and what the session cost."""
    if res.store is None:
        raise RuntimeError("Level 2 needs the mechanism store; build resources with the store")
    tracker = res.tracker
    run_id, _ = tracker.ensure_run(
        experiment_name(spec.name), run_key(spec.meta_run_id, f"g{generation}", "research"),
        run_name=f"research g{generation}", tags=run_tags("research", spec.meta_run_id, generation=generation),
        parent_run_id=parent_run_id,
    )
    transcript: list[dict] = []
    specification, usage, stats = _specification(spec, res, generation, trace, active, transcript, run_id)
    verdict, accepted = "research rounds gave no usable specification", None
    attempts: list[Attempt] = []
    if specification is not None:
        parents = [m.version for m in active.mechanisms if m.version != "library"]
        prompt = generate_messages(api_text=API_TEXT, example_source=_example_source(specification.hooks),
                                   spec=specification, hook_docs=HOOK_DOCS)
        messages = prompt
        source = replay_source(spec, trace, generation)
        for round_index in range(spec.research_repairs + 1):
            samples = spec.research_samples if round_index == 0 else max(1, spec.research_samples // 2)
            results = generate_samples(res.llm, spec, generation=generation, round_index=round_index,
                                       messages=messages, samples=samples, run_id=run_id)
            round_attempts = _validated_round(spec, generation, specification.name, results, trace, res, source,
                                              round_index)
            usage = sum((r.usage for r in results), usage)
            fixed = _autofixed(results, round_attempts, trace.objective.name)
            results, round_attempts = (results + fixed, round_attempts + _validated_round(
                spec, generation, specification.name, fixed, trace, res, source, round_index))
            for result, attempt in zip(results, round_attempts):
                transcript.append({"round": "generate", "repair_round": round_index, "sample": result.sample,
                                   "temperature": result.temperature, "answer": result.text,
                                   "stage_failed": attempt.report.get("stage_failed") if attempt
                                   else ("no code" if result.code is None else "duplicate of an earlier sample"),
                                   "error": (attempt.report.get("error") if attempt else result.error)})
            valid = [a for a in round_attempts if a is not None]
            attempts += valid
            live = [a for a in valid if a.ok]
            best = max(live, key=lambda a: (a.decisions_changed, -a.sample), default=None)
            for attempt in valid:
                status = "accepted" if attempt is best else "rejected"
                stored = publish_mechanism(res.store, tracker, spec, generation=generation, name=specification.name,
                                           source=attempt.code, status=status, parents=parents, model=res.llm.model,
                                           report=attempt.report, research_run_id=run_id,
                                           attempt=attempt_id(round_index, attempt.sample))
                if attempt is best:
                    accepted = ActiveMechanism(name=specification.name, version=stored["version_id"],
                                               sha256=stored["sha256"], source=attempt.code, parents=parents,
                                               origin=f"{spec.meta_run_id}/g{generation}")
            if accepted is not None:
                verdict = (f"accepted {accepted.label} (round {round_index}, {len(live)} of {len(valid)} samples valid, "
                           f"{best.decisions_changed if best else 0} decisions changed on replay)")
                break
            if not attempts:
                verdict = "no sample held a usable class"
                messages = [*prompt, {"role": "user", "content": "Answer with the complete class in one ```python block."}]
                continue
            furthest = max(attempts, key=lambda a: (a.progress, -a.round_index, -a.sample))
            verdict = f"rejected at {furthest.report.get('stage_failed')}: {(furthest.report.get('error') or '')[:200]}"
            messages = repair_messages(prompt, furthest.code, furthest.report.get("stage_failed") or "?",
                                       furthest.report.get("error") or "")
    tracker.log_dict(run_id, {"transcript": transcript, "stats": stats, "verdict": verdict}, "transcript.json")
    tracker.log(run_id, tags={"verdict": verdict[:500]},
                metrics={"llm_tokens": usage.total_tokens, "llm_seconds": usage.seconds, "samples": len(attempts),
                         "valid_samples": sum(a.ok for a in attempts)})
    close_run(res.tracker, run_id, "FINISHED" if accepted else "FAILED")
    sample_reports = [{"round": a.round_index, "sample": a.sample, "stage_failed": a.report.get("stage_failed"),
                "decisions_changed": a.decisions_changed, "hooks": (a.report.get("liveness") or {}).get("hooks", [])}
               for a in attempts]
    return ResearchOutcome(active=active.with_added(accepted) if accepted is not None else active, verdict=verdict,
                           usage=usage, accepted=accepted.label if accepted else None, samples=sample_reports)


def attempt_id(round_index: int, sample: int) -> int:
    """A sample's number within the session (autofixed variants are samples AUTOFIX_SAMPLE + n)."""
    return round_index * 100 + sample


def _autofixed(results: list[CodeResult], attempts: list[Attempt | None], metric_name: str) -> list[CodeResult]:
    """The mechanically fixed variant of every sample that failed on a mistake autofix knows (no LLM call)."""
    seen = {r.code for r in results if r.code is not None}
    fixed = []
    for result, attempt in zip(results, attempts):
        if attempt is None or attempt.ok or result.code is None:
            continue
        repaired = autofix(result.code, metric_name)
        if repaired is None or repaired[0] in seen:
            continue
        seen.add(repaired[0])
        fixed.append(CodeResult(sample=AUTOFIX_SAMPLE + result.sample, temperature=result.temperature,
                                code=repaired[0], text=f"# autofix: {'; '.join(repaired[1])}\n{repaired[0]}"))
    return fixed


def _validated_round(spec: MetaRunSpec, generation: int, name: str, results: list[CodeResult], trace: Trace,
                     res: Resources, source, round_index: int) -> list[Attempt | None]:
    """One attempt per sample; a sample repeating an earlier one's code is validated and stored once."""
    seen: set[str] = set()
    attempts: list[Attempt | None] = []
    for result in results:
        if result.code is not None and result.code in seen:
            attempts.append(None)
            continue
        if result.code is not None:
            seen.add(result.code)
        attempts.append(_validated(spec, generation, name, result, trace, res, source, round_index))
    return attempts


def _validated(spec: MetaRunSpec, generation: int, name: str, result: CodeResult, trace: Trace, res: Resources,
               source, round_index: int) -> Attempt | None:
    """The sample's validation report (cached by its code), or None when it held no class."""
    if result.code is None:
        return None
    copied = copied_example(result.code)
    report = _copy_report(copied) if copied else validate_candidate(
        ValidationRequest(meta_run_id=spec.meta_run_id, generation=generation, attempt=attempt_id(round_index, result.sample),
                          name=name, source=result.code),
        trace, res.workload.space, source, allow_weak_sandbox=res.settings.sandbox_allow_weak)
    return Attempt(round_index=round_index, sample=result.sample, code=result.code, report=report)
