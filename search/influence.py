"""Mechanism liveness and influence from traces (the single source of truth): hook calls, decisions changed, and the
objective's value of the experiments a mechanism influenced against those it did not (pure, no I/O). Reports and
lineage both read it.

Groups are drawn from the meta-runs in which the mechanism was active at least once, so each comparison
shares seeds and baselines. They describe, they do not prove: a mechanism activated late in a run sees
better configurations than the experiments before it, so "influenced" is confounded with time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from statistics import fmean, median
from typing import Literal

from pydantic import BaseModel, Field

from search.objective import Objective
from search.trace import Experiment, MechanismActivity, Trace

Liveness = Literal["live", "inert", "quarantined", "never called"]


class GroupStats(BaseModel):
    """Values of a group of experiments; Δ is the value against the baseline of the experiment's own meta-run,
    sign-corrected by the goal (negative is better)."""

    experiments: int = 0
    measured: int = 0
    failed: int = Field(0, description="Experiments with no value (crash, timeout, invalid proposal, stopped).")
    mean_value: float | None = None
    median_value: float | None = None
    mean_delta: float | None = None
    kept: int = 0


class InfluencedExperiment(BaseModel):
    """One experiment a mechanism changed a decision of, and what it measured against the best it had to beat."""

    meta_run_id: str
    index: int
    generation: int
    value: float | None
    delta: float | None = Field(None, description="Against the best before it, sign-corrected (negative is better).")
    kept: bool


class MechanismInfluence(BaseModel):
    """What one mechanism version did across the given traces."""

    name: str
    version: str
    meta_runs: list[str] = Field(default_factory=list)
    calls: dict[str, int] = Field(default_factory=dict)
    changed: dict[str, int] = Field(default_factory=dict, description="Decisions changed, per hook.")
    experiments_active: int = 0
    experiments_influenced: int = 0
    quarantined: bool = False
    quarantine_notes: list[str] = Field(default_factory=list)
    influenced: GroupStats = Field(default_factory=GroupStats)
    active_not_influenced: GroupStats = Field(default_factory=GroupStats)
    inactive: GroupStats = Field(default_factory=GroupStats, description="Same meta-runs, mechanism not active.")
    iterations: list[InfluencedExperiment] = Field(default_factory=list)

    @property
    def credited_delta(self) -> float:
        """The improvements (negative Δ against the best so far) of the kept experiments it influenced."""
        return sum(i.delta for i in self.iterations if i.kept and i.delta is not None and i.delta < 0)

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def decisions_changed(self) -> int:
        return sum(self.changed.values())

    @property
    def liveness(self) -> Liveness:
        if self.quarantined:
            return "quarantined"
        if self.decisions_changed:
            return "live"
        return "inert" if self.total_calls else "never called"


def mechanism_influence(traces: Mapping[str, Trace]) -> list[MechanismInfluence]:
    """One entry per mechanism version (name@version) seen in any trace, in order of first appearance."""
    found: dict[tuple[str, str], MechanismInfluence] = {}
    for meta_run_id, trace in traces.items():
        best_before = [None, *trace.best_so_far()[:-1]]
        for experiment in trace.experiments:
            for activity in experiment.mechanisms:
                entry = found.setdefault((activity.name, activity.version),
                                         MechanismInfluence(name=activity.name, version=activity.version))
                _count(entry, activity, meta_run_id)
                if activity.changed:
                    before = best_before[experiment.index] if experiment.index < len(best_before) else None
                    value = experiment.measured
                    entry.iterations.append(InfluencedExperiment(
                        meta_run_id=meta_run_id, index=experiment.index, generation=experiment.generation, value=value,
                        delta=trace.objective.delta(before, value) if value is not None and before is not None else None,
                        kept=experiment.kept))
    for entry in found.values():
        groups = _groups(entry, traces)
        entry.influenced, entry.active_not_influenced, entry.inactive = (group_stats(g) for g in groups)
    return list(found.values())


def _count(entry: MechanismInfluence, activity: MechanismActivity, meta_run_id: str) -> None:
    if meta_run_id not in entry.meta_runs:
        entry.meta_runs.append(meta_run_id)
    entry.experiments_active += 1
    entry.calls = dict(Counter(entry.calls) + Counter(activity.calls))
    # `changed` lists each hook once per experiment: one changed decision per hook and experiment.
    entry.changed = dict(Counter(entry.changed) + Counter(activity.changed))
    if activity.changed:
        entry.experiments_influenced += 1
    if activity.quarantined:
        entry.quarantined = True
        if activity.note and activity.note not in entry.quarantine_notes:
            entry.quarantine_notes.append(activity.note)


GroupMember = tuple[Experiment, float | None, Objective]  # an experiment, its meta-run's baseline and objective


def _groups(entry: MechanismInfluence, traces: Mapping[str, Trace]) -> tuple[list[GroupMember], ...]:
    influenced: list[GroupMember] = []
    quiet: list[GroupMember] = []
    inactive: list[GroupMember] = []
    for meta_run_id in entry.meta_runs:
        trace = traces[meta_run_id]
        baseline = trace.experiments[0].measured if trace.experiments else None
        objective = trace.objective
        for experiment in trace.experiments:
            if experiment.is_baseline:
                continue  # the unedited script: no search decision was made
            activity = next((a for a in experiment.mechanisms if (a.name, a.version) == (entry.name, entry.version)), None)
            target = inactive if activity is None else influenced if activity.changed else quiet
            target.append((experiment, baseline, objective))
    return influenced, quiet, inactive


def group_stats(members: list[GroupMember]) -> GroupStats:
    values = [(e.measured, baseline, objective) for e, baseline, objective in members if e.measured is not None]
    deltas = [objective.delta(baseline, value) for value, baseline, objective in values if baseline is not None]
    result = GroupStats(experiments=len(members), measured=len(values), failed=len(members) - len(values),
                        kept=sum(1 for e, _, _ in members if e.kept))
    if values:
        result.mean_value = fmean(v for v, _, _ in values)
        result.median_value = median(v for v, _, _ in values)
    if deltas:
        result.mean_delta = fmean(deltas)
    return result
