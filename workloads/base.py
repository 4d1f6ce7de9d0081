"""The Workload interface: what the inner loop optimises (an editable script, its search space and objective), and
how one candidate script is run and measured. A workload is found again by its reference (workloads/registry.py)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from search.objective import Objective
from search.params import ParamError, ParamSpec, json_value
from search.run_spec import Budget, BudgetMode, WorkloadRef
from search.space import SearchSpace
from search.trace import RunOutcome
from workloads.hyperblock import Block, apply_changes, parse_block

SOURCE_CACHE_SIZE = 256


class Workload(ABC):
    """A benchmark with one editable script. Subclasses provide the files and the run; editing is shared AST logic."""

    name: str = "workload"
    objective: Objective = Objective()
    budget_modes: tuple[BudgetMode, ...] = ("steps",)
    fixed: tuple[str, ...] = ()
    script_name: str = "script.py"  # the editable script's file name (artifacts, diffs)

    @abstractmethod
    def editable_source(self) -> str:
        """The baseline text of the editable script."""

    @property
    def ref(self) -> WorkloadRef:
        """The reference a meta-run records to find this workload again."""
        return WorkloadRef(reference=self.name)

    @cached_property
    def block(self) -> Block:
        """Every parameter and constraint the baseline's hyperparameter block declares (fixed ones included)."""
        return parse_block(self.editable_source())

    @cached_property
    def space(self) -> SearchSpace:
        """What the search may change: the block's parameters minus the fixed ones, and its constraints."""
        fixed = set(self.fixed)
        unknown = sorted(fixed - {spec.name for spec in self.block.params})
        if unknown:
            raise ValueError(f"fixed parameters {', '.join(unknown)} are not in the hyperparameter block of {self.name}")
        params = tuple(spec for spec in self.block.params if spec.name not in fixed and _searchable(spec))
        searched = {spec.name for spec in params}
        outside = {spec.name: json_value(spec.value) for spec in self.block.params if spec.name not in searched}
        return SearchSpace(params=params, constraints=self.block.constraints, fixed_values=outside)

    def params(self) -> list[ParamSpec]:
        return list(self.space.params)

    def apply(self, source: str, changes: Mapping[str, Any]) -> str:
        """`source` (the baseline) with the literals of `changes` rewritten. The last gate before a script runs:
        ParamError for an unknown, fixed or invalid value, or a configuration that breaks a constraint."""
        fixed = sorted(set(changes) & set(self.space.fixed))
        if fixed:
            raise ParamError(f"{', '.join(fixed)} is fixed and may not be changed")
        rewritten = apply_changes(source, changes)
        broken = self.space.broken_constraints({**self.space.baseline_config(), **dict(changes)})
        if broken:
            raise ParamError(broken[0])
        return rewritten

    def source_for(self, config: Mapping[str, Any]) -> str:
        """The script of a full configuration: the baseline with every literal set to the config's value
        (memoised: an iteration asks for the same script to train, record and diff)."""
        key = json.dumps(dict(config), sort_keys=True, default=str)
        cache: dict[str, str] = self.__dict__.setdefault("_sources", {})
        if key not in cache:
            if len(cache) >= SOURCE_CACHE_SIZE:
                cache.clear()
            cache[key] = self.apply(self.editable_source(), config)
        return cache[key]

    def default_budget(self) -> Budget:
        """The budget of one experiment when the user sets none."""
        return Budget(mode=self.budget_modes[0], value=1)

    def check_budget(self, budget: Budget) -> None:
        """ValueError (one line) when this workload cannot run under `budget`."""
        if budget.mode not in self.budget_modes:
            raise ValueError(f"workload {self.name} supports budget modes {', '.join(self.budget_modes)}, "
                             f"not {budget.mode!r}")

    @abstractmethod
    def prepare(self) -> None:
        """Provision what runs need (data), idempotently. Called once before a meta-run."""

    @abstractmethod
    def run(self, source: str, budget: Budget, seed: int, run_dir: Path, timeout_s: float) -> RunOutcome:
        """Train `source` in a subprocess under a hard timeout; never raises for a bad candidate."""

    def describe(self, budget_mode: str) -> str:
        """One paragraph for prompts: what is trained under this budget mode, and what the metric means."""
        return f"{self.name}: {self.objective.describe()}."


def _searchable(spec: ParamSpec) -> bool:
    """A choice with a single option (an unannotated string) has nothing to search."""
    return not (spec.choices is not None and len(spec.choices) < 2)
