"""The trace statistics Level 2 reads: repeats are real re-proposals, not invalid answers."""

from __future__ import annotations

from search.params import ParamKind, ParamSpec
from search.research import failure_modes
from search.space import SearchSpace
from search.trace import RunOutcome
from tests.unit.traces import build_trace, crash, ok

SPECS = SearchSpace(params=(ParamSpec(name="DEPTH", kind=ParamKind.INT, value=4, low=1, high=8),
                            ParamSpec(name="MATRIX_LR", kind=ParamKind.FLOAT, value=0.003, low=1e-5, high=0.3)))
INVALID = RunOutcome(status="invalid", error_tail="not JSON")


def test_invalid_answers_are_not_repeated_configs() -> None:
    trace = build_trace([({}, INVALID, False), ({}, INVALID, False), ({"DEPTH": 6}, ok(2.9), True)])
    modes = failure_modes(trace, SPECS)
    assert modes["repeated_configs"] == 0 and modes["invalid_rate"] == round(2 / 3, 3)


def test_a_re_proposed_config_counts_across_json_round_trips() -> None:
    # DEPTH 6 then back to 4 (the baseline again), then MATRIX_LR 0.006 twice (the second time as 6e-3 after 3 -> 3.0)
    trace = build_trace([({"DEPTH": 6}, ok(3.1), False), ({"DEPTH": 4.0}, crash(), False),
                         ({"MATRIX_LR": 0.006}, ok(3.2), False), ({"MATRIX_LR": 6e-3}, ok(3.2), False)])
    assert failure_modes(trace, SPECS)["repeated_configs"] == 2
