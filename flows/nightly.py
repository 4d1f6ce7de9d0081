"""Entry points for deployments: the nightly meta-run and the scheduled ablation (prefect.yaml, `bilevel serve`).

A scheduled run names its meta-run after its scheduled start, so a re-run of the same flow run (a retry, or
`prefect deployment run` after a crash with the same id) resumes the same meta-run instead of starting over.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.ablation import AblationSpec, ablation
from flows.meta_run import meta_run
from infra.processes import exit_with_parent, on_stop_signal
from infra.resources import build_workload, meta_run_spec_from_settings, needs_store, open_resources, resolve_mechanisms
from infra.runs import RunFolder
from infra.settings import load_settings
from workloads.subprocess_run import kill_running_scripts


def scheduled_id(prefix: str) -> str:
    """`<prefix>-YYYYmmdd-HHMM` from the flow run's scheduled start (or now, outside a scheduled run)."""
    from prefect.runtime import flow_run

    start = flow_run.scheduled_start_time
    return f"{prefix}-{start.strftime('%Y%m%d-%H%M')}"


def _stop_with_the_runner() -> None:
    """A runner's flow-run process ends with the runner, even a SIGKILLed one; and a stop signal kills the running
    trainings first, so that they raise (the meta-run resumes them) instead of being recorded as crashed."""
    on_stop_signal(kill_running_scripts)
    exit_with_parent(kill_running_scripts)


@flow(name="nightly-meta-run", log_prints=True)
def nightly(name: str = "nightly", meta_run_id: str | None = None, mechanisms: str = "best",
            generations: int | None = None, iterations: int | None = None, levels: str | None = None,
            budget: float | None = None, workload: str | None = None, noise_repeats: int = 2) -> dict[str, Any]:
    """One meta-run on the settings of the machine it runs on; starts from the best mechanisms so far. A re-run of
    the same scheduled run resumes it with the spec it recorded (its workload, budget and seed mechanisms)."""
    _stop_with_the_runner()
    settings = load_settings(generations=generations, iterations=iterations, levels=levels, budget=budget,
                             workload=workload, noise_repeats=noise_repeats)
    run_id = meta_run_id or scheduled_id(name)
    folder = RunFolder(settings.runs_dir, run_id)
    resumed = folder.exists()
    spec = folder.read_spec() if resumed else None
    chosen = build_workload(settings, spec.workload if spec else None)
    spec = spec or meta_run_spec_from_settings(settings, chosen, run_id, name)
    with open_resources(settings, with_store=needs_store(spec, None if resumed else mechanisms), workload=chosen) as res:
        if not resumed:
            spec = spec.model_copy(update={"mechanisms": resolve_mechanisms(mechanisms, res)})
        summary = res.with_task_runner(meta_run)(spec, res)
    print(f"{spec.meta_run_id}: best {summary.objective.name} {summary.best_value:.4f} (Δ {summary.delta:+.4f}, "
          f"{summary.objective.direction})")
    return summary.model_dump(mode="json")


@flow(name="scheduled-ablation", log_prints=True)
def scheduled_ablation(ablation_id: str | None = None, arms: str = "A,C,random", repeats: int = 5,
                       generations: int = 2, iterations: int = 6, budget: float | None = None) -> dict[str, Any]:
    """An ablation with the machine's settings (model, budget mode, runner)."""
    _stop_with_the_runner()
    settings = load_settings(generations=generations, iterations=iterations, budget=budget)
    chosen = build_workload(settings)
    spec = AblationSpec.from_settings(settings, chosen, ablation_id=ablation_id or scheduled_id("ablation"),
                                      arms=arms.split(","), repeats=repeats)
    with open_resources(settings, with_store=spec.needs_store, workload=chosen) as res:
        manifest = ablation(spec, res)
    return manifest.model_dump(mode="json")
