"""Lineage across nights: mechanism versions, their parents, the research sessions and meta-runs that produced
them, and the inner iterations they influenced. Versions resolve in S3 (VersionIds), sessions in MLflow (tags), and
influence comes from the traces (the single source of truth), read from the runs directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from infra.mlflow_schema import read_tag, safe_value, tag_equals
from infra.runs import read_traces
from infra.store import MechanismNotFound, MechanismStore, StoredVersion
from infra.tracking import Tracker
from search.influence import MechanismInfluence, mechanism_influence


class LineageNode(BaseModel):
    """One node of a lineage tree, printable as a tree and JSON-able."""

    kind: str
    label: str
    details: dict[str, Any] = Field(default_factory=dict)
    children: list[LineageNode] = Field(default_factory=list)


def influence_index(runs_dir: Path) -> dict[str, MechanismInfluence]:
    """Every mechanism version's influence over every readable trace, by `name@version`."""
    return {entry.key: entry for entry in mechanism_influence(read_traces(runs_dir))}


def _influence(index: dict[str, MechanismInfluence], name: str, version_id: str) -> MechanismInfluence:
    return index.get(f"{name}@{version_id}") or MechanismInfluence(name=name, version=version_id)


def _version_node(store: MechanismStore, tracker: Tracker, index: dict[str, MechanismInfluence], version: StoredVersion,
                  depth: int) -> LineageNode:
    node = LineageNode(kind="mechanism", label=f"{version.name}@{version.version_id}", details={
        "sha256": version.sha256[:16], "status": version.status, "created": version.created_at.isoformat(timespec="seconds"),
        "s3_key": version.key, "model": version.model})
    mutated = _mutated_from(store, version)
    if mutated:
        node.details["mutated_from"] = mutated
    research = tracker.search(" and ".join([tag_equals("kind", "research"), tag_equals("meta_run_id", version.meta_run_id),
                                            tag_equals("generation", version.generation)]))
    node.children.append(LineageNode(kind="produced_by", label=f"meta-run {version.meta_run_id}, generation {version.generation}",
                                     details={"research_run": research[0].info.run_id if research else "not in MLflow",
                                              "verdict": read_tag(research[0], "verdict", "") if research else ""}))
    influence = _influence(index, version.name, version.version_id)
    influenced = LineageNode(kind="influenced", label=f"{len(influence.iterations)} iteration(s) influenced, "
                             f"credited Δ {influence.credited_delta:+.4f}")
    for item in influence.iterations:
        influenced.children.append(LineageNode(kind="iteration", label=f"{item.meta_run_id} #{item.index}",
                                               details={"value": item.value, "delta": item.delta, "kept": item.kept}))
    node.children.append(influenced)
    for parent_id in version.parents:
        parent = store.find(parent_id)
        if parent is None:
            node.children.append(LineageNode(kind="parent", label=f"{parent_id} (not in this store)"))
        elif depth > 0:
            node.children.append(_version_node(store, tracker, index, parent, depth - 1))
        else:
            node.children.append(LineageNode(kind="parent", label=f"{parent.name}@{parent.version_id} (...)"))
    return node


def _mutated_from(store: MechanismStore, version: StoredVersion) -> str | None:
    """`<parent> (<change>)` for a mutant, from its validation document (a library parent has no VersionId, so the
    version's metadata cannot name it); None for a fresh invention or a version stored without the document."""
    try:
        document = store.get_document(version.name, version.version_id, "validation")
    except MechanismNotFound:
        return None
    parent = document.get("parent") if isinstance(document, dict) else None
    if not isinstance(parent, str):
        return None
    change = document.get("change")
    return f"{parent[:200]} ({change})" if isinstance(change, str) else parent[:200]


def mechanism_lineage(store: MechanismStore, tracker: Tracker, runs_dir: Path, target: str, depth: int = 5) -> LineageNode:
    """`name` (latest accepted version) or `name@VersionId`."""
    name, _, version_id = safe_value(target).partition("@")
    version = store.head(name, version_id or None) if version_id else store.history(name)[0]
    return _version_node(store, tracker, influence_index(runs_dir), version, depth)


def run_lineage(store: MechanismStore | None, tracker: Tracker, runs_dir: Path, meta_run_id: str) -> LineageNode:
    """A meta-run: the mechanisms it started from (its parents), and the mechanisms its Level 2 produced."""
    runs = tracker.search(tag_equals("meta_run_id", meta_run_id))
    if not runs:
        raise LookupError(f"no MLflow runs for meta-run {meta_run_id!r}")
    parent = next((r for r in runs if read_tag(r, "kind") == "meta_run"), None)
    final = {k: v for k, v in (parent.data.metrics.items() if parent else ()) if k.startswith("final_best_")}
    root = LineageNode(kind="meta_run", label=meta_run_id, details={
        "mlflow_run": parent.info.run_id if parent else "-", "status": parent.info.status if parent else "-", **final})
    seeds = (read_tag(parent, "seed_mechanisms", "none") if parent else "none").split(",")
    seeded = LineageNode(kind="seeds", label="started from: " + (", ".join(s for s in seeds if s != "none") or "no mechanisms"))
    root.children.append(seeded)
    index = influence_index(runs_dir)
    for run in sorted((r for r in runs if read_tag(r, "kind") == "mechanism"), key=lambda r: read_tag(r, "generation", "")):
        label = f"{read_tag(run, 'mechanism')}@{read_tag(run, 'version_id')}"
        node = LineageNode(kind="produced", label=f"generation {read_tag(run, 'generation')}: {label} "
                           f"({read_tag(run, 'status')})", details={"parents": read_tag(run, "parents"),
                                                                    "mlflow_run": run.info.run_id})
        if read_tag(run, "mutated_from"):
            node.details["mutated_from"] = f"{read_tag(run, 'mutated_from')} ({read_tag(run, 'mutation', '-')})"
        if read_tag(run, "status") == "accepted":
            influence = _influence(index, read_tag(run, "mechanism") or "", read_tag(run, "version_id") or "")
            # the real trainings' credit next to what the simulation promised when it was activated
            node.details.update(influenced=len(influence.iterations), credited_delta=round(influence.credited_delta, 4),
                                simulated_delta=read_tag(run, "simulated_delta", "-"),
                                simulated_ci=read_tag(run, "simulated_ci", "-"), novelty=read_tag(run, "novelty", "-"))
        root.children.append(node)
    return root


def credited_versions(store: MechanismStore, runs_dir: Path, limit: int = 2,
                      meta_run_id: str | None = None) -> list[tuple[float, StoredVersion]]:
    """The accepted versions with the best measured effect so far (most negative credited Δ, only those that helped),
    the best version of each name, best first: cross-night memory (only `meta_run_id`'s own versions when given)."""
    index = influence_index(runs_dir)
    scored = []
    for name in store.names():
        for version in store.history(name):
            if meta_run_id is not None and version.meta_run_id != meta_run_id:
                continue
            credit = _influence(index, name, version.version_id).credited_delta
            if credit < 0:
                scored.append((credit, version))
    best_per_name: dict[str, tuple[float, StoredVersion]] = {}
    for credit, version in sorted(scored, key=lambda item: (item[0], item[1].version_id)):
        best_per_name.setdefault(version.name, (credit, version))
    return sorted(best_per_name.values(), key=lambda item: (item[0], item[1].version_id))[:limit]


def best_versions(store: MechanismStore, runs_dir: Path, limit: int = 2) -> list[str]:
    """`name@VersionId` of the accepted versions with the best measured effect so far (most negative credited Δ)."""
    return [f"{version.name}@{version.version_id}" for _, version in credited_versions(store, runs_dir, limit)]
