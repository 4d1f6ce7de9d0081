"""Search state from the trace, the decision rules for either goal, track merging, and one whole iteration with
fakes for the proposer, the training and the mechanisms (no Prefect, no sandbox, no model)."""

from __future__ import annotations

from typing import Any

import pytest

from search.config import SearchConfig
from search.context import DecisionPoint
from search.hooks import MechanismCandidates, NoHooks, PlanAdvice, ProposeAnswer, ProposedCandidate, ScreenVerdict
from search.iteration import (
    Candidate,
    ProposalBatch,
    ProposalRequest,
    baseline_experiment,
    default_keep,
    final_decision,
    measured_value,
    merge_tracks,
    needs_confirmation,
    run_iteration,
)
from search.objective import Objective
from search.space import SearchSpace
from search.state import BaselineFailed
from search.trace import LLMUsage, MechanismActivity, RunOutcome, Trace
from tests.unit.script_fixture import SCRIPT
from tests.unit.traces import BASE_CONFIG, build_trace, crash, ok
from workloads.hyperblock import parse_block

BLOCK = parse_block(SCRIPT)
SPACE = SearchSpace(params=BLOCK.params, constraints=BLOCK.constraints)
MAXIMIZE = Objective(name="accuracy", goal="maximize")


def test_state_follows_kept_and_best_separately() -> None:
    # experiment 2 is worse but kept (an annealing-style override): current moves, best does not.
    trace = build_trace([({"DEPTH": 2}, ok(2.5), True), ({"DEPTH": 3}, ok(2.7), True), ({"DEPTH": 5}, crash(), False)])
    state = trace.state()
    assert state.baseline.value == 3.0
    assert state.best.value == 2.5 and state.best.index == 1
    assert state.current.value == 2.7 and state.current.config["DEPTH"] == 3
    assert state.delta == pytest.approx(-0.5)


def test_a_maximised_objective_keeps_and_ranks_higher_values() -> None:
    trace = build_trace([({"DEPTH": 2}, ok(0.9), True), ({"DEPTH": 3}, ok(0.85), False)], baseline=0.8,
                        objective=MAXIMIZE)
    state = trace.state()
    assert state.best.value == 0.9 and state.delta == pytest.approx(-0.1)  # negative is better, whatever the goal
    assert trace.best_so_far() == [0.8, 0.9, 0.9]
    assert default_keep(state.model_copy(update={"current": state.baseline}), 0.85)  # 0.85 beats 0.80
    assert not default_keep(state, 0.85)  # but not 0.90
    assert trace.param_stats(["DEPTH"])["DEPTH"].best_gain == pytest.approx(0.1)
    assert [e.index for e in trace.best_configs(2)] == [1, 2]


def test_better_measurement_moves_best_even_when_discarded() -> None:
    state = build_trace([({"DEPTH": 2}, ok(2.0), False)]).state()
    assert state.best.value == 2.0 and state.current.value == 3.0


def test_crashed_baseline_is_a_clear_error() -> None:
    trace = Trace(experiments=[baseline_experiment(crash(), BASE_CONFIG)])
    with pytest.raises(BaselineFailed, match="RuntimeError: boom"):
        trace.state()


def test_default_rule_is_strict_and_respects_min_improvement() -> None:
    state = build_trace([]).state()
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


def test_merge_tracks_is_deterministic_and_dense() -> None:
    base = build_trace([({"DEPTH": 2}, ok(2.5), True)])
    a = build_trace([({"DEPTH": 3}, ok(2.4), True)]).experiments[1:]
    b = build_trace([({"DEPTH": 5}, ok(2.6), False), ({"DEPTH": 6}, ok(2.3), True)]).experiments[1:]
    merged = merge_tracks(base, [a, b])
    assert [e.index for e in merged.experiments] == [0, 1, 2, 3, 4]
    assert [e.changes for e in merged.experiments[2:]] == [{"DEPTH": 3}, {"DEPTH": 5}, {"DEPTH": 6}]


def test_counts_have_one_definition() -> None:
    trace = build_trace([({"DEPTH": 2}, ok(2.5), True), ({"DEPTH": 3}, crash(), False),
                         ({"DEPTH": 5}, RunOutcome(status="timeout"), False), ({}, RunOutcome(status="invalid"), False),
                         ({"DEPTH": 6}, RunOutcome(status="stopped"), False)])
    counts = trace.counts()
    assert (counts.experiments, counts.kept, counts.crashes, counts.invalid, counts.stopped) == (5, 1, 2, 1, 1)


def test_param_stats_and_curve() -> None:
    trace = build_trace([
        ({"DEPTH": 2}, ok(2.5), True),
        ({"MATRIX_LR": 0.01}, ok(2.6), False),
        ({"MATRIX_LR": 0.02}, crash(), False),
        ({"MATRIX_LR": 0.001, "DEPTH": 3}, ok(2.4), True),
    ])
    stats = trace.param_stats(["DEPTH", "MATRIX_LR", "OPTIMIZER"])
    assert (stats["DEPTH"].tries, stats["DEPTH"].kept, stats["DEPTH"].futile_streak) == (2, 2, 0)
    assert (stats["MATRIX_LR"].tries, stats["MATRIX_LR"].crashes) == (3, 1)
    assert stats["DEPTH"].best_gain == pytest.approx(0.5)
    assert stats["OPTIMIZER"].tries == 0
    assert trace.best_so_far() == [3.0, 2.5, 2.5, 2.5, 2.4]
    assert trace.last_improvement() == 4


def test_appended_refuses_out_of_order_index() -> None:
    trace = build_trace([])
    with pytest.raises(ValueError):
        trace.appended(trace.experiments[0])
    assert RunOutcome(status="ok", value=None).ok is False


def test_mechanism_liveness_comes_from_the_trace() -> None:
    trace = build_trace([({"DEPTH": 2}, ok(2.5), True), ({"DEPTH": 3}, ok(2.6), False)])
    activities = [[MechanismActivity(name="m", version="v1", calls={"plan": 1}, changed=["plan"])],
                  [MechanismActivity(name="m", version="v1", calls={"plan": 1, "screen": 1}, changed=[]),
                   MechanismActivity(name="q", version="v2", calls={"plan": 1}, quarantined=True, note="raised")]]
    trace = trace.with_experiments([trace.experiments[0], *(e.model_copy(update={"mechanisms": a})
                                                            for e, a in zip(trace.decided, activities))])
    liveness = trace.mechanism_liveness()
    assert liveness["m"].calls == {"plan": 2, "screen": 1} and liveness["m"].decisions_changed == 1
    assert liveness["q"].quarantined and liveness["q"].reason == "raised"


# -- one iteration, with fakes ----------------------------------------------------------------------


class FakeProposer:
    """Answers each request with the next batch of changes; records what it was asked."""

    def __init__(self, *batches: list[dict[str, Any]]) -> None:
        self.batches = list(batches)
        self.requests: list[ProposalRequest] = []

    def __call__(self, request: ProposalRequest) -> ProposalBatch:
        self.requests.append(request)
        changes = self.batches.pop(0) if self.batches else []
        batch = ProposalBatch(usage=LLMUsage(calls=len(changes)), attempts=len(changes))
        for item in changes:
            batch.candidates.append(Candidate(changes=request.check(item), hypothesis="llm idea"))
        return batch


class FakeTrainer:
    """Measures value = table[DEPTH] (crash when missing); records every run."""

    def __init__(self, table: dict[int, float]) -> None:
        self.table = table
        self.runs: list[tuple[dict[str, Any], str, int]] = []

    def __call__(self, config: dict[str, Any], purpose: str, seed: int) -> RunOutcome:
        self.runs.append((config, purpose, seed))
        value = self.table.get(config["DEPTH"])
        return ok(value) if value is not None else crash()


class FakeHooks(NoHooks):
    def __init__(self, *, proposals: list[MechanismCandidates] | None = None, verdicts: list[ScreenVerdict | None] | None = None,
                 accept: bool | None = None) -> None:
        self.proposals = proposals or []
        self.verdicts = list(verdicts or [])
        self.override = accept
        self.credited: list[tuple[str, str]] = []
        self.screened: list[list[dict[str, Any]]] = []
        self.observed: list[dict[str, Any]] = []

    def plan(self, ctx: dict[str, Any]) -> PlanAdvice:
        return PlanAdvice(guidance="try depth")

    def propose(self, ctx: dict[str, Any]) -> list[MechanismCandidates]:
        return self.proposals

    def screen(self, ctx: dict[str, Any], candidates: list[dict[str, Any]]) -> ScreenVerdict | None:
        self.screened.append(candidates)
        return self.verdicts.pop(0) if self.verdicts else None

    def accept(self, ctx: dict[str, Any], result: dict[str, Any], default: bool) -> tuple[bool, str | None]:
        if self.override is None or self.override == default:
            return default, None
        return self.override, "flipper"

    def observe(self, ctx: dict[str, Any], result: dict[str, Any]) -> None:
        self.observed.append(result)

    def credit(self, mechanism: str, hook: str) -> None:
        self.credited.append((mechanism, hook))

    def take_activity(self) -> list[MechanismActivity]:
        return [MechanismActivity(name="fake", version="v", calls={"plan": 1})]


def _point(config: SearchConfig | None = None, start: int = 1, iteration: int = 0) -> DecisionPoint:
    return DecisionPoint(meta_run_id="unit", run_seed=0, generation=0, track=0, iteration=iteration, start=start,
                         config=config or SearchConfig())


def _iterate(hooks: Any, proposer: Any, trainer: Any, trace: Trace | None = None, config: SearchConfig | None = None,
             screen_rounds: int = 2):
    trace = trace or build_trace([])
    return run_iteration(local=trace, state=trace.state(), space=SPACE, point=_point(config, start=len(trace)),
                         hooks=hooks, proposer=proposer, train=trainer, screen_rounds=screen_rounds)


def test_the_llm_candidate_trains_and_the_default_rule_keeps_it() -> None:
    proposer, trainer = FakeProposer([{"DEPTH": 2}]), FakeTrainer({2: 2.5})
    experiment = _iterate(NoHooks(), proposer, trainer)
    assert experiment.index == 1 and experiment.changes == {"DEPTH": 2} and experiment.proposed_by == "llm"
    assert experiment.kept and experiment.default_kept and experiment.measured == 2.5
    assert trainer.runs == [({**BASE_CONFIG, "DEPTH": 2}, "candidate", 0)]
    assert experiment.llm.calls == 1


def test_a_mechanism_candidate_comes_first_is_credited_and_can_skip_the_llm() -> None:
    hooks = FakeHooks(proposals=[MechanismCandidates(mechanism="doe", answer=ProposeAnswer(
        candidates=[ProposedCandidate(changes={"DEPTH": 6}, reason="untried level")], skip_llm=True))])
    proposer, trainer = FakeProposer([{"DEPTH": 2}]), FakeTrainer({6: 2.9})
    experiment = _iterate(hooks, proposer, trainer)
    assert experiment.changes == {"DEPTH": 6} and experiment.proposed_by == "mechanism:doe"
    assert hooks.credited == [("doe", "propose")]
    assert proposer.requests == []  # skip_llm: the LLM was not asked
    assert experiment.mechanisms[0].name == "fake"  # the runtime's activity is recorded
    assert hooks.observed[0]["changes"] == {"DEPTH": 6}


def test_mechanism_candidates_are_validated_like_llm_proposals() -> None:
    bad = [ProposedCandidate(changes={"DEPTH": 99}), ProposedCandidate(changes={"NOPE": 1}),
           ProposedCandidate(changes={"DEPTH": 4})]
    hooks = FakeHooks(proposals=[MechanismCandidates(mechanism="bad", answer=ProposeAnswer(candidates=bad, skip_llm=True))])
    proposer, trainer = FakeProposer([{"DEPTH": 2}]), FakeTrainer({2: 2.5})
    experiment = _iterate(hooks, proposer, trainer)
    # nothing valid was offered, so skip_llm does not hold and the LLM's candidate trains
    assert experiment.changes == {"DEPTH": 2} and hooks.credited == []
    errors = " | ".join(experiment.proposal_errors)
    assert "outside the allowed range" in errors and "unknown parameter" in errors and "equals the current" in errors


def test_screen_may_choose_reject_and_then_the_first_candidate_trains() -> None:
    chosen = FakeHooks(verdicts=[ScreenVerdict(choose=1)])
    experiment = _iterate(chosen, FakeProposer([{"DEPTH": 2}, {"DEPTH": 3}]), FakeTrainer({2: 2.5, 3: 2.6}))
    assert experiment.changes == {"DEPTH": 3}
    rejecting = FakeHooks(verdicts=[ScreenVerdict(reject=True, reason="too close"), ScreenVerdict(reject=True)])
    proposer = FakeProposer([{"DEPTH": 2}], [{"DEPTH": 5}])
    experiment = _iterate(rejecting, proposer, FakeTrainer({2: 2.5, 5: 2.6}))
    assert experiment.changes == {"DEPTH": 2} and "screen rounds exhausted" in experiment.note
    assert proposer.requests[1].rejection == "too close"  # the second round is told why


def test_accept_may_override_but_never_keep_a_crash() -> None:
    experiment = _iterate(FakeHooks(accept=True), FakeProposer([{"DEPTH": 2}]), FakeTrainer({2: 3.5}))
    assert experiment.kept and not experiment.default_kept and experiment.decided_by == "flipper"
    crashed = _iterate(FakeHooks(accept=True), FakeProposer([{"DEPTH": 2}]), FakeTrainer({}))
    assert not crashed.kept and crashed.outcome.status == "crash"


def test_no_valid_proposal_is_an_invalid_experiment_that_trains_nothing() -> None:
    trainer = FakeTrainer({})
    experiment = _iterate(NoHooks(), FakeProposer([]), trainer)
    assert experiment.outcome.status == "invalid" and trainer.runs == [] and not experiment.kept


def test_a_would_be_keep_is_confirmed_on_the_second_seed() -> None:
    trainer = FakeTrainer({2: 2.5})
    experiment = _iterate(NoHooks(), FakeProposer([{"DEPTH": 2}]), trainer, config=SearchConfig(confirm_seed=7))
    assert [(purpose, seed) for _, purpose, seed in trainer.runs] == [("candidate", 0), ("confirm", 7)]
    assert experiment.confirm is not None and experiment.kept


def test_a_tried_configuration_is_refused_to_every_proposer() -> None:
    trace = build_trace([({"DEPTH": 2}, ok(2.5), False)])
    proposer = FakeProposer([])
    _iterate(NoHooks(), proposer, FakeTrainer({}), trace=trace)
    from search.space import CandidateError

    with pytest.raises(CandidateError, match="already tried"):
        proposer.requests[0].check({"DEPTH": 2})


def test_a_near_repeat_is_refused_with_its_reason() -> None:
    trace = build_trace([({"MATRIX_LR": 0.01}, ok(2.5), False)])
    request = ProposalRequest(point=_point(start=len(trace)), local=trace, state=trace.state(), space=SPACE, near=0.05)
    from search.space import CandidateError

    with pytest.raises(CandidateError, match="within 5%"):
        request.check({"MATRIX_LR": 0.0101})
    assert request.check({"MATRIX_LR": 0.05}) == {"MATRIX_LR": 0.05}


def test_the_noise_floor_is_the_spread_of_the_baseline_over_seeds() -> None:
    trace = build_trace([]).model_copy(update={"noise_runs": [ok(3.1), ok(2.9), crash()]})
    assert trace.noise_floor == pytest.approx(0.1)  # stdev of 3.0, 3.1, 2.9; the crash measured nothing
    assert build_trace([]).noise_floor is None
