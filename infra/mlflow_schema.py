"""The MLflow schema of bilevel, in one place: experiment names, run keys, tags and metric names.

Runs: meta-run (parent) -> generation -> baseline / iteration / research -> mechanism; an ablation has a run of
its own. Every run carries `bilevel.meta_run_id`, `bilevel.kind`, `bilevel.generation`, `bilevel.track` and a
unique `bilevel.key` (MLflow has no root-run tag; a resumed meta-run finds its runs by key). Metric names come
from the workload's objective: `val_bpb`, `best_val_bpb`, ... for tinygpt; `loss`, `best_loss`, ... for another.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from search.objective import Objective

TAG_PREFIX = "bilevel."
KEY_TAG = f"{TAG_PREFIX}key"
Kind = Literal["meta_run", "generation", "baseline", "iteration", "research", "mechanism", "ablation"]
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.@:+=/-]{1,300}$")


# MLflow 3's UI opens an experiment in its GenAI overview unless the experiment says it is model training.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}


def experiment_name(meta_run_name: str) -> str:
    """One MLflow experiment per meta-run name."""
    return f"bilevel/{meta_run_name}"


def ablation_experiment_name(ablation_id: str) -> str:
    return f"bilevel/ablation-{ablation_id}"


def run_key(meta_run_id: str, *parts: object) -> str:
    """The unique key of a run inside a meta-run, e.g. `abc/g1/t0/i5`."""
    return "/".join([meta_run_id, *(str(p) for p in parts)])


def tag(name: str) -> str:
    """The full tag name: ours live under `bilevel.`; MLflow's own (`mlflow.*`) pass through."""
    return name if name.startswith(("mlflow.", TAG_PREFIX)) else TAG_PREFIX + name


def run_tags(kind: Kind, meta_run_id: str, *, generation: object = "-", track: object = "-", **extra: Any) -> dict[str, str]:
    """The tags every run of `kind` carries, plus `extra` (all under `bilevel.`)."""
    tags = {"meta_run_id": meta_run_id, "kind": kind, "generation": generation, "track": track, **extra}
    return {tag(name): str(value) for name, value in tags.items()}


def read_tag(run: Any, name: str, default: str | None = None) -> str | None:
    return run.data.tags.get(tag(name), default)


def safe_value(value: str) -> str:
    """A value that may go into a search filter (ids, names, VersionIds); ValueError for anything else."""
    if not _SAFE_VALUE.match(value):
        raise ValueError(f"{value!r} is not a valid mechanism or run id")
    return value


def tag_equals(name: str, value: object) -> str:
    """An MLflow search filter clause `tags.bilevel.<name> = '<value>'`."""
    return f"tags.`{tag(name)}` = '{safe_value(str(value))}'"


class MetricNames:
    """The metric names of one objective: the value per experiment, the best so far, the final best and Δ."""

    def __init__(self, objective: Objective) -> None:
        self.value = objective.name
        self.best = f"best_{objective.name}"
        self.final_best = f"final_best_{objective.name}"
        self.delta = f"delta_{objective.name}"
