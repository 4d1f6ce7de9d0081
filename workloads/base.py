"""The Workload interface: what the inner loop optimises, and how one candidate script is run and measured."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from search.params import ParamSpec
from search.run_spec import Budget
from search.trace import RunOutcome
from workloads.hyperblock import apply_changes, parse_params


class Workload(ABC):
    """A benchmark with one editable script. Subclasses provide the files; editing is shared AST logic."""

    name: str
    metric: str = "val_bpb"  # minimised

    @abstractmethod
    def editable_source(self) -> str:
        """The baseline text of the editable script."""

    def params(self, source: str | None = None) -> list[ParamSpec]:
        """The parameter schema of `source` (default: the baseline), parsed from its hyperparameter block."""
        return parse_params(self.editable_source() if source is None else source)

    def apply(self, source: str, changes: Mapping[str, Any], frozen: Iterable[str] = ()) -> str:
        """`source` with the literals of `changes` rewritten; raises ParamError for any invalid change."""
        return apply_changes(source, changes, frozen)

    @abstractmethod
    def prepare(self) -> None:
        """Provision what runs need (data), idempotently. Called once before a meta-run."""

    @abstractmethod
    def run(self, source: str, budget: Budget, seed: int, run_dir: Path, timeout_s: float) -> RunOutcome:
        """Train `source` in a subprocess under a hard timeout; never raises for a bad candidate."""

    def describe(self, budget_mode: str = "flops") -> str:
        """One paragraph for prompts: what is trained under this budget mode, and what the metric means."""
        return f"{self.name}: minimise {self.metric}."
