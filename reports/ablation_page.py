"""The report page of an ablation: verdicts first (every arm against every reference arm), then the curves, Δ
distributions, statistics tables with the noise floor per arm, every repeat, and the mechanisms. Every label names
the ablation's objective and its direction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from reports.arm_costs import ArmCosts
from reports.html import Markup, badge, esc, figure, interval, join, number, p_value, page, section, table, tag
from reports.level2 import MetaRunLevel2, level2_totals
from reports.mechanism_section import mechanisms_section, unique_sources
from reports.run_data import RunData
from reports.stats import MIN_CI_N, MIN_TEST_N, AblationStats, Comparison
from reports.wording import (
    NOISE_FLOOR_MEANING,
    SIGN_CORRECTED,
    delta_formula,
    delta_name,
    noise_floor_text,
    reading_note,
)
from search.ablation import STANDARD_ARMS, AblationManifest, ArmSpec, RepeatCoverage, format_repeats
from search.influence import MechanismInfluence
from search.objective import Objective

Repeats = Mapping[str, Sequence[RunData | None]]  # per arm, per seed index; None: not started
TEST_NAMES = {"wilcoxon signed-rank": "Wilcoxon", "mann-whitney u": "Mann-Whitney U", "none": "none"}


def ablation_page(ablation_id: str, statistics: AblationStats, *, manifest: AblationManifest | None = None,
                  repeats: Repeats | None = None, influence: Sequence[MechanismInfluence] = (),
                  curves_png: Path | None = None, deltas_png: Path | None = None,
                  run_links: Mapping[str, str] | None = None, coverage: RepeatCoverage | None = None,
                  costs: Sequence[ArmCosts] = (), level2: Sequence[MetaRunLevel2] = ()) -> str:
    """The whole HTML document of an ablation. Without a manifest and repeats (a page rebuilt from statistics.json
    alone) the sections that need the meta-runs say so instead."""
    objective = statistics.objective
    arms = {item.arm.name: item.arm for item in manifest.arms} if manifest else {}
    parts: list[object] = [
        tag("p", reading_note(objective), cls="small"),
        *([_partial_notice(coverage, manifest)] if coverage is not None and coverage.partial else []),
        section("Verdicts", _verdicts(statistics), _caveats(statistics, repeats), element_id="verdicts"),
    ]
    if curves_png is not None:
        parts.append(section("Best-so-far curves", figure(
            curves_png, f"best {objective.name} so far per arm",
            f"Median across repeats (the band is named in the figure). Left: the raw best {objective.name} "
            f"({objective.direction}). Right: each repeat's Δ against its own baseline ({delta_formula(objective)}, "
            f"{SIGN_CORRECTED}), which removes the seed-to-seed spread of the baselines."), element_id="curves"))
    if deltas_png is not None:
        parts.append(section(f"{delta_name(objective)} per repeat", figure(
            deltas_png, f"{delta_name(objective)} distribution per arm",
            f"Δ = {delta_formula(objective)} per repeat ({SIGN_CORRECTED}). The grey band around 0 is ± the arm's "
            f"noise floor (median over repeats), where measured."), element_id="deltas"))
    parts.append(section("Arms", _arm_table(statistics, arms, repeats), element_id="arms"))
    if costs:
        parts.append(section("Failures and cost per arm", _cost_table(costs), tag("p", COST_NOTE, cls="small"),
                             element_id="costs"))
    title = ("Planned comparisons" if statistics.planned else
             f"Against the reference arm{'s' if len(statistics.references) > 1 else ''} "
             f"{', '.join(statistics.references)}")
    parts.append(section(title, _comparison_table(statistics), tag("p", _method_note(statistics), cls="small"),
                         element_id="comparisons"))
    level2_arms = sorted({name for name, spec in arms.items() if "2" in spec.levels}
                         | {name for c in statistics.comparisons for name in (c.arm, c.reference)
                            if name in STANDARD_ARMS and "2" in STANDARD_ARMS[name].levels})
    if level2 or level2_arms:
        parts.append(_level2_section(level2, level2_arms, statistics.objective))
    if repeats is None or manifest is None:
        parts.append(section("Repeats", tag("p", "Rebuilt from statistics.json alone: the meta-runs (traces, "
                                                 "curves, mechanisms) are not part of this page.", cls="small"),
                             element_id="repeats"))
    else:
        parts.append(section("Repeats", _repeat_table(manifest, repeats, run_links or {}, objective),
                             element_id="repeats"))
        runs = [run for items in repeats.values() for run in items if run is not None]
        parts.append(mechanisms_section(influence, unique_sources([run.sources for run in runs]), objective))
    return page(f"Ablation {ablation_id}", _subtitle(manifest, statistics), join(parts))


def _subtitle(manifest: AblationManifest | None, statistics: AblationStats) -> str:
    references = f"reference arm{'s' if len(statistics.references) > 1 else ''} {', '.join(statistics.references)}"
    if manifest is None:
        return f"{statistics.objective.describe()} · {references} · rebuilt from statistics.json"
    return (f"{manifest.workload} · {statistics.objective.describe()} · model {manifest.model} · budget "
            f"{manifest.budget:g} {manifest.budget_mode} · {manifest.generations} generations × "
            f"{manifest.iterations} iterations · seeds {', '.join(str(s) for s in manifest.seeds)} · {references} · "
            f"created {manifest.created}")


def _verdicts(statistics: AblationStats) -> Markup:
    if not statistics.comparisons:
        return tag("p", "Only the reference arm ran: there is nothing to compare.")
    items = []
    for comparison in statistics.comparisons:
        effect = (f"mean difference of Δ {number(comparison.mean_difference, sign=True)}"
                  if comparison.mean_difference is not None else "no difference measurable")
        items.append(tag("li", join([badge(comparison.verdict, comparison.verdict),
                                     Markup(" "), tag("strong", comparison.arm), f" vs {comparison.reference}: ",
                                     effect, f" — {comparison.reason}."])))
    return tag("ul", join(items), cls="verdicts")


def _partial_notice(coverage: RepeatCoverage, manifest: AblationManifest | None) -> Markup:
    """The banner of a report built while repeats are missing: which repeats count, which do not and why."""
    seeds = manifest.seeds if manifest is not None else []
    items = []
    for repeat, arms in sorted(coverage.missing.items()):
        seed = f" (seed {seeds[repeat]})" if repeat < len(seeds) else ""
        why = "; ".join(f"{arm}: {reason}" for arm, reason in arms.items())
        items.append(tag("li", f"repeat {repeat}{seed}: {why}"))
    counted = format_repeats(coverage.complete) if coverage.complete else "none"
    return section("Partial report", tag("p", tag("strong", "This report is partial. ") + (
        f"The statistics use the complete repeats only (every arm finished for that seed): {counted}. "
        f"Missing: {format_repeats(sorted(coverage.missing))}. Run the missing repeats (bilevel ablate --id ... "
        "--only-repeats ...) or import them (bilevel import), then build the report again.")),
        tag("ul", join(items)), element_id="partial")


def _caveats(statistics: AblationStats, repeats: Repeats | None) -> Markup:
    notes = [
        "Δ is the best of many noisy measurements minus one baseline measurement, so it is negative even for a "
        "search that learns nothing (the winner's curse). Compare arms with each other and with the random-search "
        "control, not with zero.",
    ]
    floors = [a.noise_floor for a in statistics.arms if a.noise_floor is not None]
    if floors:
        spread = noise_floor_text(min(floors)) + (f" to {noise_floor_text(max(floors))}" if max(floors) > min(floors)
                                                  else "")
        notes.append(f"Noise floor: the {NOISE_FLOOR_MEANING}, median over an arm's repeats (Arms table; {spread}). "
                     f"A Δ or a difference of Δ inside it is within the noise of one measurement.")
    else:
        notes.append(f"Noise floor not measured: no repeat measured the {NOISE_FLOOR_MEANING}, so this page cannot "
                     f"say whether a Δ is larger than seed-to-seed noise.")
    smallest = min((a.n for a in statistics.arms), default=0)
    if smallest < 10:
        notes.append(f"The smallest arm has n={smallest} finished repeats. Bootstrap CIs are too narrow at small n, "
                     f"and rank tests cannot reach small p-values: treat CIs as rough and look at the points.")
    absent = sum(1 for items in (repeats or {}).values() for run in items if run is None or not run.usable)
    if absent:
        notes.append(f"{absent} repeat(s) are missing, failed, stopped at a run limit or unfinished and are left out "
                     "of the statistics (see Repeats).")
    return tag("div", tag("strong", "Read with care") + tag("ul", join(tag("li", n) for n in notes)), cls="caveats")


def _arm_table(statistics: AblationStats, arms: Mapping[str, ArmSpec], repeats: Repeats | None) -> Markup:
    rows = []
    for item in statistics.arms:
        spec = arms.get(item.arm) or STANDARD_ARMS.get(item.arm)
        listed = len(repeats.get(item.arm, [])) if repeats is not None else len(item.deltas)
        ci = interval(item.ci.low, item.ci.high) if item.ci else (item.ci_note or "undefined", "small")
        per_repeat = ", ".join("–" if d is None else f"{d:+.4f}" for d in item.deltas)
        measured = sum(1 for f in item.noise_floors if f is not None)
        floor = noise_floor_text(item.noise_floor)
        rows.append([
            tag("strong", item.arm) + (Markup(" ") + badge("reference", "reference")
                                       if item.arm in statistics.references else Markup("")),
            (_arm_description(spec), "small"),
            f"{item.n} of {listed}",
            number(item.mean, sign=True),
            number(item.median, sign=True),
            ci,
            (floor + (f" ({measured} of {len(item.noise_floors)})" if measured else ""), "nowrap"),
            (per_repeat, "small"),
        ])
    name = delta_name(statistics.objective)
    return table(["arm", "what runs", "finished", f"mean {name}", f"median {name}", f"95% CI of mean {name}",
                  "noise floor (median)", f"{name} per seed"], rows, numeric=(2, 3, 4, 5, 6))


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
    # The median difference is in statistics.json; the page keeps the table narrow enough for the reasons.
    return table(["arm", "reference", "verdict", "test", "n", "mean difference", "95% CI of difference",
                  "noise floor", "p", "Holm p", "p floor"], rows, numeric=(4, 5, 6, 7, 8, 9, 10))


def _comparison_row(comparison: Comparison) -> list[object]:
    n = (f"{comparison.n_pairs} pairs" if comparison.test == "wilcoxon signed-rank"
         else f"{comparison.n_arm} vs {comparison.n_reference}")
    ci = interval(comparison.ci.low, comparison.ci.high) if comparison.ci else "undefined"
    verdict = badge(comparison.verdict, comparison.verdict) + tag("div", comparison.reason, cls="small")
    return [tag("strong", comparison.arm), comparison.reference, (verdict, "why"), TEST_NAMES[comparison.test],
            (n, "nowrap"), number(comparison.mean_difference, sign=True), ci,
            (noise_floor_text(comparison.noise_floor), "nowrap"), p_value(comparison.p_value),
            p_value(comparison.p_holm), p_value(comparison.min_attainable_p)]


def _method_note(statistics: AblationStats) -> str:
    objective = statistics.objective
    improves = "lower" if objective.minimize else "higher"
    family = ("The comparisons were planned when the ablation started (--compare); a planned pair whose arm has no "
              "finished repeat is listed as not run yet and is not tested." if statistics.planned else
              "Every arm is tested against each reference arm, each pair of arms once.")
    return (f"Difference = Δ(arm) − Δ(reference), both {SIGN_CORRECTED}; a negative difference means the arm found "
            f"a {improves} {objective.name} than the reference. {family} The noise floor is the larger of the two "
            f"repeats' noise floors, median over the pairs. Repeats are paired by seed: Wilcoxon signed-rank on the per-seed differences when "
            f"at least {MIN_TEST_N} pairs are complete, else Mann-Whitney U on all finished repeats. CIs: percentile "
            f"bootstrap of the mean ({statistics.resamples:,} resamples, seed {statistics.seed}, needs n ≥ "
            f"{MIN_CI_N}). p-values are Holm-adjusted across all {statistics.tests} tests made. 'better'/'worse' "
            f"needs Holm p < {statistics.alpha:g} and a CI that excludes 0. The p floor is the smallest two-sided p "
            f"the exact test can give at that n.")


def _counts(run: RunData) -> list[str]:
    """Experiments, kept, crashes and stopped-early experiments of a repeat; dashes when it has no trace."""
    if run.trace is None:
        return ["–", "–", "–", "–"]
    counts = run.counts
    return [str(counts.experiments), str(counts.kept), str(counts.crashes), str(counts.stopped)]


def _repeat_table(manifest: AblationManifest, repeats: Repeats, run_links: Mapping[str, str],
                  objective: Objective) -> Markup:
    rows, classes = [], []
    for arm, runs in repeats.items():
        for position, run in enumerate(runs):
            seed = manifest.seeds[position] if position < len(manifest.seeds) else "?"
            if run is None:
                rows.append([arm, str(seed), "–", badge("missing", "missing"), "", "", "", "", "", "", "", "",
                             ("not started: the manifest lists no meta-run for this seed", "small")])
                classes.append("problem")
                continue
            link = run_links.get(run.meta_run_id)
            name = Markup(f'<a href="{esc(link)}">{esc(run.meta_run_id)}</a>') if link else tag("code", run.meta_run_id)
            rows.append([arm, str(seed), (name, "nowrap"), badge(run.status, run.status), number(run.baseline),
                         number(run.best), number(run.delta, sign=True), noise_floor_text(run.noise_floor),
                         *_counts(run), (run.problem, "small note")])
            classes.append(None if run.usable else "problem")
    return table(["arm", "seed", "meta-run", "status", f"baseline {objective.name}", f"best {objective.name}",
                  delta_name(objective), "noise floor", "experiments", "kept", "crashes", "stopped early", "note"],
                 rows, row_classes=classes, numeric=(1, 4, 5, 6, 7, 8, 9, 10, 11))


COST_NOTE = ("Over the repeats the statistics use. Rates are over all the arm's experiments (baselines not counted): a "
             "crash or timeout measured nothing, an invalid proposal trained nothing. LLM seconds include Level 1.5 "
             "and Level 2 sessions. Wall seconds are the meta-run's own clock (its trace), medians per meta-run; traces "
             "written before that clock existed have none (the count says over how many runs); on a shared machine "
             "they are not comparable between runs.")


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _seconds(median: float | None, total: float | None) -> str:
    return "–" if median is None else f"{median:.0f} (total {total or 0:.0f})"


def _cost_table(costs: Sequence[ArmCosts]) -> Markup:
    rows = [[tag("strong", c.arm), str(c.meta_runs), str(c.experiments), f"{c.crashes} ({_rate(c.crash_rate)})",
             f"{c.invalid} ({_rate(c.invalid_rate)})", str(c.llm_calls),
             _seconds(c.llm_seconds_median, c.llm_seconds_total),
             _seconds(c.wall_seconds_median, c.wall_seconds_total)
             + (f", {c.wall_seconds_runs} of {c.meta_runs} runs" if c.wall_seconds_runs < c.meta_runs else "")]
            for c in costs]
    return table(["arm", "meta-runs", "experiments", "crashes", "invalid", "LLM calls", "LLM s per run (median)",
                  "wall s per run (median)"], rows, numeric=(1, 2, 3, 4, 5, 6, 7))


def _level2_section(level2: Sequence[MetaRunLevel2], arms: Sequence[str], objective: Objective) -> Markup:
    """Per meta-run with Level 2: every session's verdict, and every activated mechanism with its simulated gain,
    invented or adapted, and the Δ its real trainings credit to it."""
    if not level2:
        return section("Level 2", tag("p", f"Not run yet: no meta-run of {', '.join(arms) or 'a Level 2 arm'} has "
                                           "finished a research session."), element_id="level2")
    totals = level2_totals(list(level2))
    mean = number(totals.mean_simulated_delta, sign=True)
    summary = (f"{totals.meta_runs} meta-run(s), {totals.sessions} research session(s), {totals.activations} "
               f"activation(s): {totals.invented} invented, {totals.adapted} adapted"
               f"{'' if totals.invented + totals.adapted == totals.activations else ', the rest unlabelled'}; mean "
               f"simulated Δ {mean}; credited Δ in total {number(totals.credited_delta, sign=True)}.")
    rows = []
    for run in level2:
        for activation in run.activations:
            novelty = activation.novelty
            made = {"invented": "invented", "adapted": f"adapted from {novelty.reference}"}.get(novelty.kind, "unknown")
            if novelty.similarity is not None:
                made += f" (similarity {novelty.similarity:.2f}" + (
                    f" to {novelty.reference})" if novelty.kind == "invented" else ")")
            ci = interval(*activation.simulated_ci) if activation.simulated_ci else "–"
            rows.append([tag("code", run.meta_run_id), str(activation.generation),
                         tag("code", f"{activation.name}@{activation.version[:12]}"),
                         number(activation.simulated_delta, sign=True), (ci, "nowrap"), (made, "small"),
                         (", ".join(activation.parents) or "–", "small"),
                         f"{activation.experiments_influenced} of {activation.experiments_active}"
                         f" ({activation.kept_influenced} kept)",
                         number(activation.credited_delta, sign=True) if activation.credited_delta else "none"])
    activations = (table(["meta-run", "after generation", "mechanism", "simulated Δ", "95% CI (simulated)",
                          "invented or adapted", "lineage parents", "experiments influenced", "credited Δ"], rows,
                         numeric=(1, 3, 7, 8))
                   if rows else tag("p", "No session activated a mechanism."))
    sessions = tag("ul", join(
        tag("li", join([tag("code", run.meta_run_id), f" after generation {s.generation}: ",
                        (f"activated {s.accepted}" if s.accepted else "nothing activated"), f" — {s.verdict}"]))
        for run in level2 for s in run.sessions))
    note = (f"Simulated Δ: the paired gain of the next generation's best {objective.name} with the mechanism over the "
            f"current search, on a surrogate of the trace ({SIGN_CORRECTED}), as Level 2 measured it when it "
            "activated the mechanism (it needs a CI entirely below 0). Invented or adapted: the similarity of its code "
            "shape to the closest reference the prompts showed (at 0.7 or above, or a mutant of a parent: adapted). "
            "Credited Δ: the improvements of the kept experiments whose decision it changed, against the best before "
            "them (the lineage credit), the real trainings' answer to the simulation.")
    return section("Level 2", tag("p", summary), activations, tag("p", note, cls="small"),
                   tag("h3", "Research sessions"), sessions, element_id="level2")
