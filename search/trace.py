"""The trace of a meta-run: every experiment, its outcome, the decision and who made it. The single source of truth:
everything derived from it (state, counts, best-so-far, per-parameter and per-mechanism statistics) is a method here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from statistics import fmean, stdev
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from search.active_set import ActiveMechanism, ActiveSet
from search.code_edits import CodeEdit
from search.config import SearchConfig
from search.objective import Objective
from search.params import ParamValue, json_value, same_value
from search.state import BaselineFailed, SearchState

# "invalid": no valid proposal came out of the LLM, so nothing was trained.
# "stopped": early stopping ended a training that could not win; it measured nothing final.
RunStatus = Literal["ok", "crash", "timeout", "invalid", "stopped"]
CRASH_STATUSES = ("crash", "timeout")
MAX_EXTRA_METRICS = 32


class RunOutcome(BaseModel):
    """What one training subprocess measured (or why it measured nothing)."""

    model_config = ConfigDict(populate_by_name=True)

    status: RunStatus
    # `val_bpb` is how traces written before objectives existed name the value.
    value: float | None = Field(None, validation_alias=AliasChoices("value", "val_bpb"))
    metrics: dict[str, float] = Field(default_factory=dict, description="Other numbers the run reported.")
    seed: int = 0
    steps: int | None = None
    tokens: int | None = None
    train_seconds: float | None = None
    wall_seconds: float = 0.0
    num_params: int | None = None
    train_flops: float | None = None
    budget_mode: str | None = None
    peak_memory_mb: float | None = None
    curve: list[tuple[float, float]] = Field(default_factory=list, description="(budget fraction, loss) checkpoints.")
    log_tail: str = ""
    error_tail: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.value is not None

    @property
    def crashed(self) -> bool:
        return self.status in CRASH_STATUSES


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
    proposed_by: str = Field("", description="Who put the trained candidate on the table: llm, a mechanism, an arm.")
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
    code: CodeEdit | None = Field(None, description="With edits = code: the free-form edit trained (its whole "
                                  "source, so the trace alone rebuilds every script).")

    @property
    def is_baseline(self) -> bool:
        return self.index == 0

    @property
    def measured(self) -> float | None:
        """The value this experiment is credited with: the mean over its successful runs."""
        if not self.outcome.ok:
            return None
        values = [run.value for run in (self.outcome, self.confirm) if run is not None and run.ok]
        return fmean(values)  # type: ignore[arg-type]

    @property
    def crashed(self) -> bool:
        return self.outcome.crashed


class GenerationStart(BaseModel):
    """How a generation began: what its inner loops saw. Replay rebuilds every hook context from this."""

    model_config = ConfigDict(frozen=True)

    generation: int
    start: int = Field(description="Trace length when it began: experiments of every track are numbered from here.")
    config: SearchConfig
    visible_from: int = Field(0, description="Experiments before this index are hidden from prompts and hooks.")
    active: ActiveSet | None = Field(None, description="The mechanisms its inner loops ran, with their sources and "
                                     "VersionIds (None in traces written before a resume read them from here).")


class ConfigDecision(BaseModel):
    """Level 1.5 at the end of a generation: the search configuration of the next one, and why."""

    config: SearchConfig
    source: str = Field(description="llm, or rule (the deterministic fallback).")
    change: str = ""
    reason: str = ""
    llm: LLMUsage = Field(default_factory=LLMUsage)


class MechanismDecision(BaseModel):
    """Level 2 at the end of a generation: the research session's verdict and the mechanism it activated, if any."""

    verdict: str
    accepted: str | None = Field(None, description="name@VersionId of the activated mechanism.")
    llm: LLMUsage = Field(default_factory=LLMUsage)


class GenerationEnd(BaseModel):
    """What was decided once a generation's tracks had finished, recorded step by step (the review of the mechanisms,
    Level 1.5, Level 2) so that a resume asks none of it again; `done` once nothing is left to decide."""

    generation: int
    config: SearchConfig = Field(description="The search configuration of the next generation.")
    active: ActiveSet = Field(default_factory=ActiveSet, description="The mechanisms of the next generation.")
    level15: ConfigDecision | None = None
    level2: MechanismDecision | None = None
    notes: list[str] = Field(default_factory=list)
    done: bool = False

    @property
    def llm(self) -> LLMUsage:
        """What the outer levels cost at the end of this generation."""
        usage = LLMUsage()
        for decision in (self.level15, self.level2):
            if decision is not None:
                usage = usage + decision.llm
        return usage


class TraceCounts(BaseModel):
    """How many experiments did what (the baseline is not counted)."""

    experiments: int = 0
    kept: int = 0
    crashes: int = 0
    invalid: int = 0
    stopped: int = 0

    @property
    def keep_rate(self) -> float:
        return self.kept / self.experiments if self.experiments else 0.0


class ParamStats(BaseModel):
    """How the search has used one parameter so far."""

    name: str
    tries: int = 0
    kept: int = 0
    crashes: int = 0
    best_gain: float = Field(0.0, description="Largest improvement of a kept change (positive is better).")
    futile_streak: int = Field(0, description="Tries since this parameter last contributed to a kept change.")
    last_values: list[Any] = Field(default_factory=list)


class MechanismLiveness(BaseModel):
    """What one mechanism version did over a stretch of the trace: calls and changed decisions per hook."""

    name: str
    version: str
    experiments: int = 0
    calls: dict[str, int] = Field(default_factory=dict)
    changed: dict[str, int] = Field(default_factory=dict)
    quarantined: bool = False
    reason: str = ""

    @property
    def decisions_changed(self) -> int:
        return sum(self.changed.values())

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


class Trace(BaseModel):
    """An append-only list of experiments under one objective, with the queries the search and the outer levels need."""

    objective: Objective = Field(default_factory=Objective)
    generations: list[GenerationStart] = Field(default_factory=list)
    experiments: list[Experiment] = Field(default_factory=list)
    noise_runs: list[RunOutcome] = Field(default_factory=list, description="The baseline again on other seeds.")
    generation_ends: list[GenerationEnd] = Field(default_factory=list)
    elapsed_s: float = Field(0.0, ge=0, description="Wall seconds the meta-run has worked, over all its sessions "
                             "(what --max-hours counts).")

    @property
    def noise_floor(self) -> float | None:
        """The seed-to-seed standard deviation of the baseline (its run and the noise runs), when measured."""
        runs = [self.experiments[0].outcome, *self.noise_runs] if self.experiments else list(self.noise_runs)
        values = [run.value for run in runs if run.ok and run.value is not None]
        return stdev(values) if len(values) >= 2 else None

    def __len__(self) -> int:
        return len(self.experiments)

    def appended(self, experiment: Experiment) -> Trace:
        if experiment.index != len(self.experiments):
            raise ValueError(f"experiment index {experiment.index} does not follow trace length {len(self.experiments)}")
        return self.model_copy(update={"experiments": [*self.experiments, experiment]})

    def with_experiments(self, experiments: list[Experiment]) -> Trace:
        return self.model_copy(update={"experiments": experiments})

    def with_generation(self, start: GenerationStart) -> Trace:
        """The trace with `start` recorded (replacing an earlier record of the same generation, e.g. on resume)."""
        kept = [g for g in self.generations if g.generation != start.generation]
        return self.model_copy(update={"generations": sorted([*kept, start], key=lambda g: g.generation)})

    def generation_start(self, generation: int) -> GenerationStart | None:
        return next((g for g in self.generations if g.generation == generation), None)

    def with_end(self, end: GenerationEnd) -> Trace:
        """The trace with `end` recorded (replacing the earlier record of the same generation: it grows step by step)."""
        kept = [e for e in self.generation_ends if e.generation != end.generation]
        return self.model_copy(update={"generation_ends": sorted([*kept, end], key=lambda e: e.generation)})

    def generation_end(self, generation: int) -> GenerationEnd | None:
        return next((e for e in self.generation_ends if e.generation == generation), None)

    def outer_llm(self) -> LLMUsage:
        """What Level 1.5 and Level 2 cost so far (the experiments carry their own proposals' cost)."""
        usage = LLMUsage()
        for end in self.generation_ends:
            usage = usage + end.llm
        return usage

    def mechanism_versions(self) -> list[ActiveMechanism]:
        """Every mechanism version that was active at some point, in the order first seen."""
        seen: dict[str, ActiveMechanism] = {}
        for active in [*(g.active for g in self.generations), *(e.active for e in self.generation_ends)]:
            for mechanism in active.mechanisms if active is not None else []:
                seen.setdefault(mechanism.label, mechanism)
        return list(seen.values())

    # -- state and counts --------------------------------------------------------------------------

    def states(self) -> Iterator[SearchState]:
        """The state after each experiment, in order (raises BaselineFailed for an unmeasured baseline)."""
        if not self.experiments:
            raise BaselineFailed("the trace is empty: run the baseline first")
        state = SearchState.start(self.experiments[0], self.objective)
        yield state
        for experiment in self.experiments[1:]:
            state = state.after(experiment)
            yield state

    def state(self) -> SearchState:
        """Where the search stands after the last experiment."""
        *_, last = self.states()
        return last

    @property
    def decided(self) -> list[Experiment]:
        """Every experiment after the baseline."""
        return self.experiments[1:]

    def in_generation(self, generation: int) -> list[Experiment]:
        return [e for e in self.decided if e.generation == generation]

    def counts(self, experiments: Iterable[Experiment] | None = None) -> TraceCounts:
        """Kept, crashed, invalid and stopped experiments (of the given ones, default all after the baseline)."""
        chosen = list(self.decided if experiments is None else experiments)
        statuses: Counter[str] = Counter(e.outcome.status for e in chosen)
        return TraceCounts(experiments=len(chosen), kept=sum(e.kept for e in chosen),
                           crashes=sum(statuses[s] for s in CRASH_STATUSES), invalid=statuses["invalid"],
                           stopped=statuses["stopped"])

    def best_so_far(self) -> list[float | None]:
        """The best value measured up to and including each experiment (None until one succeeded)."""
        curve: list[float | None] = []
        best: float | None = None
        for experiment in self.experiments:
            if self.objective.better(experiment.measured, best):
                best = experiment.measured
            curve.append(best)
        return curve

    def last_improvement(self) -> int:
        """Index of the experiment that set the current best (0: the baseline)."""
        best, index = None, 0
        for experiment in self.experiments:
            if self.objective.better(experiment.measured, best):
                best, index = experiment.measured, experiment.index
        return index

    # -- configurations ----------------------------------------------------------------------------

    def tried_configs(self) -> list[dict[str, Any]]:
        return [e.config for e in self.experiments]

    def code_edits(self) -> list[tuple[int, CodeEdit]]:
        """Every free-form edit of the trace with its experiment's index (edits = code)."""
        return [(e.index, e.code) for e in self.experiments if e.code is not None]

    def has_tried(self, config: dict[str, Any]) -> bool:
        return any(same_config(config, seen) for seen in self.tried_configs())

    def best_configs(self, k: int) -> list[Experiment]:
        """The k best measured experiments, best first (the baseline included)."""
        measured = [e for e in self.experiments if e.measured is not None]
        sign = 1.0 if self.objective.minimize else -1.0
        return sorted(measured, key=lambda e: (sign * e.measured, e.index))[:k]  # type: ignore[operator]

    # -- statistics --------------------------------------------------------------------------------

    def param_stats(self, names: Iterable[str]) -> dict[str, ParamStats]:
        """Per-parameter tries, keeps, crashes and gains (gains are improvements over the point the change was
        made from, positive is better)."""
        stats = {name: ParamStats(name=name) for name in names}
        reference: float | None = None
        for experiment in self.experiments:
            if experiment.is_baseline:
                reference = experiment.measured
                continue
            gain = 0.0
            if reference is not None and experiment.measured is not None:
                gain = self.objective.gain(reference, experiment.measured)
            for name, value in experiment.changes.items():
                if name not in stats:
                    continue
                entry = stats[name]
                entry.tries += 1
                entry.last_values = [*entry.last_values[-4:], value]
                if experiment.crashed:
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

    def mechanism_liveness(self, generation: int | None = None) -> dict[str, MechanismLiveness]:
        """Per mechanism name (the latest version seen): calls and changed decisions per hook, and quarantine,
        over the whole trace or one generation."""
        found: dict[str, MechanismLiveness] = {}
        for experiment in self.decided:
            if generation is not None and experiment.generation != generation:
                continue
            for activity in experiment.mechanisms:
                entry = found.get(activity.name)
                if entry is None or entry.version != activity.version:
                    entry = found[activity.name] = MechanismLiveness(name=activity.name, version=activity.version)
                entry.experiments += 1
                entry.calls = dict(Counter(entry.calls) + Counter(activity.calls))
                entry.changed = dict(Counter(entry.changed) + Counter(activity.changed))
                if activity.quarantined:
                    entry.quarantined = True
                    entry.reason = entry.reason or activity.note
        return found


def same_config(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two configurations are the same across JSON round trips (tuples vs lists, 3 vs 3.0)."""
    return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)


def config_with(config: dict[str, Any], changes: dict[str, ParamValue]) -> dict[str, Any]:
    """A new config dict with `changes` applied (JSON form)."""
    merged = dict(config)
    merged.update({name: json_value(value) for name, value in changes.items()})
    return merged
