"""Benchmark: round-trip time of sandboxed hook calls with a realistic ctx (target: median <= 5 ms).

Prints worker start-up time, per-hook median/p90 through the raw sandbox and through the runtime
(which adds answer validation and bookkeeping), the split between fixed overhead and ctx size, and
the cost of rebuilding a mechanism's state by replay. Then what one worker per mechanism costs (issue 23):
memory per worker, a hook call through one shared worker vs. through each mechanism's own, and opening a
runtime of 1 or 3 mechanisms (a worker start each, load, replay) vs. loading them into one shared worker.
Run: .venv/bin/python benchmarks/sandbox_roundtrip.py [--json benchmarks/results/sandbox_roundtrip/results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package holds the trace simulator

from mechanisms.library import library_source  # noqa: E402
from mechanisms.replay import ReplaySource, replay_steps  # noqa: E402
from mechanisms.runtime import MechanismRef, MechanismRuntime  # noqa: E402
from mechanisms.sandbox import SandboxHost  # noqa: E402
from mechanisms.synthetic_trace import SEARCH_CONFIG, simulated_trace, tinygpt_space  # noqa: E402

TRIVIAL = "class Trivial:\n    def plan(self, ctx):\n        return None\n"


RESULTS: dict[str, dict[str, float]] = {}  # label -> median/p90/n, for --json
ISOLATION_SET = ("tabu", "novelty", "ucb_bandit")  # three library mechanisms with different hooks
ISOLATION_HOOKS = {"tabu": "plan", "novelty": "screen", "ucb_bandit": "propose"}  # one each defines


def summary(label: str, samples_ms: list[float]) -> str:
    ordered = sorted(samples_ms)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    RESULTS[label] = {"median_ms": round(statistics.median(ordered), 3), "p90_ms": round(p90, 3), "n": len(ordered)}
    return f"{label:<44} median {statistics.median(ordered):7.3f} ms   p90 {p90:7.3f} ms   (n={len(ordered)})"


def worker_memory_mb(pid: int) -> tuple[float, float]:
    """RSS and PSS (shared pages divided among their sharers) of a worker's process tree (its keeper and the
    server, which share most pages), in MB."""
    root = psutil.Process(pid)
    rss = pss = 0
    for process in [root, *root.children(recursive=True)]:
        info = process.memory_full_info()
        rss, pss = rss + info.rss, pss + info.pss
    return rss / 2**20, pss / 2**20


def isolation_costs(steps: list, repeats: int, opens: int) -> dict[str, float]:
    """What one worker per mechanism costs against one shared worker: memory, hook calls, and opening a runtime."""
    last, history = steps[-1], [(s.ctx, s.result) for s in steps]
    memory = {}
    with SandboxHost() as host:
        host.ensure_running()
        rss, pss = worker_memory_mb(host.pid)  # type: ignore[arg-type]
        memory["idle_worker_rss_mb"], memory["idle_worker_pss_mb"] = round(rss, 1), round(pss, 1)
        host.load("tabu", library_source("tabu"))
        for step in steps:
            host.call("tabu", "observe", [step.ctx, step.result])
        rss, pss = worker_memory_mb(host.pid)  # type: ignore[arg-type]
        memory["worker_with_tabu_rss_mb"], memory["worker_with_tabu_pss_mb"] = round(rss, 1), round(pss, 1)
    print(f"{'memory per worker (keeper + server)':<44} idle: RSS {memory['idle_worker_rss_mb']:.1f} MB, "
          f"PSS {memory['idle_worker_pss_mb']:.1f} MB; with tabu and {len(steps)} observes: "
          f"RSS {memory['worker_with_tabu_rss_mb']:.1f} MB, PSS {memory['worker_with_tabu_pss_mb']:.1f} MB")

    # One hook call, the same mechanisms: all in one shared worker (before issue 23) vs. each in its own.
    with SandboxHost() as shared:
        own = [shared.sibling() for _ in ISOLATION_SET]
        try:
            for name, host in zip(ISOLATION_SET, own, strict=True):
                shared.load(name, library_source(name))
                host.load(name, library_source(name))
            arguments = {"plan": [last.ctx], "propose": [last.ctx], "screen": [last.ctx, last.candidates]}
            calls = [(name, host) for name, host in zip(ISOLATION_SET, own, strict=True)] * (repeats // len(ISOLATION_SET))
            shared_ms, own_ms = [], []
            for position, (name, host) in enumerate(calls):  # interleaved, so load changes hit both alike
                hook = ISOLATION_HOOKS[name]
                started = time.perf_counter()
                shared.call(name, hook, arguments[hook])
                shared_ms.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                host.call(name, hook, arguments[hook])
                own_ms.append((time.perf_counter() - started) * 1000)
                if position < len(ISOLATION_SET):  # the first round warms up both
                    shared_ms.pop()
                    own_ms.pop()
            print(summary("hook call, 3 mechanisms in one shared worker", shared_ms))
            print(summary("hook call, 3 mechanisms each in its own", own_ms))
        finally:
            for host in own:
                host.close()

    # Opening: the runtime (one worker per mechanism, started, loaded, replayed) vs. one shared worker doing the same.
    for count in (1, len(ISOLATION_SET)):
        names = ISOLATION_SET[:count]
        refs = [MechanismRef(name=n, version="bench", source=library_source(n), trusted=True) for n in names]
        shared_open, own_open = [], []
        for _ in range(opens):
            started = time.perf_counter()
            with SandboxHost() as shared:
                for name in names:
                    if "observe" in shared.load(name, library_source(name)).hooks:
                        for ctx, result in history:
                            shared.call(name, "observe", [ctx, result])
                shared_open.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            with MechanismRuntime(refs, history=history):
                own_open.append((time.perf_counter() - started) * 1000)
        print(summary(f"open {count}, one shared worker (raw)", shared_open))
        print(summary(f"open {count}, runtime (worker per mechanism)", own_open))
    return memory


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
    parser.add_argument("--opens", type=int, default=10, help="runtime openings timed per mechanism count")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    steps = replay_steps(simulated_trace(args.experiments, seed=0), tinygpt_space(), ReplaySource(fallback_config=SEARCH_CONFIG))
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
    memory = isolation_costs(steps, args.repeats, args.opens)

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
        with MechanismRuntime([ref], sandbox=host) as runtime:
            started = time.perf_counter()
            runtime.rebuild([(s.ctx, s.result) for s in steps])
            print(f"{'runtime.rebuild (fresh worker, replay)':<44} {(time.perf_counter() - started) * 1000:7.1f} ms for {len(steps)} experiments")
            print(summary("runtime.plan", timed(lambda: runtime.plan(last.ctx), args.repeats)))
            print(summary("runtime.screen", timed(lambda: runtime.screen(last.ctx, last.candidates), args.repeats)))
            print(summary("runtime.accept", timed(lambda: runtime.accept(last.ctx, last.result, False), args.repeats)))
            print(summary("runtime.observe", timed(lambda: runtime.observe(last.ctx, last.result), args.repeats)))
    print("target: median <= 5 ms per hook call")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "experiments": args.experiments, "ctx_kib": round(ctx_bytes / 1024, 1), "cpus": os.cpu_count(),
            "load_1min": round(os.getloadavg()[0], 2), "timings": RESULTS, "memory": memory,
        }, indent=1) + "\n")


if __name__ == "__main__":
    main()
