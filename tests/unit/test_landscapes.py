"""Synthetic landscapes for the simulated inner loop (search/landscapes.py) and the activation rule that uses them
(SimulatedGain.selectable): helpful on the trace's surrogate is not enough when a landscape shows harm."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from search.active_set import LandscapeGain, SimulatedGain
from search.config import SearchConfig
from search.hooks import Hooks, NoHooks
from search.landscapes import HARTMANN6_MINIMUM, LANDSCAPES, hartmann6, mapped, relabelled
from search.objective import Objective
from search.simulate import SimulationSettings, simulate_everywhere, simulate_landscape
from search.trace import Trace
from tests.unit.test_simulate import SPACE, SPECS, TRACE, AwayFromBest, TowardBest, trace_of

SETTINGS = SimulationSettings(iterations=6, seeds=16)


def encoded_bowl(x: np.ndarray) -> float:
    """test_simulate's bowl on the encoded space (LR log-scaled over 1e-4..1, DEPTH over 1..12, OPT one-hot)."""
    lr, depth = 4 * x[0] - 4, 11 * x[1] + 1
    return float((lr + 1.0) ** 2 + 0.1 * (depth - 2) ** 2 + (0.0 if x[3] == 1.0 else 0.2))


def mirrored_bowl(x: np.ndarray) -> float:
    """The bowl with its optimum at the opposite corner (LR 0.001, DEPTH 12, sgd): TowardBest walks uphill here."""
    lr, depth = 4 * x[0] - 4, 11 * x[1] + 1
    return float((lr + 3.0) ** 2 + 0.1 * (depth - 12) ** 2 + (0.0 if x[2] == 1.0 else 0.2))


@pytest.fixture
def bowls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(LANDSCAPES, "bowl", lambda dims, seed: encoded_bowl)
    monkeypatch.setitem(LANDSCAPES, "mirrored", lambda dims, seed: mirrored_bowl)


def test_hartmann6_has_its_published_minimum() -> None:
    optimum = np.array([0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573])
    assert hartmann6(optimum) == pytest.approx(HARTMANN6_MINIMUM, abs=1e-4)
    assert hartmann6(np.full(6, 0.9)) > HARTMANN6_MINIMUM + 1


@pytest.mark.parametrize("name", sorted(LANDSCAPES))
def test_a_landscape_is_drawn_per_seed_reproducibly(name: str) -> None:
    probe = {"LR": 0.02, "DEPTH": 7, "OPT": "adam", "BIAS": True}
    first, again, other = (mapped(name, TRACE, SPECS, seed) for seed in (0, 0, 1))
    assert first.predict(probe) == again.predict(probe) != other.predict(probe)


@pytest.mark.parametrize("objective", [Objective(name="loss"), Objective(name="acc", goal="maximize")])
def test_a_mapped_landscape_is_in_the_traces_units_and_direction(bowls: None, objective: Objective) -> None:
    trace = trace_of(TRACE.tried_configs(), objective)
    landscape = mapped("bowl", trace, SPECS, 0)
    values = [e.measured for e in trace.experiments if e.measured is not None]
    predicted = [landscape.predict(e.config) for e in trace.experiments]
    assert np.mean(predicted) == pytest.approx(np.mean(values))  # centred on the trace
    optimum, corner = {"LR": 0.1, "DEPTH": 2, "OPT": "adam", "BIAS": False}, {"LR": 1e-4, "DEPTH": 12, "OPT": "sgd", "BIAS": False}
    assert objective.better(landscape.predict(optimum), landscape.predict(corner))


def test_relabelling_replaces_values_redoes_keeps_and_leaves_crashes() -> None:
    trace = trace_of([*TRACE.tried_configs(), {"LR": 0.2, "DEPTH": 9, "OPT": "adam", "BIAS": False}], crashed=(6,))
    landscape = mapped("hartmann6", trace, SPECS, 3)
    local = relabelled(trace, landscape, 0.0, 3)
    assert [e.measured for e in local.experiments[:6]] == pytest.approx([landscape.predict(e.config) for e in trace.experiments[:6]])
    assert local.experiments[6].crashed and local.experiments[6].measured is None
    best = local.experiments[0].measured
    for experiment in local.decided:  # keeps follow the default rule on the new values
        assert experiment.kept == (experiment.measured is not None and experiment.measured < best)  # type: ignore[operator]
        best = experiment.measured if experiment.kept else best


def test_the_same_hooks_on_both_sides_give_exactly_zero_on_every_landscape() -> None:
    for name in LANDSCAPES:
        gain = simulate_landscape(TRACE, SPACE, SearchConfig(), name, current=lambda _t: NoHooks(),
                                  candidate=lambda _t: NoHooks(), settings=SimulationSettings(iterations=3, seeds=4))
        assert gain.per_seed == [0.0] * 4 and not gain.harmful


def test_each_arm_is_rebuilt_from_the_relabelled_trace_of_its_seed() -> None:
    seen: list[Trace] = []

    def recording(trace: Trace) -> Hooks:
        seen.append(trace)
        return NoHooks()

    simulate_everywhere(TRACE, SPACE, SearchConfig(), current=recording, candidate=recording,
                        settings=SimulationSettings(iterations=2, seeds=3))
    assert seen[:6] == [TRACE] * 6  # the surrogate's seeds: the trace itself
    relabelled_traces = seen[6:]
    assert len(relabelled_traces) == 2 * 3 * len(LANDSCAPES)
    assert all(t.tried_configs() == TRACE.tried_configs() and t is not TRACE for t in relabelled_traces)
    assert relabelled_traces[0] is relabelled_traces[1]  # both arms of a seed start from the same trace
    assert relabelled_traces[0].experiments[1].measured != relabelled_traces[2].experiments[1].measured


def test_a_mechanism_that_helps_on_all_landscapes_is_selectable(bowls: None) -> None:
    gain = simulate_everywhere(TRACE, SPACE, SearchConfig(), current=lambda _t: NoHooks(),
                               candidate=lambda _t: TowardBest(), settings=SETTINGS.model_copy(update={"landscapes": ("bowl",)}))
    assert gain.beats_current and [entry.landscape for entry in gain.landscapes] == ["bowl"]
    assert gain.landscapes[0].ci_high < 0 and gain.selectable


def test_a_mechanism_tuned_to_the_traces_landscape_is_refused_where_it_harms(bowls: None) -> None:
    settings = SETTINGS.model_copy(update={"landscapes": ("bowl", "mirrored")})
    gain = simulate_everywhere(TRACE, SPACE, SearchConfig(), current=lambda _t: NoHooks(),
                               candidate=lambda _t: TowardBest(), settings=settings)
    assert gain.beats_current  # on the trace's surrogate it helps ...
    assert gain.harmful_on == ["mirrored"] and not gain.selectable  # ... but walks uphill where the optimum differs
    assert "mirrored Δ +" in gain.describe()


def test_a_harmful_mechanism_is_flagged_on_a_landscape_shaped_like_the_trace(bowls: None) -> None:
    gain = simulate_landscape(TRACE, SPACE, SearchConfig(), "bowl", current=lambda _t: NoHooks(),
                              candidate=lambda _t: AwayFromBest(), settings=SETTINGS)
    assert gain.harmful and gain.ci_low > 0


def test_unknown_landscapes_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: synthetic, hartmann6"):
        SimulationSettings(landscapes=("branin",))


def gain_with(*landscapes: tuple[float, float]) -> SimulatedGain:
    entries = [LandscapeGain(landscape=f"l{i}", delta=(low + high) / 2, ci_low=low, ci_high=high, seeds=4)
               for i, (low, high) in enumerate(landscapes)]
    return SimulatedGain(delta=-0.1, ci_low=-0.2, ci_high=-0.01, seeds=4, iterations=2, landscapes=entries)


def test_the_rule_tolerates_an_unsure_landscape_but_not_a_harmful_one() -> None:
    unsure: Any = gain_with((-0.3, 0.2), (-0.1, -0.01))
    assert unsure.selectable and unsure.harmful_on == []
    harmful = gain_with((-0.3, 0.2), (0.01, 0.2))
    assert not harmful.selectable and harmful.harmful_on == ["l1"]
