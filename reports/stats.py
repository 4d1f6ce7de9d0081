"""Statistics of an ablation: Δ of the objective per arm with bootstrap CIs, a rank test of every arm against each
reference arm, Holm-adjusted p-values across every test made, a verdict per comparison, and the noise floor per
arm. Pure numpy/scipy, no I/O.

Choices, and why:
- Δ = best − baseline per repeat for a minimised metric, baseline − best for a maximised one: sign-corrected,
  so negative is better whatever the goal (as the paper's Δval_bpb). It is the best of many noisy
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
- Every arm is compared with each reference arm (C against random, tpe and hybrid, not only A). A pair of arms is
  tested once: a reference arm is compared with the references listed after it, not back. Holm-Bonferroni over
  every test actually made (all arms × all references) controls the family-wise error of the whole table.
  An ablation may instead plan its comparisons (`bilevel ablate --compare C-A,C-library,...`): then exactly those
  pairs are tested and form the Holm family, and a planned pair whose arm has not run yet is listed as such.
- Verdict: "better"/"worse" only when the Holm-adjusted p < alpha AND the CI of the difference excludes 0;
  otherwise "inconclusive", with the reason spelled out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
from pydantic import AliasChoices, BaseModel, Field, field_validator
from scipy import stats as scipy_stats

from search.objective import Objective

ALPHA = 0.05
CONFIDENCE = 0.95
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
MIN_CI_N = 3
MIN_TEST_N = 3
# Differences below this are float noise (the same value read back through JSON), not a result.
ZERO_TOLERANCE = 1e-12
MAX_EXACT_ARRANGEMENTS = 100_000  # up to 10 vs 9 repeats: enumerating the exact Mann-Whitney p takes about 1 s

Verdict = Literal["better", "worse", "inconclusive"]
Repeat = tuple[float, float] | None  # (baseline value, best value) of one repeat, None when it has no result


class Interval(BaseModel):
    """A confidence interval."""

    low: float
    high: float

    @property
    def spans_zero(self) -> bool:
        return self.low <= 0.0 <= self.high


class ArmStats(BaseModel):
    """Δ (sign-corrected: negative is better) of one arm over its repeats, and its noise floor."""

    arm: str
    deltas: list[float | None] = Field(description="Δ per repeat in seed order; None where the repeat has no result.")
    n: int
    mean: float | None = None
    median: float | None = None
    ci: Interval | None = None
    ci_note: str = ""
    noise_floors: list[float | None] = Field(default_factory=list, description="Per repeat in seed order: the "
                                             "seed-to-seed standard deviation of the baseline; None: not measured.")
    noise_floor: float | None = Field(None, description="Median of the measured noise floors; None: none measured.")


class Comparison(BaseModel):
    """One arm against one reference arm: difference of Δ (arm − reference; negative means the arm is better)."""

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
    noise_floor: float | None = Field(None, description="Median over the pairs of the larger of the two repeats' "
                                      "noise floors: a difference inside it is within one measurement's noise.")
    verdict: Verdict = "inconclusive"
    reason: str = ""


class AblationStats(BaseModel):
    """Every arm's statistics and every comparison with each reference arm, under the ablation's objective.
    Statistics written before objectives and several references existed (`reference: "A"`) read as val_bpb,
    minimised, against that one arm."""

    objective: Objective = Field(default_factory=Objective)
    references: list[str] = Field(min_length=1, validation_alias=AliasChoices("references", "reference"))
    alpha: float = ALPHA
    confidence: float = CONFIDENCE
    resamples: int = RESAMPLES
    seed: int = BOOTSTRAP_SEED
    arms: list[ArmStats]
    comparisons: list[Comparison]
    planned: bool = Field(False, description="The comparisons are the ablation's planned pairs (the whole Holm family), "
                          "not every arm against each reference.")

    @field_validator("references", mode="before")
    @classmethod
    def _one_reference_is_a_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @property
    def reference(self) -> str:
        """The first reference arm (plots draw it in black)."""
        return self.references[0]

    @property
    def tests(self) -> int:
        """How many tests were made: the size of the Holm family."""
        return sum(1 for c in self.comparisons if c.p_value is not None)

    def arm(self, name: str) -> ArmStats:
        for item in self.arms:
            if item.arm == name:
                return item
        raise KeyError(name)

    def comparison(self, arm: str, reference: str) -> Comparison:
        for item in self.comparisons:
            if (item.arm, item.reference) == (arm, reference):
                return item
        raise KeyError((arm, reference))


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
              confidence: float = CONFIDENCE, noise_floors: Sequence[float | None] = ()) -> ArmStats:
    """n, mean, median and the bootstrap CI of the mean Δ of one arm, and the median of its repeats' noise floors."""
    values = [d for d in deltas if d is not None]
    measured = [f for f in noise_floors if f is not None]
    result = ArmStats(arm=arm, deltas=list(deltas), n=len(values), noise_floors=list(noise_floors),
                      noise_floor=float(np.median(measured)) if measured else None)
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
    """The rank test and the CI of the difference of one arm against one reference (no multiplicity
    correction and no verdict yet: those need all comparisons, see `ablation_statistics`)."""
    pairs = [(a, r) for a, r in zip(arm.deltas, reference.deltas, strict=False) if a is not None and r is not None]
    arm_values = [d for d in arm.deltas if d is not None]
    reference_values = [d for d in reference.deltas if d is not None]
    result = Comparison(arm=arm.arm, reference=reference.arm, test="none", n_pairs=len(pairs),
                        n_arm=len(arm_values), n_reference=len(reference_values),
                        noise_floor=_pair_noise_floor(arm, reference))
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


def _pair_noise_floor(arm: ArmStats, reference: ArmStats) -> float | None:
    floors = [max(a, r) for a, r, da, dr in zip(arm.noise_floors, reference.noise_floors, arm.deltas,
                                               reference.deltas, strict=False)
              if a is not None and r is not None and da is not None and dr is not None]
    return float(np.median(floors)) if floors else None


def not_run(arm: str, reference: str, missing: Sequence[str]) -> Comparison:
    """A planned comparison one of whose arms has no finished repeat yet: listed, not tested, not in the family."""
    return Comparison(arm=arm, reference=reference, test="none",
                      reason=f"not run yet: {' and '.join(missing)} {'has' if len(missing) == 1 else 'have'} no "
                             "finished repeat")


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
    `holm_floor` is a lower bound of every adjusted p of the family (tests made × the smallest p floor)."""
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
        result.reason += (f"; with these n and this many tests no Holm-adjusted p can go below "
                          f"{holm_floor:.3g}: more repeats are needed")
    return result


def ablation_statistics(repeats: Mapping[str, Sequence[Repeat]], references: Sequence[str], *, alpha: float = ALPHA,
                        confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED,
                        objective: Objective | None = None,
                        noise_floors: Mapping[str, Sequence[float | None]] | None = None,
                        pairs: Sequence[tuple[str, str]] | None = None) -> AblationStats:
    """Per-arm Δ statistics and every other arm against each of `references`, Holm-corrected across every test made.
    `repeats` maps an arm to its (baseline, best) per seed index, in the same seed order for every arm;
    `noise_floors` maps an arm to its repeats' noise floors (None: not measured). `pairs` ((arm, reference), planned
    in advance) replaces that family: exactly these are tested and Holm-corrected together; one whose arm has no
    finished repeat (or is not in the ablation yet) is listed as not run yet."""
    references = list(dict.fromkeys([references] if isinstance(references, str) else references))  # once each
    if not references:
        raise ValueError("an ablation needs at least one reference arm to test the others against")
    unknown = [r for r in references if r not in repeats]
    if unknown:
        raise ValueError(f"reference arm(s) {', '.join(unknown)} not among the arms {sorted(repeats)}")
    objective = objective or Objective()
    options = {"resamples": resamples, "seed": seed, "confidence": confidence}
    floors_of = noise_floors or {}
    arms = [arm_stats(name, deltas_of(values, objective), noise_floors=floors_of.get(name, ()), **options)
            for name, values in repeats.items()]
    by_name = {a.arm: a for a in arms}
    planned = [(arm, reference) for arm, reference in pairs] if pairs else None
    wanted = planned or [(arm, reference) for reference, arm in comparison_pairs([a.arm for a in arms], references)]
    raw = []
    for arm, reference in wanted:
        missing = [name for name in (arm, reference) if name not in by_name or by_name[name].n == 0]
        raw.append(not_run(arm, reference, missing) if missing and planned
                   else compare_with_reference(by_name[arm], by_name[reference], resamples=resamples, seed=seed,
                                               confidence=confidence))
    tested = [c for c in raw if c.p_value is not None]
    holm = holm_adjust([c.p_value for c in tested if c.p_value is not None])
    adjusted = dict(zip(((c.arm, c.reference) for c in tested), holm, strict=True))
    floors = [c.min_attainable_p for c in tested if c.min_attainable_p is not None]
    holm_floor = min(1.0, len(tested) * min(floors)) if floors else None
    comparisons = [with_verdict(c, adjusted.get((c.arm, c.reference)), alpha, holm_floor) for c in raw]
    return AblationStats(objective=objective, references=references, alpha=alpha, confidence=confidence,
                         resamples=resamples, seed=seed, arms=arms, comparisons=comparisons, planned=bool(planned))


def comparison_pairs(arms: Sequence[str], references: Sequence[str]) -> list[tuple[str, str]]:
    """(reference, arm) for every test to make: each arm against each reference, in the references' order, each
    unordered pair once (a reference arm is not tested back against a reference listed before it)."""
    pairs: list[tuple[str, str]] = []
    for position, reference in enumerate(references):
        earlier = set(references[:position + 1])
        pairs.extend((reference, arm) for arm in arms if arm not in earlier)
    return pairs
