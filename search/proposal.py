"""Proposals from the LLM: the JSON schema asked for, and the validation every answer goes through again."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from search.answers import extract_json
from search.trace import same_config
from search.params import ParamError, ParamKind, ParamSpec, ParamValue, json_value, same_value, shown, validate_changes

MAX_HYPOTHESIS_CHARS = 400
MAX_CHANGES = 3


class ProposalError(ValueError):
    """An answer that is not a usable proposal; the message is fed back to the LLM on the re-ask."""


class Proposal(BaseModel):
    """1-3 validated changes of hyperparameter values, and why."""

    changes: dict[str, Any] = Field(description="NAME -> canonical value (JSON form)")
    hypothesis: str = ""


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


def proposal_schema(specs: Iterable[ParamSpec], frozen: Iterable[str] = ()) -> dict[str, Any]:
    """JSON schema of a proposal over the editable (non-frozen) parameters, for constrained decoding."""
    frozen_set = set(frozen)
    properties = {spec.name: _value_schema(spec) for spec in specs if spec.name not in frozen_set}
    return {
        "type": "object",
        "properties": {
            "changes": {
                "type": "object",
                "properties": properties,
                "additionalProperties": False,
                "minProperties": 1,
                "maxProperties": MAX_CHANGES,
            },
            "hypothesis": {"type": "string", "maxLength": MAX_HYPOTHESIS_CHARS},
        },
        "required": ["changes", "hypothesis"],
        "additionalProperties": False,
    }


def parse_proposal(
    text: str,
    specs: list[ParamSpec],
    current: dict[str, Any],
    frozen: Iterable[str] = (),
    tried: Iterable[dict[str, Any]] = (),
) -> Proposal:
    """Validate an LLM answer into a Proposal, or raise ProposalError with a message the LLM can act on.
    A configuration already in `tried` is refused: under a deterministic budget it would measure the same."""
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
    if len(changes) > MAX_CHANGES:
        raise ProposalError(f"{len(changes)} changes proposed; propose 1 to {MAX_CHANGES}")
    hypothesis = data.get("hypothesis", "")
    if not isinstance(hypothesis, str):
        raise ProposalError("'hypothesis' must be a string")
    try:
        clean: dict[str, ParamValue] = validate_changes(specs, changes, frozen)
    except ParamError as error:
        raise ProposalError(str(error)) from error
    effective = {name: json_value(value) for name, value in clean.items() if not same_value(value, current.get(name))}
    if not effective:
        raise ProposalError("every proposed value equals the current one; propose a different value")
    candidate = {**current, **effective}
    if any(same_config(candidate, seen) for seen in tried):
        shown_changes = ", ".join(f"{k}={v}" for k, v in effective.items())
        raise ProposalError(f"{shown_changes} from the current point gives a configuration that was already tried; "
                            "propose a configuration that has not been run")
    return Proposal(changes=effective, hypothesis=hypothesis.strip()[:MAX_HYPOTHESIS_CHARS])

