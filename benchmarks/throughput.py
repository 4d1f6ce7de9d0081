"""Experiments per hour: per-training overhead (cold vs warm workers), trainings per hour at the ablation budget,
the local model's proposal latency, and scale-out of one fixed batch of trainings over the task runners.

Real tinygpt trainings (flops 1.2e11, the budget of benchmarks/ablation_search.sh) run through the real Prefect task
(`train_and_evaluate`) on the thread runner and on local Dask clusters of 1 and 2 single-threaded workers (Ray when
installed). Each runner first trains one untimed run per worker (so each worker has its warm worker and its Prefect
client), then the timed batch. Prints JSON; `--out DIR` also writes DIR/throughput.json and DIR/README.md.

    PYTHONPATH=$PWD nice -n 5 .venv/bin/python benchmarks/throughput.py [--batch 8] [--with-proposals] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ABLATION_FLOPS = 1.2e11  # benchmarks/ablation_search.sh --budget 1.2e11


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _git_commit() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def overhead(cache_dir: Path, scratch: Path, runs: int) -> dict[str, Any]:
    """Trainings one after another in this process, cold (a new interpreter each) and warm (forked)."""
    from search.run_spec import Budget
    from workloads import warm_pool
    from workloads.tinygpt.workload import TinyGPT

    budget = Budget(mode="flops", value=ABLATION_FLOPS)
    result: dict[str, Any] = {}
    for mode in ("cold", "warm"):
        workload = TinyGPT(cache_dir, device="cpu", warm=mode == "warm")
        workload.prepare()
        started = time.perf_counter()
        if mode == "warm":  # the warm worker's start is paid once per process: measured on its own
            workload.run(workload.editable_source(), budget, 99, scratch / "warmup", 600)
        first = time.perf_counter() - started
        outcomes = [workload.run(workload.editable_source(), budget, seed, scratch / f"{mode}{seed}", 600)
                    for seed in range(runs)]
        failed = [o.status for o in outcomes if not o.ok]
        if failed:
            raise SystemExit(f"{mode} trainings failed: {failed}")
        walls = [o.wall_seconds for o in outcomes]
        result[mode] = {
            "runs": runs,
            "median_wall_s": _median(walls),
            "median_train_s": _median([o.train_seconds or 0.0 for o in outcomes]),
            "median_eval_s": _median([o.metrics.get("eval_seconds", 0.0) for o in outcomes]),
            "median_overhead_s": _median([o.wall_seconds - (o.train_seconds or 0.0) for o in outcomes]),
            "median_overhead_beyond_eval_s": _median([o.wall_seconds - (o.train_seconds or 0.0)
                                                      - o.metrics.get("eval_seconds", 0.0) for o in outcomes]),
            "values": [o.value for o in outcomes],
        }
        if mode == "warm":
            result[mode]["warm_worker_start_and_first_run_s"] = round(first, 3)
    result["same_values"] = result["cold"]["values"] == result["warm"]["values"]
    warm_pool.close_all()
    return result


def proposals(n_calls: int, requested: bool) -> dict[str, Any]:
    """The local model's proposal latency from benchmarks/proposal_speed.py (issue 14 part 3), when asked for."""
    if not requested:
        return {"proposal_median_s": None, "proposal_reason": "not measured: run with --with-proposals"}
    if not (ROOT / "benchmarks" / "proposal_speed.py").is_file():
        return {"proposal_median_s": None, "proposal_reason": "not measured: benchmarks/proposal_speed.py is not in "
                "this branch (issue 14 part 3)"}
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import proposal_speed  # type: ignore[import-not-found]

    measured = proposal_speed.measure(n_calls)
    return {"proposal_median_s": measured.get("proposal_median_s"), "proposal": measured}


def _batch_flow():
    from prefect import flow

    from tasks.train import train_and_evaluate

    @flow(name="throughput-batch", validate_parameters=False)
    def train_batch(workload, requests, runs_dir):
        futures = [train_and_evaluate.submit(workload, request, runs_dir) for request in requests]
        return [future.result() for future in futures]

    return train_batch


def scale_out(cache_dir: Path, scratch: Path, batch: int) -> dict[str, Any]:
    """The same batch of trainings on each runner; trainings per hour and the speed-up over one worker."""
    from infra.runners import local_dask_cluster, task_runner_factory
    from infra.settings import Settings
    from search.run_spec import Budget
    from tasks.train import TrainRequest
    from workloads.tinygpt.workload import TinyGPT

    workload = TinyGPT(cache_dir, device="cpu")
    train_batch = _batch_flow()
    budget = Budget(mode="flops", value=ABLATION_FLOPS)

    def requests(label: str, seeds: range) -> list[TrainRequest]:
        return [TrainRequest(meta_run_id=f"throughput-{label}-{time.time_ns()}", generation=0, track=0, iteration=i,
                             purpose="candidate", source=workload.editable_source(), budget=budget, seed=seed,
                             timeout_s=600, workload=workload.name) for i, seed in enumerate(seeds)]

    def measure(label: str, workers: int, runner: Callable[[], Any]) -> dict[str, Any]:
        flow = train_batch.with_options(task_runner=runner())
        warmup_started = time.perf_counter()
        flow(workload, requests(f"{label}-warmup", range(100, 100 + workers)), scratch / "runs")
        warmup = time.perf_counter() - warmup_started
        load_before = _load()
        started = time.perf_counter()
        outcomes = flow(workload, requests(label, range(batch)), scratch / "runs")
        wall = time.perf_counter() - started
        failed = [o.status for o in outcomes if not o.ok]
        if failed:
            raise SystemExit(f"{label}: trainings failed: {failed}")
        return {"runner": label, "workers": workers, "trainings": batch, "wall_s": round(wall, 2),
                "trainings_per_hour": round(batch / wall * 3600, 1), "warmup_s": round(warmup, 2),
                "median_training_wall_s": _median([o.wall_seconds for o in outcomes]),
                "median_overhead_s": _median([o.wall_seconds - (o.train_seconds or 0.0) for o in outcomes]),
                "load_before": load_before, "load_after": _load(), "values": [o.value for o in outcomes]}

    rows: list[dict[str, Any]] = []
    for workers in (1, 2):
        settings = Settings(state_dir=scratch / "state", task_runner="threads", max_workers=workers)
        rows.append(measure(f"threads-{workers}", workers, task_runner_factory(settings)))
    for workers in (1, 2):
        with local_dask_cluster(workers) as address:
            settings = Settings(state_dir=scratch / "state", task_runner="dask", max_workers=workers)
            rows.append(measure(f"dask-{workers}", workers, task_runner_factory(settings, address)))
    ray_note = "not installed (pip install -e '.[ray]')"
    try:
        import ray  # noqa: F401  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        ray_note = "installed"
        for workers in (1, 2):
            settings = Settings(state_dir=scratch / "state", task_runner="ray", max_workers=workers)
            rows.append(measure(f"ray-{workers}", workers, task_runner_factory(settings)))
    by_label = {row["runner"]: row for row in rows}
    for row in rows:
        single = by_label.get(f"{row['runner'].split('-')[0]}-1")
        row["speedup_vs_1_worker"] = round(row["trainings_per_hour"] / single["trainings_per_hour"], 2) if single else None
    values = {tuple(row["values"]) for row in rows}
    return {"rows": rows, "ray": ray_note, "same_values_on_every_runner": len(values) == 1,
            "dask_2_over_1": by_label["dask-2"]["speedup_vs_1_worker"]}


def readme(report: dict[str, Any]) -> str:
    """A short markdown table of the figures."""
    o, s = report["overhead"], report["scale_out"]
    lines = [
        "# Throughput benchmark (`benchmarks/throughput.py`)",
        "",
        f"Measured at commit `{report['commit']['commit'][:10]}`{' (with uncommitted changes)' if report['commit']['dirty'] else ''}"
        f" on {report['cpus']} cores **shared with other agents' work** (load average "
        f"{report['load_start'][0]} at the start, {report['load_end'][0]} at the end), so the absolute figures "
        "are taken under load. Trainings: tinygpt baseline, flops 1.2e11 (the ablation's budget), different seeds.",
        "",
        "| figure | cold (new interpreter) | warm (forked) |",
        "|---|---|---|",
        f"| median wall per training | {o['cold']['median_wall_s']} s | {o['warm']['median_wall_s']} s |",
        f"| median training seconds | {o['cold']['median_train_s']} s | {o['warm']['median_train_s']} s |",
        f"| median overhead (wall − training) | {o['cold']['median_overhead_s']} s | {o['warm']['median_overhead_s']} s |",
        f"| median overhead beyond training and evaluation | {o['cold']['median_overhead_beyond_eval_s']} s | "
        f"{o['warm']['median_overhead_beyond_eval_s']} s |",
        f"| trainings per hour, one at a time | {report['experiments_per_hour_cold']} | {report['experiments_per_hour']} |",
        "",
        f"Warm worker start (torch imports) plus its first run: {o['warm']['warm_worker_start_and_first_run_s']} s, "
        f"once per process. Same val_bpb cold and warm: {o['same_values']}. "
        f"Proposal median: {report['proposal_median_s'] if report['proposal_median_s'] is not None else report.get('proposal_reason')}.",
        "",
        f"Scale-out: {s['rows'][0]['trainings']} trainings per runner, through the `train_and_evaluate` Prefect task "
        f"(Ray: {s['ray']}); same val_bpb on every runner: {s['same_values_on_every_runner']}.",
        "",
        "| runner | workers | wall | trainings per hour | speed-up vs 1 worker | median overhead per training | load before → after |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in s["rows"]:
        lines.append(f"| {row['runner'].split('-')[0]} | {row['workers']} | {row['wall_s']} s | {row['trainings_per_hour']} "
                     f"| {row['speedup_vs_1_worker']}× | {row['median_overhead_s']} s | {row['load_before'][0]} → "
                     f"{row['load_after'][0]} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="trainings per runner in the scale-out table")
    parser.add_argument("--overhead-runs", type=int, default=5, help="trainings each, cold and warm")
    parser.add_argument("--with-proposals", action="store_true", help="measure proposals (benchmarks/proposal_speed.py)")
    parser.add_argument("--proposal-calls", type=int, default=8)
    parser.add_argument("--skip-scale-out", action="store_true")
    parser.add_argument("--out", type=Path, help="write throughput.json and README.md here")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bilevel-throughput-"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    from infra.prefect_env import apply_prefect_environment
    from infra.settings import Settings, apply_telemetry_opt_outs, load_settings

    apply_telemetry_opt_outs()
    apply_prefect_environment(Settings(state_dir=scratch / "state"))  # a temporary server, its start-up timeout
    cache_dir = load_settings().cache_dir
    started = time.perf_counter()
    report: dict[str, Any] = {"benchmark": "throughput", "commit": _git_commit(), "cpus": os.cpu_count(),
                              "load_start": _load(), "budget": {"mode": "flops", "value": ABLATION_FLOPS},
                              "note": "taken on a machine shared with other agents: figures are under load"}
    report["overhead"] = measured = overhead(cache_dir, scratch, args.overhead_runs)
    report["median_overhead_s"] = {"cold": measured["cold"]["median_overhead_s"], "warm": measured["warm"]["median_overhead_s"]}
    report["experiments_per_hour"] = round(3600 / measured["warm"]["median_wall_s"], 1)
    report["experiments_per_hour_cold"] = round(3600 / measured["cold"]["median_wall_s"], 1)
    report.update(proposals(args.proposal_calls, args.with_proposals))
    if report["proposal_median_s"] is not None:
        report["experiments_per_hour_with_proposals"] = round(
            3600 / (measured["warm"]["median_wall_s"] + report["proposal_median_s"]), 1)
    if args.out:  # the first part, in case the scale-out fails
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "throughput.json").write_text(json.dumps(report, indent=1) + "\n")
    if not args.skip_scale_out:
        report["scale_out"] = scale_out(cache_dir, scratch, args.batch)
    report["load_end"] = _load()
    report["total_s"] = round(time.perf_counter() - started, 1)
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        (args.out / "throughput.json").write_text(text + "\n")
        if "scale_out" in report:
            (args.out / "README.md").write_text(readme(report))


if __name__ == "__main__":
    main()
