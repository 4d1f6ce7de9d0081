"""The report page of one meta-run: key figures (Δ next to the noise floor), its curve, the kept changes, the
parameters, every experiment, the mechanisms. Every label names the run's objective and its direction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reports.html import Markup, badge, cards, code_block, details, esc, figure, join, number, page, section, table, tag
from reports.mechanism_section import mechanisms_section
from reports.run_data import STOP_REASONS, RunData
from reports.wording import (
    NOISE_FLOOR_MEANING,
    SIGN_CORRECTED,
    delta_against_noise,
    delta_formula,
    delta_name,
    noise_floor_text,
    reading_note,
)
from search.influence import MechanismInfluence
from search.objective import Objective
from search.params import same_value
from search.trace import Experiment, ParamStats

HYPOTHESIS_CHARS = 400
LAST_VALUES = 3


def run_page(run: RunData, influence: list[MechanismInfluence], curve_png: Path | None) -> str:
    """The whole HTML document of one meta-run."""
    trace = run.trace
    objective = run.objective
    experiments = trace.experiments if trace else []
    parts: list[object] = [_status_note(run), _key_figures(run), tag("p", reading_note(objective), cls="small"),
                           _spec_line(run)]
    if curve_png is not None:
        parts.append(section("Search curve", figure(
            curve_png, f"{objective.name} per experiment of {run.meta_run_id}",
            f"Raw {objective.name} per experiment ({objective.direction}). Filled points were kept; amber squares "
            "were stopped early. Labels show the kept changes; the experiments table lists them all."),
            element_id="curve"))
    parts.append(_best_config(run))
    parts.append(_kept_changes(experiments, objective))
    if experiments:
        parts.append(section("Parameters", _parameter_table(run.parameter_stats(), objective),
                             element_id="parameters"))
    parts.append(section("Experiments", _experiments_table(experiments, objective), element_id="experiments"))
    parts.append(mechanisms_section(influence, run.sources, objective))
    return page(f"Meta-run {run.meta_run_id}", _subtitle(run), join(parts))


def _subtitle(run: RunData) -> Markup:
    name = run.spec.get("name") or (run.summary.name if run.summary else "")
    workload = run.summary.workload if run.summary else (run.spec.get("workload") or {}).get("reference", "")
    facts = [f"name {name}" if name else "", f"workload {workload}" if workload else "", run.objective.describe()]
    if run.problem and not _status_note(run):  # a problem shown in the note above the figures is not repeated here
        facts.append(run.problem)
    return join([badge(run.status, run.status), "  ", " · ".join(f for f in facts if f)])


def _status_note(run: RunData) -> Markup:
    if run.status in ("finished", "incomplete") or not run.problem:
        return Markup("")
    return tag("p", run.problem, cls="caveats")


def _key_figures(run: RunData) -> Markup:
    objective = run.objective
    counts = run.counts
    llm = run.llm
    best_note = f"experiment #{run.state.best.index}" if run.state else None
    cost = f"{llm.calls} calls" + (f", ${llm.cost_usd:.4f}" if llm.cost_usd else "")
    failures = [f"+ {counts.invalid} invalid proposals" if counts.invalid else "",
                f"+ {counts.stopped} stopped early" if counts.stopped else ""]
    noise_note = delta_against_noise(run.delta, run.noise_floor) or NOISE_FLOOR_MEANING
    ended = STOP_REASONS.get(run.stop_reason or "", run.stop_reason or "") if run.stop_reason else "not finished"
    ended_note = run.summary.stop_detail if run.summary is not None and run.summary.stop_detail else None
    return cards([
        (f"baseline {objective.name}", number(run.baseline), None),
        (f"best {objective.name}", number(run.best), best_note),
        (delta_name(objective), number(run.delta, sign=True), f"{delta_formula(objective)} ({SIGN_CORRECTED})"),
        ("noise floor", noise_floor_text(run.noise_floor), noise_note),
        ("keep rate", f"{counts.kept}/{counts.experiments}" if counts.experiments else "–",
         f"{counts.keep_rate:.0%}" if counts.experiments else None),
        ("crashes", str(counts.crashes), " ".join(f for f in failures if f) or None),
        ("ended", ended, ended_note),
        ("LLM tokens", f"{llm.total_tokens:,}", cost),
    ])


def _spec_line(run: RunData) -> Markup:
    spec = run.spec
    if not spec:
        return tag("p", "No spec.json: the run's parameters are unknown.", cls="small")
    budget = spec.get("budget") or {}
    facts = [
        f"levels {', '.join(spec.get('levels', [])) or '?'}",
        f"{spec.get('generations', '?')} generations × {spec.get('iterations', '?')} iterations",
        f"{spec.get('tracks', 1)} track(s)",
        f"budget {budget.get('value', '?')} {budget.get('mode', '')}".rstrip(),
        f"seed {spec.get('seed', '?')}",
    ]
    if spec.get("proposer") and spec["proposer"] != "llm":
        facts.append(f"proposer {spec['proposer']}")
    edits = (spec.get("workload") or {}).get("edits", "block")
    if edits != "block":
        facts.append(f"edits {edits} (up to {(spec.get('workload') or {}).get('max_sites', '?')} literal sites)")
    if spec.get("restart_each_generation"):
        facts.append("restarts each generation")
    if spec.get("mechanisms"):
        facts.append("mechanisms at start: " + ", ".join(spec["mechanisms"]))
    for key, label in (("max_hours", "time limit {} h"), ("max_llm_cost_usd", "LLM cost limit ${}")):
        if spec.get(key) is not None:
            facts.append(label.format(spec[key]))
    return tag("p", " · ".join(facts), cls="small")


def _best_config(run: RunData) -> Markup:
    if run.state is None:
        return Markup("")
    baseline, best = run.state.baseline.config, run.state.best.config
    changed = [name for name in best if not same_value(baseline.get(name), best.get(name))]
    if not changed:
        return section("Best configuration",
                       tag("p", f"The best {run.objective.name} is the baseline's: no change helped."))
    rows = [[tag("code", name), _value(baseline.get(name)), _value(best.get(name))] for name in changed]
    return section("Best configuration",
                   tag("p", f"Experiment #{run.state.best.index} differs from the baseline in {len(changed)} "
                            f"parameter(s):"),
                   table(["parameter", "baseline", "best"], rows), element_id="best")


def _kept_changes(experiments: list[Experiment], objective: Objective) -> Markup:
    kept = [e for e in experiments[1:] if e.kept]
    if not kept:
        return section("Kept changes", tag("p", "No experiment was kept."), element_id="kept")
    rows = []
    current = experiments[0].measured if experiments else None
    for experiment in kept:
        value = experiment.measured
        step = objective.delta(current, value) if value is not None and current is not None else None
        rows.append([f"#{experiment.index}", str(experiment.generation), _changes(experiment.changes),
                     number(value), number(step, sign=True), experiment.proposed_by or "–",
                     experiment.decided_by or "default rule", (_hypothesis(experiment.hypothesis), "small")])
        current = value if value is not None else current
    return section("Kept changes",
                   tag("p", f"Each kept change moved the search's current point; 'step' is the Δ of its "
                            f"{objective.name} against the current point's before it ({SIGN_CORRECTED}; an accept "
                            f"hook may keep a worse one on purpose).", cls="small"),
                   table(["#", "gen", "changes", objective.name, "step", "proposed by", "decided by", "hypothesis"],
                         rows, numeric=(0, 1, 3, 4)),
                   element_id="kept")


def _parameter_table(stats: dict[str, ParamStats], objective: Objective) -> Markup:
    """Per-parameter tries, keeps, crashes and gains (Trace.param_stats), in the baseline's order."""
    rows, classes = [], []
    for name, entry in stats.items():
        rows.append([tag("code", name), str(entry.tries), str(entry.kept), str(entry.crashes),
                     number(entry.best_gain) if entry.kept else "–",
                     str(entry.futile_streak) if entry.tries else "–",
                     (", ".join(_value(v) for v in entry.last_values[-LAST_VALUES:]) or "untried", "small")])
        classes.append(None if entry.tries else "untried")
    note = (f"Tries count the experiments that changed the parameter. Best gain: the largest improvement of "
            f"{objective.name} by a kept change that moved it, against the point it was made from (positive is "
            f"better, in {objective.name}'s units). Futile streak: tries since it last took part in a kept change.")
    return join([tag("p", note, cls="small"),
                 table(["parameter", "tries", "kept", "crashes", "best gain", "futile streak", "last values"], rows,
                       row_classes=classes, numeric=(1, 2, 3, 4, 5))])


def _experiments_table(experiments: list[Experiment], objective: Objective) -> Markup:
    rows, classes = [], []
    for experiment in experiments:
        rows.append([
            str(experiment.index),
            str(experiment.generation),
            str(experiment.track),
            _changes(experiment.changes) if experiment.changes else ("baseline" if experiment.is_baseline else "–"),
            number(experiment.measured),
            _status(experiment),
            "✓" if experiment.kept else "",
            experiment.proposed_by or ("baseline" if experiment.is_baseline else "–"),
            experiment.decided_by or "",
            (_mechanism_activity(experiment), "small"),
            (_hypothesis(experiment.hypothesis), "small"),
        ])
        classes.append("kept" if experiment.kept and not experiment.is_baseline else None)
    return table(["#", "gen", "track", "changes", objective.name, "status", "kept", "proposed by", "decided by",
                  "mechanisms", "hypothesis"], rows, row_classes=classes, numeric=(0, 1, 2, 4))


def _status(experiment: Experiment) -> Markup:
    status = experiment.outcome.status
    label = badge(status, status)
    tail = experiment.outcome.error_tail or ("; ".join(experiment.proposal_errors) if status == "invalid" else "")
    if status != "ok" and tail:
        return details(label, code_block(tail[-2000:]), cls="error")
    return label


def _mechanism_activity(experiment: Experiment) -> Markup:
    """Who changed a decision here (and which), then how many others were merely active."""
    parts = []
    quiet = 0
    for activity in experiment.mechanisms:
        if activity.changed or activity.quarantined:
            text = activity.name + (f" changed {', '.join(activity.changed)}" if activity.changed else "")
            parts.append(tag("div", text + (" (quarantined)" if activity.quarantined else "")))
        else:
            quiet += 1
    if quiet:
        parts.append(tag("div", f"{quiet} {'other ' if parts else ''}active, no change", cls="small"))
    return join(parts)


def _changes(changes: dict[str, Any]) -> Markup:
    return join((tag("code", f"{name}={_value(value)}") for name, value in changes.items()), ", ")


def _value(value: Any) -> str:
    if isinstance(value, list):
        return "(" + ", ".join(str(v) for v in value) + ")"
    return str(value)


def _hypothesis(text: str) -> Markup:
    text = text.strip()
    if len(text) <= HYPOTHESIS_CHARS:
        return esc(text)
    return details(text[:HYPOTHESIS_CHARS] + "…", tag("div", text))
