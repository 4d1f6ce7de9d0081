"""Early stopping replayed over recorded runs: for each margin, the training compute it would have saved and how
many would-be winners it would have stopped.

The traces must come from runs with early stopping off (every candidate trained to the end, with its curve of
training losses at 25/50/75% of the budget). Each candidate is compared with the point it had to beat when it ran,
and the search is assumed to have gone as recorded. Prints JSON. Usage:

    .venv/bin/python benchmarks/early_stop_replay.py TRACE.json [TRACE.json ...] [--margins 0,0.05,0.1,0.2]
    .venv/bin/python benchmarks/early_stop_replay.py --compact OUT_DIR TRACE.json ...   # keep what replay reads
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_MARGINS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)
FIXTURES = ROOT / "benchmarks" / "fixtures" / "early_stop"


def compact(trace_path: Path, out_dir: Path) -> Path:
    """The trace without log tails and mechanism detail (what replay reads), for committing as a fixture."""
    from search.trace import Trace

    trace = Trace.model_validate_json(trace_path.read_text())
    slim = trace.with_experiments([e.model_copy(update={
        "outcome": e.outcome.model_copy(update={"log_tail": "", "error_tail": (e.outcome.error_tail or "")[:200] or None}),
        "confirm": None if e.confirm is None else e.confirm.model_copy(update={"log_tail": ""}),
        "mechanisms": [], "proposal_errors": [], "hypothesis": e.hypothesis[:200]}) for e in trace.experiments])
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{trace_path.parent.name}.json"
    target.write_text(slim.model_dump_json(indent=1) + "\n")
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("traces", nargs="*", type=Path, help=f"trace.json files (default: {FIXTURES.relative_to(ROOT)}/*.json)")
    parser.add_argument("--margins", default=",".join(str(m) for m in DEFAULT_MARGINS))
    parser.add_argument("--compact", type=Path, help="write compact copies of the traces to this folder and exit")
    args = parser.parse_args()
    from search.early_stop import ReplayResult, replay
    from search.trace import Trace

    paths = args.traces or sorted(FIXTURES.glob("*.json"))
    if args.compact:
        for path in paths:
            print(compact(path, args.compact))
        return
    traces = {path.stem if path.name != "trace.json" else path.parent.name: Trace.model_validate_json(path.read_text())
              for path in paths}
    report: dict = {"benchmark": "early_stop_replay", "traces": {}, "margins": []}
    for name, trace in traces.items():
        curves = sum(1 for e in trace.experiments if e.outcome.curve)
        report["traces"][name] = {"experiments": len(trace.experiments), "with_curves": curves,
                                  "kept": trace.counts().kept, "crashes": trace.counts().crashes}
    for margin in (float(m) for m in args.margins.split(",")):
        total = ReplayResult(margin=margin)
        per_trace = {}
        for name, trace in traces.items():
            result = replay(trace, margin)
            per_trace[name] = {"stopped": result.stopped, "candidates": result.candidates,
                               "saved_fraction": round(result.saved_fraction, 3), "winners": result.winners,
                               "winners_stopped": result.winners_stopped}
            total = total.model_copy(update={
                field: getattr(total, field) + getattr(result, field)
                for field in ("candidates", "stopped", "compute_total", "compute_saved", "winners", "winners_stopped")})
        report["margins"].append({
            "margin": margin, "candidates": total.candidates, "stopped": total.stopped,
            "compute_saved_fraction": round(total.saved_fraction, 3), "winners": total.winners,
            "winners_stopped": total.winners_stopped,
            "winners_stopped_fraction": round(total.winners_stopped_fraction, 3), "per_trace": per_trace})
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
