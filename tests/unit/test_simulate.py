"""The surrogate and the simulated inner loop (search/surrogate.py, search/simulate.py), with in-process hooks."""

from __future__ import annotations

import math
from typing import Any

import pytest

from search.config import SearchConfig
from search.hooks import NoHooks
from search.objective import Objective
from search.params import ParamKind, ParamSpec
from search.simulate import RecordedMoves, SimulationSettings, bootstrap_ci, simulate_gain
from search.space import SearchSpace
from search.surrogate import Surrogate, SurrogateError, encode, training_points
from search.trace import Experiment, RunOutcome, Trace
from tests.unit.traces import request_for

SPECS = (ParamSpec(name="LR", kind=ParamKind.FLOAT, value=0.01, low=1e-4, high=1.0, log=True),
         ParamSpec(name="DEPTH", kind=ParamKind.INT, value=4, low=1, high=12),
         ParamSpec(name="OPT", kind=ParamKind.CHOICE, value="sgd", choices=("sgd", "adam")),
         ParamSpec(name="BIAS", kind=ParamKind.BOOL, value=False))
SPACE = SearchSpace(params=SPECS)
BASE = {"LR": 0.01, "DEPTH": 4, "OPT": "sgd", "BIAS": False}


def bowl(config: dict[str, Any]) -> float:
    """Best at LR 0.1, DEPTH 2, adam (like the toy workload)."""
    return ((math.log10(config["LR"]) + 1.0) ** 2 + 0.1 * (config["DEPTH"] - 2) ** 2
            + (0.0 if config["OPT"] == "adam" else 0.2))


def trace_of(configs: list[dict[str, Any]], objective: Objective | None = None, crashed: tuple[int, ...] = (),
             sign: float | None = None) -> Trace:
    """Baseline first, then one LLM proposal per config, kept when it beats the best so far."""
    objective = objective or Objective(name="loss")
    experiments: list[Experiment] = []
    best = None
    for index, config in enumerate(configs):
        sign = sign if sign is not None else 1.0 if objective.minimize else -1.0  # default: the bowl's bottom is best
        value = None if index in crashed else sign * bowl(config)
        outcome = RunOutcome(status="crash") if value is None else RunOutcome(status="ok", value=value)
        kept = objective.better(value, best)
        best = value if kept else best
        changes = {k: v for k, v in config.items() if BASE[k] != v}
        experiments.append(Experiment(index=index, changes=changes, config=config, outcome=outcome, kept=kept,
                                      default_kept=kept, proposed_by="baseline" if index == 0 else "llm"))
    return Trace(objective=objective, experiments=experiments)


TRACE = trace_of([BASE, {**BASE, "LR": 0.03}, {**BASE, "DEPTH": 3}, {**BASE, "LR": 0.003}, {**BASE, "DEPTH": 6},
                  {**BASE, "LR": 0.05, "DEPTH": 3}])


class RejectImprovements(NoHooks):
    """In-process hooks: refuse every improvement (the search never moves on)."""

    def accept(self, ctx: dict[str, Any], result: dict[str, Any], default: bool) -> tuple[bool, str | None]:
        return (False, "reject") if default else (default, None)


class TowardBest(NoHooks):
    """In-process hooks that know the landscape: propose one step towards its optimum, first."""

    def step(self, current: dict[str, Any]) -> dict[str, Any]:
        return {"LR": min(1.0, current["LR"] * 2), "DEPTH": max(2, current["DEPTH"] - 1), "OPT": "adam"}

    def propose(self, ctx: dict[str, Any]) -> list[Any]:
        from search.hooks import MechanismCandidates, ProposeAnswer, ProposedCandidate

        step = self.step(ctx["current"]["config"])
        return [MechanismCandidates(mechanism="toward_best", answer=ProposeAnswer(
            candidates=[ProposedCandidate(changes=step, reason="the step")], skip_llm=True))]


class AwayFromBest(TowardBest):
    """The same, uphill: every decision spent on a step away from the optimum."""

    def step(self, current: dict[str, Any]) -> dict[str, Any]:
        return {"LR": max(1e-4, current["LR"] / 2), "DEPTH": min(12, current["DEPTH"] + 1)}


def test_encoding_is_unit_scaled_log_where_declared_and_one_hot_for_choices() -> None:
    row = encode({"LR": 0.01, "DEPTH": 12, "OPT": "adam", "BIAS": True}, SPECS)
    assert row == pytest.approx([0.5, 1.0, 0.0, 1.0, 1.0])  # log10 0.01 is halfway from 1e-4 to 1
    assert encode({}, SPECS) == pytest.approx([0.5, 3 / 11, 1.0, 0.0, 0.0])  # missing: the declared defaults


def test_crashes_count_as_worse_than_the_worst_measurement_whatever_the_goal() -> None:
    for objective in (Objective(name="loss"), Objective(name="acc", goal="maximize")):
        trace = trace_of([BASE, {**BASE, "LR": 0.03}, {**BASE, "DEPTH": 9}], objective, crashed=(2,))
        points = training_points(trace, SPECS)
        measured = [p.value for p in points if not p.crashed]
        [crash] = [p.value for p in points if p.crashed]
        assert objective.better(min(measured) if objective.minimize else max(measured), crash)
        assert all(objective.better(v, crash) for v in measured)


def test_too_short_a_trace_is_refused_with_what_is_missing() -> None:
    with pytest.raises(SurrogateError, match="1 measured and 0 crashed"):
        training_points(trace_of([BASE]), SPECS)


def test_the_surrogate_is_deterministic_ranks_the_landscape_and_extrapolates_a_measured_trend() -> None:
    a, b = Surrogate(training_points(TRACE, SPECS), SPECS, seed=3), Surrogate(training_points(TRACE, SPECS), SPECS, seed=3)
    probe = {**BASE, "LR": 0.02, "DEPTH": 5}
    assert a.predict(probe) == b.predict(probe)
    fitted = Surrogate(training_points(TRACE, SPECS), SPECS, seed=0, resample=False)
    assert fitted.predict({**BASE, "LR": 0.05, "DEPTH": 3}) < fitted.predict(BASE) < fitted.predict({**BASE, "DEPTH": 6})
    best_seen = min(e.measured for e in TRACE.experiments)  # type: ignore[type-var]
    assert fitted.predict({**BASE, "LR": 0.1, "DEPTH": 2}) < best_seen  # beyond the data, the trend goes on


def test_the_stand_in_honours_focus_avoid_and_the_number_of_candidates() -> None:
    from search.hooks import PlanAdvice

    stand_in = RecordedMoves(TRACE)
    assert sorted(stand_in.habits) == [("DEPTH",), ("DEPTH",), ("DEPTH", "LR"), ("LR",), ("LR",)]
    focused = stand_in(request_for(TRACE, SPACE, advice=PlanAdvice(focus=["OPT"], n_candidates=1)))
    assert [set(c.changes) for c in focused.candidates] == [{"OPT"}]
    avoided = stand_in(request_for(TRACE, SPACE, advice=PlanAdvice(avoid=["LR", "DEPTH"], n_candidates=3)))
    assert len(avoided.candidates) == 3 and all(not {"LR", "DEPTH"} & set(c.changes) for c in avoided.candidates)


def test_the_stand_in_offers_what_the_runs_proposer_would() -> None:
    from search.hooks import PlanAdvice

    asked_two = request_for(TRACE, SPACE, advice=PlanAdvice(n_candidates=2))
    assert len(RecordedMoves(TRACE)(asked_two).candidates) == 2  # the LLM proposes as many as asked
    assert len(RecordedMoves(TRACE, extra_offers=1)(asked_two).candidates) == 3  # + the hybrid's untaken suggestion
    assert len(RecordedMoves(TRACE, asks_honoured=False)(asked_two).candidates) == 1  # an optimiser arm offers one
    # ... and ignores a plan's focus and avoid, as search/tpe_proposal.py does
    focused = request_for(TRACE, SPACE, advice=PlanAdvice(focus=["OPT"], avoid=["LR", "DEPTH"], n_candidates=1))
    assert [set(c.changes) for c in RecordedMoves(TRACE)(focused).candidates] == [{"OPT"}]
    ignored = [RecordedMoves(TRACE, asks_honoured=False)(focused.model_copy(update={"screen_round": draw}))
               for draw in range(12)]
    assert any(set(c.changes) != {"OPT"} for batch in ignored for c in batch.candidates)
    assert any({"LR", "DEPTH"} & set(c.changes) for batch in ignored for c in batch.candidates)


def test_the_simulation_settings_follow_the_meta_runs_proposer() -> None:
    from flows.research import simulation_settings
    from search.run_spec import Budget, MetaRunSpec, WorkloadRef

    def settings(proposer: str) -> SimulationSettings:
        spec = MetaRunSpec(meta_run_id="m", workload=WorkloadRef(reference="toy"), budget=Budget(mode="steps", value=10),
                           proposer=proposer)  # type: ignore[arg-type]
        return simulation_settings(spec)

    assert (settings("hybrid").extra_offers, settings("hybrid").asks_honoured) == (1, True)
    assert (settings("llm").extra_offers, settings("llm").asks_honoured) == (0, True)
    assert all((settings(p).extra_offers, settings(p).asks_honoured) == (0, False) for p in ("tpe", "random", "cmaes"))


def test_the_same_hooks_on_both_sides_give_exactly_zero() -> None:
    gain = simulate_gain(TRACE, SPACE, SearchConfig(), current=NoHooks, candidate=NoHooks,
                         settings=SimulationSettings(iterations=3, seeds=4))
    assert gain.per_seed == [0.0] * 4 and gain.ci_high == 0.0 and not gain.beats_current
    assert gain.points == 6 and gain.noise_sd > 0 and gain.seconds >= 0


def test_a_harmful_mechanism_simulates_worse_and_a_helpful_one_better() -> None:
    settings = SimulationSettings(iterations=6, seeds=12)
    harmful = simulate_gain(TRACE, SPACE, SearchConfig(), current=NoHooks, candidate=AwayFromBest, settings=settings)
    stuck = simulate_gain(TRACE, SPACE, SearchConfig(), current=NoHooks, candidate=RejectImprovements, settings=settings)
    helpful = simulate_gain(TRACE, SPACE, SearchConfig(), current=NoHooks, candidate=TowardBest, settings=settings)
    assert harmful.ci_low > 0  # clearly worse than the search without it
    assert stuck.delta > 0 and not stuck.beats_current  # best still follows measurements: mildly worse
    assert helpful.delta < 0 < stuck.delta < harmful.delta


def test_a_mean_gain_gets_a_second_look_at_more_seeds_and_a_mean_loss_stops_at_the_first() -> None:
    first = SimulationSettings(iterations=4, seeds=4, confirm_seeds=0)
    second = SimulationSettings(iterations=4, seeds=4, confirm_seeds=10)
    helpful = simulate_gain(TRACE, SPACE, SearchConfig(), current=NoHooks, candidate=TowardBest, settings=second)
    alone = simulate_gain(TRACE, SPACE, SearchConfig(), current=NoHooks, candidate=TowardBest, settings=first)
    assert alone.delta < 0 and helpful.seeds == len(helpful.per_seed) == 10
    assert helpful.per_seed[:4] == alone.per_seed  # the first look's seeds are the same paired simulations
    harmful = simulate_gain(TRACE, SPACE, SearchConfig(), current=NoHooks, candidate=AwayFromBest, settings=second)
    assert harmful.delta > 0 and harmful.seeds == len(harmful.per_seed) == 4  # no gain on average: no second look
    inert = simulate_gain(TRACE, SPACE, SearchConfig(), current=NoHooks, candidate=NoHooks, settings=second)
    assert inert.seeds == 4 and inert.per_seed == [0.0] * 4


def test_the_sign_follows_the_goal() -> None:
    settings = SimulationSettings(iterations=6, seeds=12)
    accuracy = trace_of(TRACE.tried_configs(), Objective(name="acc", goal="maximize"))  # acc = -bowl: same optimum
    upside_down = trace_of(TRACE.tried_configs(), Objective(name="acc", goal="maximize"), sign=1.0)  # the bowl's top
    assert simulate_gain(accuracy, SPACE, SearchConfig(), current=NoHooks, candidate=TowardBest, settings=settings).beats_current
    away = simulate_gain(upside_down, SPACE, SearchConfig(), current=NoHooks, candidate=TowardBest, settings=settings)
    assert away.delta > 0 and not away.beats_current


def test_bootstrap_ci_brackets_the_mean_and_is_reproducible() -> None:
    values = [0.1, -0.2, 0.05, 0.3, -0.1, 0.0]
    low, high = bootstrap_ci(values)
    assert low < sum(values) / len(values) < high and bootstrap_ci(values) == (low, high)
    assert bootstrap_ci([0.0, 0.0]) == (0.0, 0.0)
