"""The set of mechanisms a meta-run runs, as data: each version with its source and VersionId, and the stack of earlier
sets a revert restores. Pure, so the trace records it and a resume rebuilds it without the store."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, Field

LABEL_CHARS = 12  # of a VersionId in a mechanism's label, name@<id prefix>
# A simulated gain smaller than this fraction of the trace's noise floor is no benefit anyone could see in real
# trainings: on the development traces a pattern move that rarely fired was "significant" at -0.00001 against a
# noise floor of 0.0023 (benchmarks/results/level2-shapes).
MIN_GAIN_OF_NOISE = 0.1


class LandscapeGain(BaseModel):
    """The same paired simulation on a synthetic landscape mapped onto the run's space (search/landscapes.py)."""

    landscape: str
    delta: float
    ci_low: float
    ci_high: float
    seeds: int
    per_seed: list[float] = Field(default_factory=list)
    seconds: float = 0.0

    @property
    def harmful(self) -> bool:
        """The CI lies entirely on the worse side: the mechanism makes the search significantly worse here."""
        return self.ci_low > 0

    def describe(self) -> str:
        return f"{self.landscape} Δ {self.delta:+.4g} (CI {self.ci_low:+.4g} to {self.ci_high:+.4g})"


class SimulatedGain(BaseModel):
    """The simulated effect of adding a mechanism to the current search over the next generation: the paired Δ of
    the final best (with minus without, sign-corrected: negative is better), its bootstrap CI and the raw values."""

    delta: float = Field(description="Mean paired Δ of the final best; negative: the mechanism helps.")
    ci_low: float
    ci_high: float
    confidence: float = 0.95
    seeds: int
    iterations: int
    per_seed: list[float] = Field(default_factory=list)
    seconds: float = 0.0
    points: int = Field(0, description="Experiments the surrogate was fitted on (crashes included).")
    headroom: float = Field(0.0, description="How far beyond the best measured value a simulated training may go.")
    noise_sd: float = 0.0
    stand_in: str = "recorded moves"
    decisions_changed: int = Field(0, description="Decisions the mechanism changed over all simulated seeds.")
    landscapes: list[LandscapeGain] = Field(default_factory=list, description="The same simulation on synthetic "
                                            "landscapes: a mechanism tuned to the trace's surrogate shows there.")

    @property
    def negligible(self) -> bool:
        """The mean gain is smaller than MIN_GAIN_OF_NOISE of the noise floor (no floor known: nothing is negligible)."""
        return self.noise_sd > 0 and self.delta > -MIN_GAIN_OF_NOISE * self.noise_sd

    @property
    def beats_current(self) -> bool:
        """The CI lies entirely on the better side and the gain is not negligible: the mechanism beats the current
        search on the trace's surrogate."""
        return self.ci_high < 0 and not self.negligible

    @property
    def harmful_on(self) -> list[str]:
        """The synthetic landscapes on which the mechanism is significantly harmful."""
        return [entry.landscape for entry in self.landscapes if entry.harmful]

    @property
    def selectable(self) -> bool:
        """Level 2's activation rule: beats the current search on the trace's surrogate (CI entirely below 0) and is
        significantly harmful on no synthetic landscape (no CI entirely above 0)."""
        return self.beats_current and not self.harmful_on

    @property
    def inert(self) -> bool:
        """Not one simulated seed, on the trace's surrogate or any landscape, ended differently with the mechanism:
        what it changes does not reach what trains (guidance text, state only) or it never fires."""
        return all(v == 0 for v in self.per_seed) and all(v == 0 for e in self.landscapes for v in e.per_seed)

    def describe(self) -> str:
        text = (f"simulated Δ {self.delta:+.4g} (CI {self.ci_low:+.4g} to {self.ci_high:+.4g}, {self.seeds} seeds x "
                f"{self.iterations} iterations)")
        if self.landscapes:
            text += "; on synthetic landscapes: " + ", ".join(entry.describe() for entry in self.landscapes)
        return text


class ActiveMechanism(BaseModel):
    """One mechanism version as the inner loop runs it."""

    name: str
    version: str = Field(description="S3 VersionId, or 'library' / a sha prefix for unstored code.")
    sha256: str
    source: str
    parents: list[str] = Field(default_factory=list)
    origin: str = ""
    simulated: SimulatedGain | None = Field(None, description="Its simulated benefit when Level 2 activated it.")
    novelty: str | None = Field(None, description="Invented, or derived from which reference and how closely "
                                "(mechanisms/novelty.py), when Level 2 activated it.")

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version[:LABEL_CHARS]}"

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
