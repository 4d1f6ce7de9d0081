"""Tracking tasks: meta-run, generation and iteration runs in MLflow (schema: infra/mlflow_schema.py), found again
by key on resume, so a resumed meta-run writes nothing twice."""

from __future__ import annotations

import difflib
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from infra.mlflow_schema import MetricNames, experiment_name, run_key, run_tags
from infra.tracking import Tracker
from search.objective import Objective
from search.run_spec import MetaRunSpec
from search.trace import Experiment


def unified_diff(before: str, after: str, before_name: str, after_name: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), before_name, after_name))


@task(name="open-meta-run", cache_policy=NO_CACHE)
def open_meta_run(tracker: Tracker, spec: MetaRunSpec, extra_params: dict[str, Any]) -> str:
    run_id, finished = tracker.ensure_run(experiment_name(spec.name), run_key(spec.meta_run_id), run_name=spec.meta_run_id,
                                          tags=run_tags("meta_run", spec.meta_run_id))
    if finished:  # a resumed meta-run: the same MLflow run continues
        tracker.client.update_run(run_id, status="RUNNING")
    else:
        params = {
            "workload": spec.workload.reference,
            "edits": spec.workload.edits,
            "generations": spec.generations,
            "iterations": spec.iterations,
            "research_every": spec.research_every,
            "levels": ",".join(spec.levels),
            "tracks": spec.tracks,
            "budget": f"{spec.budget.mode}:{spec.budget.value:g}",
            "seed": spec.seed,
            "proposer": spec.proposer,
            "mechanisms": ",".join(spec.mechanisms) or "none",
            **extra_params,
        }
        existing = tracker.client.get_run(run_id).data.params
        tracker.log(run_id, params={k: v for k, v in params.items() if k not in existing})
    return run_id


@task(name="open-generation", cache_policy=NO_CACHE)
def open_generation(tracker: Tracker, spec: MetaRunSpec, parent_run_id: str, generation: int) -> str:
    run_id, _ = tracker.ensure_run(experiment_name(spec.name), run_key(spec.meta_run_id, f"g{generation}"),
                                   run_name=f"generation {generation}",
                                   tags=run_tags("generation", spec.meta_run_id, generation=generation),
                                   parent_run_id=parent_run_id)
    return run_id


def experiment_run_key(spec: MetaRunSpec, experiment: Experiment) -> str:
    if experiment.is_baseline:
        return run_key(spec.meta_run_id, "baseline")
    return iteration_run_key(spec, experiment.generation, experiment.track, experiment.iteration)


def iteration_run_key(spec: MetaRunSpec, generation: int, track: int, iteration: int) -> str:
    return run_key(spec.meta_run_id, f"g{generation}", f"t{track}", f"i{iteration}")


@task(name="open-iteration", cache_policy=NO_CACHE)
def open_iteration(tracker: Tracker, spec: MetaRunSpec, generation_run_id: str, generation: int, track: int,
                   iteration: int) -> str:
    """The iteration's run, opened before it decides, so its LLM calls are traced under it (record_experiment
    finds it by key and fills it in)."""
    run_id, _ = tracker.ensure_run(experiment_name(spec.name), iteration_run_key(spec, generation, track, iteration),
                                   run_name=f"g{generation} t{track} i{iteration}",
                                   tags=run_tags("iteration", spec.meta_run_id, generation=generation, track=track),
                                   parent_run_id=generation_run_id)
    return run_id


@task(name="record-experiment", cache_policy=NO_CACHE, task_run_name="record #{experiment.index}")
def record_experiment(
    tracker: Tracker,
    spec: MetaRunSpec,
    objective: Objective,
    *,
    meta_run_run_id: str,
    generation_run_id: str,
    experiment: Experiment,
    source: str,
    best_source: str,
    best_value: float,
    incumbent_value: float | None = None,
    script_name: str = "script.py",
) -> str:
    """An iteration run (params: the changes; metrics under the objective's name; artifacts: the script, its diff,
    the log tail) and the parent's convergence curve. Already-finished runs are left as they are."""
    names = MetricNames(objective)
    is_baseline = experiment.is_baseline
    tags = run_tags(
        "baseline" if is_baseline else "iteration", spec.meta_run_id,
        generation=experiment.generation, track=experiment.track, index=experiment.index,
        status=experiment.outcome.status, kept=experiment.kept, decided_by=experiment.decided_by or "default",
        proposed_by=experiment.proposed_by or "-",
        mechanisms=",".join(f"{m.name}@{m.version}" for m in experiment.mechanisms) or "none",
        # versions whose hooks changed a decision of this experiment
        influenced_by=",".join(f"{m.name}@{m.version}" for m in experiment.mechanisms if m.changed) or "none",
    )
    run_id, finished = tracker.ensure_run(
        experiment_name(spec.name), experiment_run_key(spec, experiment),
        run_name="baseline" if is_baseline else f"#{experiment.index} g{experiment.generation} i{experiment.iteration}",
        tags=tags, parent_run_id=generation_run_id,
    )
    if finished:
        return run_id
    outcome = experiment.outcome
    metrics = {
        names.value: experiment.measured,
        names.best: best_value,
        "train_seconds": outcome.train_seconds,
        "wall_seconds": outcome.wall_seconds,
        "steps": outcome.steps,
        "llm_tokens": experiment.llm.total_tokens,
        "llm_cost_usd": experiment.llm.cost_usd,
        "llm_seconds": experiment.llm.seconds,
        "proposal_attempts": experiment.proposal_attempts,
        # sign-corrected by the goal: negative when the experiment beat the best it had to beat
        "delta_vs_incumbent": objective.delta(incumbent_value, experiment.measured)
        if experiment.measured is not None and incumbent_value is not None else None,
        **{f"run.{k}": v for k, v in outcome.metrics.items()},
    }
    params = {f"change.{name}": value for name, value in experiment.changes.items()}
    # The run may have been opened before the decision (open_iteration): its tags are set now.
    tracker.log(run_id, metrics=metrics, params=params, tags={**tags, "hypothesis": experiment.hypothesis[:500]})
    if outcome.status != "invalid":
        tracker.log_text(run_id, source, script_name)
        diff = unified_diff(best_source, source, f"best/{script_name}", f"candidate/{script_name}")
        tracker.log_text(run_id, diff or "(no change)\n", "diff_vs_best.patch")
    tracker.log_text(run_id, (outcome.error_tail or "") + "\n---\n" + outcome.log_tail, "log_tail.txt")
    tracker.log_dict(run_id, experiment.model_dump(mode="json"), "experiment.json")
    tracker.log(meta_run_run_id, metrics={names.value: experiment.measured, names.best: best_value}, step=experiment.index)
    tracker.finish(run_id, "FINISHED" if outcome.status == "ok" else "FAILED")
    return run_id


@task(name="close-run", cache_policy=NO_CACHE)
def close_run(tracker: Tracker, run_id: str, status: str = "FINISHED", metrics: dict[str, float] | None = None) -> None:
    if metrics:
        tracker.log(run_id, metrics=metrics)
    tracker.finish(run_id, status)
