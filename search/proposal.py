"""Proposals from the LLM: the JSON schema asked for, and the decoding every answer goes through before the one
candidate validation (search/space.py) checks its values."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from search.answers import extract_json
from search.iteration import Candidate
from search.params import ParamKind, ParamSpec, shown
from search.space import CandidateError

MAX_HYPOTHESIS_CHARS = 400
# The prompt asks for at most 12 words; the grammar closes the string after this many characters, so that a model
# that goes on explaining (25 words and more, seen on the local model) does not spend its time on it.
HYPOTHESIS_SCHEMA_CHARS = 120


class ProposalError(ValueError):
    """An answer that is not a usable proposal; the message is fed back to the LLM on the re-ask."""


def _value_schema(spec: ParamSpec) -> dict[str, Any]:
    if spec.kind is ParamKind.CHOICE:
        return {"type": "string", "enum": list(spec.choices or ())}
    if spec.kind is ParamKind.BOOL:
        return {"type": "boolean"}
    if spec.kind is ParamKind.INT:
        return {"type": "integer", "minimum": spec.low, "maximum": spec.high}
    if spec.kind is ParamKind.FLOAT:
        return {"type": "number", "minimum": spec.low, "maximum": spec.high}
    return {
        "type": "array",
        "items": {"type": "number", "minimum": spec.low, "maximum": spec.high},
        "minItems": spec.length,
        "maxItems": spec.length,
    }


def proposal_schema(editable: Iterable[ParamSpec], max_changes: int) -> dict[str, Any]:
    """JSON schema of a proposal over the editable parameters, for constrained decoding."""
    properties = {spec.name: _value_schema(spec) for spec in editable}
    return {
        "type": "object",
        "properties": {
            "changes": {
                "type": "object",
                "properties": properties,
                "additionalProperties": False,
                "minProperties": 1,
                "maxProperties": max_changes,
            },
            "hypothesis": {"type": "string", "maxLength": HYPOTHESIS_SCHEMA_CHARS},
        },
        "required": ["changes", "hypothesis"],
        "additionalProperties": False,
    }


def parse_proposal(text: str, check: Callable[[dict[str, Any]], dict[str, Any]], *, max_changes: int,
                   proposed_by: str = "llm") -> Candidate:
    """Decode an LLM answer into a Candidate, or raise ProposalError with a message the LLM can act on. `check` is
    the candidate validation of the decision point (ranges, frozen and fixed names, constraints, repeats)."""
    try:
        data = extract_json(text)
    except ValueError as error:
        raise ProposalError(str(error)) from error
    if not isinstance(data, dict):
        raise ProposalError(f"expected a JSON object with 'changes' and 'hypothesis', got {type(data).__name__}")
    unexpected = set(data) - {"changes", "hypothesis"}
    if unexpected:
        raise ProposalError(f"unexpected keys {sorted(shown(k) for k in unexpected)}; use only 'changes' and 'hypothesis'")
    changes = data.get("changes")
    if not isinstance(changes, dict) or not changes:
        raise ProposalError("'changes' must be a non-empty object of PARAM: value")
    if len(changes) > max_changes:
        raise ProposalError(f"{len(changes)} changes proposed; propose 1 to {max_changes}")
    hypothesis = data.get("hypothesis", "")
    if not isinstance(hypothesis, str):
        raise ProposalError("'hypothesis' must be a string")
    try:
        effective = check(changes)
    except CandidateError as error:
        raise ProposalError(str(error)) from error
    return Candidate(changes=effective, hypothesis=hypothesis.strip()[:MAX_HYPOTHESIS_CHARS], proposed_by=proposed_by)
