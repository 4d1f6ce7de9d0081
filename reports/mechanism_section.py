"""The mechanisms part of a report page: liveness, influence on the objective, and each source a click away."""

from __future__ import annotations

from collections.abc import Sequence

from reports.html import Markup, badge, code_block, details, join, number, section, table, tag
from reports.run_data import MechanismSource
from reports.wording import SIGN_CORRECTED, delta_formula
from search.influence import GroupStats, MechanismInfluence
from search.objective import Objective


def influence_note(objective: Objective) -> str:
    formula = delta_formula(objective, "value")
    return (f"Groups come from the meta-runs where the mechanism was active. Δ compares an experiment's "
            f"{objective.name} with the baseline of its own meta-run (Δ = {formula}, {SIGN_CORRECTED}). Credited: "
            f"the sum of the improvements (negative Δ against the best so far) of the kept experiments it "
            f"influenced. This describes, it does not prove: a mechanism that becomes active later in a run meets "
            f"better configurations than the experiments before it.")


def mechanisms_section(influence: Sequence[MechanismInfluence], sources: Sequence[MechanismSource],
                       objective: Objective) -> Markup:
    if not influence:
        return section("Mechanisms", tag("p", "No mechanism was active in any experiment."), element_id="mechanisms")
    anchors = {m.key: f"source-{position}" for position, m in enumerate(influence)}
    liveness_rows = [_liveness_row(m, anchors[m.key]) for m in influence]
    liveness = table(["mechanism", "liveness", "hook calls", "decisions changed", "experiments influenced",
                      "meta-runs", "source"], liveness_rows, numeric=(4, 5))
    influence_rows = [_influence_row(m) for m in influence]
    effect = table(["mechanism", f"influenced: n, median {objective.name}, mean Δ", "credited Δ",
                    "active, not influencing", "not active (same runs)"], influence_rows, numeric=(2,))
    blocks = [_source_block(m, _find_source(m, sources), anchors[m.key]) for m in influence]
    return section(
        "Mechanisms",
        tag("h3", "Liveness"),
        tag("p", "A decision is changed when a hook's answer differs from what the loop would have done without it. "
                 "A mechanism that is called but changes nothing is inert.", cls="small"),
        liveness,
        tag("h3", f"Influence on {objective.name}"),
        tag("p", influence_note(objective), cls="small"),
        effect,
        tag("h3", "Sources"),
        join(blocks),
        element_id="mechanisms",
    )


def _liveness_row(mechanism: MechanismInfluence, anchor: str) -> list[object]:
    liveness = mechanism.liveness
    status = badge(liveness, liveness.replace(" ", "-"))
    if mechanism.quarantine_notes:
        status = status + tag("div", "; ".join(mechanism.quarantine_notes), cls="small")
    return [
        tag("code", mechanism.key),
        status,
        _per_hook(mechanism.calls),
        _per_hook(mechanism.changed) if mechanism.changed else "0",
        f"{mechanism.experiments_influenced} of {mechanism.experiments_active}",
        str(len(mechanism.meta_runs)),
        Markup(f'<a href="#{anchor}">source</a>'),
    ]


def _per_hook(counts: dict[str, int]) -> str:
    return " · ".join(f"{hook} {count}" for hook, count in counts.items()) or "none"


def _influence_row(mechanism: MechanismInfluence) -> list[object]:
    credited = number(mechanism.credited_delta, sign=True) if mechanism.credited_delta else "none"
    return [tag("code", mechanism.key), _group(mechanism.influenced), credited,
            _group(mechanism.active_not_influenced), _group(mechanism.inactive)]


def _group(group: GroupStats) -> str:
    if not group.experiments:
        return "none"
    failed = f", {group.failed} failed" if group.failed else ""
    return (f"n={group.experiments}{failed}; median {number(group.median_value)}; "
            f"mean Δ {number(group.mean_delta, sign=True)}; kept {group.kept}")


def _find_source(mechanism: MechanismInfluence, sources: Sequence[MechanismSource]) -> MechanismSource | None:
    return next((s for s in sources if s.name == mechanism.name and s.version == mechanism.version), None)


def _source_block(mechanism: MechanismInfluence, source: MechanismSource | None, anchor: str) -> Markup:
    if source is None or not source.source:
        return details(Markup(tag("code", mechanism.key) + " (source not recorded)"),
                       tag("p", "This meta-run's folder has no mechanisms.json entry for this version; the trace "
                                "records only its name and version."), cls="source", element_id=anchor)
    facts = [f"{len(source.source.splitlines())} lines"]
    if source.origin:
        facts.append(f"origin {source.origin}")
    if source.sha256:
        facts.append(f"sha256 {source.sha256[:16]}…")
    summary = tag("code", mechanism.key) + Markup(" ") + tag("span", " · ".join(facts), cls="small")
    return details(summary, code_block(source.source), cls="source", element_id=anchor)


def unique_sources(groups: Sequence[Sequence[MechanismSource]]) -> list[MechanismSource]:
    """Sources from several meta-runs, one per name@version (the first that carries source text)."""
    found: dict[tuple[str, str], MechanismSource] = {}
    for sources in groups:
        for source in sources:
            key = (source.name, source.version)
            if key not in found or (not found[key].source and source.source):
                found[key] = source
    return list(found.values())
