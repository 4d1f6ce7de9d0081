"""What a meta-run is asked to do (its parameters) and what it reports back (its summary)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from search.config import SearchConfig
from search.params import same_value
from search.state import state_from_trace
from search.trace import LLMUsage, Trace

Level = Literal["1", "1.5", "2"]


BudgetMode = Literal["steps", "time", "flops"]


class Budget(BaseModel):
    """How long one training runs: a number of optimizer steps (deterministic), seconds of training, or
    training compute in FLOPs (deterministic, and the same for every model and batch size)."""

    mode: BudgetMode = "steps"
    value: float = Field(300, gt=0)

    def describe(self) -> str:
        if self.mode == "flops":
            return f"{self.value:g} FLOPs"
        return f"{int(self.value)} steps" if self.mode == "steps" else f"{self.value:g} s"


class MetaRunSpec(BaseModel):
    """The parameters of one meta-run. JSON-able, so a Prefect deployment can carry it."""

    model_config = ConfigDict(extra="forbid")

    meta_run_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
    name: str = Field("default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    generations: int = Field(2, ge=1, le=1000)
    iterations: int = Field(6, ge=1, le=10000, description="K: inner iterations per generation and track.")
    research_every: int = Field(1, ge=1, le=1000, description="M: Level 2 every M generations.")
    levels: list[Level] = Field(default_factory=lambda: ["1", "1.5", "2"])
    tracks: int = Field(1, ge=1, le=64)
    budget: Budget = Field(default_factory=Budget)
    seed: int = Field(0, ge=0)
    search: SearchConfig = Field(default_factory=SearchConfig)
    mechanisms: list[str] = Field(default_factory=list, description="Mechanisms active from the start: name@version.")
    propose_attempts: int = Field(3, ge=1, le=10)
    screen_rounds: int = Field(2, ge=1, le=5, description="Re-asks after a screen hook rejected all candidates.")
    restart_each_generation: bool = Field(False, description="Control arm: restart the inner loop from the best config.")
    proposer: Literal["llm", "random", "tpe"] = Field("llm", description="Control arms propose without the LLM.")

    def has_level(self, level: str) -> bool:
        return level in self.levels


class MetaRunSummary(BaseModel):
    """What a finished meta-run reports: the outcome is `best`, and where to look for the rest."""

    meta_run_id: str
    name: str
    baseline_val_bpb: float
    best_val_bpb: float
    best_config: dict[str, Any]
    best_changes: dict[str, Any] = Field(default_factory=dict, description="Where best differs from the baseline.")
    best_index: int
    experiments: int
    kept: int
    crashes: int
    invalid: int
    llm: LLMUsage
    mlflow_run_id: str | None = None
    mlflow_experiment: str | None = None
    trace_path: str | None = None
    mechanisms: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def delta(self) -> float:
        return self.best_val_bpb - self.baseline_val_bpb


def summarize(spec: MetaRunSpec, trace: Trace, *, run_id: str | None = None, trace_path: str | None = None,
              outer_llm: LLMUsage | None = None, mechanisms: list[dict[str, Any]] | None = None) -> MetaRunSummary:
    """The outcome of a meta-run; LLM usage sums the proposals and the outer levels."""
    state = state_from_trace(trace)
    experiments = trace.experiments[1:]
    usage = outer_llm or LLMUsage()
    for experiment in experiments:
        usage = usage + experiment.llm
    return MetaRunSummary(
        meta_run_id=spec.meta_run_id,
        name=spec.name,
        baseline_val_bpb=state.baseline.val_bpb,
        best_val_bpb=state.best.val_bpb,
        best_config=state.best.config,
        best_changes={k: v for k, v in state.best.config.items() if not same_value(v, state.baseline.config.get(k))},
        best_index=state.best.index,
        experiments=len(experiments),
        kept=sum(e.kept for e in experiments),
        crashes=sum(e.outcome.status in ("crash", "timeout") for e in experiments),
        invalid=sum(e.outcome.status == "invalid" for e in experiments),
        llm=usage,
        mlflow_run_id=run_id,
        mlflow_experiment=f"bilevel/{spec.name}",
        trace_path=trace_path,
        mechanisms=mechanisms or [],
    )
