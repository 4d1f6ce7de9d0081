"""Cross-parameter constraints (a small AST interpreter, never eval) and the one candidate validation of the space."""

from __future__ import annotations

import pytest

from search.constraints import ConstraintError, parse_constraint, violations
from search.objective import Objective
from search.params import ParamKind, ParamSpec
from search.space import CandidateError, SearchSpace

NAMES = ["TOTAL", "BATCH", "SEQ", "HEAD", "WARMUP", "WARMDOWN", "OPT"]
SPACE = SearchSpace(
    params=(ParamSpec(name="BATCH", kind=ParamKind.INT, value=8, low=1, high=128, log=True),
            ParamSpec(name="SEQ", kind=ParamKind.INT, value=128, low=16, high=1024, log=True),
            ParamSpec(name="LR", kind=ParamKind.FLOAT, value=0.01, low=1e-4, high=1.0, log=True)),
    constraints=(parse_constraint("TOTAL % (BATCH * SEQ) == 0", ["TOTAL", "BATCH", "SEQ"]),),
    fixed_values={"TOTAL": 2048},
)
CURRENT = {"BATCH": 8, "SEQ": 128, "LR": 0.01}


@pytest.mark.parametrize(("text", "config", "holds"), [
    ("TOTAL % (BATCH * SEQ) == 0", {"TOTAL": 2048, "BATCH": 8, "SEQ": 128}, True),
    ("TOTAL % (BATCH * SEQ) == 0", {"TOTAL": 2048, "BATCH": 3, "SEQ": 128}, False),
    ("HEAD % 2 == 0", {"HEAD": 32}, True),
    ("WARMUP + WARMDOWN <= 1", {"WARMUP": 0.3, "WARMDOWN": 0.8}, False),
    ("0 < WARMUP < WARMDOWN", {"WARMUP": 0.1, "WARMDOWN": 0.3}, True),
    ("OPT == 'muon' or not WARMUP > 0.2", {"OPT": "adamw", "WARMUP": 0.1}, True),
    ("BATCH ** 2 // 3 >= -SEQ and BATCH / 2 != 0", {"BATCH": 4, "SEQ": 16}, True),
])
def test_constraints_evaluate_arithmetic_comparisons_and_logic(text: str, config: dict, holds: bool) -> None:
    assert parse_constraint(text, NAMES).holds(config) is holds


@pytest.mark.parametrize(("text", "message"), [
    ("__import__('os').system('x')", "uses Call"),
    ("BATCH.bit_length() > 1", "uses"),
    ("[BATCH][0] > 1", "uses"),
    ("lambda: 1", "uses Lambda"),
    ("UNKNOWN > 1", "unknown parameters: UNKNOWN"),
    ("BATCH >", "not an expression"),
    ("BATCH = 1", "must be one expression"),
    ("x" * 400, "limit is"),
    ("-" * 30 + "BATCH > 1", "nested too deeply"),
])
def test_anything_but_the_small_language_is_refused(text: str, message: str) -> None:
    with pytest.raises(ConstraintError, match=None) as caught:
        parse_constraint(text, NAMES)
    assert message in str(caught.value)


def test_evaluation_errors_are_reported_not_raised_to_the_search() -> None:
    huge = parse_constraint("BATCH ** 100 > 1", NAMES)
    zero = parse_constraint("SEQ % BATCH == 0", NAMES)
    strings = parse_constraint("OPT + 1 > 0", NAMES)
    broken = violations([huge, zero, strings], {"BATCH": 0, "SEQ": 4, "OPT": "adamw"})
    assert "exponent 100 is larger" in broken[0] and "integer modulo by zero" in broken[1] and "needs numbers" in broken[2]


def test_a_broken_constraint_is_refused_with_the_values() -> None:
    with pytest.raises(CandidateError) as caught:
        SPACE.check({"BATCH": 3}, CURRENT)
    assert "`TOTAL % (BATCH * SEQ) == 0` is false for BATCH=3, SEQ=128, TOTAL=2048" in str(caught.value)
    assert SPACE.check({"BATCH": 16}, CURRENT) == {"BATCH": 16}


def test_fixed_frozen_range_and_repeat_refusals() -> None:
    with pytest.raises(CandidateError, match="TOTAL is fixed"):
        SPACE.check({"TOTAL": 4096}, CURRENT)
    with pytest.raises(CandidateError, match="frozen"):
        SPACE.check({"LR": 0.1}, CURRENT, frozen=["LR"])
    with pytest.raises(CandidateError, match="outside the allowed range"):
        SPACE.check({"LR": 5.0}, CURRENT)
    with pytest.raises(CandidateError, match="already tried"):
        SPACE.check({"LR": 0.1}, CURRENT, tried=[{**CURRENT, "LR": 0.1}])
    with pytest.raises(CandidateError, match="within 10%"):
        SPACE.check({"LR": 0.012}, CURRENT, tried=[{**CURRENT, "LR": 0.0125}], near=0.1)


def test_distance_uses_the_log_range_of_log_parameters() -> None:
    a = {**CURRENT, "LR": 0.01}
    assert SPACE.distance(a, {**CURRENT, "LR": 0.1}) == pytest.approx(0.25)  # one decade of four
    assert SPACE.distance(a, a) == 0.0


def test_objective_compares_and_signs_by_goal() -> None:
    low, high = Objective(name="loss"), Objective(name="accuracy", goal="maximize")
    assert low.better(1.0, 2.0) and not high.better(1.0, 2.0) and high.better(2.0, None)
    assert low.best([3.0, None, 1.0]) == 1.0 and high.best([3.0, None, 1.0]) == 3.0
    assert low.delta(2.0, 1.5) == pytest.approx(-0.5) and high.delta(0.8, 0.9) == pytest.approx(-0.1)
    assert high.beats_by(0.9, 0.8, 0.05) and not high.beats_by(0.82, 0.8, 0.05)
    assert high.describe() == "maximise accuracy (higher is better)"
    with pytest.raises(ValueError):
        Objective(name="bad name; drop")


def test_a_broken_constraint_is_repaired_with_the_smallest_move_of_an_untouched_parameter() -> None:
    space = SearchSpace(
        params=(ParamSpec(name="TOTAL", kind=ParamKind.INT, value=2048, low=256, high=16384, log=True),
                ParamSpec(name="BATCH", kind=ParamKind.INT, value=16, low=1, high=128, log=True),
                ParamSpec(name="SEQ", kind=ParamKind.INT, value=128, low=16, high=1024, log=True)),
        constraints=(parse_constraint("TOTAL % (BATCH * SEQ) == 0", ["TOTAL", "BATCH", "SEQ"]),))
    current = {"TOTAL": 2048, "BATCH": 16, "SEQ": 128}
    # a longer context: 16 x 1024 no longer divides 2048; the proposal's SEQ stays, one untouched knob moves
    changes = space.check({"SEQ": 1024}, current)
    assert changes["SEQ"] == 1024 and len(changes) == 2
    assert space.broken_constraints({**current, **changes}) == []
    # the proposal's own values are never moved, and frozen ones neither
    assert space.check({"SEQ": 1024}, current, frozen=["BATCH"]) == {"SEQ": 1024, "TOTAL": 16384}
    with pytest.raises(CandidateError, match="is false for"):
        space.check({"SEQ": 1024, "TOTAL": 256}, current, frozen=["BATCH"])
