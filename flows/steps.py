"""Small compositions shared by the flows: one cached training run, and the trainer an inner iteration calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.resources import Resources
from search.run_spec import MetaRunSpec
from search.trace import RunOutcome
from tasks.train import RunPurpose, TrainRequest, train_and_evaluate


def train(res: Resources, spec: MetaRunSpec, *, generation: int, track: int, iteration: int, purpose: RunPurpose,
          source: str, seed: int) -> RunOutcome:
    """One cached training run of `source` under the meta-run's budget."""
    request = TrainRequest(
        meta_run_id=spec.meta_run_id, generation=generation, track=track, iteration=iteration, purpose=purpose,
        source=source, budget=spec.budget, seed=seed, timeout_s=res.settings.train_timeout_s, workload=res.workload.name,
    )
    # Submitted, not called: with a Dask or Ray runner the training runs on a cluster worker.
    return train_and_evaluate.submit(res.workload, request, res.settings.runs_dir).result()


@dataclass
class Trainer:
    """The training function of one inner iteration: (config, purpose, seed) -> outcome."""

    res: Resources
    spec: MetaRunSpec
    generation: int
    track: int
    iteration: int

    def __call__(self, config: dict[str, Any], purpose: str, seed: int) -> RunOutcome:
        return train(self.res, self.spec, generation=self.generation, track=self.track, iteration=self.iteration,
                     purpose=purpose, source=self.res.workload.source_for(config), seed=seed)  # type: ignore[arg-type]
