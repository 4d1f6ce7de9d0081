"""The set of mechanisms a meta-run runs, as data: each version with its source and VersionId, and the stack of earlier
sets a revert restores. Pure, so the trace records it and a resume rebuilds it without the store."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, Field


class ActiveMechanism(BaseModel):
    """One mechanism version as the inner loop runs it."""

    name: str
    version: str = Field(description="S3 VersionId, or 'library' / a sha prefix for unstored code.")
    sha256: str
    source: str
    parents: list[str] = Field(default_factory=list)
    origin: str = ""

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
