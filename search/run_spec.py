"""What a meta-run is asked to do (its parameters) and what it reports back (its summary). The run knobs are
declared here once (as annotated types) and reused by the settings, the meta-run spec and the ablation spec."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from search.config import SearchConfig
from search.objective import Goal, Objective
from search.params import same_value
from search.trace import LLMUsage, Trace, TraceCounts

Level = Literal["1", "1.5", "2"]
ALL_LEVELS: tuple[Level, ...] = ("1", "1.5", "2")
BudgetMode = Literal["steps", "time", "flops", "fixed"]
Proposer = Literal["llm", "random", "tpe", "cmaes", "hybrid"]
# The proposers that follow a plan's advice (guidance, focus, avoid, n_candidates, temperature): the LLM's prompt
# carries it; the optimisers (search/tpe_proposal.py, search/random_proposal.py) ignore it.
PLAN_ADVICE_FOLLOWERS: tuple[str, ...] = ("llm", "hybrid")

# The run knobs, bounded once.
Generations = Annotated[int, Field(ge=1, le=1000, description="Outer generations (G).")]
Iterations = Annotated[int, Field(ge=1, le=10000, description="Inner iterations per generation and track (K).")]
ResearchEvery = Annotated[int, Field(ge=1, le=1000, description="Level 2 every M generations (M).")]
Tracks = Annotated[int, Field(ge=1, le=64, description="Parallel inner-loop tracks.")]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1, description="Training seed.")]
ProposeAttempts = Annotated[int, Field(ge=1, le=10, description="Asks of the LLM per candidate (re-asks after an "
                                                                "invalid proposal).")]
ScreenRounds = Annotated[int, Field(ge=1, le=5, description="Proposal rounds when a screen hook rejects them all.")]
ResearchSamples = Annotated[int, Field(ge=1, le=8, description="Level 2 best-of-N: code samples per attempt.")]
ResearchRepairs = Annotated[int, Field(ge=0, le=5, description="Level 2 repair rounds after a failed attempt.")]
ResearchMutants = Annotated[int, Field(ge=0, le=4, description="Level 2: of the first round's samples, how many "
                                       "are mutants of a parent (at most half the samples; 0: inventions only).")]
ResearchConfirmSeeds = Annotated[int, Field(ge=0, le=1024, description="Level 2: seeds of a simulated gain's second "
                                           "look (0: none, decide on the first 16 seeds).")]
NoiseRepeats = Annotated[int, Field(ge=0, le=10, description="Extra runs of the baseline on other seeds, to measure "
                                                           "the noise floor (0: not measured).")]
NoiseMultiple = Annotated[float, Field(ge=0.0, le=10.0, description="Keep only improvements beyond this multiple "
                                                                    "of the noise floor (0: any improvement).")]
MaxLLMCost = Annotated[float | None, Field(None, ge=0, description="Stop cleanly once LLM calls cost this many USD.")]
MaxHours = Annotated[float | None, Field(None, gt=0, le=24 * 365, description="Stop cleanly after this many hours.")]
PROGRAM_MAX_CHARS = 4000
EditsMode = Literal["block", "literals", "code"]
Edits = Annotated[EditsMode, Field(
    description="What Level 1 may edit: block (the hyperparameter block), literals (also every numeric literal of "
                "the editable script outside it, as sites), code (free-form SEARCH/REPLACE edits of the editable "
                "script, meant for API models).")]
MaxSites = Annotated[int, Field(ge=1, le=1000, description="With edits = literals: the best-ranked literal sites "
                                                            "that join the search space (and the prompt).")]


class Budget(BaseModel):
    """How long one training runs: optimizer steps (deterministic), seconds of training, training compute in FLOPs
    (deterministic, and the same for every model and batch size), or the script's own fixed budget."""

    model_config = ConfigDict(frozen=True)

    mode: BudgetMode
    value: float = Field(gt=0)

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"a budget must be a finite number, got {value!r}")
        return value

    def describe(self) -> str:
        if self.mode == "flops":
            return f"{self.value:g} FLOPs"
        if self.mode == "fixed":
            return "the script's own budget"
        return f"{int(self.value)} steps" if self.mode == "steps" else f"{self.value:g} s"


class WorkloadRef(BaseModel):
    """How to find a workload again (a meta-run records it, so resume, report and schedules use the same one):
    a registered name, `package.module:Class`, or a path to a script; and the options of a script workload."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reference: str = Field("tinygpt", min_length=1, max_length=1000)
    metric: str | None = Field(None, description="Name of the objective's value (script workloads).")
    goal: Goal | None = None
    fixed: tuple[str, ...] = Field((), description="Parameters no level may change.")
    budget_param: str | None = Field(None, description="Literal set from the run's budget (steps mode).")
    seed_param: str | None = Field(None, description="Literal set from the run's seed.")
    command: str | None = Field(None, description="How to run the script: {python} and {script} are replaced.")
    script_sha256: str | None = Field(None, description="The baseline script's hash when the meta-run started.")
    edits: Edits = "block"
    max_sites: MaxSites = 12


class MetaRunSpec(BaseModel):
    """The parameters of one meta-run. JSON-able, so a Prefect deployment can carry it."""

    model_config = ConfigDict(extra="forbid")

    meta_run_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
    name: str = Field("default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    workload: WorkloadRef = Field(default_factory=WorkloadRef)
    generations: Generations = 2
    iterations: Iterations = 6
    research_every: ResearchEvery = 1
    levels: list[Level] = Field(default_factory=lambda: list(ALL_LEVELS))
    tracks: Tracks = 1
    budget: Budget
    seed: Seed = 0
    search: SearchConfig = Field(default_factory=SearchConfig)
    mechanisms: list[str] = Field(default_factory=list, description="Mechanisms active from the start: name@version.")
    propose_attempts: ProposeAttempts = 3
    screen_rounds: ScreenRounds = 2
    research_samples: ResearchSamples = 4
    research_repairs: ResearchRepairs = 2
    research_mutants: ResearchMutants = 2
    research_confirm_seeds: ResearchConfirmSeeds = 64
    population: Literal["all", "own"] = Field("all", description="Whose credited mechanisms Level 2's mutants may "
                                              "start from (besides the library): all earlier runs' (cross-night "
                                              "memory), or this meta-run's own (an ablation: its repeats stay "
                                              "independent of each other and of their order).")
    restart_each_generation: bool = Field(False, description="Control arm: restart the inner loop from the best config.")
    proposer: Proposer = Field("llm", description="Who proposes: the LLM, a control arm, or the hybrid.")
    program: str = Field("", max_length=PROGRAM_MAX_CHARS, description="Research direction every prompt includes.")
    max_llm_cost_usd: MaxLLMCost = None
    max_hours: MaxHours = None
    noise_repeats: NoiseRepeats = 0
    noise_multiple: NoiseMultiple = 0.0

    def has_level(self, level: str) -> bool:
        return level in self.levels

    @property
    def edits(self) -> EditsMode:
        """What Level 1 edits; recorded with the workload, whose search space it shapes."""
        return self.workload.edits


StopReason = Literal["finished", "llm_cost_limit", "time_limit"]


class MetaRunSummary(BaseModel):
    """What a finished meta-run reports: the outcome is `best`, and where to look for the rest.
    Summaries written before objectives existed (`baseline_val_bpb`, `best_val_bpb`) read as val_bpb, minimised."""

    model_config = ConfigDict(populate_by_name=True)

    meta_run_id: str
    name: str
    objective: Objective = Field(default_factory=Objective)
    baseline_value: float = Field(validation_alias=AliasChoices("baseline_value", "baseline_val_bpb"))
    best_value: float = Field(validation_alias=AliasChoices("best_value", "best_val_bpb"))
    best_config: dict[str, Any]
    best_changes: dict[str, Any] = Field(default_factory=dict, description="Where best differs from the baseline.")
    best_index: int
    experiments: int
    kept: int
    crashes: int
    invalid: int
    stopped: int = 0
    llm: LLMUsage
    stop_reason: StopReason = "finished"
    stop_detail: str = ""
    noise_floor: float | None = Field(None, ge=0, allow_inf_nan=False,
                                      description="The seed-to-seed standard deviation of the baseline, when measured.")
    workload: str = "tinygpt"
    mlflow_run_id: str | None = None
    mlflow_experiment: str | None = None
    trace_path: str | None = None
    mechanisms: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def delta(self) -> float:
        """Sign-corrected: negative is an improvement whatever the goal."""
        return self.objective.delta(self.baseline_value, self.best_value)

    @property
    def counts(self) -> TraceCounts:
        return TraceCounts(experiments=self.experiments, kept=self.kept, crashes=self.crashes, invalid=self.invalid,
                           stopped=self.stopped)


def summarize(spec: MetaRunSpec, trace: Trace, *, run_id: str | None = None, trace_path: str | None = None,
              outer_llm: LLMUsage | None = None, mechanisms: list[dict[str, Any]] | None = None,
              experiment_name: str | None = None, stop_reason: StopReason = "finished",
              stop_detail: str = "") -> MetaRunSummary:
    """The outcome of a meta-run; LLM usage sums the proposals and the outer levels."""
    state = trace.state()
    counts = trace.counts()
    return MetaRunSummary(
        meta_run_id=spec.meta_run_id,
        name=spec.name,
        objective=trace.objective,
        baseline_value=state.baseline.value,
        best_value=state.best.value,
        best_config=state.best.config,
        best_changes={k: v for k, v in state.best.config.items() if not same_value(v, state.baseline.config.get(k))},
        best_index=state.best.index,
        experiments=counts.experiments,
        kept=counts.kept,
        crashes=counts.crashes,
        invalid=counts.invalid,
        stopped=counts.stopped,
        llm=llm_usage(trace, outer_llm),
        stop_reason=stop_reason,
        stop_detail=stop_detail,
        noise_floor=trace.noise_floor,
        workload=spec.workload.reference,
        mlflow_run_id=run_id,
        mlflow_experiment=experiment_name,
        trace_path=trace_path,
        mechanisms=mechanisms or [],
    )


def llm_usage(trace: Trace, outer: LLMUsage | None = None) -> LLMUsage:
    """Everything the LLM cost in a meta-run: the proposals and the outer levels (both in the trace), plus `outer`
    (outer-level calls not recorded in the trace yet)."""
    usage = trace.outer_llm() + (outer or LLMUsage())
    for experiment in trace.decided:
        usage = usage + experiment.llm
    return usage


class RunLimits(BaseModel):
    """The limits of an unattended run: a wall-clock deadline (this process's start + max_hours) and an LLM cost cap.
    Checked before each experiment; at a limit the meta-run stops cleanly and says why."""

    model_config = ConfigDict(frozen=True)

    deadline: float | None = Field(None, description="Unix time after which no new experiment starts.")
    max_llm_cost_usd: float | None = None

    @classmethod
    def for_spec(cls, spec: MetaRunSpec, started: float, elapsed_s: float = 0.0) -> RunLimits:
        """The limits of a session that starts at `started`, after `elapsed_s` seconds of earlier sessions (a resumed
        run counts the time it already worked: the trace records it)."""
        deadline = started + spec.max_hours * 3600 - elapsed_s if spec.max_hours is not None else None
        return cls(deadline=deadline, max_llm_cost_usd=spec.max_llm_cost_usd)

    def reached(self, spent_usd: float, now: float) -> tuple[StopReason, str] | None:
        """Why the run must stop now, or None."""
        if self.max_llm_cost_usd is not None and spent_usd >= self.max_llm_cost_usd:
            return "llm_cost_limit", f"LLM calls cost ${spent_usd:.4f}, the limit is ${self.max_llm_cost_usd:.4f}"
        if self.deadline is not None and now >= self.deadline:
            return "time_limit", "the run reached its --max-hours limit"
        return None
