"""Does a simulated gain come true? A library mechanism on a fast development fixture's trace, cut where Level 2 would
decide: its simulated gain (search/simulate.py, as the benefit stage computes it) next to its real next-generation
gain (benchmarks/real_gain.py: paired real trainings with and without it, the same non-LLM proposer in both arms).

    python benchmarks/simulator_real_check.py --case control:14:nearest_screen --pairs 8 --out DIR

Each case appends one JSON record to DIR/records.jsonl (a case already there is skipped, so the run resumes):
the simulated gain with its CI and seeds, the real per-pair Δ with their mean and CI, and seconds. Development
fixtures only: a held-out fixture (fixture.json "development": false) is refused, so that checking the simulator
never spends a held-out trace.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_case(text: str) -> tuple[str, int, str]:
    """`fixture:cut:mechanism` -> its parts; a one-line error otherwise."""
    parts = text.split(":")
    if len(parts) != 3 or not parts[1].isdigit():
        raise SystemExit(f"--case {text!r}: expected FIXTURE:CUT:MECHANISM, e.g. control:14:nearest_screen")
    return parts[0], int(parts[1]), parts[2]


def check(case: str, pairs: int, proposer: str, workdir: Path) -> dict[str, Any]:
    from benchmarks.level2_yield import cut, fixtures
    from benchmarks.real_gain import FAST_WORKLOADS, real_gain
    from infra.resources import build_workload
    from infra.settings import load_settings
    from mechanisms.active import ActiveMechanism, ActiveSet
    from mechanisms.benefit import next_config, simulated_benefit
    from mechanisms.library import library_source
    from mechanisms.replay import ReplaySource
    from search.config import SearchConfig

    name, seen, mechanism = parse_case(case)
    found = {f["name"]: f for f in fixtures()}
    if name not in found:
        raise SystemExit(f"no fixture {name!r}; known: {', '.join(sorted(found))}")
    fixture = found[name]
    if not fixture["development"]:
        raise SystemExit(f"{name} is held out: check the simulator on development fixtures only")
    if fixture["spec"].workload.reference not in FAST_WORKLOADS:
        raise SystemExit(f"{name} is not a fast workload ({', '.join(FAST_WORKLOADS)})")
    settings = load_settings(state_dir=workdir / "state")
    trace = cut(fixture["trace"], seen)
    space = build_workload(settings, fixture["spec"].workload).space
    candidate = ActiveMechanism.from_source(mechanism, library_source(mechanism), version="library", origin="library")
    started = time.perf_counter()
    simulated = simulated_benefit(candidate, ActiveSet(), trace, space, ReplaySource(meta_run_id=f"check-{name}"),
                                  next_config(trace, SearchConfig()))
    simulated_s = time.perf_counter() - started
    spec = fixture["spec"].model_copy(update={"meta_run_id": f"check-{name}-{seen}-{mechanism}", "levels": ["1"]})
    real = real_gain(spec, trace, candidate, settings, workdir / "arms", label=f"check-{name}-{seen}-{mechanism}",
                     pairs=pairs, proposer=proposer)
    return {"case": case, "fixture": name, "seen": seen, "mechanism": mechanism,
            "simulated": {"delta": simulated.delta, "ci": [simulated.ci_low, simulated.ci_high],
                          "seeds": simulated.seeds, "noise_sd": simulated.noise_sd, "selectable": simulated.selectable,
                          "landscapes": {e.landscape: [e.delta, e.ci_low, e.ci_high] for e in simulated.landscapes},
                          "seconds": round(simulated_s, 1)},
            "real": {key: real[key] for key in ("delta", "ci_low", "ci_high", "pairs", "proposer", "seconds")}
            | {"per_pair": [p["delta"] for p in real["per_pair"]]},
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", required=True, help="FIXTURE:CUT:MECHANISM (repeatable)")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--proposer", default="tpe", choices=["tpe", "random", "cmaes"])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    os.chdir(ROOT)
    args.out.mkdir(parents=True, exist_ok=True)
    records = args.out / "records.jsonl"
    done = {json.loads(line)["case"] for line in records.read_text().splitlines()} if records.exists() else set()
    for case in args.case:
        if case in done:
            print(f"{case}: already recorded", flush=True)
            continue
        with tempfile.TemporaryDirectory(prefix="bilevel-simcheck-") as workdir:
            record = check(case, args.pairs, args.proposer, Path(workdir))
        with records.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")
        print(json.dumps({k: record[k] for k in ("case", "simulated", "real")})[:400], flush=True)


if __name__ == "__main__":
    main()
