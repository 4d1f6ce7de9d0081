"""Level 1.5: update validation with caps, the deterministic fallback rule, and its prompt."""

from __future__ import annotations

import json

import pytest

from search.config import SearchConfig
from search.level15 import (
    FUTILE_TRIES,
    ConfigUpdate,
    adjust_messages,
    apply_update,
    max_frozen,
    parse_update,
    rule_update,
)
from search.space import SearchSpace
from tests.unit.script_fixture import SCRIPT
from tests.unit.traces import build_trace, ok
from workloads.hyperblock import parse_params

SPECS = SearchSpace(params=tuple(parse_params(SCRIPT)))


def test_valid_update_applies() -> None:
    update = parse_update(json.dumps({"freeze": ["USE_BIAS"], "unfreeze": [], "strategy": "exploit",
                                      "guidance": "refine learning rates", "reason": "bias never helped"}))
    config = apply_update(SearchConfig(), update, SPECS)
    assert config.frozen == ("USE_BIAS",) and config.strategy == "exploit" and config.guidance == "refine learning rates"


@pytest.mark.parametrize(
    ("update", "message"),
    [
        (ConfigUpdate(freeze=["NOPE"]), "unknown parameters ['NOPE']"),
        (ConfigUpdate(freeze=["DEPTH"], unfreeze=["DEPTH"]), "cannot be frozen and unfrozen"),
        (ConfigUpdate(freeze=["DEPTH", "MATRIX_LR", "OPTIMIZER"]), "at most 2 may be"),
    ],
)
def test_invalid_updates_are_refused(update: ConfigUpdate, message: str) -> None:
    assert max_frozen(len(SPECS.params)) == 2
    with pytest.raises(ValueError, match=None) as caught:
        apply_update(SearchConfig(), update, SPECS)
    assert message in str(caught.value)


@pytest.mark.parametrize("text", ['{"freeze": "DEPTH"}', '{"strategy": "yolo"}', '{"guidance": "' + "x" * 400 + '"}',
                                  '{"freeze": [], "run": "rm -rf /"}', "nonsense"])
def test_malformed_answers_raise(text: str) -> None:
    with pytest.raises(ValueError):
        parse_update(text)


def test_rule_freezes_futile_parameters_within_the_cap() -> None:
    steps = [({"MATRIX_LR": 0.001 * (i + 2)}, ok(3.1), False) for i in range(FUTILE_TRIES)]
    steps += [({"OPTIMIZER": "muon"}, ok(3.2), False)]
    trace = build_trace(steps)
    update = rule_update(SearchConfig(), trace, SPECS, generation=0)
    assert update.freeze == ["MATRIX_LR"]
    assert update.strategy == "explore"  # nothing was kept in the generation
    assert "DEPTH" in update.guidance
    assert apply_update(SearchConfig(), update, SPECS).frozen == ("MATRIX_LR",)


def test_rule_exploits_when_keeping_often() -> None:
    trace = build_trace([({"DEPTH": 2}, ok(2.5), True), ({"DEPTH": 3}, ok(2.6), False)])
    assert rule_update(SearchConfig(), trace, SPECS, generation=0).strategy == "exploit"


def test_prompt_holds_the_statistics() -> None:
    trace = build_trace([({"DEPTH": 2}, ok(2.5), True)])
    text = adjust_messages(SearchConfig(), trace, SPECS, generation=0)[1]["content"]
    assert "DEPTH: tried 1, kept 1" in text and "At most 2 parameters may be frozen" in text


def test_a_freeze_the_trace_does_not_support_is_refused_with_the_reason() -> None:
    trace = build_trace([({"DEPTH": 2}, ok(2.5), True), ({"MATRIX_LR": 0.01}, ok(2.6), False),
                         ({"MATRIX_LR": 0.02}, ok(2.7), False)])
    with pytest.raises(ValueError, match="USE_BIAS was tried 0 time"):
        apply_update(SearchConfig(), ConfigUpdate(freeze=["USE_BIAS"]), SPECS, trace)
    with pytest.raises(ValueError, match="DEPTH was tried 1 time"):
        apply_update(SearchConfig(), ConfigUpdate(freeze=["DEPTH"]), SPECS, trace)
    assert apply_update(SearchConfig(), ConfigUpdate(freeze=["MATRIX_LR"]), SPECS, trace).frozen == ("MATRIX_LR",)
    improved = build_trace([({"DEPTH": 2}, ok(2.9), False), ({"DEPTH": 3}, ok(2.5), True)])
    with pytest.raises(ValueError, match="DEPTH made the last improvement"):
        apply_update(SearchConfig(), ConfigUpdate(freeze=["DEPTH"]), SPECS, improved)


def test_the_prompt_names_no_parameter_of_the_workload_in_its_example() -> None:
    from search.level15 import EXAMPLE

    text = adjust_messages(SearchConfig(), build_trace([]), SPECS, generation=0)[1]["content"]
    assert EXAMPLE in text and not any(spec.name in EXAMPLE for spec in SPECS.params)
    assert "minimise val_bpb (lower is better)" in text


@pytest.mark.parametrize("guidance", ["try a different optimizer", "OPTIMIZER should be muon", "Tune the Optimizer."])
def test_guidance_about_a_parameter_the_update_freezes_is_refused(guidance: str) -> None:
    trace = build_trace([({"OPTIMIZER": "muon"}, ok(3.1), False), ({"OPTIMIZER": "adamw"}, ok(3.2), False),
                         ({"DEPTH": 2}, ok(2.5), True)])
    update = ConfigUpdate(freeze=["OPTIMIZER"], guidance=guidance)
    with pytest.raises(ValueError, match="is about OPTIMIZER, which would be frozen"):
        apply_update(SearchConfig(), update, SPECS, trace)
    # the same guidance is fine while OPTIMIZER stays searchable, and guidance about another parameter is fine
    assert apply_update(SearchConfig(), ConfigUpdate(guidance=guidance), SPECS, trace).guidance == guidance
    frozen = apply_update(SearchConfig(), ConfigUpdate(freeze=["OPTIMIZER"], guidance="refine DEPTH"), SPECS, trace)
    assert frozen.frozen == ("OPTIMIZER",)


def test_guidance_kept_from_before_must_not_name_a_newly_frozen_parameter() -> None:
    trace = build_trace([({"MATRIX_LR": 0.002}, ok(3.1), False), ({"MATRIX_LR": 0.004}, ok(3.2), False)])
    before = SearchConfig(guidance="explore matrix lr")
    with pytest.raises(ValueError, match="MATRIX_LR"):
        apply_update(before, ConfigUpdate(freeze=["MATRIX_LR"]), SPECS, trace)


def test_the_printed_reason_states_the_facts_the_rule_checked_not_the_models_words() -> None:
    from search.level15 import MIN_TRIES_TO_FREEZE, decision_reason

    trace = build_trace([({"MATRIX_LR": 0.002}, ok(3.1), False), ({"MATRIX_LR": 0.004}, ok(3.2), False),
                         ({"DEPTH": 2}, ok(2.5), True)])
    update = ConfigUpdate(freeze=["MATRIX_LR"], strategy="exploit",
                          reason="MATRIX_LR was tried 1 time and never helped, but kept as it was tried twice")
    after = apply_update(SearchConfig(), update, SPECS, trace)
    reason = decision_reason(SearchConfig(), after, trace, SPECS, "llm")
    assert reason.startswith("llm: froze MATRIX_LR (tried 2, kept 0, futile streak 2;")
    assert f">= {MIN_TRIES_TO_FREEZE} tries" in reason and "strategy balanced -> exploit" in reason
    assert "tried 1 time" not in reason
