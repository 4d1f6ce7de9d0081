"""The active mechanisms of a meta-run at work: the review after each generation that deactivates quarantined or inert
mechanisms, the sandboxed runtime of a set, and the set a meta-run starts from (the models: search/active_set.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from search.active_set import ActiveMechanism, ActiveSet

if TYPE_CHECKING:
    from infra.store import MechanismStore
    from mechanisms.replay import ReplaySource
    from mechanisms.runtime import MechanismRuntime
    from search.space import SearchSpace
    from search.trace import MechanismLiveness, Trace

__all__ = ["ActiveMechanism", "ActiveSet", "open_runtime", "resolve_initial_set", "review_active_set"]


def review_active_set(active: ActiveSet, liveness: dict[str, MechanismLiveness]) -> tuple[ActiveSet, list[str]]:
    """Deactivate (revert) every mechanism that was quarantined, or changed no decision in the generation
    (`liveness` is the generation's, from the trace: Trace.mechanism_liveness(generation))."""
    notes = []
    for mechanism in list(active.mechanisms):
        entry = liveness.get(mechanism.name)
        if entry is not None and entry.quarantined:
            notes.append(f"{mechanism.label} quarantined ({entry.reason}): reverted")
        elif entry is None or entry.decisions_changed == 0:
            calls = entry.total_calls if entry is not None else 0
            notes.append(f"{mechanism.label} inert (changed no decision in {calls} calls): reverted")
        else:
            continue
        active = active.reverted(mechanism.name)
    return active, notes


def open_runtime(active: ActiveSet, trace: Trace, space: SearchSpace, source: ReplaySource, *,
                 allow_weak_sandbox: bool = False, time_budget_s: float | None = None) -> MechanismRuntime | None:
    """A sandboxed runtime for the active set (each mechanism in a worker of its own), with state rebuilt by
    replaying `observe` over the trace with the contexts the live loop built (same seeds, tracks, windows and
    configs). Where the sandbox is incomplete, only library mechanisms run unless `allow_weak_sandbox`
    (settings.sandbox_allow_weak). `time_budget_s` (settings.mechanism_time_budget_s): each mechanism's hook
    wall time in this runtime, the replay included, before it is quarantined."""
    if not active.mechanisms:
        return None
    from mechanisms.replay import replay_history
    from mechanisms.runtime import MechanismRef, MechanismRuntime

    refs = [MechanismRef(name=m.name, version=m.version, source=m.source, trusted=m.origin == "library")
            for m in active.mechanisms]
    return MechanismRuntime(refs, history=replay_history(trace, space, source), time_budget_s=time_budget_s,
                            allow_weak_sandbox=allow_weak_sandbox)


def resolve_initial_set(requested: list[str], store: MechanismStore | None) -> ActiveSet:
    """Mechanisms named for the start of a meta-run: `library:<name>`, `<name>` (latest stored), `<name>@<VersionId>`."""
    active = ActiveSet()
    for item in requested:
        if item.startswith("library:"):
            from mechanisms.library import library_source

            name = item.removeprefix("library:")
            active = active.with_added(ActiveMechanism.from_source(name, library_source(name), version="library", origin="library"))
            continue
        if store is None:
            raise ValueError(f"mechanism {item!r} lives in the store, but no store is configured")
        name, _, version = item.partition("@")
        source, stored = store.get(name, version_id=version or None)
        active = active.with_added(ActiveMechanism(name=name, version=stored.version_id, sha256=stored.sha256,
                                                   source=source, parents=list(stored.parents), origin="store"))
    return ActiveSet(mechanisms=active.mechanisms)
