"""The report page of one meta-run: key figures, its curve, the kept changes, every experiment, the mechanisms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reports.html import (Markup, badge, cards, code_block, details, esc, figure, join, number, page, section, table,
                          tag)
from search.influence import MechanismInfluence
from reports.mechanism_section import mechanisms_section
from reports.run_data import RunData
from search.params import same_value
from search.trace import Experiment

HYPOTHESIS_CHARS = 400


def run_page(run: RunData, influence: list[MechanismInfluence], curve_png: Path | None) -> str:
    """The whole HTML document of one meta-run."""
    trace = run.trace
    experiments = trace.experiments if trace else []
    parts: list[object] = [_status_note(run), _key_figures(run), _spec_line(run)]
    if curve_png is not None:
        parts.append(section("Search curve", figure(curve_png, f"val_bpb per experiment of {run.meta_run_id}",
                                                     "Filled points were kept. Labels show the kept changes; the "
                                                     "experiments table lists them all."), element_id="curve"))
    parts.append(_best_config(run))
    parts.append(_kept_changes(experiments))
    parts.append(section("Experiments", _experiments_table(experiments), element_id="experiments"))
    parts.append(mechanisms_section(influence, run.sources))
    return page(f"Meta-run {run.meta_run_id}", _subtitle(run), join(parts))


def _subtitle(run: RunData) -> Markup:
    name = run.spec.get("name") or (run.summary.name if run.summary else "")
    return join([badge(run.status, run.status), f"  name {name}" if name else "",
                 f"  ·  {run.problem}" if run.problem else ""])


def _status_note(run: RunData) -> Markup:
    if run.status in ("finished", "incomplete") or not run.problem:
        return Markup("")
    return tag("p", run.problem, cls="caveats")


def _key_figures(run: RunData) -> Markup:
    experiments = run.trace.experiments[1:] if run.trace else []
    searched = len(experiments)
    kept = sum(1 for e in experiments if e.kept)
    crashes = sum(1 for e in experiments if e.outcome.status in ("crash", "timeout"))
    invalid = sum(1 for e in experiments if e.outcome.status == "invalid")
    llm = run.llm
    best_note = f"experiment #{run.state.best.index}" if run.state else None
    cost = f"{llm.calls} calls" + (f", ${llm.cost_usd:.4f}" if llm.cost_usd else "")
    return cards([
        ("baseline val_bpb", number(run.baseline), None),
        ("best val_bpb", number(run.best), best_note),
        ("Δval_bpb", number(run.delta, sign=True), "best − baseline"),
        ("keep rate", f"{kept}/{searched}" if searched else "–", f"{kept / searched:.0%}" if searched else None),
        ("crashes", str(crashes), f"+ {invalid} invalid proposals" if invalid else None),
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
    if spec.get("restart_each_generation"):
        facts.append("restarts each generation")
    if spec.get("mechanisms"):
        facts.append("mechanisms at start: " + ", ".join(spec["mechanisms"]))
    return tag("p", " · ".join(facts), cls="small")


def _best_config(run: RunData) -> Markup:
    if run.state is None:
        return Markup("")
    baseline, best = run.state.baseline.config, run.state.best.config
    changed = [name for name in best if not same_value(baseline.get(name), best.get(name))]
    if not changed:
        return section("Best configuration", tag("p", "The best val_bpb is the baseline's: no change helped."))
    rows = [[tag("code", name), _value(baseline.get(name)), _value(best.get(name))] for name in changed]
    return section("Best configuration",
                   tag("p", f"Experiment #{run.state.best.index} differs from the baseline in {len(changed)} "
                            f"parameter(s):"),
                   table(["parameter", "baseline", "best"], rows), element_id="best")


def _kept_changes(experiments: list[Experiment]) -> Markup:
    kept = [e for e in experiments[1:] if e.kept]
    if not kept:
        return section("Kept changes", tag("p", "No experiment was kept."), element_id="kept")
    rows = []
    current = experiments[0].measured if experiments else None
    for experiment in kept:
        value = experiment.measured
        step = value - current if value is not None and current is not None else None
        rows.append([f"#{experiment.index}", str(experiment.generation), _changes(experiment.changes),
                     number(value), number(step, sign=True), experiment.decided_by or "default rule",
                     (_hypothesis(experiment.hypothesis), "small")])
        current = value if value is not None else current
    return section("Kept changes",
                   tag("p", "Each kept change moved the search's current point; 'step' is its val_bpb minus the "
                            "current point's before it (an accept hook may keep a worse one on purpose).", cls="small"),
                   table(["#", "gen", "changes", "val_bpb", "step", "decided by", "hypothesis"], rows,
                         numeric=(0, 1, 3, 4)),
                   element_id="kept")


def _experiments_table(experiments: list[Experiment]) -> Markup:
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
            experiment.decided_by or "",
            (_mechanism_activity(experiment), "small"),
            (_hypothesis(experiment.hypothesis), "small"),
        ])
        classes.append("kept" if experiment.kept and not experiment.is_baseline else None)
    return table(["#", "gen", "track", "changes", "val_bpb", "status", "kept", "decided by", "mechanisms",
                  "hypothesis"], rows, row_classes=classes, numeric=(0, 1, 2, 4))


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
