"""Level 2's parsing of the local model's answers: a looping specification is cut to a few distinct names, code cut
off at the token cap is named as such, and the skeleton stays short."""

from __future__ import annotations

import pytest

from mechanisms.api import HOOK_DOCS
from search.research import MAX_STATE_NAMES, SpecifyAnswer, extract_code, repeated_line, skeleton

LOOPING_STATE = "current_config, best_value, trace, " + ", ".join(["current_trace_value"] * 60)


def test_a_looping_state_list_becomes_a_few_distinct_names() -> None:
    spec = SpecifyAnswer(name="Diverse Noise", hooks=["propose"], state=LOOPING_STATE, behaviour="x")
    assert spec.state == "current_config, best_value, trace, current_trace_value"
    assert len(spec.state.split(", ")) <= MAX_STATE_NAMES
    assert spec.name == "diverse_noise"


def test_repeated_sentences_of_the_behaviour_are_said_once() -> None:
    spec = SpecifyAnswer(name="m", hooks=["propose"], behaviour="Propose untried. Propose untried. Then stop.")
    assert spec.behaviour == "Propose untried. Then stop."


def test_the_skeleton_shows_the_state_names_and_one_body_per_hook() -> None:
    spec = SpecifyAnswer(name="m", hooks=["propose"], state=LOOPING_STATE, behaviour="b")
    text = skeleton(spec, HOOK_DOCS)
    assert "current_trace_value" in text and text.count("current_trace_value") == 1
    assert text.count("return None") == 2  # propose, and observe (added because there is state)


def test_code_cut_off_in_a_loop_is_named_as_such() -> None:
    answer = "```python\nclass M:\n    def __init__(self):\n        self.state = {\n" + '            "a": None,\n' * 40
    with pytest.raises(ValueError, match='repeats `"a": None,` 40 times and was cut off'):
        extract_code(answer)


def test_code_in_an_unclosed_fence_is_taken_without_the_fence() -> None:
    code = extract_code("```python\nclass M:\n    name = 'm'\n")
    assert code == "class M:\n    name = 'm'\n"


def test_repeated_lines_that_still_parse_are_kept_for_validation() -> None:
    body = "".join(f"        self.state['k{i}'] = None\n" for i in range(3)) + '        x = "same line here"\n' * 12
    code = extract_code(f"```python\nclass M:\n    def __init__(self):\n{body}```")
    assert "same line here" in code
    assert repeated_line(code) == ('x = "same line here"', 12)
