"""Orchestration overhead per inner iteration: wall time minus training-subprocess time minus LLM time.

Runs a real Level-1 meta-run (real Prefect flows and tasks, MLflow on SQLite, real tinygpt trainings of a few
steps) with the scripted LLM, and prints the median and p90 over the iterations. Usage:

    .venv/bin/python benchmarks/orchestration_overhead.py [--iterations 12]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bilevel-bench-"))
    os.environ.setdefault("PREFECT_HOME", str(scratch / "prefect"))
    os.environ.setdefault("PREFECT_LOCAL_STORAGE_PATH", str(scratch / "prefect" / "results"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")

    from flows.meta_run import meta_run
    from search.run_spec import Budget, MetaRunSpec
    from tests.integration.scripted import proposal, scripted_settings, wired_resources, write_script

    learning_rates = [0.001 * (k + 2) for k in range(args.iterations)]
    script = write_script(scratch / "answers.json",
                          answers={"propose": [proposal({"MATRIX_LR": round(lr, 4)}) for lr in learning_rates]})
    settings = scripted_settings(scratch, script)
    res = wired_resources(settings)
    stamps: list[tuple[float, object]] = []
    res.on_event = lambda event, data: stamps.append((time.perf_counter(), data.get("experiment"))) \
        if event in ("baseline", "experiment") else None
    spec = MetaRunSpec(meta_run_id="bench", generations=1, iterations=args.iterations, levels=["1"],
                       budget=Budget(mode="steps", value=args.steps))
    started = time.perf_counter()
    meta_run(spec, res)
    total = time.perf_counter() - started

    overheads = []
    for (before, _), (after, experiment) in zip(stamps, stamps[1:]):
        wall = after - before
        training = experiment.outcome.wall_seconds + (experiment.confirm.wall_seconds if experiment.confirm else 0.0)
        overheads.append(wall - training - experiment.llm.seconds)
    overheads.sort()
    p90 = overheads[min(len(overheads) - 1, int(round(0.9 * (len(overheads) - 1))))]
    print(json.dumps({
        "iterations": len(overheads),
        "overhead_median_s": round(statistics.median(overheads), 3),
        "overhead_p90_s": round(p90, 3),
        "overhead_min_s": round(overheads[0], 3),
        "meta_run_total_s": round(total, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }, indent=1))


if __name__ == "__main__":
    main()
