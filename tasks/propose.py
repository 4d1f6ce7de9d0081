"""The `propose` task: ask the LLM for candidate edits, validate each answer, re-ask with the error (bounded)."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from infra.llm import LLMClient
from search.params import ParamSpec
from search.prompts import reask_messages
from search.proposal import Proposal, ProposalError, parse_proposal, proposal_schema
from search.trace import LLMUsage
from tasks.llm_call import LLMCall, ask


class ProposalRequest(BaseModel):
    """Everything that determines the proposals of one iteration (and so their cache keys)."""

    meta_run_id: str
    generation: int
    track: int
    iteration: int
    seq: int = Field(description="Ordinal of this iteration in the meta-run (the scripted provider keys on it).")
    screen_round: int = 0
    messages: list[dict[str, str]]
    specs: list[ParamSpec]
    current: dict[str, Any]
    tried: list[dict[str, Any]] = Field(default_factory=list, description="Configurations already run.")
    frozen: list[str] = Field(default_factory=list)
    n_candidates: int = Field(1, ge=1, le=4)
    attempts: int = Field(3, ge=1, le=10)
    temperature: float = 0.7

    def call_key(self, candidate: int, attempt: int) -> str:
        return f"propose/g{self.generation}/t{self.track}/i{self.iteration}/r{self.screen_round}/c{candidate}/a{attempt}"


class ProposalBatch(BaseModel):
    """The valid candidates (possibly none), what they cost, and every refusal on the way."""

    candidates: list[Proposal] = Field(default_factory=list)
    usage: LLMUsage = Field(default_factory=LLMUsage)
    attempts: int = 0
    errors: list[str] = Field(default_factory=list)


def _one_candidate(llm: LLMClient, request: ProposalRequest, candidate: int, batch: ProposalBatch) -> Proposal | None:
    messages = request.messages
    schema = proposal_schema(request.specs, request.frozen)
    # Later candidates sample a little hotter, so that several candidates differ.
    temperature = min(1.5, request.temperature + 0.15 * candidate)
    for attempt in range(request.attempts):
        call = LLMCall(
            meta_run_id=request.meta_run_id,
            call_key=request.call_key(candidate, attempt),
            purpose="propose",
            messages=messages,
            seq=request.seq,
            json_schema=schema,
            temperature=temperature,
        )
        reply = ask(llm, call)
        batch.usage = batch.usage + reply.usage
        batch.attempts += 1
        try:
            return parse_proposal(reply.text, request.specs, request.current, request.frozen, request.tried)
        except ProposalError as error:
            batch.errors.append(str(error)[:300])
            messages = reask_messages(messages, reply.text, str(error))
    return None


@task(name="propose", cache_policy=NO_CACHE, task_run_name="propose g{request.generation} i{request.iteration}")
def propose(llm: LLMClient, request: ProposalRequest) -> ProposalBatch:
    """Up to `n_candidates` validated proposals. Each LLM call is its own cached `ask`."""
    batch = ProposalBatch()
    for candidate in range(request.n_candidates):
        proposal = _one_candidate(llm, request, candidate, batch)
        if proposal is not None:
            batch.candidates.append(proposal)
    return batch
