"""The objective of a search: the metric's name and whether it is minimised or maximised. Owned by the workload;
everything that compares, ranks, plots or names a measurement reads it from here."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Goal = Literal["minimize", "maximize"]
METRIC_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$"


class Objective(BaseModel):
    """One named metric and its direction. The default is tinygpt's (val_bpb, minimised): traces written before
    objectives existed read as that."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field("val_bpb", pattern=METRIC_NAME_PATTERN)
    goal: Goal = "minimize"

    @property
    def minimize(self) -> bool:
        return self.goal == "minimize"

    def better(self, value: float | None, than: float | None) -> bool:
        """Whether `value` is strictly better than `than` (a measurement beats nothing; nothing beats nothing)."""
        if value is None:
            return False
        if than is None:
            return True
        return value < than if self.minimize else value > than

    def best(self, values: Iterable[float | None]) -> float | None:
        """The best of the measured values, or None when there is none."""
        found: float | None = None
        for value in values:
            if self.better(value, found):
                found = value
        return found

    def delta(self, baseline: float, value: float) -> float:
        """Sign-corrected change from the baseline: negative is an improvement, whatever the goal (for
        minimised metrics it is value - baseline, the paper's Δval_bpb)."""
        return value - baseline if self.minimize else baseline - value

    def gain(self, before: float, after: float) -> float:
        """How much `after` improves on `before`: positive is better, whatever the goal."""
        return -self.delta(before, after)

    def beats_by(self, value: float | None, than: float, margin: float) -> bool:
        """Better than `than` by more than `margin` (margin 0: strictly better)."""
        return value is not None and self.gain(than, value) > margin

    @property
    def direction(self) -> str:
        return "lower is better" if self.minimize else "higher is better"

    @property
    def verb(self) -> str:
        return "minimise" if self.minimize else "maximise"

    def describe(self) -> str:
        """`minimise val_bpb (lower is better)`: how prompts and reports state the goal."""
        return f"{self.verb} {self.name} ({self.direction})"
