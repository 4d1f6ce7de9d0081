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
from search.params import ParamError, ParamSpec, json_value, validate_changes
from search.run_spec import Budget, BudgetMode, EditsMode, WorkloadRef
from search.space import SearchSpace
from search.trace import RunOutcome
from workloads.hyperblock import Block, apply_changes, parse_block
from workloads.literal_sites import Slot, apply_sites, find_sites, literal_slots

SOURCE_CACHE_SIZE = 256


class Workload(ABC):
    """A benchmark with one editable script. Subclasses provide the files and the run; editing is shared AST logic."""

    name: str = "workload"
    objective: Objective = Objective()
    budget_modes: tuple[BudgetMode, ...] = ("steps",)
    fixed: tuple[str, ...] = ()
    script_name: str = "script.py"  # the editable script's file name (artifacts, diffs)
    edits: EditsMode = "block"  # literals: the best-ranked literal sites outside the block are parameters too
    max_sites: int = 12

    @abstractmethod
    def editable_source(self) -> str:
        """The baseline text of the editable script."""

    @property
    def ref(self) -> WorkloadRef:
        """The reference a meta-run records to find this workload again."""
        return WorkloadRef(reference=self.name, edits=self.edits, max_sites=self.max_sites)

    def set_edits(self, edits: EditsMode, max_sites: int) -> None:
        """Choose what Level 1 edits (before the space is used: it is rebuilt from this)."""
        self.edits, self.max_sites = edits, max_sites
        for cached in ("space", "sites", "_sources"):
            self.__dict__.pop(cached, None)

    @cached_property
    def sites(self) -> list[Slot]:
        """With edits = literals, the literal sites of the baseline that are searched: ranked, without the fixed
        ones, the best `max_sites` (workloads/literal_sites.py); none otherwise."""
        if self.edits != "literals":
            return []
        return find_sites(self.editable_source(), exclude=frozenset(self.fixed))[: self.max_sites]

    @cached_property
    def block(self) -> Block:
        """Every parameter and constraint the baseline's hyperparameter block declares (fixed ones included)."""
        return parse_block(self.editable_source())

    @cached_property
    def space(self) -> SearchSpace:
        """What the search may change: the block's parameters minus the fixed ones, and its constraints."""
        fixed = set(self.fixed)
        slots = {slot.id: slot for slot in literal_slots(self.editable_source()) if slot.is_site} \
            if self.edits == "literals" else {}
        unknown = sorted(fixed - {spec.name for spec in self.block.params} - set(slots))
        if unknown:
            where = " or among its literal sites" if self.edits == "literals" else ""
            raise ValueError(f"fixed parameters {', '.join(unknown)} are not in the hyperparameter block of "
                             f"{self.name}{where}")
        params = tuple(spec for spec in self.block.params if spec.name not in fixed and _searchable(spec))
        searched = {spec.name for spec in params}
        outside = {spec.name: json_value(spec.value) for spec in self.block.params if spec.name not in searched}
        outside.update({name: slots[name].value for name in sorted(fixed & set(slots))})
        return SearchSpace(params=params + tuple(site.spec() for site in self.sites),
                           constraints=self.block.constraints, fixed_values=outside)

    def params(self) -> list[ParamSpec]:
        return list(self.space.params)

    def apply(self, source: str, changes: Mapping[str, Any]) -> str:
        """`source` (the baseline) with the literals of `changes` rewritten: block names in the block, site ids at
        their literal. The last gate before a script runs: ParamError for an unknown, fixed or invalid value, or a
        configuration that breaks a constraint."""
        fixed = sorted(set(changes) & set(self.space.fixed))
        if fixed:
            raise ParamError(f"{', '.join(fixed)} is fixed and may not be changed")
        site_specs = [self.space.spec(site.id) for site in self.sites]
        site_ids = {spec.name for spec in site_specs}
        rewritten = apply_changes(source, {k: v for k, v in changes.items() if k not in site_ids})
        on_sites = {k: v for k, v in changes.items() if k in site_ids}
        if on_sites:
            rewritten = apply_sites(rewritten, validate_changes(site_specs, on_sites))
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
