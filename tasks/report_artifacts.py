"""Progress artifacts in Prefect: per generation, a table of the best so far and of the active mechanisms."""

from __future__ import annotations

import re
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from mechanisms.active import ActiveSet
from search.run_spec import MetaRunSpec
from search.state import state_from_trace
from search.trace import Trace


def artifact_key(*parts: object) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(str(p) for p in parts).lower()).strip("-")[:100]


def mechanism_rows(active: ActiveSet, liveness: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    names = {m.name: m for m in active.mechanisms}
    for name in sorted(set(names) | set(liveness)):
        counts = liveness.get(name, {})
        rows.append({
            "mechanism": names[name].label if name in names else name,
            "active_next": name in names,
            "calls": sum((counts.get("calls") or {}).values()),
            "decisions_changed": sum((counts.get("changed") or {}).values()),
            "quarantined": bool(counts.get("quarantined")),
        })
    return rows


@task(name="publish-generation-table", cache_policy=NO_CACHE)
def publish_generation_table(spec: MetaRunSpec, generation: int, trace: Trace, active: ActiveSet,
                             liveness: dict[str, dict[str, Any]], notes: list[str]) -> None:
    state = state_from_trace(trace)
    recent = trace.in_generation(generation)
    lines = [
        f"### {spec.meta_run_id}: generation {generation}",
        f"best val_bpb **{state.best.val_bpb:.4f}** (baseline {state.baseline.val_bpb:.4f}, "
        f"Δ {state.best.val_bpb - state.baseline.val_bpb:+.4f}); this generation: {len(recent)} experiments, "
        f"{sum(e.kept for e in recent)} kept, {sum(e.outcome.status in ('crash', 'timeout') for e in recent)} crashed",
        *[f"- {note}" for note in notes],
    ]
    create_markdown_artifact("\n".join(lines), key=artifact_key(spec.meta_run_id, "g", generation, "summary"))
    rows = mechanism_rows(active, liveness)
    if rows:
        create_table_artifact(rows, key=artifact_key(spec.meta_run_id, "g", generation, "mechanisms"),
                              description="Active mechanisms and their liveness (hook calls, decisions changed)")
