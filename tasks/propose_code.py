"""The free-form edit proposer (`edits = code`): ask for SEARCH/REPLACE blocks against the current script, validate
each answer (search/code_edits.py, then the workload's block rules), re-ask with the refusal; and one fix attempt
for an edit whose script crashed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from prefect import task
from prefect.cache_policies import NO_CACHE

from infra.llm import LLMClient
from search.code_edits import SOURCE_KEY, apply_blocks, finish_edit, make_edit, parse_answer, program_key
from search.code_prompt import REASK_TEXT, code_messages, fix_messages
from search.context import DecisionPoint
from search.iteration import Candidate, ProposalBatch, ProposalRequest
from search.trace import RunOutcome
from tasks.llm_call import converse
from tasks.propose import TEMPERATURE_STEP, call_key
from workloads.base import Workload

CODE_MAX_TOKENS = 4096  # a few blocks of a few dozen lines each


def _tried(request: ProposalRequest, workload: Workload) -> tuple[dict[str, str], dict[str, str]]:
    """Program keys and normalised-diff keys already run (or offered this round), each with where: a repeat is
    refused like a repeated config."""
    programs = {program_key(workload.editable_source()): "the baseline"}
    diffs: dict[str, str] = {}
    edits = [(f"#{index}", edit) for index, edit in request.local.code_edits()]
    edits += [("a candidate of this round", c.code) for c in request.offered if c.code is not None]
    for where, edit in edits:
        programs.setdefault(edit.program_key, where)
        diffs.setdefault(edit.diff_key, where)
    return programs, diffs


def code_candidate(text: str, request: ProposalRequest, workload: Workload, base: str) -> Candidate:
    """The candidate an answer makes from `base` (the current point's script); ValueError when it is refused."""
    programs, diffs = _tried(request, workload)
    edit, hypothesis = make_edit(base, text, script_name=workload.script_name, read_only=workload.read_only_files,
                                 tried=programs, tried_diffs=diffs)
    block = workload.code_changes(edit.source, request.state.current.config)
    return Candidate(changes={**block, SOURCE_KEY: edit.key}, hypothesis=hypothesis, code=edit)


def fixed_candidate(text: str, request: ProposalRequest, workload: Workload, base: str, crashed: Candidate) -> Candidate:
    """The fix an answer makes to a crashed edit: blocks against the crashed script, recorded as one edit of `base`."""
    if crashed.code is None:
        raise ValueError("only a free-form edit can be fixed")
    blocks, hypothesis = parse_answer(text)
    edited = apply_blocks(crashed.code.source, blocks, script_name=workload.script_name,
                          read_only=workload.read_only_files)
    programs, diffs = _tried(request, workload)
    programs.setdefault(crashed.code.program_key, "the version that crashed")
    edit = finish_edit(base, edited, blocks=len(blocks), script_name=workload.script_name, tried=programs,
                       tried_diffs=diffs).model_copy(update={"fixed_after": crashed.code.key})
    block = workload.code_changes(edit.source, request.state.current.config)
    return Candidate(changes={**block, SOURCE_KEY: edit.key}, hypothesis=hypothesis or crashed.hypothesis,
                     proposed_by=crashed.proposed_by, code=edit)


@task(name="propose-code", cache_policy=NO_CACHE, task_run_name="propose code g{request.point.generation} "
      "i{request.point.iteration}")
def propose_code(llm: LLMClient, request: ProposalRequest, workload: Workload, base: str, workload_text: str,
                 program: str, attempts: int, run_id: str | None = None) -> ProposalBatch:
    """Up to `request.n_candidates` validated free-form edits of `base`. Each LLM call is its own cached `ask`."""
    batch = ProposalBatch()
    for candidate in range(request.n_candidates):
        asked = request.model_copy(update={"offered": [*request.offered, *batch.candidates]})
        exchange = converse(
            llm, meta_run_id=request.point.meta_run_id, call_key=call_key(request, candidate), purpose="propose",
            messages=code_messages(asked, source=base, script_name=workload.script_name,
                                   read_only=workload.read_only_files, workload_text=workload_text, program=program),
            parse=lambda text, asked=asked: code_candidate(text, asked, workload, base),
            attempts=attempts, seq=request.seq, max_tokens=CODE_MAX_TOKENS, again=REASK_TEXT,
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


@task(name="fix-code", cache_policy=NO_CACHE, task_run_name="fix code g{request.point.generation} "
      "i{request.point.iteration}")
def fix_code(llm: LLMClient, request: ProposalRequest, workload: Workload, base: str, crashed: Candidate,
             outcome: RunOutcome, attempts: int, run_id: str | None = None) -> ProposalBatch:
    """At most one fixed edit of a crashed one (its answer re-asked when invalid, like any proposal)."""
    exchange = converse(
        llm, meta_run_id=request.point.meta_run_id, call_key=f"{call_key(request, 0)}/fix", purpose="fix",
        messages=fix_messages(crashed, outcome, script_name=workload.script_name, read_only=workload.read_only_files,
                              objective=request.state.objective),
        parse=lambda text: fixed_candidate(text, request, workload, base, crashed),
        attempts=attempts, seq=request.seq, max_tokens=CODE_MAX_TOKENS, again=REASK_TEXT,
        temperature=request.temperature, run_id=run_id, refuse_overflow=True,
    )
    return ProposalBatch(candidates=[exchange.value] if exchange.value is not None else [], usage=exchange.usage,
                         attempts=exchange.attempts, errors=exchange.errors)


@dataclass(frozen=True)
class CodeProposer:
    """The inner loop's proposer with edits = code; the edited scripts it gets back are kept by the workload (the
    trainer finds them by source key; the trace keeps them for a resume)."""

    llm: LLMClient
    workload: Workload
    workload_text: str
    program: str = ""
    attempts: int = 3
    run_for: Callable[[DecisionPoint], str | None] | None = None

    def _base(self, request: ProposalRequest) -> str:
        current = request.state.current.config
        return self.workload.source_for(current)

    def _kept(self, batch: ProposalBatch) -> ProposalBatch:
        for candidate in batch.candidates:
            if candidate.code is not None:
                self.workload.remember_source(candidate.code.source)
        return batch

    def __call__(self, request: ProposalRequest) -> ProposalBatch:
        run_id = self.run_for(request.point) if self.run_for is not None else None
        return self._kept(propose_code(self.llm, request, self.workload, self._base(request), self.workload_text,
                                       self.program, self.attempts, run_id))

    def fix(self, request: ProposalRequest, crashed: Candidate, outcome: RunOutcome) -> ProposalBatch:
        run_id = self.run_for(request.point) if self.run_for is not None else None
        return self._kept(fix_code(self.llm, request, self.workload, self._base(request), crashed, outcome,
                                   self.attempts, run_id))
