"""What each arm of an ablation cost and how often its experiments failed: crash and invalid rates over its
experiments, LLM calls and seconds, and the meta-runs' wall seconds (the trace's own clock, which an imported bundle
keeps). Pure, no I/O."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import median

from pydantic import BaseModel, Field

from search.trace import LLMUsage, TraceCounts


class RunCost(BaseModel):
    """One meta-run's counts and costs."""

    counts: TraceCounts
    llm: LLMUsage
    wall_seconds: float | None = Field(None, description="Trace.elapsed_s: the seconds the meta-run worked.")


class ArmCosts(BaseModel):
    """One arm over the meta-runs given (the report gives the complete repeats, as its statistics use)."""

    arm: str
    meta_runs: int = 0
    experiments: int = 0
    crashes: int = 0
    invalid: int = 0
    crash_rate: float | None = None
    invalid_rate: float | None = None
    llm_calls: int = 0
    llm_seconds_total: float = 0.0
    llm_seconds_median: float | None = Field(None, description="Per meta-run.")
    wall_seconds_total: float | None = None
    wall_seconds_median: float | None = Field(None, description="Per meta-run, over the runs with a recorded clock.")
    wall_seconds_runs: int = Field(0, description="Meta-runs with a recorded clock (traces written before the clock "
                                   "existed have none).")


def arm_costs(runs: Mapping[str, Sequence[RunCost]]) -> list[ArmCosts]:
    """Per arm, in the given order: rates are over all the arm's experiments (the baselines not counted)."""
    result = []
    for arm, items in runs.items():
        experiments = sum(r.counts.experiments for r in items)
        crashes = sum(r.counts.crashes for r in items)
        invalid = sum(r.counts.invalid for r in items)
        walls = [r.wall_seconds for r in items if r.wall_seconds is not None and r.wall_seconds > 0]
        llm_seconds = [r.llm.seconds for r in items]
        result.append(ArmCosts(
            arm=arm, meta_runs=len(items), experiments=experiments, crashes=crashes, invalid=invalid,
            crash_rate=crashes / experiments if experiments else None,
            invalid_rate=invalid / experiments if experiments else None,
            llm_calls=sum(r.llm.calls for r in items), llm_seconds_total=sum(llm_seconds),
            llm_seconds_median=median(llm_seconds) if llm_seconds else None,
            wall_seconds_total=sum(walls) if walls else None, wall_seconds_median=median(walls) if walls else None,
            wall_seconds_runs=len(walls),
        ))
    return result
