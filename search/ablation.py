"""What an ablation is: arms (levels and controls) x paired repeats, and the manifest that lists their meta-runs."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from search.objective import Objective
from search.run_spec import Proposer


class ArmSpec(BaseModel):
    """One arm: which levels run, who proposes, and whether the inner loop restarts each generation."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    levels: tuple[str, ...] = ("1",)
    proposer: Proposer | None = Field(None, description="Who proposes; None: the configured proposer (the "
                                                        "`proposer` setting, what `bilevel run` uses).")
    restart_each_generation: bool = False
    mechanisms: tuple[str, ...] = Field((), description="Mechanisms active from the start (library:<name>).")
    description: str = ""


STANDARD_ARMS: dict[str, ArmSpec] = {
    "A": ArmSpec(name="A", levels=("1",), description="Level 1 only"),
    "llm": ArmSpec(name="llm", levels=("1",), proposer="llm", description="control: Level 1 with the LLM alone"),
    "B": ArmSpec(name="B", levels=("1", "1.5"), description="Level 1 + 1.5"),
    "C": ArmSpec(name="C", levels=("1", "1.5", "2"), description="Level 1 + 1.5 + 2"),
    "D": ArmSpec(name="D", levels=("1", "2"), description="Level 1 + 2"),
    "restart": ArmSpec(name="restart", levels=("1",), restart_each_generation=True,
                       description="control: inner loop restarted from the best config every generation"),
    "random": ArmSpec(name="random", levels=("1",), proposer="random",
                      description="control: random search over the same parameter space"),
    "tpe": ArmSpec(name="tpe", levels=("1",), proposer="tpe", description="control: Optuna TPE"),
    "cmaes": ArmSpec(name="cmaes", levels=("1",), proposer="cmaes", description="control: Optuna CMA-ES"),
    "hybrid": ArmSpec(name="hybrid", levels=("1",), proposer="hybrid",
                      description="control: TPE's suggestions offered to the LLM, which picks, edits or overrides"),
    "library": ArmSpec(name="library", levels=("1",),
                       mechanisms=("library:one_factor", "library:tabu", "library:ucb_bandit"),
                       description="Level 1 with the reference mechanisms active from the start"),
}


class ArmRuns(BaseModel):
    arm: ArmSpec
    meta_run_ids: list[str] = Field(default_factory=list, description="One per repeat, in seed order (paired).")


class AblationManifest(BaseModel):
    """Written when an ablation starts (it lists every meta-run id up front): the report reads it."""

    ablation_id: str
    created: str
    workload: str
    objective: Objective = Field(default_factory=Objective)
    model: str
    budget_mode: str
    budget: float
    generations: int
    iterations: int
    seeds: list[int]
    reference_arm: str = "A"
    reference_arms: list[str] = Field(default_factory=list, description="Every arm the others are tested against.")
    arms: list[ArmRuns]


def manifest_path(state_dir: Path, ablation_id: str) -> Path:
    """Where an ablation's manifest lives under a state directory (the flow writes it, the report reads it)."""
    return state_dir / "ablations" / ablation_id / "manifest.json"
