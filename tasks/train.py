"""The `train_and_evaluate` task: run one candidate script under the budget, cached by its content."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Literal

from prefect import task
from pydantic import BaseModel

from infra.runs import RunFolder
from search.early_stop import EarlyStop
from search.run_spec import Budget
from search.trace import RunOutcome
from tasks.cache import cache_key_from
from workloads.base import Workload

RunPurpose = Literal["baseline", "noise", "candidate", "confirm"]


class TrainRequest(BaseModel):
    """One training run. The key holds the source hash, so an edited script is never served a stale result."""

    meta_run_id: str
    generation: int
    track: int
    iteration: int
    purpose: RunPurpose
    source: str
    budget: Budget
    seed: int
    timeout_s: float
    workload: str
    early_stop: EarlyStop | None = None

    @property
    def source_sha(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"g{self.generation}-t{self.track}-i{self.iteration}-{self.purpose}-s{self.seed}"

    @property
    def cache_key(self) -> str:
        budget = f"{self.budget.mode}{self.budget.value:g}"
        stop = f"/stop-{self.early_stop.key}" if self.early_stop is not None else ""
        return f"train/{self.meta_run_id}/{self.workload}/{self.label}/{budget}/{self.source_sha[:16]}{stop}"


@task(name="train-and-evaluate", cache_key_fn=cache_key_from("request"), persist_result=True,
      task_run_name="train {request.label}")
def train_and_evaluate(workload: Workload, request: TrainRequest, runs_dir: Path) -> RunOutcome:
    """Train in a fresh run directory (a leftover from a killed run is cleared first); under early stopping when
    the request carries a rule and the workload supports it."""
    run_dir = RunFolder(runs_dir, request.meta_run_id).training_dir(request.label)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    if request.early_stop is not None and getattr(workload, "supports_early_stop", False):
        return workload.run(request.source, request.budget, request.seed, run_dir, request.timeout_s,  # type: ignore[call-arg]
                            early_stop=request.early_stop)
    return workload.run(request.source, request.budget, request.seed, run_dir, request.timeout_s)
