"""Level 2's parsing of the local model's answers: a looping specification is cut to a few distinct names, code cut
off at the token cap is named as such, and the skeleton stays short."""

from __future__ import annotations

import pytest

from mechanisms.api import HOOK_DOCS
from search.research import (
    CODE_STOP,
    HOLE,
    MAX_STATE_NAMES,
    SpecifyAnswer,
    decode_code_answer,
    extract_code,
    repeated_line,
    skeleton,
)

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
    # a hole per body, propose and observe (added because there is state): with `return None` there, the skeleton
    # came back unchanged in 7 of 20 fresh samples (benchmarks/results/skeleton-echo)
    assert text.count(HOLE) == 2 and "return None" not in text


def test_the_skeleton_points_to_the_hook_contracts_instead_of_repeating_them() -> None:
    # The model copied the skeleton's docstrings into every sample: the full contracts were ~40% of its tokens.
    from mechanisms.api import API_TEXT
    from search.research import generate_messages

    spec = SpecifyAnswer(name="m", hooks=["plan", "propose", "screen", "accept"], state="n", behaviour="b")
    text = skeleton(spec, HOOK_DOCS)
    prompt = generate_messages(api_text=API_TEXT, example_source="class E: pass", spec=spec, hook_docs=HOOK_DOCS)
    for hook, (_, doc) in HOOK_DOCS.items():
        assert doc not in text and prompt[-1]["content"].count(doc) == 1  # once, in the API text
        assert f"Return what the API says for {hook}, or None." in text
    assert '"""Put concrete candidates on the table. Return' in text


def test_code_cut_off_in_a_loop_is_named_as_such() -> None:
    answer = "```python\nclass M:\n    def __init__(self):\n        self.state = {\n" + '            "a": None,\n' * 40
    with pytest.raises(ValueError, match='repeats `"a": None,` 40 times and was cut off'):
        extract_code(answer)


def test_code_in_an_unclosed_fence_is_taken_without_the_fence() -> None:
    code = extract_code("```python\nclass M:\n    name = 'm'\n")
    assert code == "class M:\n    name = 'm'\n"


def test_a_code_answer_cut_at_the_token_cap_is_refused_even_when_its_class_parses() -> None:
    cut = "```python\nclass M:\n    name = 'm'\n\n    def propose(self, ctx):\n        return None\n"
    code, error = decode_code_answer(cut, "length", 1000)
    assert code is None and error is not None and "cut off at 1000 tokens" in error
    # The same text ended by the closing-fence stop (or by the model) is a finished class.
    assert decode_code_answer(cut, "stop", 1000) == (extract_code(cut), None)
    # Cut at the cap after the closing fence (prose ran on): the class itself was finished.
    assert decode_code_answer(cut + "```\nThis mechanism ...", "length", 1000)[1] is None


def test_a_looping_answer_cut_at_the_cap_gets_the_loop_message() -> None:
    answer = "```python\nclass M:\n    def __init__(self):\n        self.state = {\n" + '            "a": None,\n' * 40
    assert "repeats" in (decode_code_answer(answer, "length", 1000)[1] or "")


def test_the_code_stop_ends_at_the_closing_fence_not_the_opening_one() -> None:
    answer = "```python\nclass M:\n    name = 'm'\n```\nThis class ..."
    stop = CODE_STOP[0]
    assert answer.index(stop) > answer.index("class M")
    assert extract_code(answer[:answer.index(stop)]) == "class M:\n    name = 'm'\n"


def test_repeated_lines_that_still_parse_are_kept_for_validation() -> None:
    body = "".join(f"        self.state['k{i}'] = None\n" for i in range(3)) + '        x = "same line here"\n' * 12
    code = extract_code(f"```python\nclass M:\n    def __init__(self):\n{body}```")
    assert "same line here" in code
    assert repeated_line(code) == ('x = "same line here"', 12)


# -- what a mechanism can change, and the shape of a live hook ------------------------------------------
# Both tinygpt sessions of the first local-model yield run specified "increase the budget by adding more
# training steps"; every sample was inert. The prompts now say what is out of reach, and the repair of an
# inert sample shows a live hook.


def test_the_explore_prompt_says_what_a_mechanism_cannot_change_and_asks_for_one_idea() -> None:
    from search.research import OUT_OF_REACH, explore_messages

    explore = explore_messages(api_text="api", loop_source="loop", active=[], stats={}, workload_text="w",
                               objective_text="lower loss")
    assert OUT_OF_REACH in explore[-1]["content"] and "training budget" in OUT_OF_REACH
    # The critique round is gone (its choice came before its reason): explore chooses, by the objective.
    assert "the one weakness" in explore[-1]["content"] and "lower loss" in explore[-1]["content"]


def test_the_explore_prompt_says_which_hooks_can_change_the_runs_decisions_under_its_proposer() -> None:
    from search.research import explore_messages

    def prompt(proposer: str) -> str:
        return explore_messages(api_text="api", loop_source="loop", active=[], stats={}, workload_text="w",
                                proposer=proposer)[-1]["content"]

    for optimiser in ("tpe", "cmaes", "random"):  # they ignore a plan's advice (search/tpe_proposal.py)
        assert "plan has no effect here" in prompt(optimiser) and "propose" in prompt(optimiser)
    assert "so every hook can change" in prompt("llm") and "plan has no effect" not in prompt("hybrid")
    assert "the optimiser's suggestion the LLM did not take" in prompt("hybrid")
    assert "candidates come from" not in prompt("")  # callers that do not say keep the old prompt


# -- one shared prompt prefix -----------------------------------------------------------------------------------
# Each Level-2 prompt used to start differently after the system text, so the local model evaluated the ~1,100
# tokens of API and loop text again for explore, the fresh samples and each mutant. They now start alike.


def test_every_level2_conversation_starts_with_the_same_prefix() -> None:
    from mechanisms.api import API_TEXT, HOOK_DOCS
    from mechanisms.population import build_population, plan_mutations
    from mechanisms.research_session import example_source, mutant_prompt
    from search.research import (
        LOOP_TEXT,
        SpecifyAnswer,
        explore_messages,
        generate_messages,
        repair_messages,
        shared_prefix,
    )

    spec = SpecifyAnswer(name="step", hooks=["propose"], state="", behaviour="propose a step")
    prefix = shared_prefix(API_TEXT)
    explore = explore_messages(api_text=API_TEXT, loop_source=LOOP_TEXT, active=[], stats={"a": 1}, workload_text="w",
                               program="try bandits")
    generate = generate_messages(api_text=API_TEXT, example_source=example_source(spec.hooks), spec=spec,
                                 hook_docs=HOOK_DOCS)
    mutants = [mutant_prompt(spec, m) for m in plan_mutations(build_population([], 4), 2, spec.hooks)]
    repair = repair_messages(generate, "class M: pass", "smoke", "boom")
    assert len(prefix) > 1000 and API_TEXT.strip() in prefix and LOOP_TEXT.strip() in prefix
    for messages in (explore, generate, *mutants, repair):
        assert messages[0] == explore[0] and messages[1]["content"].startswith(prefix)
    assert "try bandits" in explore[1]["content"][len(prefix):]  # the user's direction comes after the prefix


def test_only_the_repair_of_an_inert_sample_shows_a_live_propose() -> None:
    from search.research import LIVE_PROPOSE, repair_messages

    inert = repair_messages([], "class M: pass", "liveness", "the mechanism is inert")[-1]["content"]
    crashed = repair_messages([], "class M: pass", "smoke", "KeyError: 'x'")[-1]["content"]
    assert LIVE_PROPOSE in inert and LIVE_PROPOSE not in crashed


def test_the_live_propose_shown_in_repairs_is_live_on_the_recorded_tinygpt_trace() -> None:
    """The pattern a repair shows must itself pass every stage on a real trace, or the repair teaches nothing."""
    import json
    from pathlib import Path

    from mechanisms.replay import ReplaySource, replay_steps
    from mechanisms.synthetic_trace import tinygpt_space
    from mechanisms.validate import validate_mechanism
    from search.research import LIVE_PROPOSE
    from search.run_spec import MetaRunSpec
    from search.trace import Trace

    fixture = Path(__file__).resolve().parents[2] / "benchmarks" / "fixtures" / "level2" / "tinygpt"
    spec = MetaRunSpec.model_validate(json.loads((fixture / "spec.json").read_text()))
    trace = Trace.model_validate(json.loads((fixture / "trace.json").read_text()))
    source = ("import random\n\nimport helpers as h\n\n\nclass Live:\n    name = 'live'\n\n"
              "    def __init__(self):\n        self.state = {}\n\n" + LIVE_PROPOSE + "\n")
    steps = replay_steps(trace, tinygpt_space(), ReplaySource(meta_run_id=spec.meta_run_id, run_seed=spec.seed,
                                                                      fallback_config=spec.search))
    report = validate_mechanism(source, steps, name="live", space=tinygpt_space(),
                                metric_name=trace.objective.name, allow_weak_sandbox=True)
    assert report.ok, report.error
    assert report.liveness["decisions_changed"] >= 1


def test_explore_is_held_to_one_short_idea_and_a_longer_answer_is_cut_not_refused() -> None:
    import json

    from search.research import IDEA_CHARS, parse_round, round_schema

    schema = round_schema("explore")
    assert schema["properties"]["ideas"]["maxItems"] == 1  # the grammar lets the local model write one idea
    assert {name: field["maxLength"] for name, field in schema["$defs"]["Idea"]["properties"].items()} == IDEA_CHARS
    # a model without a grammar: several ideas, fields past the cap
    answer = parse_round("explore", json.dumps({"ideas": [{"problem": "p" * 900, "idea": "first"},
                                                          {"problem": "q", "idea": "second"}]}))
    assert [idea.idea for idea in answer.ideas] == ["first"] and answer.ideas[0].problem == "p" * IDEA_CHARS["problem"]


def test_an_answer_stops_where_it_copies_a_hole_back_and_the_hole_is_put_back() -> None:
    from search.research import HOLE_MARK

    assert HOLE_MARK in CODE_STOP and HOLE.endswith(HOLE_MARK)
    answer = "```python\nclass M:\n    name = 'm'\n\n    def propose(self, ctx):\n        " + HOLE
    cut = answer[:answer.index(HOLE_MARK)]  # what the model returns: the stop text is not part of it
    code, error = decode_code_answer(cut, "stop", 1000)
    assert error is None and code is not None and code.rstrip().endswith(HOLE)
    # a patch that stops at a hole keeps it too, so the splice refuses a mutant that left one
    patch, _ = decode_code_answer("```python\ndef propose(self, ctx):\n    ...  ", "stop", 1000, require_class=False)
    assert patch is not None and HOLE in patch
