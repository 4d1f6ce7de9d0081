"""Statistics of an ablation: Δval_bpb per arm with bootstrap CIs, a rank test of each arm against the reference
arm, Holm-adjusted p-values across arms, and a verdict per comparison. Pure numpy/scipy, no I/O.

Choices, and why:
- Δ = best − baseline per repeat (negative is better, as in the paper). It is the best of many noisy
  measurements minus one, so it is negative even for a search that learns nothing: compare arms with each
  other (and with the random-search control), never with zero.
- CIs are percentile bootstraps of the mean (seeded, so a report is reproducible). With fewer than 3 values a
  bootstrap has at most 3 distinct means and its "interval" is just the data: the CI is reported as undefined.
  Percentile bootstraps are too narrow at small n, so a CI from a handful of repeats is a rough guide only.
- Repeats are paired by seed index (the ablation gives every arm the same seeds, hence the same baseline run).
  Paired arms are compared with the Wilcoxon signed-rank test on the per-seed differences: the rank test of
  a paired design, which removes the between-seed variance and assumes no normality (Δ is skewed: one lucky
  run dominates). When fewer than 3 complete pairs exist but each arm has at least 3 values (repeats missing
  on different seeds), the unpaired Mann-Whitney U test on all values is used instead. Below that, no test.
  Exact two-sided rank tests have a floor: with 5 pairs the smallest possible Wilcoxon p is 0.0625, so the
  floor is reported with each test; it explains an "inconclusive" that no effect size could avoid.
- Holm-Bonferroni across the comparisons actually tested controls the family-wise error of "some arm beats A".
- Verdict: "better"/"worse" only when the Holm-adjusted p < alpha AND the CI of the difference excludes 0;
  otherwise "inconclusive", with the reason spelled out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy import stats as scipy_stats

from search.objective import Objective

ALPHA = 0.05
CONFIDENCE = 0.95
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
MIN_CI_N = 3
MIN_TEST_N = 3
# Differences below this are float noise (the same val_bpb read back through JSON), not a result.
ZERO_TOLERANCE = 1e-12
MAX_EXACT_ARRANGEMENTS = 100_000  # up to 10 vs 9 repeats: enumerating the exact Mann-Whitney p takes about 1 s

Verdict = Literal["better", "worse", "inconclusive"]
Repeat = tuple[float, float] | None  # (baseline val_bpb, best val_bpb) of one repeat, None when it has no result


class Interval(BaseModel):
    """A confidence interval."""

    low: float
    high: float

    @property
    def spans_zero(self) -> bool:
        return self.low <= 0.0 <= self.high


class ArmStats(BaseModel):
    """Δval_bpb of one arm over its repeats."""

    arm: str
    deltas: list[float | None] = Field(description="Δ per repeat in seed order; None where the repeat has no result.")
    n: int
    mean: float | None = None
    median: float | None = None
    ci: Interval | None = None
    ci_note: str = ""


class Comparison(BaseModel):
    """One arm against the reference arm: difference of Δ (arm − reference; negative means the arm is better)."""

    arm: str
    reference: str
    test: Literal["wilcoxon signed-rank", "mann-whitney u", "none"]
    n_pairs: int = 0
    n_arm: int = 0
    n_reference: int = 0
    statistic: float | None = None
    p_value: float | None = None
    p_holm: float | None = None
    min_attainable_p: float | None = Field(None, description="The smallest two-sided p this test can give at this n.")
    mean_difference: float | None = None
    median_difference: float | None = None
    ci: Interval | None = None
    verdict: Verdict = "inconclusive"
    reason: str = ""


class AblationStats(BaseModel):
    """Every arm's statistics and every comparison with the reference arm."""

    reference: str
    alpha: float = ALPHA
    confidence: float = CONFIDENCE
    resamples: int = RESAMPLES
    seed: int = BOOTSTRAP_SEED
    arms: list[ArmStats]
    comparisons: list[Comparison]

    def arm(self, name: str) -> ArmStats:
        for item in self.arms:
            if item.arm == name:
                return item
        raise KeyError(name)


def deltas_of(repeats: Sequence[Repeat], objective: Objective | None = None) -> list[float | None]:
    """Δ = best − baseline per repeat, sign-corrected by the goal (negative is better), keeping the seed
    positions (None stays None)."""
    objective = objective or Objective()
    deltas: list[float | None] = []
    for repeat in repeats:
        if repeat is None:
            deltas.append(None)
            continue
        baseline, best = repeat
        if not (math.isfinite(baseline) and math.isfinite(best)):
            raise ValueError(f"baseline and best must be finite numbers, got {repeat}")
        deltas.append(objective.delta(baseline, best))
    return deltas


def bootstrap_mean_ci(values: Sequence[float], *, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED,
                      confidence: float = CONFIDENCE) -> Interval | None:
    """Percentile bootstrap CI of the mean; None when there are too few values for it to mean anything."""
    data = np.asarray(values, dtype=float)
    if data.size < MIN_CI_N:
        return None
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    return _percentile_interval(means, confidence)


def bootstrap_difference_ci(arm: Sequence[float], reference: Sequence[float], *, resamples: int = RESAMPLES,
                            seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE) -> Interval | None:
    """Unpaired percentile bootstrap CI of mean(arm) − mean(reference), each group resampled on its own."""
    a, r = np.asarray(arm, dtype=float), np.asarray(reference, dtype=float)
    if a.size < MIN_CI_N or r.size < MIN_CI_N:
        return None
    rng = np.random.default_rng(seed)
    a_means = a[rng.integers(0, a.size, size=(resamples, a.size))].mean(axis=1)
    r_means = r[rng.integers(0, r.size, size=(resamples, r.size))].mean(axis=1)
    return _percentile_interval(a_means - r_means, confidence)


def _percentile_interval(samples: np.ndarray, confidence: float) -> Interval:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return Interval(low=float(low), high=float(high))


def arm_stats(arm: str, deltas: Sequence[float | None], *, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED,
              confidence: float = CONFIDENCE) -> ArmStats:
    """n, mean, median and the bootstrap CI of the mean Δ of one arm."""
    values = [d for d in deltas if d is not None]
    result = ArmStats(arm=arm, deltas=list(deltas), n=len(values))
    if not values:
        result.ci_note = "no finished repeat"
        return result
    result.mean, result.median = float(np.mean(values)), float(np.median(values))
    result.ci = bootstrap_mean_ci(values, resamples=resamples, seed=seed, confidence=confidence)
    if result.ci is None:
        result.ci_note = f"CI undefined: n={len(values)} (a bootstrap needs at least {MIN_CI_N} repeats)"
    return result


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order (step-down, monotone, capped at 1)."""
    p = np.asarray(p_values, dtype=float)
    if np.any((p < 0) | (p > 1) | np.isnan(p)):
        raise ValueError(f"p-values must lie in [0, 1], got {list(p_values)}")
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, position in enumerate(np.argsort(p, kind="stable")):
        running = max(running, min(1.0, (p.size - rank) * p[position]))
        adjusted[position] = running
    return [float(v) for v in adjusted]


def compare_with_reference(arm: ArmStats, reference: ArmStats, *, resamples: int = RESAMPLES,
                           seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE) -> Comparison:
    """The rank test and the CI of the difference of one arm against the reference (no multiplicity
    correction and no verdict yet: those need all comparisons, see `ablation_statistics`)."""
    pairs = [(a, r) for a, r in zip(arm.deltas, reference.deltas, strict=False) if a is not None and r is not None]
    arm_values = [d for d in arm.deltas if d is not None]
    reference_values = [d for d in reference.deltas if d is not None]
    result = Comparison(arm=arm.arm, reference=reference.arm, test="none", n_pairs=len(pairs),
                        n_arm=len(arm_values), n_reference=len(reference_values))
    if len(pairs) >= MIN_TEST_N:
        differences = np.array([a - r for a, r in pairs])
        differences[np.abs(differences) < ZERO_TOLERANCE] = 0.0
        result.test = "wilcoxon signed-rank"
        result.mean_difference = float(differences.mean())
        result.median_difference = float(np.median(differences))
        result.ci = bootstrap_mean_ci(differences, resamples=resamples, seed=seed, confidence=confidence)
        result.statistic, result.p_value, result.min_attainable_p = _wilcoxon(differences)
    elif len(arm_values) >= MIN_TEST_N and len(reference_values) >= MIN_TEST_N:
        result.test = "mann-whitney u"
        result.mean_difference = float(np.mean(arm_values) - np.mean(reference_values))
        result.median_difference = float(np.median(arm_values) - np.median(reference_values))
        result.ci = bootstrap_difference_ci(arm_values, reference_values, resamples=resamples, seed=seed,
                                            confidence=confidence)
        arrangements = math.comb(len(arm_values) + len(reference_values), len(arm_values))
        # With ties (every repeat that found nothing has Δ = 0) scipy's default switches to the normal
        # approximation, whose p can fall below the exact floor at small n: enumerate instead while that is
        # cheap; beyond that n is large enough for the approximation.
        method = scipy_stats.PermutationMethod(n_resamples=np.inf) if arrangements <= MAX_EXACT_ARRANGEMENTS else "asymptotic"
        test = scipy_stats.mannwhitneyu(arm_values, reference_values, alternative="two-sided", method=method)
        result.statistic, result.p_value = float(test.statistic), float(test.pvalue)
        result.min_attainable_p = min(1.0, 2.0 / arrangements)
    else:
        result.reason = (f"no test: {len(pairs)} complete pairs, n={len(arm_values)} vs n={len(reference_values)} "
                         f"(needs at least {MIN_TEST_N})")
    return result


def _wilcoxon(differences: np.ndarray) -> tuple[float, float, float]:
    """(statistic, two-sided p, smallest attainable p). Zero differences carry no sign and are dropped
    (Wilcoxon's convention); when all are zero the arms are indistinguishable: p = 1."""
    nonzero = int(np.count_nonzero(differences))
    if nonzero == 0:
        return 0.0, 1.0, 1.0
    test = scipy_stats.wilcoxon(differences, zero_method="wilcox", alternative="two-sided")
    return float(test.statistic), float(test.pvalue), min(1.0, 2.0 / 2**nonzero)


def with_verdict(comparison: Comparison, p_holm: float | None, alpha: float = ALPHA,
                 holm_floor: float | None = None) -> Comparison:
    """The comparison with its Holm-adjusted p and the verdict that follows from it and from the CI.
    `holm_floor` is a lower bound of every adjusted p of the family (tested arms × the smallest p floor)."""
    result = comparison.model_copy(update={"p_holm": p_holm})
    if comparison.test == "none" or p_holm is None:
        result.verdict, result.reason = "inconclusive", comparison.reason or "no test"
        return result
    ci = comparison.ci
    if ci is None:
        result.verdict, result.reason = "inconclusive", "CI of the difference undefined (too few repeats)"
    elif ci.spans_zero:
        result.verdict = "inconclusive"
        result.reason = f"the CI of the difference [{ci.low:+.4f}, {ci.high:+.4f}] includes 0"
    elif p_holm >= alpha:
        result.verdict = "inconclusive"
        result.reason = f"Holm-adjusted p = {p_holm:.3g} ≥ {alpha:g}"
    else:
        result.verdict = "better" if (comparison.mean_difference or 0.0) < 0 else "worse"
        result.reason = f"Holm-adjusted p = {p_holm:.3g} < {alpha:g} and the CI excludes 0"
    floor = comparison.min_attainable_p
    if result.verdict == "inconclusive" and floor is not None and floor >= alpha:
        result.reason += f"; with this n the test cannot give p below {floor:.3g}: more repeats are needed"
    elif result.verdict == "inconclusive" and holm_floor is not None and holm_floor >= alpha:
        result.reason += (f"; with these n and this many tested arms no Holm-adjusted p can go below "
                          f"{holm_floor:.3g}: more repeats are needed")
    return result


def ablation_statistics(repeats: Mapping[str, Sequence[Repeat]], reference: str, *, alpha: float = ALPHA,
                        confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                        seed: int = BOOTSTRAP_SEED, objective: Objective | None = None) -> AblationStats:
    """Per-arm Δ statistics and each other arm against `reference`, Holm-corrected across the tested arms.
    `repeats` maps an arm to its (baseline, best) per seed index, in the same seed order for every arm."""
    if reference not in repeats:
        raise ValueError(f"reference arm {reference!r} is not among the arms {sorted(repeats)}")
    options = {"resamples": resamples, "seed": seed, "confidence": confidence}
    arms = [arm_stats(name, deltas_of(values, objective), **options) for name, values in repeats.items()]
    reference_stats = next(a for a in arms if a.arm == reference)
    raw = [compare_with_reference(a, reference_stats, **options) for a in arms if a.arm != reference]
    tested = [c for c in raw if c.p_value is not None]
    adjusted = dict(zip((c.arm for c in tested), holm_adjust([c.p_value for c in tested]), strict=True))  # type: ignore[misc]
    floors = [c.min_attainable_p for c in tested if c.min_attainable_p is not None]
    holm_floor = min(1.0, len(tested) * min(floors)) if floors else None
    comparisons = [with_verdict(c, adjusted.get(c.arm), alpha, holm_floor) for c in raw]
    return AblationStats(reference=reference, alpha=alpha, confidence=confidence, resamples=resamples, seed=seed,
                         arms=arms, comparisons=comparisons)
