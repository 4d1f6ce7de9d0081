"""Collect what has finished of a sharded search benchmark (issue 21) into benchmarks/results/<id>/: the ablation
bundle and one bundle per finished meta-run (`bilevel export`), the report rebuilt from them (`bilevel import` into a
scratch state directory, then `bilevel report`, which says which repeats are missing), and `runs.json`, one record
per finished meta-run with the commit it ran at, its Δ, counts, LLM seconds and wall seconds.

    python benchmarks/bench_search_collect.py --state /path/to/.bilevel --commit 5ffff0e [--id bench-search]

`--commit` is the commit of the meta-runs that finished since the last collection; the ones already in runs.json keep
their records (commit and wall seconds included).

Wall seconds come from the run folder (spec.json written at the start, summary.json at the end), so they include
waiting for the one local model; LLM seconds are the summary's own. Run it from the repository root.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bilevel(*args: str, cwd: Path, state: Path) -> str:
    env = {**os.environ, "BILEVEL_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "bilevel.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"bilevel {' '.join(args)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


def record(folder: Path, commit: str) -> dict:
    summary = json.loads((folder / "summary.json").read_text())
    spec = json.loads((folder / "spec.json").read_text())
    arm = folder.name.rsplit("-r", 1)[0].rsplit("-", 1)[-1]
    sign = 1.0 if summary["objective"]["goal"] == "minimize" else -1.0
    return {
        "meta_run_id": folder.name, "arm": arm, "repeat": int(folder.name.rsplit("-r", 1)[1]), "seed": spec["seed"],
        "commit": commit, "baseline": summary["baseline_value"], "best": summary["best_value"],
        "delta": round(sign * (summary["best_value"] - summary["baseline_value"]), 6),
        "noise_floor": summary.get("noise_floor"), "experiments": summary["experiments"], "kept": summary["kept"],
        "crashes": summary["crashes"], "invalid": summary["invalid"], "llm_calls": summary["llm"]["calls"],
        "llm_seconds": round(summary["llm"]["seconds"], 1),
        "wall_seconds": round((folder / "summary.json").stat().st_mtime - (folder / "spec.json").stat().st_mtime, 1),
        "best_changes": summary["best_changes"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, required=True, help="the state directory the benchmark runs in")
    parser.add_argument("--commit", required=True, help="the commit the meta-runs ran at")
    parser.add_argument("--id", default="bench-search")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or ROOT / "benchmarks" / "results" / args.id
    runs_out = out / "runs"
    runs_out.mkdir(parents=True, exist_ok=True)
    finished = sorted(p.parent for p in (args.state / "runs").glob(f"{args.id}-*/summary.json"))
    # A meta-run collected before keeps its record as it was taken from the folder it ran in: the commit it ran at
    # (shards run at different commits) and its wall seconds (an imported copy's files all carry the import's time).
    # Only the new ones are read here and get --commit.
    earlier = json.loads((out / "runs.json").read_text()) if (out / "runs.json").exists() else []
    kept = {entry["meta_run_id"]: entry for entry in earlier}
    records = [kept.get(folder.name) or record(folder, args.commit) for folder in finished]
    for folder in finished:
        bundle = runs_out / f"{folder.name}.tar.gz"
        if not bundle.exists():
            bilevel("export", folder.name, "--to", str(bundle), cwd=ROOT, state=args.state)
    study = out / f"{args.id}.tar.gz"
    study.unlink(missing_ok=True)
    bilevel("export", args.id, "--to", str(study), cwd=ROOT, state=args.state)
    (out / "runs.json").write_text(json.dumps(records, indent=1) + "\n")
    with tempfile.TemporaryDirectory() as scratch:  # the report as anyone rebuilds it from the committed bundle
        state = Path(scratch) / ".bilevel"
        bilevel("import", str(study), cwd=Path(scratch), state=state)
        bilevel("report", args.id, cwd=Path(scratch), state=state)
        report = state / "reports" / args.id
        for item in report.iterdir():
            if item.is_file():
                shutil.copy2(item, out / item.name)
    print(f"{len(records)} finished meta-runs collected into {out}")


if __name__ == "__main__":
    main()
