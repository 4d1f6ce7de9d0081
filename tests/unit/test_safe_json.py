"""Bounded JSON decoding of untrusted text (search/safe_json): size, depth, NaN/Infinity, duplicate keys,
and its use on LLM answers (search/answers.extract_json)."""

from __future__ import annotations

import json

import pytest

from search.answers import MAX_ANSWER_DEPTH, extract_json
from search.proposal import ProposalError, parse_proposal
from search.safe_json import loads_bounded, nesting_depth


def test_plain_json_decodes_as_json_loads_does():
    text = json.dumps({"a": [1, 2.5, {"b": None}], "c": "x]}\\\"[{", "d": True})
    assert loads_bounded(text, 1000, 5) == json.loads(text)
    assert loads_bounded(text.encode(), 1000, 5) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": NaN}', "contains NaN"),
        ('[Infinity]', "contains Infinity"),
        ('[-Infinity]', "contains -Infinity"),
        ('{"a": 1, "a": 2}', "repeats the key 'a'"),
        ('{"x": {"b": 1, "b": 1}}', "repeats the key 'b'"),
        ('[1, 2', "not valid JSON"),
        ("[" * 11 + "]" * 11, "nested deeper than 10 levels"),
        ('{"k": ' * 11 + "1" + "}" * 11, "nested deeper than 10 levels"),
        ("x" * 2000, "the limit is 1000"),
    ],
)
def test_untrusted_json_is_refused_with_a_short_message(text, message):
    with pytest.raises(ValueError, match=None) as caught:
        loads_bounded(text, 1000, 10)
    assert message in str(caught.value) and len(str(caught.value)) < 120


def test_brackets_and_escaped_quotes_inside_strings_do_not_count_as_nesting():
    assert nesting_depth('["[[[[", "\\"[[[", {"k": "]]]"}]') == 2
    assert loads_bounded('["' + "[" * 500 + '"]', 1000, 2) == ["[" * 500]


def test_depth_is_measured_without_recursion_far_past_the_interpreter_limit():
    assert nesting_depth("[" * 200_000, stop_above=None) == 200_000
    with pytest.raises(ValueError, match="nested deeper than 64"):
        loads_bounded("[" * 200_000 + "]" * 200_000, 10**6, 64)


def test_bytes_that_are_not_utf8_are_refused():
    with pytest.raises(ValueError, match="not UTF-8"):
        loads_bounded(b'["\xff"]', 100, 5)


def test_a_6_kb_deeply_nested_llm_answer_is_a_refused_proposal_not_a_recursion_error():
    """Issue 15, finding 3: extract_json caught only JSONDecodeError, and json.loads recursed past the limit."""
    text = '{"changes": ' + "[" * 3000 + "]" * 3000 + ', "hypothesis": "deep"}'
    assert 6000 <= len(text) < 7000
    with pytest.raises(ProposalError, match=f"nested deeper than {MAX_ANSWER_DEPTH} levels"):
        parse_proposal(text, lambda changes: changes, max_changes=3)


def test_a_proposal_with_a_duplicate_key_is_refused():
    with pytest.raises(ValueError, match="repeats the key 'changes'"):
        extract_json('{"changes": {"DEPTH": 2}, "changes": {"DEPTH": 3}, "hypothesis": "x"}')
