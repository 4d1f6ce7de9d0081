"""Building a report folder (index.html with embedded PNGs, the PNGs, statistics.json) for a meta-run or an
ablation from the files under the state directory, and logging it to MLflow. An ablation's page can also be rebuilt
from its statistics.json alone (a committed benchmark whose meta-runs are not kept).

Usage: python -m reports.build RUN_ID|ABLATION_ID [--state-dir DIR] [--out DIR]
       python -m reports.build --from-statistics PATH/statistics.json --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reports.ablation_page import ablation_page
from reports.arm_costs import ArmCosts, RunCost, arm_costs
from reports.level2 import level2_of_runs
from reports.plots import plot_best_so_far, plot_deltas, plot_run
from reports.run_data import RunData, load_run
from reports.run_page import run_page
from reports.stats import AblationStats, ablation_statistics
from search.ablation import AblationManifest, RepeatCoverage, manifest_path, repeat_coverage
from search.influence import MechanismInfluence, mechanism_influence
from search.objective import Objective
from search.trace import Trace

if TYPE_CHECKING:
    from infra.tracking import Tracker

PAGE = "index.html"
STATISTICS = "statistics.json"
ARTIFACT_FOLDER = "report"


def build_meta_run_report(runs_dir: Path, meta_run_id: str, out_dir: Path) -> Path:
    """The report of one meta-run in out_dir; returns the HTML page's path."""
    run = load_run(runs_dir, meta_run_id)
    if run.status == "missing":
        raise FileNotFoundError(f"meta-run {meta_run_id!r}: {run.problem} (looked in {run.folder})")
    out_dir.mkdir(parents=True, exist_ok=True)
    curve = None
    if run.trace is not None and run.trace.experiments:
        title = f"Meta-run {meta_run_id}: {run.objective.name} per experiment ({run.objective.direction})"
        curve = plot_run(run.trace, out_dir / "curve.png", noise_floor=run.noise_floor, title=title)
    influence = mechanism_influence({meta_run_id: run.trace} if run.trace else {})
    _write_json(out_dir / STATISTICS, run_statistics(run, influence))
    page_path = out_dir / PAGE
    page_path.write_text(run_page(run, influence, curve), encoding="utf-8")
    return page_path


def build_ablation_report(state_dir: Path, ablation_id: str, out_dir: Path, *, run_pages: bool = True) -> Path:
    """The report of an ablation in out_dir (plus one page per meta-run under runs/ when `run_pages`).
    A missing or failed meta-run is reported as such and left out of the statistics."""
    path = manifest_path(state_dir, ablation_id)
    if not path.is_file():
        raise FileNotFoundError(f"no ablation {ablation_id!r}: {path} does not exist")
    manifest = AblationManifest.model_validate_json(path.read_text())
    objective = manifest.objective
    runs_dir = state_dir / "runs"
    repeats: dict[str, list[RunData | None]] = {}
    for item in manifest.arms:
        loaded: list[RunData | None] = [_under(objective, load_run(runs_dir, meta_run_id))
                                        for meta_run_id in item.meta_run_ids]
        repeats[item.arm.name] = loaded + [None] * (len(manifest.seeds) - len(loaded))
    coverage = repeat_coverage({arm: [_not_usable(run) for run in runs] for arm, runs in repeats.items()},
                               len(manifest.seeds))
    # Statistics from the complete repeats only: every arm has its finished run for those seeds, so the pairing
    # holds and a missing shard cannot tilt one arm.
    complete = set(coverage.complete)
    usable = {arm: [run if index in complete else None for index, run in enumerate(runs)]
              for arm, runs in repeats.items()}
    statistics = ablation_statistics(
        {arm: [None if run is None else (run.baseline, run.best) for run in runs]  # type: ignore[misc]
         for arm, runs in usable.items()},
        references=manifest.reference_arms or [manifest.reference_arm], objective=objective,
        noise_floors={arm: [None if run is None else run.noise_floor for run in runs] for arm, runs in usable.items()},
        pairs=manifest.comparisons or None,
    )
    traces = _measured_traces(repeats)
    influence = mechanism_influence(traces)
    costs = _costs(usable)
    level2 = level2_of_runs(traces)
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = {arm: [run.trace.best_so_far() for run in runs if run is not None and run.trace]
              for arm, runs in usable.items()}
    curves_png = (plot_best_so_far(curves, out_dir / "best_so_far.png", objective=objective,
                                   references=statistics.references) if any(curves.values()) else None)
    deltas_png = _deltas_png(statistics, out_dir)
    links = {}
    if run_pages:
        for meta_run_id in traces:
            build_meta_run_report(runs_dir, meta_run_id, out_dir / "runs" / meta_run_id)
            links[meta_run_id] = f"runs/{meta_run_id}/{PAGE}"
    _write_json(out_dir / STATISTICS, {
        "ablation_id": ablation_id,
        "objective": objective.model_dump(mode="json"),
        "references": statistics.references,
        "statistics": statistics.model_dump(mode="json"),
        "mechanisms": _mechanisms_json(influence),
        "arm_costs": [c.model_dump(mode="json") for c in costs],
        "level2": [entry.model_dump(mode="json") | {"arm": _arm_of(repeats, entry.meta_run_id)} for entry in level2],
        **_coverage_json(coverage),
        "repeats": {arm: [None if run is None else {
            "meta_run_id": run.meta_run_id, "status": run.status, "problem": run.problem,
            "baseline_value": run.baseline, "best_value": run.best, "delta": run.delta,
            "noise_floor": run.noise_floor} for run in runs] for arm, runs in repeats.items()},
    })
    page_path = out_dir / PAGE
    page_path.write_text(ablation_page(ablation_id, statistics, manifest=manifest, repeats=repeats,
                                       influence=influence, curves_png=curves_png, deltas_png=deltas_png,
                                       run_links=links, coverage=coverage, costs=costs, level2=level2),
                         encoding="utf-8")
    return page_path


def _costs(usable: dict[str, list[RunData | None]]) -> list[ArmCosts]:
    """Per arm, over the runs its statistics use (the complete repeats)."""
    return arm_costs({arm: [RunCost(counts=run.counts, llm=run.llm,
                                    wall_seconds=run.trace.elapsed_s if run.trace is not None else None)
                            for run in runs if run is not None] for arm, runs in usable.items()})


def _arm_of(repeats: dict[str, list[RunData | None]], meta_run_id: str) -> str | None:
    return next((arm for arm, runs in repeats.items() for run in runs
                 if run is not None and run.meta_run_id == meta_run_id), None)


def _not_usable(run: RunData | None) -> str | None:
    """Why a repeat's run cannot enter the statistics (None: it can)."""
    if run is None:
        return "not started: the manifest lists no meta-run for this seed"
    if run.usable:
        return None
    return f"{run.status}: {run.problem}" if run.problem else run.status


def _coverage_json(coverage: RepeatCoverage) -> dict[str, Any]:
    return {"partial": coverage.partial, "complete_repeats": coverage.complete,
            "missing_repeats": {str(repeat): arms for repeat, arms in coverage.missing.items()}}


def rebuild_ablation_report(statistics_path: Path, out_dir: Path) -> Path:
    """An ablation's page rebuilt from its statistics.json alone (verdicts, arms, comparisons and the Δ plot; the
    curves and repeats need the meta-runs). Statistics written before objectives existed read as val_bpb."""
    if not statistics_path.is_file():
        raise FileNotFoundError(f"no statistics file at {statistics_path}")
    data = json.loads(statistics_path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("statistics"), dict):
        raise ValueError(f"{statistics_path} is not an ablation's statistics.json (no 'statistics' object)")
    statistics = AblationStats.model_validate(data["statistics"])
    ablation_id = str(data.get("ablation_id") or statistics_path.parent.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    page_path = out_dir / PAGE
    page_path.write_text(ablation_page(ablation_id, statistics, deltas_png=_deltas_png(statistics, out_dir)),
                         encoding="utf-8")
    return page_path


def run_statistics(run: RunData, influence: list[MechanismInfluence]) -> dict[str, Any]:
    """What a meta-run's statistics.json holds: the objective, its values and Δ, the noise floor, why it ended,
    the counts, the per-parameter statistics and the mechanisms."""
    return {
        "meta_run_id": run.meta_run_id, "status": run.status, "problem": run.problem,
        "objective": run.objective.model_dump(mode="json"),
        "baseline_value": run.baseline, "best_value": run.best, "delta": run.delta, "noise_floor": run.noise_floor,
        "stop_reason": run.stop_reason, "stop_detail": run.summary.stop_detail if run.summary else "",
        "counts": run.counts.model_dump(mode="json"),
        "parameters": [p.model_dump(mode="json") for p in run.parameter_stats().values()],
        "mechanisms": _mechanisms_json(influence),
    }


def _mechanisms_json(influence: list[MechanismInfluence]) -> list[dict[str, Any]]:
    return [m.model_dump(mode="json") | {"liveness": m.liveness, "credited_delta": m.credited_delta}
            for m in influence]


def _deltas_png(statistics: AblationStats, out_dir: Path) -> Path | None:
    if not any(a.n for a in statistics.arms):
        return None
    return plot_deltas(statistics.arms, out_dir / "deltas.png", objective=statistics.objective,
                       references=statistics.references)


def _under(objective: Objective, run: RunData) -> RunData:
    """A repeat measured under another objective than the ablation's cannot enter its statistics: failed, with why."""
    if run.trace is not None and run.status != "failed" and run.objective != objective:
        run.status = "failed"
        run.problem = (f"its objective ({run.objective.describe()}) is not the ablation's ({objective.describe()})")
    return run


def _measured_traces(repeats: dict[str, list[RunData | None]]) -> dict[str, Trace]:
    """Traces with a measured baseline (finished or not): mechanism liveness is descriptive, so an unfinished
    run's experiments count too."""
    return {run.meta_run_id: run.trace for runs in repeats.values() for run in runs
            if run is not None and run.state is not None and run.trace is not None}


def build_report(state_dir: Path, target_id: str, out_dir: Path | None = None) -> Path:
    """An ablation's report if `target_id` names an ablation, else the meta-run's; out_dir defaults to
    <state_dir>/reports/<target_id>."""
    out_dir = out_dir or state_dir / "reports" / target_id
    if manifest_path(state_dir, target_id).is_file():
        return build_ablation_report(state_dir, target_id, out_dir)
    if (state_dir / "runs" / target_id).is_dir():
        return build_meta_run_report(state_dir / "runs", target_id, out_dir)
    raise FileNotFoundError(f"{target_id!r} is neither an ablation ({manifest_path(state_dir, target_id)}) nor a "
                            f"meta-run ({state_dir / 'runs' / target_id})")


def log_report(tracker: Tracker, run_id: str, folder: Path) -> int:
    """Log every file of the report folder to the MLflow run as artifacts under report/ (sub-folders kept).
    Returns how many files were logged."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    for path in files:
        relative_parent = path.parent.relative_to(folder).as_posix()
        target = ARTIFACT_FOLDER if relative_parent == "." else f"{ARTIFACT_FOLDER}/{relative_parent}"
        tracker.log_file(run_id, path, target)
    return len(files)


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.build", description=__doc__.splitlines()[0])
    parser.add_argument("target", nargs="?", help="a meta-run id or an ablation id")
    parser.add_argument("--state-dir", type=Path, default=None, help="default: the settings' state directory")
    parser.add_argument("--out", type=Path, default=None, help="default: <state_dir>/reports/<target>")
    parser.add_argument("--from-statistics", type=Path, default=None, metavar="FILE",
                        help="rebuild an ablation's page from its statistics.json alone (needs --out)")
    args = parser.parse_args(argv)
    if args.from_statistics is not None:
        if args.out is None or args.target is not None:
            parser.error("--from-statistics takes no target and needs --out")
        try:
            print(rebuild_ablation_report(args.from_statistics, args.out))
        except (FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        return 0
    if args.target is None:
        parser.error("a meta-run id or an ablation id is needed")
    state_dir = args.state_dir
    if state_dir is None:
        from infra.settings import load_settings

        state_dir = load_settings().state_path
    try:
        page_path = build_report(state_dir.resolve(), args.target, args.out)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(page_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
