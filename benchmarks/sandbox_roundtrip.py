"""Benchmark: round-trip time of sandboxed hook calls with a realistic ctx (target: median <= 5 ms).

Prints worker start-up time, per-hook median/p90 through the raw sandbox and through the runtime
(which adds answer validation and bookkeeping), the split between fixed overhead and ctx size, and
the cost of rebuilding a mechanism's state by replay. Run: .venv/bin/python benchmarks/sandbox_roundtrip.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package holds the trace simulator

from mechanisms.library import library_source  # noqa: E402
from mechanisms.replay import replay_steps  # noqa: E402
from mechanisms.runtime import MechanismRef, MechanismRuntime  # noqa: E402
from mechanisms.sandbox import SandboxHost  # noqa: E402
from mechanisms.synthetic_trace import SEARCH_CONFIG, simulated_trace, tinygpt_specs  # noqa: E402

TRIVIAL = "class Trivial:\n    def plan(self, ctx):\n        return None\n"


def summary(label: str, samples_ms: list[float]) -> str:
    ordered = sorted(samples_ms)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"{label:<34} median {statistics.median(ordered):7.3f} ms   p90 {p90:7.3f} ms   (n={len(ordered)})"


def timed(call, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=100, help="trace length behind the ctx")
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()

    steps = replay_steps(simulated_trace(args.experiments, seed=0), tinygpt_specs(), SEARCH_CONFIG)
    last = steps[-1]
    ctx_bytes = len(json.dumps(last.ctx))
    print(f"trace: {args.experiments} experiments; ctx {ctx_bytes / 1024:.1f} KiB of JSON; {len(last.candidates)} candidates")

    starts = []
    for _ in range(5):
        started = time.perf_counter()
        with SandboxHost() as host:
            host.ensure_running()
            starts.append((time.perf_counter() - started) * 1000)
    print(summary("worker start (incl. numpy, lockdown)", starts))

    with SandboxHost() as host:
        host.load("trivial", TRIVIAL)
        host.load("tabu", library_source("tabu"))
        for step in steps:
            host.call("tabu", "observe", [step.ctx, step.result])
        print(summary("raw call, empty ctx", timed(lambda: host.call("trivial", "plan", [{}]), args.repeats)))
        print(summary("raw call, realistic ctx (no work)", timed(lambda: host.call("trivial", "plan", [last.ctx]), args.repeats)))
        print(summary("raw tabu.plan", timed(lambda: host.call("tabu", "plan", [last.ctx]), args.repeats)))
        print(summary("raw tabu.screen", timed(lambda: host.call("tabu", "screen", [last.ctx, last.candidates]), args.repeats)))

        ref = MechanismRef(name="tabu", version="bench", source=library_source("tabu"))
        with MechanismRuntime([ref], host=host) as runtime:
            started = time.perf_counter()
            runtime.rebuild([(s.ctx, s.result) for s in steps])
            print(f"{'runtime.rebuild (replay observe)':<34} {(time.perf_counter() - started) * 1000:7.1f} ms for {len(steps)} experiments")
            print(summary("runtime.plan", timed(lambda: runtime.plan(last.ctx), args.repeats)))
            print(summary("runtime.screen", timed(lambda: runtime.screen(last.ctx, last.candidates), args.repeats)))
            print(summary("runtime.accept", timed(lambda: runtime.accept(last.ctx, last.result, False), args.repeats)))
            print(summary("runtime.observe", timed(lambda: runtime.observe(last.ctx, last.result), args.repeats)))
    print("target: median <= 5 ms per hook call")


if __name__ == "__main__":
    main()
