"""The LLM proposer: ask for candidate edits at a decision point, validate each answer, re-ask with the error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prefect import task
from prefect.cache_policies import NO_CACHE

from infra.llm import LLMClient
from search.context import DecisionPoint
from search.iteration import Candidate, ProposalBatch, ProposalRequest
from search.params import same_value
from search.prompt_budget import prompt_budget
from search.prompts import proposal_messages
from search.proposal import parse_proposal, proposal_schema
from tasks.llm_call import converse

TEMPERATURE_STEP = 0.15  # later candidates of one round sample hotter, so that they differ
# A proposal is one small JSON object: 30-70 tokens, and the schema (at most max_changes values, a hypothesis of
# 120 characters) bounds it near 100.
PROPOSAL_MAX_TOKENS = 256


def call_key(request: ProposalRequest, candidate: int) -> str:
    point = request.point
    return f"propose/g{point.generation}/t{point.track}/i{point.iteration}/r{request.screen_round}/c{candidate}"


@task(name="propose", cache_policy=NO_CACHE, task_run_name="propose g{request.point.generation} i{request.point.iteration}")
def propose(llm: LLMClient, request: ProposalRequest, workload_text: str, program: str, attempts: int,
            run_id: str | None = None) -> ProposalBatch:
    """Up to `request.n_candidates` validated candidates. Each LLM call is its own cached `ask`. The prompt is
    fitted to the model's context window; one that still overflows is a refused answer (the hybrid then falls back
    to the optimiser's suggestions), never a failed run."""
    batch = ProposalBatch()
    config = request.point.config
    schema = proposal_schema(request.space.editable(config.frozen), config.max_changes)
    budget = prompt_budget(llm.context_window(), PROPOSAL_MAX_TOKENS)
    for candidate in range(request.n_candidates):
        asked = request.model_copy(update={"offered": [*request.offered, *batch.candidates]})
        exchange = converse(
            llm, meta_run_id=request.point.meta_run_id, call_key=call_key(request, candidate), purpose="propose",
            messages=proposal_messages(asked, workload_text=workload_text, program=program, token_budget=budget),
            parse=lambda text, asked=asked: parse_proposal(text, asked.check, max_changes=config.max_changes),
            attempts=attempts, seq=request.seq, json_schema=schema, max_tokens=PROPOSAL_MAX_TOKENS,
            temperature=min(1.5, request.temperature + TEMPERATURE_STEP * candidate), run_id=run_id,
            refuse_overflow=True,
        )
        batch.usage, batch.attempts = batch.usage + exchange.usage, batch.attempts + exchange.attempts
        batch.errors += exchange.errors
        if exchange.value is not None:
            batch.candidates.append(exchange.value)
        if exchange.overflow:  # the next candidate's prompt (listing this round's offers) is longer still
            break
    return batch


@dataclass(frozen=True)
class LLMProposer:
    """The inner loop's proposer when the LLM proposes (the `propose` task bound to the meta-run's LLM and texts)."""

    llm: LLMClient
    workload_text: str
    program: str = ""
    attempts: int = 3
    run_for: Callable[[DecisionPoint], str | None] | None = None  # the iteration's tracking run (its LLM calls)

    def __call__(self, request: ProposalRequest) -> ProposalBatch:
        run_id = self.run_for(request.point) if self.run_for is not None else None
        return propose(self.llm, request, self.workload_text, self.program, self.attempts, run_id)


@dataclass(frozen=True)
class HybridProposer:
    """The published winner: a classical optimiser (TPE or CMA-ES, in this trusted process) keeps its own state over
    the trace; its suggestions are offered to the LLM, which picks, edits or overrides them. The batch is the LLM's
    candidates first, then the suggestions it did not take (a screen hook may still choose those)."""

    llm: LLMProposer
    sampler: str = "tpe"
    suggestions: int = 2

    def __call__(self, request: ProposalRequest) -> ProposalBatch:
        from search.tpe_proposal import optimiser_note, optimiser_suggestions

        kind = "cmaes" if self.sampler == "cmaes" else "tpe"
        suggested = optimiser_suggestions(request, kind, request.point.hook_seed + request.screen_round,
                                          count=self.suggestions)
        asked = request.model_copy(update={"suggested": suggested.candidates,
                                           "optimiser_note": optimiser_note(request, kind)})
        batch = self.llm(asked)
        picked = [_label_pick(c, suggested.candidates, kind) for c in batch.candidates]
        untaken = [s for s in suggested.candidates if not any(_same(s, c) for c in batch.candidates)]
        return ProposalBatch(candidates=[*picked, *untaken], usage=batch.usage, attempts=batch.attempts,
                             errors=[*suggested.errors, *batch.errors])


def _same(a: Candidate, b: Candidate) -> bool:
    return a.changes.keys() == b.changes.keys() and all(same_value(a.changes[k], b.changes[k]) for k in a.changes)


def _label_pick(candidate: Candidate, suggested: list[Candidate], kind: str) -> Candidate:
    """An LLM answer that repeats a suggestion as it is: credited to both."""
    if any(_same(candidate, s) for s in suggested):
        return candidate.model_copy(update={"proposed_by": f"llm+{kind}"})
    return candidate
