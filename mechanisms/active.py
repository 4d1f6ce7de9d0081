"""The set of active mechanisms of a meta-run: what is active, what it replaced (for revert), and the review
after each generation that deactivates quarantined or inert mechanisms."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from search.simulate import SimulatedGain

if TYPE_CHECKING:
    from infra.store import MechanismStore
    from mechanisms.replay import ReplaySource
    from mechanisms.runtime import MechanismRuntime
    from search.space import SearchSpace
    from search.trace import MechanismLiveness, Trace


class ActiveMechanism(BaseModel):
    """One mechanism version as the inner loop runs it."""

    name: str
    version: str = Field(description="S3 VersionId, or 'library' / a sha prefix for unstored code.")
    sha256: str
    source: str
    parents: list[str] = Field(default_factory=list)
    origin: str = ""
    simulated: SimulatedGain | None = Field(None, description="Its simulated benefit when Level 2 activated it.")

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version[:12]}"

    @classmethod
    def from_source(cls, name: str, source: str, version: str | None = None, **extra: Any) -> ActiveMechanism:
        sha = hashlib.sha256(source.encode()).hexdigest()
        return cls(name=name, version=version or sha[:12], sha256=sha, source=source, **extra)


class ActiveSet(BaseModel):
    """The mechanisms active now, and the stack of earlier sets a revert restores."""

    mechanisms: list[ActiveMechanism] = Field(default_factory=list)
    previous: list[list[ActiveMechanism]] = Field(default_factory=list)

    def with_added(self, mechanism: ActiveMechanism) -> ActiveSet:
        kept = [m for m in self.mechanisms if m.name != mechanism.name]
        return ActiveSet(mechanisms=[*kept, mechanism], previous=[*self.previous, self.mechanisms])

    def reverted(self, name: str) -> ActiveSet:
        """The set before `name` was activated; if it came with the initial set, the set without it."""
        for depth in range(len(self.previous) - 1, -1, -1):
            if all(m.name != name for m in self.previous[depth]):
                return ActiveSet(mechanisms=self.previous[depth], previous=self.previous[:depth])
        return ActiveSet(mechanisms=[m for m in self.mechanisms if m.name != name], previous=self.previous)


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
                 allow_weak_sandbox: bool = False) -> MechanismRuntime | None:
    """A sandboxed runtime for the active set, with state rebuilt by replaying `observe` over the trace with the
    contexts the live loop built (same seeds, tracks, windows and configs). Where the sandbox is incomplete, only
    library mechanisms run unless `allow_weak_sandbox` (settings.sandbox_allow_weak)."""
    if not active.mechanisms:
        return None
    from mechanisms.replay import replay_history
    from mechanisms.runtime import MechanismRef, MechanismRuntime

    refs = [MechanismRef(name=m.name, version=m.version, source=m.source, trusted=m.origin == "library")
            for m in active.mechanisms]
    runtime = MechanismRuntime(refs, allow_weak_sandbox=allow_weak_sandbox)
    runtime.rebuild(replay_history(trace, space, source))
    return runtime


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
