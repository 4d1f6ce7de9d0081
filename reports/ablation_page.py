"""The report page of an ablation: verdicts first, then the curves, Δ distributions, statistics tables, every
repeat, and the mechanisms."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from reports.html import (Markup, badge, esc, figure, interval, join, number, p_value, page, section, table, tag)
from search.influence import MechanismInfluence
from reports.mechanism_section import mechanisms_section, unique_sources
from reports.run_data import RunData
from reports.stats import MIN_CI_N, MIN_TEST_N, AblationStats, Comparison
from search.ablation import AblationManifest, ArmSpec

Repeats = Mapping[str, Sequence[RunData | None]]  # per arm, per seed index; None: not started


def ablation_page(manifest: AblationManifest, repeats: Repeats, statistics: AblationStats,
                  influence: list[MechanismInfluence], curves_png: Path | None, deltas_png: Path | None,
                  run_links: Mapping[str, str]) -> str:
    """The whole HTML document of an ablation."""
    arms = {item.arm.name: item.arm for item in manifest.arms}
    parts: list[object] = [
        section("Verdicts", _verdicts(statistics), _caveats(statistics, repeats), element_id="verdicts"),
    ]
    if curves_png is not None:
        parts.append(section("Best-so-far curves", figure(
            curves_png, "best-so-far curves per arm",
            "Median across repeats (the band is named in the figure). Right: each repeat relative to its own "
            "baseline, which removes the seed-to-seed spread of the baselines."), element_id="curves"))
    if deltas_png is not None:
        parts.append(section("Δval_bpb per repeat", figure(deltas_png, "Δval_bpb distribution per arm"),
                             element_id="deltas"))
    parts.append(section("Arms", _arm_table(statistics, arms, repeats), element_id="arms"))
    parts.append(section(f"Against arm {statistics.reference}", _comparison_table(statistics),
                         tag("p", _method_note(statistics), cls="small"), element_id="comparisons"))
    parts.append(section("Repeats", _repeat_table(manifest, repeats, run_links), element_id="repeats"))
    runs = [run for items in repeats.values() for run in items if run is not None]
    parts.append(mechanisms_section(influence, unique_sources([run.sources for run in runs])))
    return page(f"Ablation {manifest.ablation_id}", _subtitle(manifest), join(parts))


def _subtitle(manifest: AblationManifest) -> str:
    return (f"{manifest.workload} · model {manifest.model} · budget {manifest.budget:g} {manifest.budget_mode} · "
            f"{manifest.generations} generations × {manifest.iterations} iterations · seeds "
            f"{', '.join(str(s) for s in manifest.seeds)} · reference arm {manifest.reference_arm} · "
            f"created {manifest.created}")


def _verdicts(statistics: AblationStats) -> Markup:
    if not statistics.comparisons:
        return tag("p", "Only the reference arm ran: there is nothing to compare.")
    items = []
    for comparison in statistics.comparisons:
        effect = (f"mean difference {number(comparison.mean_difference, sign=True)} bpb"
                  if comparison.mean_difference is not None else "no difference measurable")
        items.append(tag("li", join([badge(comparison.verdict, comparison.verdict),
                                     Markup(" "), tag("strong", comparison.arm), f" vs {comparison.reference}: ",
                                     effect, f" — {comparison.reason}."])))
    return tag("ul", join(items), cls="verdicts")


def _caveats(statistics: AblationStats, repeats: Repeats) -> Markup:
    notes = [
        "Δ is the best of many noisy measurements minus one baseline measurement, so it is negative even for a "
        "search that learns nothing (the winner's curse). Compare arms with each other and with the random-search "
        "control, not with zero.",
    ]
    smallest = min((a.n for a in statistics.arms), default=0)
    if smallest < 10:
        notes.append(f"The smallest arm has n={smallest} finished repeats. Bootstrap CIs are too narrow at small n, "
                     f"and rank tests cannot reach small p-values: treat CIs as rough and look at the points.")
    absent = sum(1 for items in repeats.values() for run in items if run is None or not run.usable)
    if absent:
        notes.append(f"{absent} repeat(s) are missing, failed or unfinished and are left out of the statistics "
                     "(see Repeats).")
    return tag("div", tag("strong", "Read with care") + tag("ul", join(tag("li", n) for n in notes)), cls="caveats")


def _arm_table(statistics: AblationStats, arms: Mapping[str, ArmSpec], repeats: Repeats) -> Markup:
    rows = []
    for item in statistics.arms:
        spec = arms.get(item.arm)
        listed = len(repeats.get(item.arm, []))
        ci = interval(item.ci.low, item.ci.high) if item.ci else (item.ci_note or "undefined", "small")
        per_repeat = ", ".join("–" if d is None else f"{d:+.4f}" for d in item.deltas)
        rows.append([
            tag("strong", item.arm),
            (_arm_description(spec), "small"),
            f"{item.n} of {listed}",
            number(item.mean, sign=True),
            number(item.median, sign=True),
            ci,
            (per_repeat, "small"),
        ])
    return table(["arm", "what runs", "finished", "mean Δ", "median Δ", "95% CI of mean Δ", "Δ per seed"], rows,
                 numeric=(2, 3, 4, 5))


def _arm_description(spec: ArmSpec | None) -> str:
    if spec is None:
        return ""
    facts = [spec.description or f"levels {', '.join(spec.levels)}"]
    if spec.proposer != "llm":
        facts.append(f"proposer {spec.proposer}")
    return "; ".join(facts)


def _comparison_table(statistics: AblationStats) -> Markup:
    if not statistics.comparisons:
        return tag("p", "No other arm to compare with.")
    rows = [_comparison_row(c) for c in statistics.comparisons]
    # The reason of each verdict is spelled out in the Verdicts list at the top.
    return table(["arm", "verdict", "test", "n", "mean difference", "median difference", "95% CI of difference",
                  "p", "Holm p", "p floor"], rows, numeric=(3, 4, 5, 6, 7, 8, 9))


def _comparison_row(comparison: Comparison) -> list[object]:
    n = (f"{comparison.n_pairs} pairs" if comparison.test == "wilcoxon signed-rank"
         else f"{comparison.n_arm} vs {comparison.n_reference}")
    ci = interval(comparison.ci.low, comparison.ci.high) if comparison.ci else "undefined"
    return [tag("strong", comparison.arm), badge(comparison.verdict, comparison.verdict), (comparison.test, "nowrap"),
            (n, "nowrap"),
            number(comparison.mean_difference, sign=True), number(comparison.median_difference, sign=True), ci,
            p_value(comparison.p_value), p_value(comparison.p_holm), p_value(comparison.min_attainable_p)]


def _counts(run: RunData) -> list[str]:
    """Experiments, kept and crashes of a repeat; dashes when it has no trace."""
    if run.trace is None:
        return ["–", "–", "–"]
    experiments = run.trace.experiments[1:]
    return [str(len(experiments)), str(sum(1 for e in experiments if e.kept)),
            str(sum(1 for e in experiments if e.outcome.status in ("crash", "timeout")))]


def _method_note(statistics: AblationStats) -> str:
    return (f"Difference = Δ(arm) − Δ({statistics.reference}); negative means the arm found lower val_bpb. Repeats "
            f"are paired by seed: Wilcoxon signed-rank on the per-seed differences when at least {MIN_TEST_N} "
            f"pairs are complete, else Mann-Whitney U on all finished repeats. CIs: percentile bootstrap of the "
            f"mean ({statistics.resamples:,} resamples, seed {statistics.seed}, needs n ≥ {MIN_CI_N}). p-values are "
            f"Holm-adjusted across the {sum(1 for c in statistics.comparisons if c.p_value is not None)} tested "
            f"arms. 'better'/'worse' needs Holm p < {statistics.alpha:g} and a CI that excludes 0. The p floor is "
            f"the smallest two-sided p the exact test can give at that n.")


def _repeat_table(manifest: AblationManifest, repeats: Repeats, run_links: Mapping[str, str]) -> Markup:
    rows, classes = [], []
    for arm, runs in repeats.items():
        for position, run in enumerate(runs):
            seed = manifest.seeds[position] if position < len(manifest.seeds) else "?"
            if run is None:
                rows.append([arm, str(seed), "–", badge("missing", "missing"), "", "", "", "", "", "",
                             ("not started: the manifest lists no meta-run for this seed", "small")])
                classes.append("problem")
                continue
            link = run_links.get(run.meta_run_id)
            name = Markup(f'<a href="{esc(link)}">{esc(run.meta_run_id)}</a>') if link else tag("code", run.meta_run_id)
            rows.append([arm, str(seed), (name, "nowrap"), badge(run.status, run.status), number(run.baseline),
                         number(run.best), number(run.delta, sign=True), *_counts(run), (run.problem, "small")])
            classes.append(None if run.usable else "problem")
    return table(["arm", "seed", "meta-run", "status", "baseline", "best", "Δ", "experiments", "kept", "crashes",
                  "note"], rows, row_classes=classes, numeric=(1, 4, 5, 6, 7, 8, 9))
