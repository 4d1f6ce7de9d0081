"""The `bilevel` command line: run, resume and inspect meta-runs; set up and check the embedded services."""

from __future__ import annotations

import json
import secrets
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from infra.settings import Settings, load_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Bilevel autoresearch: an LLM improves a training "
                  "script (Level 1), its search configuration (Level 1.5) and its search mechanisms (Level 2).")
console = Console()
err = Console(stderr=True)


class UserError(Exception):
    """A problem the user can fix; printed without a traceback."""


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
        raise UserError(f"invalid settings: {problems}") from error


def _prepare_process(settings: Settings) -> None:
    """Everything that must happen before Prefect or the flows are imported."""
    from infra.prefect_env import apply_prefect_environment

    apply_prefect_environment(settings)


def new_meta_run_id(name: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{name}-{stamp}-{secrets.token_hex(2)}"


def spec_from_settings(settings: Settings, meta_run_id: str, name: str, mechanisms: list[str]):
    from search.config import SearchConfig
    from search.run_spec import BudgetSpec, MetaRunSpec

    return MetaRunSpec(
        meta_run_id=meta_run_id,
        name=name,
        generations=settings.generations,
        iterations=settings.iterations,
        research_every=settings.research_every,
        levels=settings.levels.split(","),
        tracks=settings.tracks,
        budget=BudgetSpec(mode=settings.budget_mode, value=settings.budget),
        seed=settings.seed,
        search=SearchConfig(temperature=settings.llm_temperature, min_improvement=settings.min_improvement,
                            confirm_seed=settings.confirm_seed),
        mechanisms=mechanisms,
        propose_attempts=settings.propose_attempts,
    )


def _execute(settings: Settings, spec) -> None:
    """Run (or resume) one meta-run with a live display, then print the summary."""
    from bilevel.progress import RunProgress, summary_table
    from bilevel.wiring import build_resources
    from flows.meta_run import meta_run
    from infra.runs import meta_run_dir, write_json_atomic

    run_dir = meta_run_dir(settings.runs_dir, spec.meta_run_id)
    write_json_atomic(run_dir / "spec.json", spec.model_dump(mode="json"))
    write_json_atomic(run_dir / "settings.json", settings.model_dump(mode="json", exclude={"s3_access_key", "s3_secret_key"}))
    console.print(f"[bold]meta-run[/] {spec.meta_run_id}: {spec.generations} generation(s) x {spec.iterations} "
                  f"iteration(s), levels {','.join(spec.levels)}, budget {spec.budget.value:g} {spec.budget.mode}, "
                  f"model {settings.model}")
    console.print(f"state: {settings.state_path}   (resume after a failure: bilevel resume {spec.meta_run_id})")
    started = time.perf_counter()
    with console.status("starting services (Prefect, MLflow, the workload's data, the LLM)..."):
        res = build_resources(settings, with_store=spec.has_level("2") or any(not m.startswith("library:") for m in spec.mechanisms))
    total = spec.generations * spec.iterations * spec.tracks
    with RunProgress(console, total) as progress:
        res.on_event = progress.on_event
        summary = meta_run(spec, res)
    console.print(summary_table(summary, tracking_uri=settings.resolved_tracking_uri, prefect_home=str(settings.prefect_home)))
    console.print(f"done in {time.perf_counter() - started:.0f} s")


@app.command()
def run(
    iterations: Annotated[Optional[int], typer.Option(help="Inner iterations per generation (K).")] = None,
    generations: Annotated[Optional[int], typer.Option(help="Outer generations.")] = None,
    levels: Annotated[Optional[str], typer.Option(help="Levels: 1 | 1,1.5 | 1,2 | 1,1.5,2 (groups A, B, D, C).")] = None,
    budget_mode: Annotated[Optional[str], typer.Option(help="steps (deterministic) or time (seconds).")] = None,
    budget: Annotated[Optional[float], typer.Option(help="Training steps or seconds per experiment.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Training seed.")] = None,
    model: Annotated[Optional[str], typer.Option(help="litellm model string (default: the local model).")] = None,
    research_every: Annotated[Optional[int], typer.Option(help="Level 2 every M generations.")] = None,
    tracks: Annotated[Optional[int], typer.Option(help="Parallel inner-loop tracks.")] = None,
    name: Annotated[str, typer.Option(help="Meta-run name (one MLflow experiment per name).")] = "default",
    meta_run_id: Annotated[Optional[str], typer.Option("--id", help="Meta-run id (default: generated).")] = None,
    mechanisms: Annotated[Optional[str], typer.Option(help="Mechanisms active from the start: none, best, or a "
                                                           "comma list of name, name@VersionId, library:name.")] = None,
) -> None:
    """Run a meta-run on the embedded defaults (or what settings and options say)."""
    settings = _settings(iterations=iterations, generations=generations, levels=levels, budget_mode=budget_mode,
                         budget=budget, seed=seed, model=model, research_every=research_every, tracks=tracks)
    _prepare_process(settings)
    requested = [] if mechanisms in (None, "none") else [m.strip() for m in mechanisms.split(",") if m.strip()]
    spec = spec_from_settings(settings, meta_run_id or new_meta_run_id(name), name, requested)
    _execute(settings, spec)


@app.command()
def resume(meta_run_id: Annotated[str, typer.Argument(help="The id of the meta-run to resume.")]) -> None:
    """Re-run a failed or interrupted meta-run: finished trainings and LLM answers are reused, the rest runs."""
    from search.run_spec import MetaRunSpec

    base = _settings()
    run_dir = base.runs_dir / meta_run_id
    if not (run_dir / "spec.json").is_file():
        raise UserError(f"no meta-run {meta_run_id!r} under {base.runs_dir} (see: bilevel runs)")
    saved = json.loads((run_dir / "settings.json").read_text())
    # The run's own settings win, except where this process's environment names the services differently.
    keep = {k: v for k, v in saved.items() if k not in ("state_dir", "cache_dir", "mlflow_tracking_uri", "s3_endpoint_url")}
    settings = _settings(**keep)
    _prepare_process(settings)
    spec = MetaRunSpec.model_validate_json((run_dir / "spec.json").read_text())
    _execute(settings, spec)


@app.command()
def setup() -> None:
    """Provision the workload's data and the local model (idempotent; the README's run command calls it)."""
    settings = _settings()
    _prepare_process(settings)
    from workloads import get_workload

    with console.status("preparing the workload's data..."):
        get_workload(settings).prepare()
    console.print("[green]data ready[/]")
    if settings.model.startswith("local/"):
        from infra.local_model import ensure_model

        path = ensure_model(settings, progress=console)
        console.print(f"[green]local model ready[/]: {path}")


@app.command()
def doctor() -> None:
    """Which LLM will be used and whether it answers, and the state of the embedded services and paths."""
    settings = _settings()
    _prepare_process(settings)
    from bilevel.doctor import run_checks

    table = Table(title="bilevel doctor", show_header=True)
    for column in ("check", "state", "details"):
        table.add_column(column)
    healthy = True
    for check in run_checks(settings):
        style = {"ok": "green", "warn": "yellow", "fail": "red"}[check.state]
        table.add_row(check.name, f"[{style}]{check.state}[/]", check.details)
        healthy &= check.state != "fail"
    console.print(table)
    raise typer.Exit(0 if healthy else 1)


@app.command()
def runs() -> None:
    """List meta-runs with their state."""
    from infra.runs import list_meta_runs

    settings = _settings()
    table = Table(title=f"meta-runs under {settings.runs_dir}")
    for column in ("id", "state", "experiments", "baseline", "best", "Δ", "started"):
        table.add_column(column)
    for item in list_meta_runs(settings.runs_dir):
        table.add_row(item["id"], item["state"], str(item["experiments"]), _fmt(item["baseline"]), _fmt(item["best"]),
                      _fmt(item["delta"], sign=True), item["started"])
    console.print(table)


def _fmt(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4f}" if sign else f"{value:.4f}"


def main() -> None:
    """Entry point: known problems become one clear line and exit code 1, never a traceback."""
    from infra.llm import LLMError
    from search.state import BaselineFailed

    try:
        app()
    except (UserError, LLMError, BaselineFailed, FileNotFoundError) as error:
        err.print(f"[red]error:[/] {error}")
        sys.exit(1)
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: resume with `bilevel resume <id>` (see `bilevel runs`)")
        sys.exit(130)


if __name__ == "__main__":
    main()
