"""Small compositions shared by the flows: one cached training run, and the trainer an inner iteration calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.resources import Resources
from search.early_stop import EarlyStop
from search.run_spec import MetaRunSpec
from search.trace import RunOutcome
from tasks.train import RunPurpose, TrainRequest, train_and_evaluate


def train(res: Resources, spec: MetaRunSpec, *, generation: int, track: int, iteration: int, purpose: RunPurpose,
          source: str, seed: int, early_stop: EarlyStop | None = None) -> RunOutcome:
    """One cached training run of `source` under the meta-run's budget (stopped early under `early_stop`)."""
    request = TrainRequest(
        meta_run_id=spec.meta_run_id, generation=generation, track=track, iteration=iteration, purpose=purpose,
        source=source, budget=spec.budget, seed=seed, timeout_s=res.settings.train_timeout_s, workload=res.workload.name,
        early_stop=early_stop,
    )
    # Submitted, not called: with a Dask or Ray runner the training runs on a cluster worker.
    return train_and_evaluate.submit(res.workload, request, res.settings.runs_dir).result()


@dataclass
class Trainer:
    """The training function of one inner iteration: (config, purpose, seed) -> outcome. Early stopping (when set)
    applies to the candidate only: a confirmation run measures a candidate that already won."""

    res: Resources
    spec: MetaRunSpec
    generation: int
    track: int
    iteration: int
    early_stop: EarlyStop | None = None

    def __call__(self, config: dict[str, Any], purpose: str, seed: int) -> RunOutcome:
        return train(self.res, self.spec, generation=self.generation, track=self.track, iteration=self.iteration,
                     purpose=purpose, source=self.res.workload.source_for(config), seed=seed,  # type: ignore[arg-type]
                     early_stop=self.early_stop if purpose == "candidate" else None)
