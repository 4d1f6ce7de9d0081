"""The Workload interface: what the inner loop optimises (an editable script, its search space and objective), and
how one candidate script is run and measured. A workload is found again by its reference (workloads/registry.py)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from search.code_edits import SOURCE_KEY, source_key
from search.objective import Objective
from search.params import ParamError, ParamSpec, json_value, same_value, validate_changes
from search.run_spec import Budget, BudgetMode, EditsMode, WorkloadRef
from search.space import SearchSpace
from search.trace import RunOutcome
from workloads.hyperblock import Block, ScriptError, apply_changes, parse_block
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
    read_only_files: tuple[str, ...] = ()  # files next to the script that measure it: never edited (edits = code)

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
        """The script of a full configuration: the baseline (or, with edits = code, the edited script the config's
        SOURCE_KEY names) with every literal set to the config's value (memoised: an iteration asks for the same
        script to train, record and diff)."""
        key = json.dumps(dict(config), sort_keys=True, default=str)
        cache: dict[str, str] = self.__dict__.setdefault("_sources", {})
        if key not in cache:
            if len(cache) >= SOURCE_CACHE_SIZE:
                cache.clear()
            values = {name: value for name, value in config.items() if name != SOURCE_KEY}
            cache[key] = self.apply(self.code_source(config.get(SOURCE_KEY)), values)
        return cache[key]

    # -- free-form edits (edits = code) ---------------------------------------------------------------

    def code_source(self, key: str | None) -> str:
        """The edited script a source key names (the baseline for None); ValueError when it was never remembered
        (the trace that holds it was not read: `remember_sources`)."""
        if key is None:
            return self.editable_source()
        known: dict[str, str] = self.__dict__.setdefault("_code", {})
        if key not in known:
            if key == source_key(self.editable_source()):
                return self.editable_source()
            raise ValueError(f"no edited script with source key {key!r} is known; read the run's trace first")
        return known[key]

    def remember_source(self, source: str) -> str:
        """Keep an edited script under its source key (the trace holds it too), and return the key."""
        key = source_key(source)
        self.__dict__.setdefault("_code", {})[key] = source
        return key

    def remember_sources(self, edits: Any) -> None:
        """Keep the edited scripts of a trace's `code_edits()` (index, CodeEdit) pairs."""
        for _, edit in edits:
            self.remember_source(edit.source)

    def code_changes(self, edited: str, current: Mapping[str, Any]) -> dict[str, Any]:
        """The block values a free-form edit changed (they join the config, so the config always states the
        script's values); ValueError (one line, for the LLM) when it renames, adds or removes a block parameter,
        changes a fixed one, or sets a value the block's rules refuse."""
        try:
            block = parse_block(edited)
        except ScriptError as error:
            raise ValueError(f"the hyperparameter block no longer parses: {error}") from None
        names = [spec.name for spec in block.params]
        expected = [spec.name for spec in self.block.params]
        if names != expected:
            raise ValueError("keep the hyperparameter block's names as they are (change values only): it declares "
                             + ", ".join(expected))
        values = {spec.name: json_value(spec.value) for spec in block.params}
        moved = [name for name in self.space.fixed if name in values and name in self.space.fixed_values
                 and not same_value(values[name], self.space.fixed_values[name]) and name not in self._system_set()]
        if moved:
            raise ValueError(f"{', '.join(moved)} is fixed and may not be changed")
        searched = {spec.name for spec in self.space.params}
        changed = {name: value for name, value in values.items() if name in searched and not same_value(value, current.get(name))}
        clean = validate_changes(list(self.space.params), changed) if changed else {}
        broken = self.space.broken_constraints({**self.space.baseline_config(), **dict(current), **clean})
        if broken:
            raise ValueError(broken[0])
        return {name: json_value(value) for name, value in clean.items()}

    def _system_set(self) -> tuple[str, ...]:
        """Block names the system sets on every run (a script's budget and seed literals): an edit of them is moot."""
        return tuple(name for name in (getattr(self, "budget_param", None), getattr(self, "seed_param", None)) if name)

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
