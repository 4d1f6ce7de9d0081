"""The simulator-validity benchmark's pure parts (benchmarks/simulator_validity.py): the trace as Level 2 saw it at a
generation's end, sign agreement and rank correlation; and the set-against-set benefit it measures the library with
(mechanisms/benefit.py)."""

from __future__ import annotations

import pytest

from benchmarks.simulator_validity import sign_agreement, spearman, through_generation
from mechanisms.active import ActiveMechanism, ActiveSet
from mechanisms.benefit import next_config, simulated_benefit, simulated_set_benefit
from mechanisms.replay import ReplaySource
from search.config import SearchConfig
from search.simulate import SimulationSettings
from search.trace import GenerationEnd, GenerationStart
from tests.unit.test_benefit import DOWNHILL, WATCHER
from tests.unit.test_simulate import SPACE, TRACE


def generations_of(sizes: tuple[int, ...]):
    """TRACE's experiments split into generations of the given sizes, with start and end records."""
    experiments, starts, ends, index = [TRACE.experiments[0]], [], [], 1
    for generation, size in enumerate(sizes):
        starts.append(GenerationStart(generation=generation, start=index, config=SearchConfig()))
        for experiment in TRACE.experiments[index:index + size]:
            experiments.append(experiment.model_copy(update={"generation": generation}))
        ends.append(GenerationEnd(generation=generation, config=SearchConfig()))
        index += size
    return TRACE.model_copy(update={"experiments": experiments, "generations": starts, "generation_ends": ends})


def test_a_cut_keeps_what_level_2_saw_when_the_generation_ended() -> None:
    trace = generations_of((2, 3))
    cut = through_generation(trace, 0)
    assert [e.index for e in cut.experiments] == [0, 1, 2]
    assert [g.generation for g in cut.generations] == [0]
    assert cut.generation_ends == []  # its own end record was still being written when Level 2 ran
    assert len(through_generation(trace, 1)) == len(trace)
    with pytest.raises(ValueError, match="no experiment of generation 2"):
        through_generation(trace, 2)


def test_sign_agreement_counts_only_gains_of_the_same_sign_and_zero_agrees_with_nothing() -> None:
    # simulated Δ and real Δ: negative is better on both sides
    assert sign_agreement([-0.1, 0.2, 0.0, -0.3], [-1.0, 0.5, -0.7, 0.4]) == 2


def test_spearman_ranks_with_ties_and_refuses_constant_or_short_input() -> None:
    assert spearman([1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]) == pytest.approx(1.0)
    assert spearman([1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert spearman([1.0, 1.0, 2.0], [1.0, 2.0, 3.0]) == pytest.approx(0.8660254)
    assert spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None
    assert spearman([1.0, 2.0], [1.0, 2.0]) is None


SETTINGS = SimulationSettings(iterations=2, seeds=2, landscapes=("synthetic",))


def mechanism(name: str, source: str) -> ActiveMechanism:
    return ActiveMechanism.from_source(name, source, version="library", origin="library")


def test_a_set_against_no_mechanism_is_the_single_mechanism_benefit_and_a_set_against_itself_is_zero() -> None:
    source, config = ReplaySource(meta_run_id="unit"), next_config(TRACE, SearchConfig())
    both = ActiveSet().with_added(mechanism("downhill", DOWNHILL)).with_added(mechanism("watcher", WATCHER))
    as_set = simulated_set_benefit(both, ActiveSet(), TRACE, SPACE, source, config, settings=SETTINGS)
    single = simulated_benefit(mechanism("downhill", DOWNHILL), ActiveSet(), TRACE, SPACE, source, config,
                               settings=SETTINGS)
    assert as_set.per_seed == single.per_seed and any(as_set.per_seed)  # the watcher changes no decision
    assert as_set.decisions_changed == single.decisions_changed > 0
    same = simulated_set_benefit(both, both, TRACE, SPACE, source, config, settings=SETTINGS)
    assert same.per_seed == [0.0] * SETTINGS.seeds
