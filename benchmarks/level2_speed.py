"""Level 2 session speed: where a research session's time goes, call by call, with the real local model.

Runs the real Level-2 flow (benchmarks/level2_yield.py's `run_session`: explore/specify, generation and
mutants, validation, simulated benefit, selection, repairs; embedded S3 and MLflow) on committed development fixtures
(a held-out one stays unseen until the yield benchmark runs on it) and records every LLM call: its purpose, prompt
tokens, tokens served from the KV cache, generated tokens, max_tokens, why it stopped (`length`: max_tokens hit),
seconds, and the load average at that moment (the machine is shared, so seconds vary with load; tokens do not).
Sessions are written one file each (DIR/sessions/NNN.json, resumable).

    python benchmarks/level2_speed.py --sessions 3 --out benchmarks/results/level2-speed/after
    python benchmarks/level2_speed.py --out - --table benchmarks/results/level2-speed/before ...after  # the table
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.level2_yield import _commit, fixtures, plan_sessions, run_session  # noqa: E402
from infra.settings import apply_telemetry_opt_outs, load_settings  # noqa: E402


def development_fixtures() -> list[dict[str, Any]]:
    """The fixtures a speed session may run on: the development ones (fixture.json), in their sorted order."""
    return [fixture for fixture in fixtures() if fixture["development"]]


def recording_calls(settings: Any, calls: list[dict[str, Any]]) -> None:
    """Append one record per answered LLM call to `calls` (the local runtime's figures of that call)."""
    from infra.llm import LLMClient
    from infra.local_llm import runtime_for

    runtime = runtime_for(settings)
    original = LLMClient.complete

    def complete(self: Any, messages: list[dict[str, str]], **kwargs: Any) -> Any:
        answer = original(self, messages, **kwargs)
        last = runtime.last
        calls.append({
            "purpose": kwargs.get("purpose"), "call_key": kwargs.get("call_key"),
            "temperature": kwargs.get("temperature"), "max_tokens": kwargs.get("max_tokens"),
            "prompt_tokens": answer.usage.prompt_tokens, "completion_tokens": answer.usage.completion_tokens,
            "cached_tokens": last.cached_tokens if last else None,
            "finish_reason": last.finish_reason if last else None,
            "repeated_line": last.repeated_line if last else None,
            "generation_tokens_per_s": round(last.tokens_per_s, 2) if last and last.tokens_per_s else None,
            "seconds": round(answer.usage.seconds, 2), "load_average_1m": round(os.getloadavg()[0], 2),
            "answer_chars": len(answer.text), "answer": answer.text,
        })
        return answer

    LLMClient.complete = complete  # type: ignore[method-assign]  # benchmark instrumentation only


def by_round(calls: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per purpose (explore, specify, generate r0, repair r1...): calls, tokens, seconds."""
    rounds: dict[str, dict[str, Any]] = defaultdict(lambda: {"calls": 0, "prompt_tokens": 0, "cached_tokens": 0,
                                                             "completion_tokens": 0, "seconds": 0.0, "length_hits": 0})
    for call in calls:
        key = call["purpose"].removeprefix("research.")
        if key == "generate":
            key = "generate r" + call["call_key"].split("/generate/r")[1].split("/")[0]
        entry = rounds[key]
        entry["calls"] += 1
        for field in ("prompt_tokens", "cached_tokens", "completion_tokens", "seconds"):
            entry[field] += call[field] or 0
        entry["length_hits"] += call["finish_reason"] == "length"
    return {k: {**v, "seconds": round(v["seconds"], 1)} for k, v in rounds.items()}


def table(folders: list[Path]) -> str:
    """A markdown table: one row per recorded session of each folder, then per-round totals per folder."""
    lines = ["| run | session | fixture | commit | calls | prompt tok | evaluated prompt tok | generated tok | "
             "max_tokens hits | LLM s | session s | load 1m before/after | verdict |", "|" + "---|" * 13]
    rounds = ["", "| run | round | calls | prompt tok | evaluated | generated | LLM s |", "|" + "---|" * 7]
    for folder in folders:
        records = [json.loads(p.read_text()) for p in sorted((folder / "sessions").glob("*.json"))]
        for r in records:
            lines.append(f"| {folder.name} | {r['session']} | {r['fixture']} | {r['commit']} | {len(r['calls'])} | "
                         f"{r['prompt_tokens']} | {r['evaluated_prompt_tokens']} | {r['completion_tokens']} | "
                         f"{sum(c['finish_reason'] == 'length' for c in r['calls'])} | {r['llm_seconds']:.0f} | "
                         f"{r['seconds']:.0f} | {r['load_before'][0]} / {r['load_after'][0]} | "
                         f"{r['verdict'][:70].replace('|', '/')} |")
        totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for r in records:
            for name, entry in r["rounds"].items():
                for field, value in entry.items():
                    totals[name][field] += value / len(records)
        for name, entry in totals.items():
            rounds.append(f"| {folder.name} | {name} | {entry['calls']:.1f} | {entry['prompt_tokens']:.0f} | "
                          f"{entry['prompt_tokens'] - entry['cached_tokens']:.0f} | {entry['completion_tokens']:.0f} | "
                          f"{entry['seconds']:.0f} |")
    return "\n".join([*lines, *rounds, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--table", type=Path, nargs="*", help="print the table of these result folders and exit")
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return
    apply_telemetry_opt_outs()
    os.chdir(ROOT)
    state = Path(tempfile.mkdtemp(prefix="bilevel-level2-speed-"))
    settings = load_settings(state_dir=state)
    from infra.prefect_env import apply_prefect_environment
    from infra.prefect_server import supervised_prefect_api

    apply_prefect_environment(settings)
    with supervised_prefect_api(settings.prefect_home, settings.logs_dir / "prefect-server.log"):
        calls: list[dict[str, Any]] = []
        recording_calls(settings, calls)
        (args.out / "sessions").mkdir(parents=True, exist_ok=True)
        for number, (fixture, seen) in enumerate(plan_sessions(development_fixtures(), args.sessions)):
            done = args.out / "sessions" / f"{number:03d}.json"
            if done.exists():
                continue
            calls.clear()
            load_before = [round(x, 2) for x in os.getloadavg()]
            started = time.perf_counter()
            record = run_session(number, fixture, seen, settings, args.out)
            record.update(wall_s=round(time.perf_counter() - started, 1), commit=_commit(), load_before=load_before,
                          load_after=[round(x, 2) for x in os.getloadavg()], calls=list(calls), rounds=by_round(calls),
                          llm_seconds=round(sum(c["seconds"] for c in calls), 1),
                          completion_tokens=sum(c["completion_tokens"] for c in calls),
                          prompt_tokens=sum(c["prompt_tokens"] for c in calls),
                          evaluated_prompt_tokens=sum(c["prompt_tokens"] - (c["cached_tokens"] or 0) for c in calls))
            done.write_text(json.dumps(record, indent=1))
            print(json.dumps({k: record[k] for k in ("session", "fixture", "activated", "seconds", "llm_seconds",
                                                     "completion_tokens", "load_before", "verdict")}), flush=True)
    records = [json.loads(p.read_text()) for p in sorted((args.out / "sessions").glob("*.json"))]
    if records:
        print(json.dumps({"sessions": len(records), "median_session_s": statistics.median(r["seconds"] for r in records),
                          "median_completion_tokens": statistics.median(r["completion_tokens"] for r in records)}))


if __name__ == "__main__":
    main()
