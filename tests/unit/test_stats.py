"""Statistics of ablations (known answers) and mechanism influence on a hand-built trace."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from reports.stats import (
    AblationStats,
    ablation_statistics,
    arm_stats,
    bootstrap_mean_ci,
    comparison_pairs,
    deltas_of,
    holm_adjust,
)
from search.influence import mechanism_influence
from search.objective import Objective
from search.trace import Experiment, MechanismActivity, RunOutcome, Trace

ACCURACY = Objective(name="accuracy", goal="maximize")
COMMITTED_BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "bench-local" / "statistics.json"

BASELINES = [2.86, 2.90, 2.83, 2.88, 2.85, 2.87, 2.89, 2.84]
# Per-seed Δ of a reference arm that hardly improves, and of an arm that clearly does better on every seed.
REFERENCE_DELTAS = [-0.05, -0.07, -0.04, -0.06, -0.05, -0.08, -0.03, -0.06]
BETTER_DELTAS = [-0.31, -0.28, -0.35, -0.30, -0.26, -0.33, -0.29, -0.32]


def repeats(deltas: list[float | None], baselines: list[float] = BASELINES) -> list[tuple[float, float] | None]:
    return [None if d is None else (b, b + d) for b, d in zip(baselines, deltas, strict=False)]


# -- per arm ---------------------------------------------------------------------------------------


def test_delta_is_best_minus_baseline_and_keeps_seed_positions() -> None:
    assert deltas_of([(3.0, 2.5), None, (2.0, 2.0)]) == [-0.5, None, 0.0]


def test_delta_of_a_maximised_metric_is_sign_corrected() -> None:
    """Accuracy 0.80 -> 0.90 is an improvement: Δ = baseline − best = −0.10, negative as for a falling loss."""
    assert deltas_of([(0.80, 0.90), (0.80, 0.75), None], ACCURACY) == pytest.approx([-0.10, 0.05, None])


def test_non_finite_values_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        deltas_of([(3.0, math.nan)])


@pytest.mark.parametrize("n", [1, 2])
def test_ci_is_undefined_below_three_repeats_and_says_so(n: int) -> None:
    stats = arm_stats("A", [-0.1, -0.2][:n])
    assert stats.n == n
    assert stats.mean == pytest.approx([-0.1, -0.15][n - 1])
    assert stats.ci is None
    assert "undefined" in stats.ci_note and f"n={n}" in stats.ci_note


def test_arm_without_any_finished_repeat() -> None:
    stats = arm_stats("A", [None, None])
    assert (stats.n, stats.mean, stats.ci) == (0, None, None)
    assert stats.ci_note == "no finished repeat"


def test_bootstrap_ci_brackets_the_mean_and_is_reproducible() -> None:
    values = [-0.31, -0.28, -0.35, -0.30, -0.26]
    first, second = bootstrap_mean_ci(values, seed=3), bootstrap_mean_ci(values, seed=3)
    assert first == second
    assert first is not None
    assert -0.35 <= first.low < sum(values) / len(values) < first.high <= -0.26


def test_bootstrap_ci_of_constant_values_is_that_value() -> None:
    ci = bootstrap_mean_ci([0.0, 0.0, 0.0])
    assert ci is not None and (ci.low, ci.high) == (0.0, 0.0) and ci.spans_zero


# -- Holm ----------------------------------------------------------------------------------------------


def test_holm_on_known_p_values() -> None:
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> raised to 0.06 (monotone)
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_keeps_a_single_p() -> None:
    assert holm_adjust([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert holm_adjust([0.02]) == pytest.approx([0.02])
    assert holm_adjust([]) == []


def test_holm_refuses_values_outside_zero_one() -> None:
    with pytest.raises(ValueError):
        holm_adjust([0.1, 1.2])


# -- comparisons and verdicts ----------------------------------------------------------------------


def test_clearly_better_arm_is_better_with_a_ci_below_zero() -> None:
    result = ablation_statistics({"A": repeats(REFERENCE_DELTAS), "C": repeats(BETTER_DELTAS)}, references=["A"])
    comparison = result.comparisons[0]
    assert comparison.test == "wilcoxon signed-rank" and comparison.n_pairs == 8
    assert comparison.p_value == pytest.approx(2 / 2**8)
    assert comparison.p_holm == comparison.p_value  # one comparison: nothing to correct
    assert comparison.ci is not None and comparison.ci.high < 0
    assert comparison.mean_difference == pytest.approx(-0.25, abs=1e-9)
    assert comparison.verdict == "better"


def test_clearly_worse_arm_is_worse() -> None:
    result = ablation_statistics({"A": repeats(BETTER_DELTAS), "B": repeats(REFERENCE_DELTAS)}, references=["A"])
    assert result.comparisons[0].verdict == "worse"
    assert result.comparisons[0].ci.low > 0  # type: ignore[union-attr]


def test_identical_arms_are_inconclusive() -> None:
    # Same Δ reached through different baselines: the differences are float noise, not a result.
    shifted = [b + 0.1 for b in BASELINES]
    result = ablation_statistics({"A": repeats(REFERENCE_DELTAS), "B": repeats(REFERENCE_DELTAS, shifted)},
                                 references=["A"])
    comparison = result.comparisons[0]
    assert comparison.p_value == 1.0
    assert comparison.ci is not None and comparison.ci.spans_zero
    assert comparison.verdict == "inconclusive" and "includes 0" in comparison.reason


def test_three_pairs_cannot_be_significant_and_the_reason_says_why() -> None:
    result = ablation_statistics({"A": repeats(REFERENCE_DELTAS[:3]), "C": repeats(BETTER_DELTAS[:3])},
                                 references=["A"])
    comparison = result.comparisons[0]
    assert comparison.min_attainable_p == pytest.approx(0.25)
    assert comparison.ci is not None and comparison.ci.high < 0  # the effect is visible...
    assert comparison.verdict == "inconclusive"  # ...but three pairs cannot establish it
    assert "cannot give p below 0.25" in comparison.reason


def test_holm_correction_can_turn_a_nominal_win_inconclusive() -> None:
    # Six pairs: the best Wilcoxon p is 0.03125 < 0.05, but with three tested arms Holm multiplies it by 3.
    arms = {"A": repeats(REFERENCE_DELTAS[:6]), "B": repeats(REFERENCE_DELTAS[:6]),
            "C": repeats(BETTER_DELTAS[:6]), "D": repeats(REFERENCE_DELTAS[:6])}
    result = ablation_statistics(arms, references=["A"])
    c = next(x for x in result.comparisons if x.arm == "C")
    assert c.p_value == pytest.approx(0.03125)
    assert c.p_holm == pytest.approx(0.09375)
    assert c.verdict == "inconclusive" and "Holm" in c.reason


def test_unpaired_arms_fall_back_to_mann_whitney() -> None:
    arm = [-0.3, -0.31, -0.29, -0.33, None, None, None, None]
    reference = [None, None, None, None, -0.05, -0.06, -0.04, -0.07]  # no ties: the exact test applies
    result = ablation_statistics({"A": repeats(reference), "C": repeats(arm)}, references=["A"])
    comparison = result.comparisons[0]
    assert comparison.test == "mann-whitney u" and comparison.n_pairs == 0
    assert comparison.p_value == pytest.approx(2 / math.comb(8, 4))
    assert comparison.mean_difference == pytest.approx(-0.2525)


def test_too_few_repeats_means_no_test_and_no_holm_share() -> None:
    arms = {"A": repeats(REFERENCE_DELTAS), "B": repeats([-0.2, -0.3, None, None, None, None, None, None]),
            "C": repeats(BETTER_DELTAS)}
    result = ablation_statistics(arms, references=["A"])
    b = next(x for x in result.comparisons if x.arm == "B")
    c = next(x for x in result.comparisons if x.arm == "C")
    assert (b.test, b.p_value, b.p_holm, b.verdict) == ("none", None, None, "inconclusive")
    assert "no test" in b.reason
    assert c.p_holm == c.p_value  # B was not tested, so the family has one member


def test_unknown_reference_arm_is_an_error() -> None:
    with pytest.raises(ValueError, match="reference arm"):
        ablation_statistics({"B": repeats(REFERENCE_DELTAS)}, references=["A"])
    with pytest.raises(ValueError, match="at least one reference arm"):
        ablation_statistics({"B": repeats(REFERENCE_DELTAS)}, references=[])


# -- a maximised objective, several reference arms, Holm over every test -------------------------------


def accuracy_repeats(gains: list[float], baselines: list[float] = (0.61, 0.63, 0.60, 0.62, 0.64, 0.59, 0.62, 0.61)
                     ) -> list[tuple[float, float]]:
    """(baseline, best) accuracies of repeats that gained `gains` (higher is better)."""
    return [(b, b + g) for b, g in zip(baselines, gains, strict=False)]


def test_an_arm_that_raises_a_maximised_metric_more_is_better() -> None:
    """The same numbers read as a loss would make C worse; as an accuracy they make it better."""
    small = [0.01, 0.02, 0.01, 0.015, 0.01, 0.02, 0.005, 0.01]
    large = [0.08, 0.09, 0.07, 0.10, 0.085, 0.095, 0.075, 0.08]
    arms = {"A": accuracy_repeats(small), "C": accuracy_repeats(large)}
    as_accuracy = ablation_statistics(arms, references=["A"], objective=ACCURACY)
    (comparison,) = as_accuracy.comparisons
    assert as_accuracy.arm("C").mean == pytest.approx(-sum(large) / 8)
    assert comparison.mean_difference == pytest.approx(-(sum(large) - sum(small)) / 8)
    assert comparison.ci is not None and comparison.ci.high < 0 and comparison.verdict == "better"
    assert as_accuracy.objective == ACCURACY
    as_loss = ablation_statistics(arms, references=["A"], objective=Objective(name="loss"))
    assert as_loss.comparisons[0].verdict == "worse"


def test_every_arm_is_tested_against_every_reference_each_pair_once() -> None:
    assert comparison_pairs(["A", "C", "random", "tpe", "hybrid"], ["random", "tpe", "hybrid"]) == [
        ("random", "A"), ("random", "C"), ("random", "tpe"), ("random", "hybrid"),
        ("tpe", "A"), ("tpe", "C"), ("tpe", "hybrid"),
        ("hybrid", "A"), ("hybrid", "C"),
    ]


def test_three_references_holm_corrects_over_every_test_made() -> None:
    arms = {"A": repeats(REFERENCE_DELTAS), "C": repeats(BETTER_DELTAS), "random": repeats(REFERENCE_DELTAS),
            "tpe": repeats([d - 0.01 for d in REFERENCE_DELTAS]), "hybrid": repeats([d * 0.9 for d in BETTER_DELTAS])}
    result = ablation_statistics(arms, references=["random", "tpe", "hybrid"])
    assert result.references == ["random", "tpe", "hybrid"] and result.reference == "random"
    assert [(c.arm, c.reference) for c in result.comparisons] == [
        ("A", "random"), ("C", "random"), ("tpe", "random"), ("hybrid", "random"),
        ("A", "tpe"), ("C", "tpe"), ("hybrid", "tpe"), ("A", "hybrid"), ("C", "hybrid")]
    assert result.tests == 9
    raw = [c.p_value for c in result.comparisons]
    assert [c.p_holm for c in result.comparisons] == pytest.approx(holm_adjust(raw))  # one family of nine
    c_vs_random = result.comparison("C", "random")
    assert c_vs_random.p_value == pytest.approx(2 / 2**8)
    # 0.0078 alone would be "better"; nine tests multiply the smallest p by 9: above 0.05, so inconclusive.
    assert c_vs_random.p_holm == pytest.approx(9 * 2 / 2**8)
    assert c_vs_random.verdict == "inconclusive" and "Holm" in c_vs_random.reason


def test_holm_family_spans_references_not_one_reference_at_a_time() -> None:
    """Arms A, B, C against references A and B: three tests (B-A, C-A, C-B). Corrected per reference, C vs A would
    share a family of two; across every test it shares one of three."""
    arms = {"A": repeats(REFERENCE_DELTAS[:7]), "B": repeats(REFERENCE_DELTAS[:7]), "C": repeats(BETTER_DELTAS[:7])}
    result = ablation_statistics(arms, references=["A", "B"])
    assert [(c.arm, c.reference) for c in result.comparisons] == [("B", "A"), ("C", "A"), ("C", "B")]
    c_vs_a = result.comparison("C", "A")
    assert c_vs_a.p_value == pytest.approx(2 / 2**7)
    assert c_vs_a.p_holm == pytest.approx(3 * 2 / 2**7)


def test_a_reference_named_as_a_string_or_twice_is_tested_once() -> None:
    arms = {"A": repeats(REFERENCE_DELTAS), "C": repeats(BETTER_DELTAS)}
    assert ablation_statistics(arms, references="A").references == ["A"]  # type: ignore[arg-type]
    assert len(ablation_statistics(arms, references=["A", "A"]).comparisons) == 1


def test_noise_floor_per_arm_is_the_median_of_the_measured_repeats() -> None:
    arms = {"A": repeats(REFERENCE_DELTAS[:4]), "C": repeats(BETTER_DELTAS[:4])}
    result = ablation_statistics(arms, references=["A"], noise_floors={"A": [0.05, None, 0.03, 0.04]})
    assert result.arm("A").noise_floor == pytest.approx(0.04)
    assert result.arm("A").noise_floors == [0.05, None, 0.03, 0.04]
    assert result.arm("C").noise_floor is None and result.arm("C").noise_floors == []


def test_statistics_written_before_objectives_and_several_references_still_read() -> None:
    """The committed benchmark's statistics.json (one `reference`, no objective) reads as val_bpb against A."""
    old = json.loads(COMMITTED_BENCHMARK.read_text())["statistics"]
    assert "references" not in old and "objective" not in old  # the file is the old format: this test means it
    statistics = AblationStats.model_validate(old)
    assert statistics.references == ["A"] and statistics.objective == Objective(name="val_bpb", goal="minimize")
    assert statistics.comparison("C", "A").mean_difference == pytest.approx(-0.0290, abs=5e-5)
    assert statistics.arm("random").noise_floor is None


def test_statistics_round_trip_through_json() -> None:
    result = ablation_statistics({"A": repeats(REFERENCE_DELTAS), "C": repeats(BETTER_DELTAS)}, references=["A"],
                                 objective=ACCURACY, noise_floors={"A": [0.01] * 8})
    assert AblationStats.model_validate_json(result.model_dump_json()) == result
    assert result.arm("C").n == 8


# -- mechanism influence -------------------------------------------------------------------------------


def _experiment(index: int, value: float | None, mechanisms: list[MechanismActivity], kept: bool = False) -> Experiment:
    outcome = RunOutcome(status="ok", value=value) if value is not None else RunOutcome(status="crash")
    return Experiment(index=index, outcome=outcome, kept=kept, mechanisms=mechanisms)


def _activity(name: str, changed: list[str] = (), quarantined: bool = False, note: str = "") -> MechanismActivity:  # type: ignore[assignment]
    return MechanismActivity(name=name, version="v1", calls={"plan": 1, "accept": 1}, changed=list(changed),
                             quarantined=quarantined, note=note)


def influence_trace() -> Trace:
    return Trace(experiments=[
        _experiment(0, 3.0, []),
        _experiment(1, 2.9, [], kept=True),
        _experiment(2, 2.8, [_activity("anneal", ["accept"]), _activity("focus")], kept=True),
        _experiment(3, 2.95, [_activity("anneal"), _activity("focus")]),
        _experiment(4, None, [_activity("anneal", ["plan"]), _activity("focus")]),
        _experiment(5, 2.7, [_activity("anneal", quarantined=True, note="accept timed out"), _activity("focus")]),
    ])


def test_mechanism_influence_counts_and_groups() -> None:
    anneal, focus = mechanism_influence({"run": influence_trace()})
    assert anneal.key == "anneal@v1"
    assert anneal.calls == {"plan": 4, "accept": 4}
    assert anneal.changed == {"accept": 1, "plan": 1} and anneal.decisions_changed == 2
    assert (anneal.experiments_active, anneal.experiments_influenced) == (4, 2)
    assert anneal.influenced.experiments == 2 and anneal.influenced.failed == 1
    assert anneal.influenced.mean_value == pytest.approx(2.8)
    assert anneal.influenced.mean_delta == pytest.approx(-0.2)
    assert anneal.active_not_influenced.experiments == 2
    assert anneal.active_not_influenced.median_value == pytest.approx((2.95 + 2.7) / 2)
    assert anneal.inactive.experiments == 1  # the baseline is no search decision and is left out
    assert anneal.inactive.mean_value == pytest.approx(2.9)
    assert anneal.liveness == "quarantined" and anneal.quarantine_notes == ["accept timed out"]
    assert focus.liveness == "inert" and focus.experiments_influenced == 0


def test_influence_compares_only_within_runs_where_the_mechanism_ran() -> None:
    other = Trace(experiments=[_experiment(0, 3.1, []), _experiment(1, 1.0, [])])
    anneal, _ = mechanism_influence({"run": influence_trace(), "other": other})
    assert anneal.meta_runs == ["run"]
    assert anneal.inactive.experiments == 1  # the other run's 1.0 does not leak into the comparison


def test_mechanism_never_called_is_reported_so() -> None:
    silent = MechanismActivity(name="silent", version="v2")
    trace = Trace(experiments=[_experiment(0, 3.0, []), _experiment(1, 2.9, [silent])])
    (entry,) = mechanism_influence({"run": trace})
    assert entry.liveness == "never called" and entry.total_calls == 0


def test_mann_whitney_with_ties_never_goes_below_its_exact_floor() -> None:
    """Repeats that found nothing tie at Δ = 0; the p of 3 vs 3 can never be below 2 / C(6, 3) = 0.1."""
    reference = [0.0, 0.0, 0.0, None, None, None, None, None]
    arm = [None, None, None, -0.01, -0.01, -0.01, None, None]
    comparison = ablation_statistics({"A": repeats(reference), "C": repeats(arm)}, references=["A"]).comparisons[0]
    assert comparison.test == "mann-whitney u"
    assert comparison.p_value == pytest.approx(0.1) and comparison.min_attainable_p == pytest.approx(0.1)
    assert comparison.verdict == "inconclusive"
