"""Sanity of the simulated inner loop (search/simulate.py): on committed real traces, the simulated Δ of every library
mechanism and of two deliberately harmful ones, each added to an empty active set.

A harmful mechanism must come out worse than the current search (Δ > 0, CI excluding 0); the library mechanisms
should rank sensibly (none of them clearly harmful on a trace where its idea applies). Also the cost: seconds per
simulation of `--iterations` x `--seeds` on this machine.

    python benchmarks/level2_simulate.py [--iterations 8] [--seeds 16] [--out DIR]

Writes DIR/summary.json (per trace and mechanism: the SimulatedGain) and DIR/README.md (a table).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "level2-simulate"
TRACES = {  # name: (trace file, workload reference, spec file or None)
    "tinygpt-es-hybrid": ("benchmarks/fixtures/early_stop/es-hybrid.json", "tinygpt", None),
    "tinygpt-es-random": ("benchmarks/fixtures/early_stop/es-random.json", "tinygpt", None),
    "classify": ("benchmarks/fixtures/level2/classify/trace.json", None, "benchmarks/fixtures/level2/classify/spec.json"),
    "tinygpt-makerun": ("benchmarks/fixtures/level2/tinygpt/trace.json", None, "benchmarks/fixtures/level2/tinygpt/spec.json"),
}

# Keeps the search where it stands: every improvement the default rule would keep is refused.
REJECT_IMPROVEMENTS = '''class RejectImprovements:
    """Harmful on purpose: refuse every improvement, so the search never moves on from where it stands."""

    name = "reject_improvements"

    def accept(self, ctx, result, default):
        if default:
            return False
        return None
'''

# Puts a neighbour of the worst measured configuration on the table, every time, before the LLM's candidate.
TOWARD_WORST = '''import random

import helpers as h


class TowardWorst:
    """Harmful on purpose: propose the worst measured configuration, one parameter nudged so it is untried."""

    name = "toward_worst"

    def propose(self, ctx):
        measured = [view for view in ctx["trace"] if h.value_of(view) is not None]
        if not measured:
            return None
        worst = measured[0]
        for view in measured:
            if h.is_better(ctx, h.value_of(worst), h.value_of(view)):
                worst = view
        rng = random.Random(ctx["seed"])
        names = h.editable(ctx)
        if not names:
            return None
        name = names[rng.randrange(len(names))]
        changes = dict(worst["config"])
        changes[name] = h.neighbour(ctx, name, rng, value=changes.get(name))
        editable = set(names)
        return {"candidates": [h.candidate({k: v for k, v in changes.items() if k in editable}, None, "worst")],
                "skip_llm": True}
'''


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def mechanisms() -> dict[str, tuple[str, str]]:
    """name: (kind, source): the library's mechanisms, then the harmful ones."""
    from mechanisms.library import list_library

    found = {entry.name: ("library", entry.source) for entry in list_library()}
    found["reject_improvements"] = ("harmful", REJECT_IMPROVEMENTS)
    found["toward_worst"] = ("harmful", TOWARD_WORST)
    return found


def run(iterations: int, seeds: int, out: Path) -> dict[str, Any]:
    from infra.resources import build_workload
    from infra.settings import load_settings
    from mechanisms.active import ActiveMechanism, ActiveSet
    from mechanisms.benefit import next_config, simulated_benefit
    from mechanisms.replay import ReplaySource
    from search.config import SearchConfig
    from search.run_spec import MetaRunSpec, WorkloadRef
    from search.simulate import SimulationSettings
    from search.trace import Trace

    os.chdir(ROOT)
    settings = load_settings(state_dir=Path(tempfile.mkdtemp(prefix="bilevel-level2-simulate-")))
    simulation = SimulationSettings(iterations=iterations, seeds=seeds)
    rows = []
    for trace_name, (path, reference, spec_path) in TRACES.items():
        trace = Trace.model_validate_json((ROOT / path).read_text())
        ref = MetaRunSpec.model_validate_json((ROOT / spec_path).read_text()).workload if spec_path else WorkloadRef(reference=reference)
        space = build_workload(settings, ref).space
        config = next_config(trace, SearchConfig())
        for name, (kind, source) in mechanisms().items():
            candidate = ActiveMechanism.from_source(name, source, version="library" if kind == "library" else None,
                                                    origin="library")
            gain = simulated_benefit(candidate, ActiveSet(), trace, space, ReplaySource(meta_run_id=trace_name), config,
                                     settings=simulation)
            row = {"trace": trace_name, "mechanism": name, "kind": kind, **gain.model_dump()}
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("trace", "mechanism", "delta", "ci_low", "ci_high", "seconds",
                                                  "decisions_changed")}), flush=True)
    summary = {"commit": _commit(), "iterations": iterations, "seeds": seeds, "load_average": [round(x, 2) for x in os.getloadavg()],
               "results": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "README.md").write_text(readme(summary))
    return summary


def readme(summary: dict[str, Any]) -> str:
    lines = [f"# Level 2 simulated benefit: sanity ({summary['iterations']} iterations x {summary['seeds']} seeds)", "",
             "Each mechanism is added to an empty active set and simulated over the next generation of a committed "
             "trace (search/simulate.py). Δ is the mean paired difference of the final best (with minus without, "
             "sign-corrected: negative is better), with a 95% bootstrap CI; `beats` marks a CI entirely below 0, the "
             "activation rule of Level 2. Seconds are per simulation (both arms, all seeds, sandbox included), "
             f"measured at commit {summary['commit']} on 2 shared cores (load average {summary['load_average']} at the end).",
             "", "| trace | mechanism | kind | Δ | CI | beats | decisions changed | seconds |", "|---|---|---|---|---|---|---|---|"]
    for r in summary["results"]:
        lines.append(f"| {r['trace']} | {r['mechanism']} | {r['kind']} | {r['delta']:+.4f} | "
                     f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] | {'yes' if r['ci_high'] < 0 else 'no'} | "
                     f"{r['decisions_changed']} | {r['seconds']:.1f} |")
    return "\n".join([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    run(args.iterations, args.seeds, args.out)


if __name__ == "__main__":
    main()
