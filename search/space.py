"""The search space of a workload: its editable parameters and their cross-parameter constraints, and the one
validation every candidate goes through, whoever proposed it (the LLM, a mechanism, a control arm)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from search.code_edits import SOURCE_KEY
from search.constraints import Constraint, violations
from search.params import ParamError, ParamSpec, ParamValue, json_value, same_value, validate_changes
from search.trace import config_with, same_config

REPAIR_PAIR_VALUES = 6  # values per parameter tried in two-parameter repairs (36 pairs per pair of parameters)


class CandidateError(ValueError):
    """A candidate that may not be trained; the message is written for whoever proposed it (often a small LLM)."""


class SearchSpace(BaseModel):
    """Editable parameters (fixed ones are not in it) and the constraints a configuration must satisfy."""

    model_config = ConfigDict(frozen=True)

    params: tuple[ParamSpec, ...]
    constraints: tuple[Constraint, ...] = ()
    fixed_values: dict[str, Any] = Field(default_factory=dict, description="Block parameters no level may change "
                                         "(shown nowhere, refused everywhere), with the values constraints read.")

    @property
    def fixed(self) -> tuple[str, ...]:
        return tuple(sorted(self.fixed_values))

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.params]

    def spec(self, name: str) -> ParamSpec:
        for spec in self.params:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def editable(self, frozen: Iterable[str] = ()) -> list[ParamSpec]:
        """The parameters a proposal may change now (not frozen by Level 1.5)."""
        frozen_set = set(frozen)
        return [spec for spec in self.params if spec.name not in frozen_set]

    def baseline_config(self) -> dict[str, Any]:
        return {spec.name: json_value(spec.value) for spec in self.params}

    def broken_constraints(self, config: Mapping[str, Any]) -> list[str]:
        """The explanation of every constraint `config` (with the fixed values) breaks."""
        return violations(self.constraints, {**self.fixed_values, **config})

    def check(
        self,
        changes: Mapping[str, Any],
        current: Mapping[str, Any],
        *,
        frozen: Iterable[str] = (),
        tried: Iterable[Mapping[str, Any]] = (),
        near: float = 0.0,
    ) -> dict[str, ParamValue]:
        """The effective changes (JSON form) of a candidate made from `current`, or CandidateError: unknown, fixed,
        frozen or out-of-range values, no effective change, a broken constraint, or a configuration already run
        (or, with `near` > 0, one within that relative distance of a configuration already run)."""
        fixed = [name for name in changes if name in self.fixed_values]
        if fixed:
            raise CandidateError(f"{', '.join(map(str, fixed))} is fixed by the user and may not be changed")
        try:
            clean = validate_changes(self.params, changes, frozen)
        except ParamError as error:
            raise CandidateError(str(error)) from error
        effective = {name: json_value(value) for name, value in clean.items() if not same_value(value, current.get(name))}
        if not effective:
            raise CandidateError("every proposed value equals the current one; propose a different value")
        config = config_with(dict(current), effective)
        broken = self.broken_constraints(config)
        if broken:
            adjusted = self.repair(config, keep=set(effective) | set(frozen))
            if adjusted is None:
                raise CandidateError(broken[0] + "; choose values that satisfy it")
            effective = {**effective, **adjusted}
            config = config_with(config, adjusted)
        shown = ", ".join(f"{k}={v}" for k, v in effective.items())
        tried = list(tried)
        if any(same_config(config, seen) for seen in tried):  # type: ignore[arg-type]
            raise CandidateError(f"{shown} from the current point gives a configuration that was already tried; "
                                 "propose a configuration that has not been run")
        if near > 0:
            close = next((seen for seen in tried if self.distance(config, seen) < near), None)
            if close is not None:
                moved = {k: close.get(k) for k in effective}
                raise CandidateError(f"{shown} is within {near:.0%} of a configuration already tried ({moved}); "
                                     "move further, or change other parameters")
        return effective

    def repair(self, config: Mapping[str, Any], keep: set[str]) -> dict[str, Any] | None:
        """The smallest adjustment of parameters the candidate did not touch that satisfies every constraint: one
        parameter moved to a nearby value (x2^k on a log scale, steps of a tenth of the range otherwise), else two;
        None when no such adjustment exists. A small model states its intent (a longer context) but cannot do the
        arithmetic of a divisibility constraint; this keeps its intent and fixes the rest."""
        names = {name for constraint in self.constraints for name in constraint.names}
        movable = [spec for spec in self.params if spec.name in names and spec.name not in keep]
        options = {spec.name: spec.nearby_values(config.get(spec.name, spec.value)) for spec in movable}
        singles = [({spec.name: value}) for spec in movable for value in options[spec.name]]
        best = self._closest_valid(config, singles)
        if best is None:
            pairs = [{a.name: x, b.name: y} for i, a in enumerate(movable) for b in movable[i + 1:]
                     for x in options[a.name][:REPAIR_PAIR_VALUES] for y in options[b.name][:REPAIR_PAIR_VALUES]]
            best = self._closest_valid(config, pairs)
        return best

    def _closest_valid(self, config: Mapping[str, Any], adjustments: list[dict[str, Any]]) -> dict[str, Any] | None:
        valid = [a for a in adjustments if not self.broken_constraints(config_with(dict(config), a))]
        if not valid:
            return None
        return min(valid, key=lambda a: (self.distance(config, config_with(dict(config), a)), sorted(a.items(), key=str)))

    def distance(self, a: Mapping[str, Any], b: Mapping[str, Any]) -> float:
        """How far apart two configurations are: the largest per-parameter distance, each as a fraction of its
        range (of its log range for log-scale parameters); a choice, bool or key that differs counts as 1, and so
        do two edited scripts (edits = code: their repeats are found on the normalised diff instead)."""
        if a.keys() != b.keys() or a.get(SOURCE_KEY) != b.get(SOURCE_KEY):
            return 1.0
        largest = 0.0
        for spec in self.params:
            if spec.name in a:
                largest = max(largest, spec.distance(a[spec.name], b[spec.name]))
        return largest
