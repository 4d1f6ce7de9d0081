"""Search state from the trace, the default rule, mechanism overrides and track merging."""

from __future__ import annotations

import pytest

from search.acceptance import default_keep, needs_confirmation
from search.iteration import baseline_experiment, final_decision, make_experiment, measured_value, merge_tracks
from search.state import BaselineFailed, state_from_trace
from search.trace import LLMUsage, RunOutcome, Trace, best_so_far_curve, param_stats
from tests.unit.traces import BASE_CONFIG, build_trace, crash, ok


def test_state_follows_kept_and_best_separately() -> None:
    # experiment 2 is worse but kept (an annealing-style override): current moves, best does not.
    trace = build_trace([({"DEPTH": 2}, ok(2.5), True), ({"DEPTH": 3}, ok(2.7), True), ({"DEPTH": 5}, crash(), False)])
    state = state_from_trace(trace)
    assert state.baseline.val_bpb == 3.0
    assert state.best.val_bpb == 2.5 and state.best.index == 1
    assert state.current.val_bpb == 2.7 and state.current.config["DEPTH"] == 3
    assert state.delta == pytest.approx(-0.5)


def test_better_measurement_moves_best_even_when_discarded() -> None:
    trace = build_trace([({"DEPTH": 2}, ok(2.0), False)])
    state = state_from_trace(trace)
    assert state.best.val_bpb == 2.0 and state.current.val_bpb == 3.0


def test_crashed_baseline_is_a_clear_error() -> None:
    trace = Trace(experiments=[baseline_experiment(crash(), BASE_CONFIG)])
    with pytest.raises(BaselineFailed, match="RuntimeError: boom"):
        state_from_trace(trace)


def test_default_rule_is_strict_and_respects_min_improvement() -> None:
    state = state_from_trace(build_trace([]))
    assert default_keep(state, 2.99)
    assert not default_keep(state, 3.0)
    assert not default_keep(state, None)
    assert not default_keep(state, 2.99, min_improvement=0.02)
    assert default_keep(state, 2.97, min_improvement=0.02)
    assert needs_confirmation(state, 2.9, 0.0, confirm_seed=1)
    assert not needs_confirmation(state, 2.9, 0.0, confirm_seed=None)


def test_confirmation_run_is_averaged_and_crash_never_kept() -> None:
    assert measured_value(ok(2.0), ok(2.2)) == pytest.approx(2.1)
    assert measured_value(ok(2.0), crash()) == 2.0
    assert measured_value(crash(), ok(2.0)) is None
    assert final_decision(default=False, override=True, measured=None) is False
    assert final_decision(default=False, override=True, measured=2.0) is True
    assert final_decision(default=True, override=None, measured=2.0) is True


def test_make_experiment_records_default_and_override_apart() -> None:
    trace = build_trace([])
    state = state_from_trace(trace)
    experiment = make_experiment(
        trace=trace, generation=0, track=0, iteration=0, changes={"DEPTH": 2}, hypothesis="h", outcome=ok(3.1),
        confirm=None, state=state, min_improvement=0.0, override=True, decided_by="anneal", mechanisms=[],
        llm=LLMUsage(calls=1), attempts=1, errors=[],
    )
    assert experiment.index == 1 and experiment.config["DEPTH"] == 2
    assert experiment.default_kept is False and experiment.kept is True and experiment.decided_by == "anneal"


def test_merge_tracks_is_deterministic_and_dense() -> None:
    base = build_trace([({"DEPTH": 2}, ok(2.5), True)])
    a = build_trace([({"DEPTH": 3}, ok(2.4), True)]).experiments[1:]
    b = build_trace([({"DEPTH": 5}, ok(2.6), False), ({"DEPTH": 6}, ok(2.3), True)]).experiments[1:]
    merged = merge_tracks(base, [a, b])
    assert [e.index for e in merged.experiments] == [0, 1, 2, 3, 4]
    assert [e.changes for e in merged.experiments[2:]] == [{"DEPTH": 3}, {"DEPTH": 5}, {"DEPTH": 6}]


def test_param_stats_and_curve() -> None:
    trace = build_trace([
        ({"DEPTH": 2}, ok(2.5), True),
        ({"MATRIX_LR": 0.01}, ok(2.6), False),
        ({"MATRIX_LR": 0.02}, crash(), False),
        ({"MATRIX_LR": 0.001, "DEPTH": 3}, ok(2.4), True),
    ])
    stats = param_stats(trace, ["DEPTH", "MATRIX_LR", "OPTIMIZER"])
    assert (stats["DEPTH"].tries, stats["DEPTH"].kept, stats["DEPTH"].futile_streak) == (2, 2, 0)
    assert (stats["MATRIX_LR"].tries, stats["MATRIX_LR"].crashes) == (3, 1)
    assert stats["DEPTH"].best_gain == pytest.approx(0.5)
    assert stats["OPTIMIZER"].tries == 0
    assert best_so_far_curve(trace) == [3.0, 2.5, 2.5, 2.5, 2.4]


def test_appended_refuses_out_of_order_index() -> None:
    trace = build_trace([])
    with pytest.raises(ValueError):
        trace.appended(trace.experiments[0])
    assert RunOutcome(status="ok", val_bpb=None).ok is False
