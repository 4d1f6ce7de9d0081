"""Progress artifacts in Prefect: per generation, a table of the best so far and of the active mechanisms."""

from __future__ import annotations

import re
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from mechanisms.active import ActiveSet
from search.run_spec import MetaRunSpec
from search.trace import MechanismLiveness, Trace


def artifact_key(*parts: object) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(str(p) for p in parts).lower()).strip("-")[:100]


def mechanism_rows(active: ActiveSet, liveness: dict[str, MechanismLiveness]) -> list[dict[str, Any]]:
    rows = []
    names = {m.name: m for m in active.mechanisms}
    for name in sorted(set(names) | set(liveness)):
        entry = liveness.get(name)
        rows.append({
            "mechanism": names[name].label if name in names else name,
            "active_next": name in names,
            "calls": entry.total_calls if entry else 0,
            "decisions_changed": entry.decisions_changed if entry else 0,
            "quarantined": bool(entry and entry.quarantined),
        })
    return rows


@task(name="publish-generation-table", cache_policy=NO_CACHE)
def publish_generation_table(spec: MetaRunSpec, generation: int, trace: Trace, active: ActiveSet, notes: list[str]) -> None:
    state = trace.state()
    counts = trace.counts(trace.in_generation(generation))
    name = trace.objective.name
    lines = [
        f"### {spec.meta_run_id}: generation {generation}",
        f"best {name} **{state.best.value:.4f}** (baseline {state.baseline.value:.4f}, Δ {state.delta:+.4f}, "
        f"{trace.objective.direction}); this generation: {counts.experiments} experiments, {counts.kept} kept, "
        f"{counts.crashes} crashed",
        *[f"- {note}" for note in notes],
    ]
    create_markdown_artifact("\n".join(lines), key=artifact_key(spec.meta_run_id, "g", generation, "summary"))
    rows = mechanism_rows(active, trace.mechanism_liveness(generation))
    if rows:
        create_table_artifact(rows, key=artifact_key(spec.meta_run_id, "g", generation, "mechanisms"),
                              description="Active mechanisms and their liveness (hook calls, decisions changed)")
