"""The `bilevel` command line: run, resume and inspect meta-runs; set up and check the embedded services."""

from __future__ import annotations

import contextlib
import json
import os
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
from rich.text import Text

from infra.resources import store_service
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
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
                             for e in error.errors())
        raise UserError(f"invalid settings: {problems}") from error


_temporary_prefect_port: list[int] = []  # the port `_prepare_process(runs_flows=True)` chose for a temporary server


def _prepare_process(settings: Settings, runs_flows: bool = False) -> None:
    """Everything that must happen before Prefect or the flows are imported. A command that runs flows without a
    configured Prefect server gets the port of its own temporary one (started by `_temporary_prefect`)."""
    from infra.prefect_env import apply_prefect_environment

    apply_prefect_environment(settings)
    if runs_flows:
        from infra.prefect_server import reserve_temporary_api

        port = reserve_temporary_api()
        if port is not None:
            _temporary_prefect_port[:] = [port]


def _temporary_prefect(settings: Settings, stack: contextlib.ExitStack) -> Any:
    """Start this command's temporary Prefect server (when it has one), stopped with `stack`; its handle, whose
    `wait_healthy()` the caller calls once the other services are up (they start meanwhile)."""
    if not _temporary_prefect_port:
        return None
    from infra.prefect_server import temporary_server

    server = temporary_server(settings.prefect_home, settings.logs_dir / "prefect-server.log", _temporary_prefect_port[0])
    stack.callback(server.stop)
    return server.start()


def new_meta_run_id(name: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{name}-{stamp}-{secrets.token_hex(2)}"


def _store(settings: Settings):
    from infra.resources import build_store

    return build_store(settings)


def _tracker(settings: Settings):
    from infra.tracking import Tracker

    return Tracker(settings.resolved_tracking_uri, settings.mlflow_artifact_root)


WorkloadOption = Annotated[Optional[str], typer.Option(
    help="What to optimise: tinygpt (default), toy, an installed entry point, package.module:Class, or a path to a "
         "training script.")]
MetricOption = Annotated[Optional[str], typer.Option(help="A script's metric: the `NAME: value` line it prints after "
                                                          "`---`, or the key it writes to metrics.json.")]
GoalOption = Annotated[Optional[str], typer.Option(help="minimize (default) or maximize.")]
FixedOption = Annotated[Optional[str], typer.Option(help="Comma list of parameters no level may change.")]
EditsOption = Annotated[Optional[str], typer.Option(help="What Level 1 edits: block (the hyperparameter block, "
                                                         "default), literals (also the script's numeric literals "
                                                         "outside it, as sites), code (free-form SEARCH/REPLACE "
                                                         "edits of the script, for API models).")]


def _workload_overrides(workload: str | None, metric: str | None, goal: str | None, fixed: str | None,
                        budget_param: str | None, seed_param: str | None, command: str | None) -> dict[str, Any]:
    return {"workload": workload, "metric": metric, "goal": goal, "fixed": fixed, "budget_param": budget_param,
            "seed_param": seed_param, "command": command}


def _execute(settings: Settings, spec, workload, mechanisms: str | None = None) -> None:
    """Run (or resume) one meta-run with a live display, then print the summary."""
    from bilevel import stopping
    from bilevel.progress import RunProgress, summary_table
    from flows.meta_run import meta_run
    from infra.resources import needs_store, open_resources, resolve_mechanisms

    stopping.set_hint(f"resume with `bilevel resume {spec.meta_run_id}`")
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        with console.status("starting services (Prefect, MLflow, S3 store, the workload's data, the LLM)..."):
            prefect = _temporary_prefect(settings, stack)
            res = stack.enter_context(open_resources(settings, with_store=needs_store(spec, mechanisms),
                                                     workload=workload))
            if mechanisms is not None:
                spec = spec.model_copy(update={"mechanisms": resolve_mechanisms(mechanisms, res)})
            if prefect is not None:
                prefect.wait_healthy()
        console.print(Text.assemble(("meta-run ", "bold"), (
            f"{spec.meta_run_id}: {workload.name}, {workload.objective.describe()}; {spec.generations} generation(s) x "
            f"{spec.iterations} iteration(s), levels {','.join(spec.levels)}, budget {spec.budget.describe()}, "
            f"model {settings.model}, mechanisms {', '.join(spec.mechanisms) or 'none'}")))
        console.print(Text(f"state: {settings.state_path}   (resume after a failure: bilevel resume {spec.meta_run_id})"))
        total = spec.generations * spec.iterations * spec.tracks
        flow = res.with_task_runner(meta_run)
        with RunProgress(console, total, workload.objective) as progress:
            res.on_event = progress.on_event
            summary = flow(spec, res)
    console.print()
    console.print(summary_table(summary, tracking_uri=settings.resolved_tracking_uri, prefect_home=str(settings.prefect_home)))
    console.print(f"done in {time.perf_counter() - started:.0f} s")


@app.command()
def run(
    iterations: Annotated[Optional[int], typer.Option(help="Inner iterations per generation (K).")] = None,
    generations: Annotated[Optional[int], typer.Option(help="Outer generations.")] = None,
    levels: Annotated[Optional[str], typer.Option(help="Levels: 1 | 1,1.5 | 1,2 | 1,1.5,2 (groups A, B, D, C).")] = None,
    budget_mode: Annotated[Optional[str], typer.Option(help="flops (deterministic, compute-fair: the default), "
                                                             "steps (deterministic) or time (seconds).")] = None,
    budget: Annotated[Optional[float], typer.Option(help="Training FLOPs, steps or seconds per experiment.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Training seed.")] = None,
    model: Annotated[Optional[str], typer.Option(help="litellm model string (default: the local model).")] = None,
    research_every: Annotated[Optional[int], typer.Option(help="Level 2 every M generations.")] = None,
    tracks: Annotated[Optional[int], typer.Option(help="Parallel inner-loop tracks.")] = None,
    name: Annotated[str, typer.Option(help="Meta-run name (one MLflow experiment per name).")] = "default",
    meta_run_id: Annotated[Optional[str], typer.Option("--id", help="Meta-run id (default: generated).")] = None,
    mechanisms: Annotated[Optional[str], typer.Option(help="Mechanisms active from the start: none, best, or a "
                                                           "comma list of name, name@VersionId, library:name.")] = None,
    workload: WorkloadOption = None,
    metric: MetricOption = None,
    goal: GoalOption = None,
    fixed: FixedOption = None,
    budget_param: Annotated[Optional[str], typer.Option(help="A script's literal set from the budget (steps).")] = None,
    seed_param: Annotated[Optional[str], typer.Option(help="A script's literal set from the run's seed.")] = None,
    command: Annotated[Optional[str], typer.Option(help="How a script runs, e.g. '{python} {script} --fast'.")] = None,
    program: Annotated[Optional[Path], typer.Option(help="A text file of research direction for every prompt.")] = None,
    max_llm_cost: Annotated[Optional[float], typer.Option(help="Stop cleanly once LLM calls cost this many USD.")] = None,
    max_hours: Annotated[Optional[float], typer.Option(help="Stop cleanly after this many hours.")] = None,
    proposer: Annotated[Optional[str], typer.Option(help="Who proposes in Level 1: hybrid (default: TPE's "
                                                         "suggestions offered to the LLM), llm, random, tpe, cmaes.")] = None,
    edits: EditsOption = None,
) -> None:
    """Run a meta-run on the embedded defaults (or what settings and options say)."""
    settings = _settings(iterations=iterations, generations=generations, levels=levels, budget_mode=budget_mode,
                         budget=budget, seed=seed, model=model, research_every=research_every, tracks=tracks,
                         program=program, proposer=proposer, max_llm_cost_usd=max_llm_cost, max_hours=max_hours,
                         edits=edits,
                         **_workload_overrides(workload, metric, goal, fixed, budget_param, seed_param, command))
    if meta_run_id is not None:
        _run_folder(settings, meta_run_id)  # a plain id, refused before anything starts
    _prepare_process(settings, runs_flows=True)
    from infra.resources import build_workload, meta_run_spec_from_settings

    chosen = build_workload(settings)
    spec = meta_run_spec_from_settings(settings, chosen, meta_run_id or new_meta_run_id(name), name)
    _execute(settings, spec, chosen, mechanisms)


@app.command()
def resume(
    meta_run_id: Annotated[str, typer.Argument(help="The id of the meta-run to resume.")],
    max_llm_cost: Annotated[Optional[float], typer.Option(help="USD of LLM calls allowed for the rest, on top of "
                                                                "what the run spent.")] = None,
    max_hours: Annotated[Optional[float], typer.Option(help="Hours of work allowed for the rest, on top of what the "
                                                             "run worked.")] = None,
) -> None:
    """Continue a failed, interrupted or limit-stopped meta-run from its trace: decided experiments and Level 1.5/2
    decisions are taken from it, only the rest runs. Its recorded spec (workload, budget, knobs) is used as it was."""
    from infra.resources import build_workload

    base = _settings()
    folder = _run_folder(base, meta_run_id)
    if not folder.exists() and not _fetch_run_from_store(base, meta_run_id):
        raise UserError(f"no meta-run {meta_run_id!r} under {base.runs_dir} or in the store (see: bilevel runs)")
    saved = folder.read_settings()
    # The run's own settings win, except where this process's environment names the services differently
    # (an embedded S3 server is found through its pid file, wherever its port moved).
    keep = {k: v for k, v in saved.items() if k in Settings.model_fields
            and k not in ("state_dir", "cache_dir", "mlflow_tracking_uri", "s3_endpoint_url", "s3_port")}
    settings = _settings(**keep)
    _prepare_process(settings, runs_flows=True)
    spec = folder.read_spec()
    trace = folder.read_trace_if_any()
    if trace is not None:
        from search.resume import limits_for_the_rest

        spec = limits_for_the_rest(trace, spec, hours=max_hours, cost_usd=max_llm_cost)
    elif max_hours is not None or max_llm_cost is not None:  # nothing was spent yet
        limits = {k: v for k, v in {"max_llm_cost_usd": max_llm_cost, "max_hours": max_hours}.items() if v is not None}
        spec = spec.model_validate({**spec.model_dump(), **limits})
    _execute(settings, spec, build_workload(settings, spec.workload))


def _fetch_run_from_store(settings: Settings, meta_run_id: str) -> bool:
    """A meta-run this machine lacks, downloaded from the S3 store into the state directory (settings.store_runs)."""
    if settings.store_runs == "never":
        return False
    from infra.run_sync import fetch_run

    with store_service(settings):
        found = fetch_run(_store(settings), settings.runs_dir, meta_run_id)
    if found:
        console.print(Text(f"meta-run {meta_run_id} downloaded from s3://{settings.s3_bucket} into {settings.runs_dir}"))
    return found


def _run_folder(settings: Settings, meta_run_id: str):
    """The folder of a meta-run id, refusing anything that is not a plain id (a path would leave the state dir)."""
    from infra.runs import RunFolder

    try:
        return RunFolder(settings.runs_dir, meta_run_id)
    except ValueError as error:
        raise UserError(str(error)) from None


@app.command()
def setup(workload: WorkloadOption = None, metric: MetricOption = None) -> None:
    """Provision the workload's data and the local model (idempotent; the README's run command calls it)."""
    settings = _settings(workload=workload, metric=metric)
    _prepare_process(settings)
    from infra.resources import build_workload

    with console.status("preparing the workload's data..."):
        build_workload(settings).prepare()
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
    for column in ("id", "state", "objective", "experiments", "baseline", "best", "Δ", "started"):
        table.add_column(column)
    for item in list_meta_runs(settings.runs_dir):
        state = item.state if not item.problem else f"{item.state}: {item.problem}"
        table.add_row(Text(item.id), Text(state), Text(item.objective.describe()), str(item.experiments),
                      _fmt(item.baseline), _fmt(item.best), _fmt(item.delta, sign=True), item.started)
    console.print(table)


@app.command()
def ablate(
    arms: Annotated[str, typer.Option(help="Comma list of arms: A, B, C, D, restart, random, tpe, cmaes, hybrid, "
                                           "library.")] = "A,C,random",
    repeats: Annotated[int, typer.Option(help="Paired repeats per arm (seeds first_seed..).")] = 3,
    only_repeats: Annotated[Optional[str], typer.Option(help="Run just these repeats (numbered from 0), e.g. 3-5 or "
                                                             "3,5,7: one shard of the study; finished ones are "
                                                             "skipped.")] = None,
    generations: Annotated[Optional[int], typer.Option()] = None,
    iterations: Annotated[Optional[int], typer.Option()] = None,
    budget: Annotated[Optional[float], typer.Option(help="Training FLOPs (or steps, seconds) per experiment.")] = None,
    model: Annotated[Optional[str], typer.Option(help="litellm model string (default: the local model).")] = None,
    ablation_id: Annotated[Optional[str], typer.Option("--id", help="Ablation id; the same id resumes it.")] = None,
    report: Annotated[bool, typer.Option(help="Build the HTML report at the end.")] = True,
    reference: Annotated[Optional[str], typer.Option(help="Comma list of arms every other arm is tested against "
                                                          "(default: the first arm).")] = None,
    compare: Annotated[Optional[str], typer.Option(help="Plan the comparisons instead: a comma list of arm-reference "
                                                        "pairs (the difference arm − reference), e.g. C-A,C-library,"
                                                        "A-tpe. Exactly these are tested, Holm-corrected together; a "
                                                        "pair whose arm has not run yet is reported as such.")] = None,
    workload: WorkloadOption = None,
    metric: MetricOption = None,
    goal: GoalOption = None,
    fixed: FixedOption = None,
    edits: EditsOption = None,
) -> None:
    """Compare arms (levels and control arms) over paired repeats, then report statistics."""
    settings = _settings(generations=generations, iterations=iterations, budget=budget, model=model, edits=edits,
                         **_workload_overrides(workload, metric, goal, fixed, None, None, None))
    _prepare_process(settings, runs_flows=True)
    from bilevel import stopping
    from flows.ablation import AblationSpec, ablation
    from infra.resources import build_workload, open_resources

    chosen = build_workload(settings)
    spec = AblationSpec.from_settings(settings, chosen, ablation_id=ablation_id or new_meta_run_id("ablation"),
                                      arms=[a.strip() for a in arms.split(",")], repeats=repeats,
                                      reference_arms=[a.strip() for a in reference.split(",")] if reference else None,
                                      only_repeats=_only_repeats(only_repeats, repeats),
                                      comparisons=_comparisons(compare))
    template = spec.template
    stopping.set_hint(f"resume with `bilevel ablate --id {spec.ablation_id}` and the same options")
    console.print(Text(f"ablation {spec.ablation_id}: arms {', '.join(spec.arms)} x {_repeats_text(spec)}, "
                       f"{template.generations} x {template.iterations} iterations, budget {template.budget.describe()}, "
                       + (f"planned comparisons {', '.join(f'{a} − {r}' for a, r in spec.comparisons)}"
                          if spec.comparisons else f"tested against {', '.join(spec.reference_arms)}")))
    with contextlib.ExitStack() as stack:
        prefect = _temporary_prefect(settings, stack)
        res = stack.enter_context(open_resources(settings, with_store=spec.needs_store, workload=chosen))
        if prefect is not None:
            prefect.wait_healthy()
        done = {"n": 0}
        total = len(spec.arms) * len(spec.selected_repeats) * template.generations * template.iterations

        def on_event(event: str, data: dict) -> None:
            if event == "ablation_plan" and data["skipped"]:
                console.print(Text(f"{data['skipped']} of {data['jobs']} meta-runs already finished (here, imported "
                                   "or in the store): skipped"))
            if event == "experiment":
                done["n"] += 1
                experiment = data["experiment"]
                console.log(Text(f"[{done['n']}/{total}] #{experiment.index} {experiment.outcome.status} "
                                 f"{experiment.measured if experiment.measured is not None else '-'} best {data['best']:.4f}"))

        res.on_event = on_event
        ablation(spec, res)
    console.print(f"ablation {spec.ablation_id} finished")
    if report:
        _report_target(settings, spec.ablation_id)


def _sync_ablation_from_store(settings: Settings, target: str) -> None:
    """Other shards of an ablation (run on other machines against the same S3) join its report here."""
    from infra.run_sync import runs_kept_in_store, sync_ablation

    if not runs_kept_in_store(settings) or (settings.runs_dir / target).is_dir():
        return
    with store_service(settings):
        fetched = sync_ablation(_store(settings), settings.state_path, target)
    if fetched:
        console.print(Text(f"{fetched} finished meta-run(s) of {target} downloaded from s3://{settings.s3_bucket}"))


def _only_repeats(text: str | None, repeats: int) -> list[int] | None:
    """--only-repeats as repeat indices (a one-line UserError for a bad range)."""
    if text is None:
        return None
    from search.ablation import parse_repeats

    try:
        return parse_repeats(text, repeats)
    except ValueError as error:
        raise UserError(str(error)) from None


def _comparisons(text: str | None) -> list[tuple[str, str]] | None:
    """--compare as (arm, reference) pairs; a malformed list is a one-line error."""
    if text is None:
        return None
    from search.ablation import parse_comparisons

    try:
        return parse_comparisons(text)
    except ValueError as error:
        raise UserError(str(error)) from None


def _repeats_text(spec: Any) -> str:
    if spec.only_repeats is None:
        return f"{spec.repeats} repeats"
    from search.ablation import format_repeats

    return f"repeats {format_repeats(spec.selected_repeats)} of {spec.repeats}"


@app.command()
def report(target: Annotated[str, typer.Argument(help="A meta-run id or an ablation id.")]) -> None:
    """Build the HTML report (with PNGs) of a meta-run or an ablation, and log it to MLflow."""
    settings = _settings()
    _report_target(settings, target)


def _report_target(settings: Settings, target: str) -> None:
    from infra.mlflow_schema import ablation_experiment_name, run_tags
    from reports.build import build_report, log_report
    from search.ablation import manifest_path

    folder = _run_folder(settings, target)  # ids only: a path outside the state directory is refused here
    _sync_ablation_from_store(settings, target)
    is_ablation = manifest_path(settings.state_path, target).is_file()
    if not is_ablation and not folder.trace_path.is_file():
        raise UserError(f"{target!r} is neither a meta-run nor an ablation under {settings.state_path} (see: bilevel runs)")
    out = settings.state_path / "reports" / target
    page = build_report(settings.state_path, target, out)
    tracker = _tracker(settings)
    if is_ablation:  # an ablation gets its own MLflow run to carry the report
        run_id, _ = tracker.ensure_run(ablation_experiment_name(target), f"{target}/ablation", run_name=f"ablation {target}",
                                       tags=run_tags("ablation", target))
    else:
        summary = folder.read_summary()
        run_id = summary.mlflow_run_id if summary is not None else None
    if run_id:
        log_report(tracker, run_id, page.parent)
    console.print(f"report: {page}")


@app.command("export")
def export_bundle(
    target: Annotated[str, typer.Argument(help="A meta-run id or an ablation id (with all its runs).")],
    to: Annotated[Path, typer.Option("--to", help="The bundle to write, e.g. run.tar.gz (must not exist).")],
) -> None:
    """Write a portable bundle: spec, trace, summary, settings (no secrets), the mechanism sources with their
    VersionIds, and the report if built. No pickles; `bilevel import` reads it on another machine."""
    from infra.bundle import BundleError
    from infra.transfer import export_target

    settings = _settings()
    _run_folder(settings, target)  # a plain id, refused before anything starts
    with contextlib.ExitStack() as stack:
        try:
            path = export_target(settings, target, to, lambda: _opened_store(settings, stack))
        except BundleError as error:
            raise UserError(str(error)) from None
    console.print(Text(f"exported {target} to {path} ({path.stat().st_size:,} bytes)"))


@app.command("import")
def import_bundle_command(
    bundle: Annotated[Path, typer.Argument(help="A bundle written by `bilevel export`.")],
) -> None:
    """Register a bundle's mechanisms in the store and its runs under the state directory, so that `runs`, `report`,
    `lineage` and `resume` work here. A damaged or hostile bundle is refused whole, before anything is written."""
    from infra.bundle import BundleError
    from infra.transfer import import_bundle

    settings = _settings()
    with contextlib.ExitStack() as stack:
        try:
            result = import_bundle(settings, bundle, lambda: _opened_store(settings, stack), _tracker(settings))
        except BundleError as error:
            raise UserError(str(error)) from None
    index = result.bundle.index
    console.print(Text(f"imported {index.kind} {index.id}: {len(result.written)} meta-run(s) written"
                       + (f", {len(result.kept)} already here and kept" if result.kept else "")
                       + (f"; mechanism versions: {result.mechanisms_new} added to s3://{settings.s3_bucket}, "
                          f"{result.mechanisms_present} already there" if index.mechanisms else "")))
    for old, new in result.renamed.items():
        console.print(Text(f"  VersionId {old} is {new} in this store (the runs' files say so)"))
    console.print(Text(f"next: bilevel runs; bilevel report {index.id}; bilevel lineage {index.runs[0] if index.runs else index.id}"))


def _opened_store(settings: Settings, stack: contextlib.ExitStack):
    """The mechanism store, its embedded server (when no endpoint is configured) kept running until `stack` closes."""
    stack.enter_context(store_service(settings))
    return _store(settings)


@app.command()
def serve(
    cron: Annotated[str, typer.Option(help="When to run (cron).")] = "0 2 * * *",
    timezone_name: Annotated[str, typer.Option("--timezone", help="IANA timezone of the cron schedule.")] = "UTC",
    mechanisms: Annotated[str, typer.Option(help="none, best, or a comma list of versions.")] = "best",
) -> None:
    """Run the nightly schedule from this process; without PREFECT_API_URL a local Prefect server (its scheduler
    creates the nightly runs) is started on 127.0.0.1 and stopped with this command. Ctrl-C or SIGTERM stops both,
    and a meta-run in progress (it stays resumable)."""
    import threading

    from bilevel import stopping

    settings = _settings()
    _prepare_process(settings)
    from infra.prefect_server import running, scheduling_server

    stopping.set_hint("a nightly meta-run it had started resumes with `bilevel resume <id>` (see `bilevel runs`)",
                      verb="stopped")
    own = None
    server: Any = contextlib.nullcontext(os.environ.get("PREFECT_API_URL"))
    if not os.environ.get("PREFECT_API_URL"):
        own = scheduling_server(settings.prefect_home / "server", settings.logs_dir / "prefect-server.log")
        server = running(own)
    from infra.processes import stop_descendants

    try:
        with server as api_url:
            os.environ["PREFECT_API_URL"] = api_url  # before Prefect is imported: its client reads it then
            from prefect.schedules import Cron

            from flows.nightly import nightly

            console.print(f"serving the nightly meta-run: '{cron}' ({timezone_name}) via {api_url}; state in "
                          f"{settings.state_path}")
            failed: list[BaseException] = []

            def serve_schedule() -> None:
                try:
                    nightly.serve(name="nightly-local", schedules=[Cron(cron, timezone=timezone_name)],
                                  parameters={"name": "nightly", "mechanisms": mechanisms})
                except BaseException as error:  # handed to the main thread
                    failed.append(error)

            # Prefect's runner in a thread of its own: the main thread keeps the signals (the runner would take
            # SIGTERM for itself and wait for the running flow), and a stop does not wait for the runner.
            runner = threading.Thread(target=serve_schedule, name="prefect-runner", daemon=True)
            runner.start()
            try:
                while runner.is_alive():
                    runner.join(0.5)
            finally:
                # The runner's flow-run processes first, while the server still answers: each kills its training
                # and records the run as crashed, resumable (`bilevel resume ID`).
                spare = frozenset({own.process.pid}) if own is not None and own.process is not None else frozenset()
                stop_descendants(grace_s=4.0, quiet=True, children_only=True, spare=spare)
            if failed:
                raise failed[0]
    finally:
        stop_descendants(grace_s=2.0)  # whatever is left: no orphans


@app.command()
def deploy(timezone_name: Annotated[str, typer.Option("--timezone", help="IANA timezone of the schedules.")] = "UTC") -> None:
    """`prefect deploy --all` of prefect.yaml against the Prefect server in PREFECT_API_URL."""
    import subprocess

    if not os.environ.get("PREFECT_API_URL"):
        raise UserError("set PREFECT_API_URL to your Prefect server first (or use `bilevel serve` without a server)")
    project = Path(__file__).resolve().parent.parent
    env = {**os.environ, "BILEVEL_TIMEZONE": timezone_name, "BILEVEL_PROJECT_DIR": str(project)}
    subprocess.run([sys.executable, "-m", "prefect", "deploy", "--all", "--prefect-file", str(project / "prefect.yaml")],
                   cwd=project, env=env, check=True)


@app.command()
def lineage(target: Annotated[str, typer.Argument(help="MECHANISM, MECHANISM@VERSION or a meta-run id.")]) -> None:
    """The lineage tree of a mechanism version or a meta-run (ids resolve in MLflow tags and S3 VersionIds)."""
    from rich.tree import Tree

    from infra.lineage import LineageNode, mechanism_lineage, run_lineage

    settings = _settings()
    with store_service(settings):
        store, tracker = _store(settings), _tracker(settings)
        is_run = (settings.runs_dir / target).is_dir() or "@" not in target and target not in store.names()
        runs_dir = settings.runs_dir
        root = (run_lineage(store, tracker, runs_dir, target) if is_run
                else mechanism_lineage(store, tracker, runs_dir, target))

    def grow(tree: Tree, node: LineageNode) -> None:
        details = ", ".join(f"{k}={v}" for k, v in node.details.items() if v not in (None, ""))
        branch = tree.add(f"[bold]{node.kind}[/] {node.label}" + (f"  [dim]{details}[/]" if details else ""))
        for child in node.children:
            grow(branch, child)

    top = Tree(f"[bold]{root.kind}[/] {root.label}  [dim]{', '.join(f'{k}={v}' for k, v in root.details.items())}[/]")
    for child in root.children:
        grow(top, child)
    console.print(top)


mechanisms_app = typer.Typer(help="The mechanism library in the store: versions, sources, diffs.", no_args_is_help=True)
app.add_typer(mechanisms_app, name="mechanisms")


@mechanisms_app.command("list")
def mechanisms_list(status: Annotated[str, typer.Option(help="accepted or rejected")] = "accepted") -> None:
    """Every mechanism and its versions: which run produced each, and its measured influence."""
    from infra.lineage import influence_index

    settings = _settings()
    index = influence_index(settings.runs_dir)
    with store_service(settings):
        store = _store(settings)
        table = Table(title=f"{status} mechanisms in s3://{settings.s3_bucket}")
        for column in ("name", "version", "created", "meta-run / generation", "parents", "influenced", "credited Δ"):
            table.add_column(column)
        for name in store.names(status=status):
            for version in store.history(name, status=status):
                influence = index.get(f"{name}@{version.version_id}") if status == "accepted" else None
                table.add_row(name, version.version_id, version.created_at.strftime("%Y-%m-%d %H:%M"),
                              f"{version.meta_run_id} / {version.generation}", ",".join(version.parents) or "-",
                              str(len(influence.iterations)) if influence else "-",
                              f"{influence.credited_delta:+.4f}" if influence else "-")
    console.print(table)


@mechanisms_app.command("show")
def mechanisms_show(target: Annotated[str, typer.Argument(help="NAME or NAME@VERSION")],
                    status: Annotated[str, typer.Option()] = "accepted") -> None:
    """Print a mechanism version's source, its metadata and the verdict of its validation."""
    from rich.syntax import Syntax

    from infra.store import MechanismNotFound

    settings = _settings()
    name, _, version_id = target.partition("@")
    with store_service(settings):
        store = _store(settings)
        source, version = store.get(name, version_id or None, status=status)
        try:
            report = store.get_document(name, version.version_id, "validation")
        except MechanismNotFound:
            report = None
    console.print(Text(f"{version.name}@{version.version_id} sha256 {version.sha256[:16]} from {version.meta_run_id} "
                       f"generation {version.generation}, parents {', '.join(version.parents) or '-'}, model {version.model}"))
    if isinstance(report, dict):
        verdict = "passed every stage" if report.get("ok") else f"failed at {report.get('stage_failed')}: {report.get('error')}"
        console.print(Text(f"validation: {verdict}"))
    console.print(Syntax(source, "python", line_numbers=True))


@mechanisms_app.command("diff")
def mechanisms_diff(old: Annotated[str, typer.Argument(help="NAME@VERSION")],
                    new: Annotated[str, typer.Argument(help="NAME@VERSION (or NAME for the latest)")]) -> None:
    """Unified diff of two mechanism versions."""
    import difflib

    from rich.syntax import Syntax

    settings = _settings()
    with store_service(settings):
        store = _store(settings)
        texts = []
        for item in (old, new):
            name, _, version_id = item.partition("@")
            texts.append(store.get(name, version_id or None)[0])
    diff = "".join(difflib.unified_diff(texts[0].splitlines(True), texts[1].splitlines(True), old, new))
    console.print(Syntax(diff or "(identical)\n", "diff"))


@mechanisms_app.command("validate")
def mechanisms_validate(
    file: Annotated[Path, typer.Argument(help="A mechanism source file (one class with hooks).")],
    trace: Annotated[Optional[str], typer.Option(help="Replay this meta-run's recorded trace (default: a built-in "
                                                      "synthetic trace).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole report as JSON.")] = False,
) -> None:
    """Run the whole validation pipeline (policy, static checks, sandbox import, smoke test on a trace, liveness) on
    your own mechanism. Exits 0 only if the mechanism would be activated."""
    from bilevel.source_file import SourceFileError, read_mechanism_file
    from mechanisms.replay import ReplaySource, replay_steps
    from mechanisms.validate import validate_mechanism

    settings = _settings()
    try:
        source = read_mechanism_file(file)
    except SourceFileError as error:
        raise UserError(str(error)) from None
    if trace is None:
        from mechanisms.synthetic_trace import SEARCH_CONFIG, simulated_trace, tinygpt_space

        recorded, space, replay = simulated_trace(60), tinygpt_space(), ReplaySource(fallback_config=SEARCH_CONFIG)
        where = "a synthetic 60-experiment trace"
    else:
        from infra.resources import build_workload

        folder = _run_folder(settings, trace)
        if not folder.trace_path.is_file():
            raise UserError(f"no trace for meta-run {trace!r} under {settings.runs_dir} (see: bilevel runs)")
        spec = folder.read_spec()
        recorded, space = folder.read_trace(), build_workload(settings, spec.workload).space
        replay = ReplaySource(meta_run_id=spec.meta_run_id, run_seed=spec.seed, fallback_config=spec.search,
                              restart_each_generation=spec.restart_each_generation)
        where = f"the trace of {trace} ({len(recorded.decided)} experiments)"
    report = validate_mechanism(source, replay_steps(recorded, space, replay), name=file.stem, space=space,
                                metric_name=recorded.objective.name, allow_weak_sandbox=settings.sandbox_allow_weak)
    if as_json:
        console.print_json(report.model_dump_json())
    else:
        table = Table(title=f"validation of {file.name} on {where}")
        for column in ("stage", "verdict", "seconds", "details"):
            table.add_column(column)
        for stage in report.stages:
            table.add_row(stage.name, "[green]passed[/]" if stage.ok else "[red]failed[/]", f"{stage.seconds:.3f}",
                          Text(stage.error or json.dumps(stage.detail, default=str)[:200]))
        console.print(table)
        console.print(Text(f"would be activated: {report.name} ({report.liveness.get('decisions_changed', 0)} decisions "
                           "changed on replay)" if report.ok else f"refused: {report.error}"))
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def ui(port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000) -> None:
    """The MLflow UI over this project's tracking store, on 127.0.0.1 (Ctrl-C or SIGTERM stops it and its workers)."""
    import subprocess

    from bilevel import stopping
    from infra.supervise import supervised

    settings = _settings()
    stopping.set_hint("", verb="MLflow UI stopped")
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    console.print(f"MLflow UI on http://127.0.0.1:{port} ({settings.resolved_tracking_uri})")
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", settings.resolved_tracking_uri,
               "--default-artifact-root", settings.mlflow_artifact_root.as_uri()]
    # Supervised: MLflow's uvicorn workers go with it, even when this process is SIGKILLed.
    server = subprocess.Popen(supervised(command, grace_s=3.0), env=env, start_new_session=True)
    try:
        code = server.wait()
    finally:
        if server.poll() is None:
            server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=5)
    if code not in (0, None):
        raise UserError(f"the MLflow server exited with code {code}")


def _fmt(value: float | None, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4f}" if sign else f"{value:.4f}"


def main() -> None:
    """Entry point: known problems become one clear line and exit code 1, never a traceback."""
    from rich.markup import escape

    from bilevel import stopping
    from infra.llm import LLMError
    from infra.services import ServiceError
    from infra.settings import apply_telemetry_opt_outs
    from infra.store import StoreError
    from search.state import BaselineFailed
    from workloads.script import WorkloadError

    apply_telemetry_opt_outs()
    stopping.install()
    known = (UserError, LLMError, BaselineFailed, ServiceError, StoreError, FileNotFoundError, LookupError, ValueError)
    try:
        app()
    except stopping.Stopping as stop:  # SIGTERM or SIGINT: trainings already killed; children stop, one line
        stopping.finish(stop.signum)
    except KeyboardInterrupt:
        stopping.finish()
    except BaseException as error:
        if stopping.stopping():  # whatever the unwinding raised after a stop signal: the stop line, not this
            stopping.finish()
        if not isinstance(error, known) or os.environ.get("BILEVEL_DEBUG"):
            raise
        # Our own errors are written for users; a builtin one may be a bug, so it keeps its type name.
        ours = isinstance(error, (UserError, LLMError, BaselineFailed, ServiceError, StoreError, WorkloadError))
        message = str(error) if ours else f"{type(error).__name__}: {error}"
        if isinstance(error, ValidationError):  # pydantic's report spans lines: one line per problem, joined
            message = "invalid value: " + "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                                                   for e in error.errors())
        # One line whatever the terminal's width; a message's own brackets (ranges like [2, 128]) are not markup.
        err.print(f"[red]error:[/] {escape(message)}  [dim](BILEVEL_DEBUG=1 shows the traceback)[/]", soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
