"""Proposal answers from the LLM: schema, decoding, and the one candidate validation, with messages fed back."""

from __future__ import annotations

import json

import pytest

from search.config import SearchConfig
from search.proposal import ProposalError, parse_proposal, proposal_schema
from search.space import SearchSpace
from tests.unit.script_fixture import SCRIPT
from tests.unit.traces import build_trace, ok, request_for
from workloads.hyperblock import parse_block

BLOCK = parse_block(SCRIPT)
SPACE = SearchSpace(params=BLOCK.params)
MAX_CHANGES = 3


def answer(changes: dict, hypothesis: str = "why") -> str:
    return json.dumps({"changes": changes, "hypothesis": hypothesis})


def parse(text: str, trace=None, **config):
    request = request_for(trace or build_trace([]), SPACE, SearchConfig(**config))
    return parse_proposal(text, request.check, max_changes=MAX_CHANGES)


def test_valid_answer_becomes_canonical_candidate() -> None:
    candidate = parse(answer({"DEPTH": 6.0, "ADAM_BETAS": [0.8, 0.99]}))
    assert candidate.changes == {"DEPTH": 6, "ADAM_BETAS": [0.8, 0.99]}
    assert candidate.hypothesis == "why" and candidate.proposed_by == "llm"


def test_markdown_fence_is_tolerated() -> None:
    text = "```json\n" + answer({"DEPTH": 2}) + "\n```"
    assert parse(text).changes == {"DEPTH": 2}


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
    with pytest.raises(ProposalError) as caught:
        parse(text)
    assert message in str(caught.value)


def test_frozen_parameter_in_answer_is_refused() -> None:
    with pytest.raises(ProposalError, match="frozen"):
        parse(answer({"DEPTH": 2}), frozen=("DEPTH",))


def test_schema_lists_only_editable_params_with_ranges() -> None:
    schema = proposal_schema(SPACE.editable(["USE_BIAS"]), MAX_CHANGES)
    properties = schema["properties"]["changes"]["properties"]
    assert "USE_BIAS" not in properties
    assert properties["DEPTH"] == {"type": "integer", "minimum": 1, "maximum": 8}
    assert properties["OPTIMIZER"]["enum"] == ["adamw", "muon"]
    assert properties["ADAM_BETAS"]["minItems"] == 2
    assert schema["properties"]["changes"]["maxProperties"] == MAX_CHANGES
    assert schema["properties"]["hypothesis"]["maxLength"] == 120  # 12 words and some: the answer stays short


def test_a_configuration_already_tried_is_refused() -> None:
    trace = build_trace([({"DEPTH": 2}, ok(2.9), False)])
    with pytest.raises(ProposalError, match="already tried"):
        parse(answer({"DEPTH": 2}), trace)
    assert parse(answer({"DEPTH": 3}), trace).changes == {"DEPTH": 3}
