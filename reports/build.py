"""Building a report folder (index.html with embedded PNGs, the PNGs, statistics.json) for a meta-run or an
ablation from the files under the state directory, and logging it to MLflow.

Usage: python -m reports.build RUN_ID|ABLATION_ID [--state-dir DIR] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from reports.ablation_page import ablation_page
from search.influence import mechanism_influence
from reports.plots import plot_best_so_far, plot_deltas, plot_run
from reports.run_data import RunData, load_run
from reports.run_page import run_page
from reports.stats import ablation_statistics
from search.ablation import AblationManifest, manifest_path
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
        curve = plot_run(run.trace, out_dir / "curve.png", title=f"Meta-run {meta_run_id}: val_bpb per experiment")
    influence = mechanism_influence({meta_run_id: run.trace} if run.trace else {})
    _write_json(out_dir / STATISTICS, {
        "meta_run_id": meta_run_id, "status": run.status, "problem": run.problem,
        "baseline_val_bpb": run.baseline, "best_val_bpb": run.best, "delta": run.delta,
        "mechanisms": [m.model_dump(mode="json") | {"liveness": m.liveness} for m in influence],
    })
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
    runs_dir = state_dir / "runs"
    repeats: dict[str, list[RunData | None]] = {}
    for item in manifest.arms:
        loaded: list[RunData | None] = [load_run(runs_dir, meta_run_id) for meta_run_id in item.meta_run_ids]
        repeats[item.arm.name] = loaded + [None] * (len(manifest.seeds) - len(loaded))
    statistics = ablation_statistics(
        {arm: [(run.baseline, run.best) if run is not None and run.usable else None for run in runs]  # type: ignore[misc]
         for arm, runs in repeats.items()},
        reference=manifest.reference_arm, objective=manifest.objective,
    )
    traces = _measured_traces(repeats)
    influence = mechanism_influence(traces)
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = {arm: [run.trace.best_so_far() for run in runs if run is not None and run.usable and run.trace]
              for arm, runs in repeats.items()}
    curves_png = (plot_best_so_far(curves, out_dir / "best_so_far.png", reference=manifest.reference_arm)
                  if any(curves.values()) else None)
    deltas_png = (plot_deltas(statistics.arms, out_dir / "deltas.png", reference=manifest.reference_arm)
                  if any(a.n for a in statistics.arms) else None)
    links = {}
    if run_pages:
        for meta_run_id in traces:
            build_meta_run_report(runs_dir, meta_run_id, out_dir / "runs" / meta_run_id)
            links[meta_run_id] = f"runs/{meta_run_id}/{PAGE}"
    _write_json(out_dir / STATISTICS, {
        "ablation_id": ablation_id,
        "statistics": statistics.model_dump(mode="json"),
        "mechanisms": [m.model_dump(mode="json") | {"liveness": m.liveness} for m in influence],
        "repeats": {arm: [None if run is None else {"meta_run_id": run.meta_run_id, "status": run.status,
                                                    "problem": run.problem, "delta": run.delta} for run in runs]
                    for arm, runs in repeats.items()},
    })
    page_path = out_dir / PAGE
    page_path.write_text(ablation_page(manifest, repeats, statistics, influence, curves_png, deltas_png, links),
                         encoding="utf-8")
    return page_path


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
    parser.add_argument("target", help="a meta-run id or an ablation id")
    parser.add_argument("--state-dir", type=Path, default=None, help="default: the settings' state directory")
    parser.add_argument("--out", type=Path, default=None, help="default: <state_dir>/reports/<target>")
    args = parser.parse_args(argv)
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
