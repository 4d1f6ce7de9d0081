"""Proposal answers from the LLM: schema, decoding, validation, and the messages fed back on refusal."""

from __future__ import annotations

import json

import pytest

from search.proposal import MAX_CHANGES, ProposalError, parse_proposal, proposal_schema
from tests.unit.script_fixture import SCRIPT
from workloads.hyperblock import current_values, parse_params

SPECS = parse_params(SCRIPT)
CURRENT = {k: list(v) if isinstance(v, tuple) else v for k, v in current_values(SCRIPT).items()}


def answer(changes: dict, hypothesis: str = "why") -> str:
    return json.dumps({"changes": changes, "hypothesis": hypothesis})


def test_valid_answer_becomes_canonical_proposal() -> None:
    proposal = parse_proposal(answer({"DEPTH": 6.0, "ADAM_BETAS": [0.8, 0.99]}), SPECS, CURRENT)
    assert proposal.changes == {"DEPTH": 6, "ADAM_BETAS": [0.8, 0.99]}
    assert proposal.hypothesis == "why"


def test_markdown_fence_is_tolerated() -> None:
    text = "```json\n" + answer({"DEPTH": 2}) + "\n```"
    assert parse_proposal(text, SPECS, CURRENT).changes == {"DEPTH": 2}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no json here", "no JSON object"),
        ("{not json}", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({"changes": {}, "hypothesis": ""}), "non-empty object"),
        (json.dumps({"changes": {"DEPTH": 2}, "hypothesis": "", "code": "import os"}), "unexpected keys"),
        (answer({"DEPTH": 2, "MATRIX_LR": 0.01, "OPTIMIZER": "muon", "USE_BIAS": True}), f"propose 1 to {MAX_CHANGES}"),
        (answer({"DEPTH": 4}), "equals the current one"),
        (answer({"DEPTH": "__import__('os').system('rm -rf /')"}), "expected an int"),
        (json.dumps({"changes": {"DEPTH": 2}, "hypothesis": ["list"]}), "'hypothesis' must be a string"),
        ("x" * 30_000, "limit is"),
    ],
)
def test_bad_answers_raise_actionable_errors(text: str, message: str) -> None:
    with pytest.raises(ProposalError, match=None) as caught:
        parse_proposal(text, SPECS, CURRENT)
    assert message in str(caught.value)


def test_frozen_parameter_in_answer_is_refused() -> None:
    with pytest.raises(ProposalError, match="frozen"):
        parse_proposal(answer({"DEPTH": 2}), SPECS, CURRENT, frozen=["DEPTH"])


def test_schema_lists_only_editable_params_with_ranges() -> None:
    schema = proposal_schema(SPECS, frozen=["USE_BIAS"])
    properties = schema["properties"]["changes"]["properties"]
    assert "USE_BIAS" not in properties
    assert properties["DEPTH"] == {"type": "integer", "minimum": 1, "maximum": 8}
    assert properties["OPTIMIZER"]["enum"] == ["adamw", "muon"]
    assert properties["ADAM_BETAS"]["minItems"] == 2
    assert schema["properties"]["changes"]["maxProperties"] == MAX_CHANGES


def test_a_configuration_already_tried_is_refused() -> None:
    tried = [{**CURRENT, "DEPTH": 2}]
    with pytest.raises(ProposalError, match="already tried"):
        parse_proposal(answer({"DEPTH": 2}), SPECS, CURRENT, tried=tried)
    assert parse_proposal(answer({"DEPTH": 3}), SPECS, CURRENT, tried=tried).changes == {"DEPTH": 3}
