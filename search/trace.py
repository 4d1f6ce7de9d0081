"""The trace of a meta-run: every experiment, its outcome, the decision and who made it. The single source of truth."""

from __future__ import annotations

from collections.abc import Iterable
from statistics import fmean
from typing import Any, Literal

from pydantic import BaseModel, Field

from search.params import ParamValue, json_value, same_value

# "invalid": no valid proposal came out of the LLM, so nothing was trained.
RunStatus = Literal["ok", "crash", "timeout", "invalid"]


class RunOutcome(BaseModel):
    """What one training subprocess measured (or why it measured nothing)."""

    status: RunStatus
    val_bpb: float | None = None
    seed: int = 0
    steps: int | None = None
    tokens: int | None = None
    train_seconds: float | None = None
    wall_seconds: float = 0.0
    num_params: int | None = None
    train_flops: float | None = None
    budget_mode: str | None = None
    peak_memory_mb: float | None = None
    log_tail: str = ""
    error_tail: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.val_bpb is not None


class LLMUsage(BaseModel):
    """Tokens, cost and time spent on LLM calls (summable)."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0

    def __add__(self, other: LLMUsage) -> LLMUsage:
        return LLMUsage(
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
            seconds=self.seconds + other.seconds,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class MechanismActivity(BaseModel):
    """What one active mechanism did during one experiment."""

    name: str
    version: str
    calls: dict[str, int] = Field(default_factory=dict)
    changed: list[str] = Field(default_factory=list, description="Hooks whose answer changed a decision.")
    quarantined: bool = False
    note: str = ""


class Experiment(BaseModel):
    """One inner iteration: a proposal, its training run(s), and the keep/discard decision."""

    index: int = Field(description="Global position in the trace; 0 is the baseline run.")
    generation: int = 0
    track: int = 0
    iteration: int = Field(0, description="Position within its generation and track.")
    changes: dict[str, Any] = Field(default_factory=dict)
    hypothesis: str = ""
    config: dict[str, Any] = Field(default_factory=dict, description="All hyperparameter values of the run.")
    outcome: RunOutcome
    confirm: RunOutcome | None = None
    default_kept: bool = False
    kept: bool = False
    decided_by: str | None = Field(None, description="Mechanism that overrode the default rule, if any.")
    mechanisms: list[MechanismActivity] = Field(default_factory=list)
    llm: LLMUsage = Field(default_factory=LLMUsage)
    proposal_attempts: int = 0
    proposal_errors: list[str] = Field(default_factory=list)
    note: str = ""

    @property
    def is_baseline(self) -> bool:
        return self.index == 0

    @property
    def measured(self) -> float | None:
        """The val_bpb this experiment is credited with: the mean over its successful runs."""
        values = [run.val_bpb for run in (self.outcome, self.confirm) if run is not None and run.ok]
        if not self.outcome.ok:
            return None
        return fmean(values)  # type: ignore[arg-type]


class Trace(BaseModel):
    """An append-only list of experiments, with the queries the search and the outer levels need."""

    experiments: list[Experiment] = Field(default_factory=list)

    def __len__(self) -> int:
        return len(self.experiments)

    def appended(self, experiment: Experiment) -> Trace:
        if experiment.index != len(self.experiments):
            raise ValueError(f"experiment index {experiment.index} does not follow trace length {len(self.experiments)}")
        return Trace(experiments=[*self.experiments, experiment])

    def in_generation(self, generation: int) -> list[Experiment]:
        return [e for e in self.experiments if e.generation == generation and not e.is_baseline]

    def tried_configs(self) -> list[dict[str, Any]]:
        return [e.config for e in self.experiments]

    def has_tried(self, config: dict[str, Any]) -> bool:
        return any(same_config(config, seen) for seen in self.tried_configs())


def same_config(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two configurations are the same across JSON round trips (tuples vs lists, 3 vs 3.0)."""
    return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)


class ParamStats(BaseModel):
    """How the search has used one parameter so far."""

    name: str
    tries: int = 0
    kept: int = 0
    crashes: int = 0
    best_gain: float = 0.0
    futile_streak: int = Field(0, description="Tries since this parameter last contributed to a kept change.")
    last_values: list[Any] = Field(default_factory=list)


def param_stats(trace: Trace, names: Iterable[str]) -> dict[str, ParamStats]:
    """Per-parameter tries, keeps, crashes and gains, from the trace alone (pure)."""
    stats = {name: ParamStats(name=name) for name in names}
    reference = None
    for experiment in trace.experiments:
        if experiment.is_baseline:
            reference = experiment.measured
            continue
        gain = 0.0
        if reference is not None and experiment.measured is not None:
            gain = reference - experiment.measured
        for name, value in experiment.changes.items():
            if name not in stats:
                continue
            entry = stats[name]
            entry.tries += 1
            entry.last_values = [*entry.last_values[-4:], value]
            if experiment.outcome.status != "ok":
                entry.crashes += 1
            if experiment.kept:
                entry.kept += 1
                entry.best_gain = max(entry.best_gain, gain)
                entry.futile_streak = 0
            else:
                entry.futile_streak += 1
        if experiment.kept and experiment.measured is not None:
            reference = experiment.measured
    return stats


def best_so_far_curve(trace: Trace) -> list[float | None]:
    """The best val_bpb measured up to and including each experiment (None until one succeeded)."""
    curve: list[float | None] = []
    best: float | None = None
    for experiment in trace.experiments:
        value = experiment.measured
        if value is not None and (best is None or value < best):
            best = value
        curve.append(best)
    return curve


def config_with(config: dict[str, Any], changes: dict[str, ParamValue]) -> dict[str, Any]:
    """A new config dict with `changes` applied (JSON form)."""
    merged = dict(config)
    merged.update({name: json_value(value) for name, value in changes.items()})
    return merged
