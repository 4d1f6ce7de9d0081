"""Small compositions shared by the flows: the script of a configuration, one training run."""

from __future__ import annotations

from typing import Any

from infra.resources import Resources
from search.run_spec import MetaRunSpec
from search.trace import RunOutcome
from tasks.train import RunPurpose, TrainRequest, train_and_evaluate


def source_for(res: Resources, config: dict[str, Any]) -> str:
    """The script for a full configuration: the baseline with every literal set to the config's value."""
    return res.workload.apply(res.workload.editable_source(), config)


def train(res: Resources, spec: MetaRunSpec, *, generation: int, track: int, iteration: int, purpose: RunPurpose,
          source: str, seed: int) -> RunOutcome:
    """One cached training run of `source` under the meta-run's budget."""
    request = TrainRequest(
        meta_run_id=spec.meta_run_id,
        generation=generation,
        track=track,
        iteration=iteration,
        purpose=purpose,
        source=source,
        budget=spec.budget,
        seed=seed,
        timeout_s=res.settings.train_timeout_s,
        workload=res.workload.name,
    )
    # Submitted, not called: with a Dask or Ray runner the training runs on a cluster worker.
    return train_and_evaluate.submit(res.workload, request, res.settings.runs_dir).result()
