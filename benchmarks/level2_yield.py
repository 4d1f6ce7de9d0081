"""Level 2 yield: how often a research session activates a live mechanism, on real recorded traces.

Each session runs the real Level-2 flow (flows/research.py: explore, critique, specify, a skeleton filled best-of-N
at mixed temperatures, static checks and sandbox validation of every sample, repairs from the one that got
furthest; stored in the embedded S3 server, logged to MLflow) on a trace recorded from a real meta-run. Sessions
differ by the fixture (at least two workloads) and by where the trace is cut (Level 2 runs after any generation).

    python benchmarks/level2_yield.py [--sessions 10] [--model local/qwen2.5-coder-1.5b] [--out DIR]
    python benchmarks/level2_yield.py --scripted   # the API-model path through the scripted provider (wiring)

Writes DIR/summary.json (model, sessions, activated, yield, median_session_s, stage_failures, and per session the
verdict, seconds, tokens, hooks and decisions changed on replay) and DIR/README.md (a table).
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
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.settings import apply_telemetry_opt_outs, load_settings  # noqa: E402

FIXTURES = ROOT / "benchmarks" / "fixtures" / "level2"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "level2-yield"
SCRIPTED_MECHANISM = '''import random

import helpers as h


class UntriedFirst:
    """Put the first untried parameter on the table."""

    name = "untried_first"

    def __init__(self):
        self.state = {}

    def propose(self, ctx):
        untried = h.untried(ctx)
        if not untried:
            return None
        value = h.neighbour(ctx, untried[0], random.Random(ctx["seed"]))
        return [h.candidate(untried[0], value, "never tried")]
'''


def fixtures() -> list[dict[str, Any]]:
    """Every recorded run under benchmarks/fixtures/level2/<name>/ (spec.json + trace.json)."""
    from search.run_spec import MetaRunSpec
    from search.trace import Trace

    found = []
    for folder in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        spec = MetaRunSpec.model_validate_json((folder / "spec.json").read_text())
        trace = Trace.model_validate_json((folder / "trace.json").read_text())
        found.append({"name": folder.name, "spec": spec, "trace": trace})
    if len({f["spec"].workload.reference for f in found}) < 2:
        raise SystemExit(f"need recorded traces of at least two workloads under {FIXTURES}")
    return found


def cut(trace, experiments: int):
    """The trace as Level 2 would see it after `experiments` experiments (the last one's generation ends there)."""
    kept = trace.experiments[: experiments + 1]
    last = kept[-1].generation
    return trace.model_copy(update={"experiments": kept,
                                    "generations": [g for g in trace.generations if g.generation <= last]})


def plan_sessions(found: list[dict[str, Any]], sessions: int) -> list[tuple[dict[str, Any], int]]:
    """(fixture, experiments seen) pairs, alternating fixtures, at different cut points of each trace."""
    plan = []
    position = 0
    while len(plan) < sessions:
        for fixture in found:
            length = len(fixture["trace"].decided)
            points = sorted({max(3, length - 2 * k) for k in range(length)}, reverse=True)
            plan.append((fixture, points[position % len(points)]))
            if len(plan) == sessions:
                break
        position += 1
    return plan


def scripted_answers(path: Path) -> Path:
    answers = {
        "research.explore": [{"ideas": [{"problem": "parameters never tried", "evidence": "untouched_params",
                                         "idea": "put an untried parameter on the table"}]}],
        "research.critique": [{"choice": 0, "reason": "simple"}],
        "research.specify": [{"name": "untried_first", "hooks": ["propose"], "state": "none",
                              "behaviour": "propose the first untried parameter"}],
        "research.generate": [f"```python\n{SCRIPTED_MECHANISM}```"],
    }
    path.write_text(json.dumps({"answers": answers}))
    return path


def _commit() -> str:
    """The commit measured, marked "+changes" when the work tree differs from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def run(sessions: int, model: str | None, out: Path, scripted: bool) -> dict[str, Any]:
    apply_telemetry_opt_outs()
    os.chdir(ROOT)  # fixtures name example scripts relative to the repository
    state = Path(tempfile.mkdtemp(prefix="bilevel-level2-yield-"))
    overrides: dict[str, Any] = {"state_dir": state}
    if scripted:
        overrides.update(model="scripted/replay", scripted_answers=scripted_answers(state / "answers.json"))
    elif model:
        overrides["model"] = model
    settings = load_settings(**overrides)
    from infra.prefect_env import apply_prefect_environment

    apply_prefect_environment(settings)
    from flows.research import research
    from infra.mlflow_schema import experiment_name, run_key, run_tags
    from infra.resources import build_workload, open_resources
    from mechanisms.active import ActiveSet

    found = fixtures()
    records = []
    for number, (fixture, seen) in enumerate(plan_sessions(found, sessions)):
        spec = fixture["spec"].model_copy(update={"meta_run_id": f"yield-{number}-{fixture['name']}-{seen}",
                                                  "name": "level2-yield", "levels": ["1", "2"]})
        trace = cut(fixture["trace"], seen)
        generation = trace.experiments[-1].generation
        workload = build_workload(settings, spec.workload)
        with open_resources(settings, with_store=True, workload=workload) as res:
            parent, _ = res.tracker.ensure_run(experiment_name(spec.name), run_key(spec.meta_run_id),
                                               run_name=spec.meta_run_id, tags=run_tags("meta_run", spec.meta_run_id))
            started = time.perf_counter()
            outcome = research(spec, res, generation=generation, trace=trace, active=ActiveSet(), parent_run_id=parent)
            seconds = time.perf_counter() - started
        best = next((s for s in outcome.samples if s["status"] == "accepted"), None)  # activated: simulated benefit
        record = {
            "session": number, "fixture": fixture["name"], "workload": fixture["name"],
            "experiments_seen": seen, "verdict": outcome.verdict, "activated": outcome.accepted is not None,
            "mechanism": outcome.accepted, "seconds": round(seconds, 1), "tokens": outcome.usage.total_tokens,
            "llm_calls": outcome.usage.calls, "samples": outcome.samples,
            "hooks": best["hooks"] if best else [], "decisions_changed": best["decisions_changed"] if best else 0,
            "simulated": outcome.simulated.model_dump() if outcome.simulated else None,
        }
        records.append(record)
        print(json.dumps({k: record[k] for k in ("session", "fixture", "activated", "seconds", "verdict")}), flush=True)
    failures: Counter[str] = Counter()
    for record in records:
        for sample in record["samples"]:
            failures[sample["stage_failed"] or "valid"] += 1
    activated = sum(r["activated"] for r in records)
    summary = {
        "model": settings.model, "commit": _commit(), "sessions": len(records), "activated": activated,
        "yield": round(activated / len(records), 3) if records else 0.0,
        "median_session_s": round(statistics.median(r["seconds"] for r in records), 1) if records else None,
        "stage_failures": dict(failures), "research_samples": records and found[0]["spec"].research_samples,
        "load_average": [round(x, 2) for x in os.getloadavg()], "per_session": records,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    rows = [f"| {r['session']} | {r['workload']} | {r['experiments_seen']} | {'yes' if r['activated'] else 'no'} | "
            f"{r['decisions_changed']} | {', '.join(r['hooks']) or '-'} | {r['seconds']:.0f} | {r['tokens']} | "
            f"{r['verdict'][:90].replace('|', '/')} |" for r in records]
    (out / "README.md").write_text("\n".join([
        f"# Level 2 yield ({settings.model})", "",
        f"{activated} of {len(records)} sessions activated a live mechanism (yield {summary['yield']:.0%}); median "
        f"session {summary['median_session_s']} s; sample verdicts: {dict(failures)}. Measured at commit "
        f"{summary['commit']}, load average {summary['load_average']} at the end (2 cores).", "",
        "| session | workload | experiments seen | activated | decisions changed on replay | hooks | seconds | tokens | verdict |",
        "|---|---|---|---|---|---|---|---|---|", *rows, ""]))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--model", default=None, help="litellm model string (default: the settings' model)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--scripted", action="store_true", help="the API-model path through the scripted provider")
    args = parser.parse_args()
    out = args.out or (DEFAULT_OUT.with_name("level2-yield-scripted") if args.scripted else DEFAULT_OUT)
    summary = run(args.sessions, args.model, out, args.scripted)
    print(json.dumps({k: v for k, v in summary.items() if k != "per_session"}))


if __name__ == "__main__":
    main()
