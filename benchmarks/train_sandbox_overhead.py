"""Benchmark: what the training sandbox adds to one training's start (issue 22).

Starts `python -c pass` plainly and through the training launcher (workloads/train_launcher.py, the mechanism
sandbox's OS layer with the training's options), alternately, and prints the median and p90 of each and their
difference. A confined training also loses warm workers; that cost is the workload's import time, measured by
benchmarks/throughput.py.
Run: .venv/bin/python benchmarks/train_sandbox_overhead.py [--runs 20] [--json benchmarks/results/train-sandbox/results.json]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workloads.train_sandbox import TrainSandbox  # noqa: E402


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    return time.perf_counter() - started


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {"median_ms": 1000 * statistics.median(ordered), "p90_ms": 1000 * ordered[int(0.9 * (len(ordered) - 1))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sandbox = TrainSandbox(mode="always")
    probe = sandbox.check(sys.executable, dict(os.environ))
    plain_argv = [sys.executable, "-c", "pass"]
    plain, confined = [], []
    with tempfile.TemporaryDirectory() as scratch:
        run_dir, tmp_dir = Path(scratch, "run"), Path(scratch, "tmp")
        run_dir.mkdir()
        tmp_dir.mkdir()
        confined_argv = sandbox.command(plain_argv, python=sys.executable, run_dir=run_dir, tmp_dir=tmp_dir)
        timed(plain_argv), timed(confined_argv)  # warm the page cache for both
        for _ in range(args.runs):
            plain.append(timed(plain_argv))
            confined.append(timed(confined_argv))
    result = {
        "runs": args.runs, "plain": summary(plain), "confined": summary(confined),
        "added_median_ms": 1000 * (statistics.median(confined) - statistics.median(plain)),
        "missing_protections": probe["missing"], "load_average": os.getloadavg(), "cpus": os.cpu_count(),
    }
    print(f"python -c pass, {args.runs} runs each: plain median {result['plain']['median_ms']:.0f} ms "
          f"(p90 {result['plain']['p90_ms']:.0f}), confined median {result['confined']['median_ms']:.0f} ms "
          f"(p90 {result['confined']['p90_ms']:.0f}): the sandbox adds {result['added_median_ms']:.0f} ms per training "
          f"start; missing protections: {probe['missing'] or 'none'}; load {result['load_average'][0]:.1f} on "
          f"{result['cpus']} cpus")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
