"""Mechanism liveness and influence from traces: hook calls, decisions changed, and the val_bpb of the
experiments a mechanism influenced against those it did not (pure, no I/O).

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

from search.trace import Experiment, MechanismActivity, Trace

Liveness = Literal["live", "inert", "quarantined", "never called"]


class GroupStats(BaseModel):
    """val_bpb of a group of experiments; Δ is val_bpb − the baseline of the experiment's own meta-run."""

    experiments: int = 0
    measured: int = 0
    failed: int = Field(0, description="Experiments with no val_bpb (crash, timeout, invalid proposal).")
    mean_val_bpb: float | None = None
    median_val_bpb: float | None = None
    mean_delta: float | None = None
    kept: int = 0


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
        for experiment in trace.experiments:
            for activity in experiment.mechanisms:
                entry = found.setdefault((activity.name, activity.version),
                                         MechanismInfluence(name=activity.name, version=activity.version))
                _count(entry, activity, meta_run_id)
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


GroupMember = tuple[Experiment, float | None]  # an experiment and the baseline val_bpb of its meta-run


def _groups(entry: MechanismInfluence, traces: Mapping[str, Trace]) -> tuple[list[GroupMember], ...]:
    influenced: list[GroupMember] = []
    quiet: list[GroupMember] = []
    inactive: list[GroupMember] = []
    for meta_run_id in entry.meta_runs:
        trace = traces[meta_run_id]
        baseline = trace.experiments[0].measured if trace.experiments else None
        for experiment in trace.experiments:
            if experiment.is_baseline:
                continue  # the unedited script: no search decision was made
            activity = next((a for a in experiment.mechanisms if (a.name, a.version) == (entry.name, entry.version)), None)
            target = inactive if activity is None else influenced if activity.changed else quiet
            target.append((experiment, baseline))
    return influenced, quiet, inactive


def group_stats(members: list[GroupMember]) -> GroupStats:
    values = [(e.measured, baseline) for e, baseline in members if e.measured is not None]
    deltas = [value - baseline for value, baseline in values if baseline is not None]
    result = GroupStats(experiments=len(members), measured=len(values), failed=len(members) - len(values),
                        kept=sum(1 for e, _ in members if e.kept))
    if values:
        result.mean_val_bpb = fmean(v for v, _ in values)
        result.median_val_bpb = median(v for v, _ in values)
    if deltas:
        result.mean_delta = fmean(deltas)
    return result
