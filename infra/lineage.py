"""Lineage across nights: mechanism versions, their parents, the research sessions and meta-runs that produced
them, and the inner iterations they influenced. The same ids resolve in S3 (VersionIds) and MLflow (tags)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from infra.store import MechanismStore, StoredVersion
from infra.tracking import TAG_PREFIX, Tracker

_SAFE = re.compile(r"^[A-Za-z0-9_.@:+=/-]{1,200}$")


class LineageNode(BaseModel):
    """One node of a lineage tree, printable as a tree and JSON-able."""

    kind: str
    label: str
    details: dict[str, Any] = Field(default_factory=dict)
    children: list[LineageNode] = Field(default_factory=list)


class Influence(BaseModel):
    """The iterations one mechanism version changed a decision of, and the Δ credited to it."""

    iterations: list[dict[str, Any]] = Field(default_factory=list)
    credited_delta: float = 0.0  # sum of the gains (negative Δ vs the incumbent) of kept iterations it influenced


def _safe(value: str) -> str:
    if not _SAFE.match(value):
        raise ValueError(f"{value!r} is not a valid mechanism or run id")
    return value


def influence_of(tracker: Tracker, name: str, version_id: str) -> Influence:
    """From MLflow: iteration runs tagged as influenced by name@version, across all bilevel experiments."""
    label = _safe(f"{name}@{version_id}")
    runs = tracker.search(f"tags.`{TAG_PREFIX}influenced_by` LIKE '%{label}%'")
    influence = Influence()
    for run in sorted(runs, key=lambda r: (r.data.tags.get(f"{TAG_PREFIX}meta_run_id", ""), int(r.data.tags.get(f"{TAG_PREFIX}index", 0)))):
        tags, metrics = run.data.tags, run.data.metrics
        if label not in tags.get(f"{TAG_PREFIX}influenced_by", "").split(","):
            continue  # LIKE matched a longer version id
        kept = tags.get(f"{TAG_PREFIX}kept") == "True"
        delta = metrics.get("delta_vs_incumbent")
        influence.iterations.append({
            "meta_run_id": tags.get(f"{TAG_PREFIX}meta_run_id"), "index": int(tags.get(f"{TAG_PREFIX}index", -1)),
            "generation": tags.get(f"{TAG_PREFIX}generation"), "val_bpb": metrics.get("val_bpb"), "delta": delta,
            "kept": kept, "mlflow_run_id": run.info.run_id,
        })
        if kept and delta is not None and delta < 0:
            influence.credited_delta += delta
    return influence


def _version_node(store: MechanismStore, tracker: Tracker, version: StoredVersion, depth: int) -> LineageNode:
    node = LineageNode(kind="mechanism", label=f"{version.name}@{version.version_id}", details={
        "sha256": version.sha256[:16], "status": version.status, "created": version.created_at.isoformat(timespec="seconds"),
        "s3_key": version.key, "model": version.model})
    research = tracker.search(
        f"tags.`{TAG_PREFIX}kind` = 'research' and tags.`{TAG_PREFIX}meta_run_id` = '{_safe(version.meta_run_id)}' "
        f"and tags.`{TAG_PREFIX}generation` = '{version.generation}'")
    node.children.append(LineageNode(kind="produced_by", label=f"meta-run {version.meta_run_id}, generation {version.generation}",
                                     details={"research_run": research[0].info.run_id if research else "not in MLflow",
                                              "verdict": research[0].data.tags.get(f"{TAG_PREFIX}verdict", "") if research else ""}))
    influence = influence_of(tracker, version.name, version.version_id)
    influenced = LineageNode(kind="influenced", label=f"{len(influence.iterations)} iteration(s) influenced, "
                             f"credited Δ {influence.credited_delta:+.4f}")
    for item in influence.iterations:
        influenced.children.append(LineageNode(kind="iteration", label=f"{item['meta_run_id']} #{item['index']}",
                                               details={k: item[k] for k in ("val_bpb", "delta", "kept")}))
    node.children.append(influenced)
    for parent_id in version.parents:
        parent = store.find(parent_id)
        if parent is None:
            node.children.append(LineageNode(kind="parent", label=f"{parent_id} (not in this store)"))
        elif depth > 0:
            node.children.append(_version_node(store, tracker, parent, depth - 1))
        else:
            node.children.append(LineageNode(kind="parent", label=f"{parent.name}@{parent.version_id} (...)"))
    return node


def mechanism_lineage(store: MechanismStore, tracker: Tracker, target: str, depth: int = 5) -> LineageNode:
    """`name` (latest accepted version) or `name@VersionId`."""
    name, _, version_id = _safe(target).partition("@")
    version = store.head(name, version_id or None) if version_id else store.history(name)[0]
    return _version_node(store, tracker, version, depth)


def run_lineage(store: MechanismStore | None, tracker: Tracker, meta_run_id: str) -> LineageNode:
    """A meta-run: the mechanisms it started from (its parents), and the mechanisms its Level 2 produced."""
    runs = tracker.search(f"tags.`{TAG_PREFIX}meta_run_id` = '{_safe(meta_run_id)}'")
    if not runs:
        raise LookupError(f"no MLflow runs for meta-run {meta_run_id!r}")
    parent = next((r for r in runs if r.data.tags.get(f"{TAG_PREFIX}kind") == "meta_run"), None)
    root = LineageNode(kind="meta_run", label=meta_run_id, details={
        "mlflow_run": parent.info.run_id if parent else "-", "status": parent.info.status if parent else "-",
        "best_val_bpb": parent.data.metrics.get("final_best_val_bpb") if parent else None})
    seeds = (parent.data.tags.get(f"{TAG_PREFIX}seed_mechanisms", "none") if parent else "none").split(",")
    seeded = LineageNode(kind="seeds", label="started from: " + (", ".join(s for s in seeds if s != "none") or "no mechanisms"))
    root.children.append(seeded)
    for run in sorted((r for r in runs if r.data.tags.get(f"{TAG_PREFIX}kind") == "mechanism"),
                      key=lambda r: r.data.tags.get(f"{TAG_PREFIX}generation", "")):
        tags = run.data.tags
        label = f"{tags.get(f'{TAG_PREFIX}mechanism')}@{tags.get(f'{TAG_PREFIX}version_id')}"
        node = LineageNode(kind="produced", label=f"generation {tags.get(f'{TAG_PREFIX}generation')}: {label} "
                           f"({tags.get(f'{TAG_PREFIX}status')})", details={"parents": tags.get(f"{TAG_PREFIX}parents"),
                                                                             "mlflow_run": run.info.run_id})
        if tags.get(f"{TAG_PREFIX}status") == "accepted":
            influence = influence_of(tracker, tags[f"{TAG_PREFIX}mechanism"], tags[f"{TAG_PREFIX}version_id"])
            node.details.update(influenced=len(influence.iterations), credited_delta=round(influence.credited_delta, 4))
        root.children.append(node)
    return root


def best_versions(store: MechanismStore, tracker: Tracker, limit: int = 2) -> list[str]:
    """`name@VersionId` of the accepted versions with the best measured effect so far (most negative credited Δ)."""
    scored = []
    for name in store.names():
        for version in store.history(name):
            credit = influence_of(tracker, name, version.version_id).credited_delta
            if credit < 0:
                scored.append((credit, f"{name}@{version.version_id}"))
    best_per_name: dict[str, tuple[float, str]] = {}
    for credit, label in sorted(scored):
        best_per_name.setdefault(label.split("@")[0], (credit, label))
    return [label for _, label in sorted(best_per_name.values())[:limit]]
