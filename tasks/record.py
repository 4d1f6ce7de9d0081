"""Tracking tasks: meta-run, generation and iteration runs in MLflow, found again by key on resume."""

from __future__ import annotations

import difflib
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from infra.tracking import Tracker, run_key
from search.run_spec import MetaRunSpec
from search.trace import Experiment


def experiment_name(spec: MetaRunSpec) -> str:
    """One MLflow experiment per meta-run name."""
    return f"bilevel/{spec.name}"


def unified_diff(before: str, after: str, before_name: str = "best/train.py", after_name: str = "candidate/train.py") -> str:
    return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), before_name, after_name))


@task(name="open-meta-run", cache_policy=NO_CACHE)
def open_meta_run(tracker: Tracker, spec: MetaRunSpec, extra_params: dict[str, Any]) -> str:
    run_id, finished = tracker.ensure_run(
        experiment_name(spec),
        run_key(spec.meta_run_id),
        run_name=spec.meta_run_id,
        tags={"meta_run_id": spec.meta_run_id, "kind": "meta_run", "generation": "-", "track": "-"},
    )
    if finished:  # a resumed meta-run: the same MLflow run continues
        tracker.client.update_run(run_id, status="RUNNING")
    else:
        params = {
            "generations": spec.generations,
            "iterations": spec.iterations,
            "research_every": spec.research_every,
            "levels": ",".join(spec.levels),
            "tracks": spec.tracks,
            "budget": f"{spec.budget.mode}:{spec.budget.value:g}",
            "seed": spec.seed,
            "mechanisms": ",".join(spec.mechanisms) or "none",
            **extra_params,
        }
        existing = tracker.client.get_run(run_id).data.params
        tracker.log(run_id, params={k: v for k, v in params.items() if k not in existing})
    return run_id


@task(name="open-generation", cache_policy=NO_CACHE)
def open_generation(tracker: Tracker, spec: MetaRunSpec, parent_run_id: str, generation: int) -> str:
    run_id, _ = tracker.ensure_run(
        experiment_name(spec),
        run_key(spec.meta_run_id, f"g{generation}"),
        run_name=f"generation {generation}",
        tags={"meta_run_id": spec.meta_run_id, "kind": "generation", "generation": generation, "track": "-"},
        parent_run_id=parent_run_id,
    )
    return run_id


@task(name="record-experiment", cache_policy=NO_CACHE, task_run_name="record #{experiment.index}")
def record_experiment(
    tracker: Tracker,
    spec: MetaRunSpec,
    *,
    meta_run_run_id: str,
    generation_run_id: str,
    experiment: Experiment,
    source: str,
    best_source: str,
    best_val_bpb: float,
    incumbent_val_bpb: float | None = None,
) -> str:
    """An iteration run (params: the changes; metrics; artifacts: train.py, diff, log tail) and the parent's
    convergence curve. Already-finished runs are left as they are, so a resume writes nothing twice."""
    is_baseline = experiment.is_baseline
    key = run_key(spec.meta_run_id, "baseline") if is_baseline else run_key(
        spec.meta_run_id, f"g{experiment.generation}", f"t{experiment.track}", f"i{experiment.iteration}"
    )
    run_id, finished = tracker.ensure_run(
        experiment_name(spec),
        key,
        run_name="baseline" if is_baseline else f"#{experiment.index} g{experiment.generation} i{experiment.iteration}",
        tags={
            "meta_run_id": spec.meta_run_id,
            "kind": "baseline" if is_baseline else "iteration",
            "generation": experiment.generation,
            "track": experiment.track,
            "index": experiment.index,
            "status": experiment.outcome.status,
            "kept": experiment.kept,
            "decided_by": experiment.decided_by or "default",
            "mechanisms": ",".join(f"{m.name}@{m.version}" for m in experiment.mechanisms) or "none",
            # versions whose hooks changed a decision of this experiment: what lineage credits
            "influenced_by": ",".join(f"{m.name}@{m.version}" for m in experiment.mechanisms if m.changed) or "none",
        },
        parent_run_id=generation_run_id,
    )
    if finished:
        return run_id
    outcome = experiment.outcome
    metrics = {
        "val_bpb": experiment.measured,
        "best_val_bpb": best_val_bpb,
        "train_seconds": outcome.train_seconds,
        "wall_seconds": outcome.wall_seconds,
        "steps": outcome.steps,
        "llm_tokens": experiment.llm.total_tokens,
        "llm_cost_usd": experiment.llm.cost_usd,
        "llm_seconds": experiment.llm.seconds,
        "proposal_attempts": experiment.proposal_attempts,
        # negative when the experiment beat the best it had to beat
        "delta_vs_incumbent": (experiment.measured - incumbent_val_bpb)
        if experiment.measured is not None and incumbent_val_bpb is not None else None,
    }
    params = {f"change.{name}": value for name, value in experiment.changes.items()}
    tracker.log(run_id, metrics=metrics, params=params, tags={"hypothesis": experiment.hypothesis[:500]})
    if outcome.status != "invalid":
        tracker.log_text(run_id, source, "train.py")
        tracker.log_text(run_id, unified_diff(best_source, source) or "(no change)\n", "diff_vs_best.patch")
    tracker.log_text(run_id, (outcome.error_tail or "") + "\n---\n" + outcome.log_tail, "log_tail.txt")
    tracker.log_dict(run_id, experiment.model_dump(mode="json"), "experiment.json")
    tracker.log(
        meta_run_run_id,
        metrics={"val_bpb": experiment.measured, "best_val_bpb": best_val_bpb},
        step=experiment.index,
    )
    tracker.finish(run_id, "FINISHED" if outcome.status == "ok" else "FAILED")
    return run_id


@task(name="close-run", cache_policy=NO_CACHE)
def close_run(tracker: Tracker, run_id: str, status: str = "FINISHED", metrics: dict[str, float] | None = None) -> None:
    if metrics:
        tracker.log(run_id, metrics=metrics)
    tracker.finish(run_id, status)
