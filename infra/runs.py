"""Files of a meta-run under state_dir/runs/<id>/: the trace (single source of truth) and the summary."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from search.trace import Trace


def meta_run_dir(runs_dir: Path, meta_run_id: str) -> Path:
    return runs_dir / meta_run_id


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "w") as out:
        json.dump(data, out, indent=1, default=str)
    os.replace(temp, path)


def write_trace(runs_dir: Path, meta_run_id: str, trace: Trace) -> Path:
    path = meta_run_dir(runs_dir, meta_run_id) / "trace.json"
    write_json_atomic(path, trace.model_dump(mode="json"))
    return path


def write_mechanisms(runs_dir: Path, meta_run_id: str, mechanisms: list[Any]) -> Path:
    """Every mechanism version that was active during the meta-run, with its source (for reports)."""
    path = meta_run_dir(runs_dir, meta_run_id) / "mechanisms.json"
    write_json_atomic(path, [m.model_dump(mode="json") for m in mechanisms])
    return path


def read_trace(runs_dir: Path, meta_run_id: str) -> Trace:
    path = meta_run_dir(runs_dir, meta_run_id) / "trace.json"
    if not path.is_file():
        raise FileNotFoundError(f"no trace for meta-run {meta_run_id!r} at {path}")
    return Trace.model_validate_json(path.read_text())


def list_meta_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """Every meta-run under runs_dir, newest first, with its state read from its files."""
    items = []
    if not runs_dir.is_dir():
        return items
    for folder in runs_dir.iterdir():
        spec_path = folder / "spec.json"
        if not spec_path.is_file():
            continue
        summary_path, trace_path = folder / "summary.json", folder / "trace.json"
        item: dict[str, Any] = {"id": folder.name, "experiments": 0, "baseline": None, "best": None, "delta": None,
                                "started": _mtime(spec_path)}
        if summary_path.is_file():
            summary = json.loads(summary_path.read_text())
            item.update(state="finished", experiments=summary["experiments"], baseline=summary["baseline_val_bpb"],
                        best=summary["best_val_bpb"])
        else:
            item["state"] = "incomplete"
            if trace_path.is_file():
                trace = Trace.model_validate_json(trace_path.read_text())
                values = [e.measured for e in trace.experiments if e.measured is not None]
                if values:
                    item.update(experiments=len(trace.experiments) - 1, baseline=trace.experiments[0].measured,
                                best=min(values))
        if item["best"] is not None and item["baseline"] is not None:
            item["delta"] = item["best"] - item["baseline"]
        items.append(item)
    return sorted(items, key=lambda i: i["started"], reverse=True)


def _mtime(path: Path) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
