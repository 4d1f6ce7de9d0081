"""What Level 2's repair rounds achieved in the committed session records (yield and speed runs): per repaired sample,
the stage the sample it started from had reached, where the repair ended, and whether its simulated outcome was the
same as a sample's before it in every seed (the repair changed no behaviour the simulation sees).

    python benchmarks/level2_repairs.py --out benchmarks/results/level2-repairs

Reads only committed files; no model, no services.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from mechanisms.research_session import BENEFIT
from mechanisms.validate import STAGES as VALIDATION_STAGES

ROOT = Path(__file__).resolve().parents[1]
RUNS = ("level2-yield", "level2-yield-2", "level2-yield-3", "level2-yield-4", "level2-speed/before", "level2-speed/after")
STAGES = (*VALIDATION_STAGES, BENEFIT)  # in the order a sample passes them


def _reached(sample: dict[str, Any]) -> int:
    stage = sample["stage_failed"]
    return STAGES.index(stage) if stage in STAGES else len(STAGES)  # None: activated, past every stage


def repairs(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per sample of a repair round (round > 0) in one session record."""
    rows = []
    samples = record["samples"]
    for sample in samples:
        if sample["round"] == 0:
            continue
        before = [s for s in samples if s["round"] < sample["round"]]
        if not before:
            continue  # round 0 held no usable class: a retry, not a repair
        start = max(_reached(s) for s in before)
        outcomes = [s["simulated"]["per_seed"] for s in before if s.get("simulated")]
        rows.append({"fixture": record["fixture"], "round": sample["round"], "mutant": bool(sample.get("parent")),
                     "started_from": STAGES[start] if start < len(STAGES) else "activated",
                     "ended": sample["stage_failed"] or "activated",
                     "same_outcome": bool(sample.get("simulated")) and sample["simulated"]["per_seed"] in outcomes})
    return rows


def collect(results: Path) -> dict[str, Any]:
    rows = []
    for run in RUNS:
        for path in sorted((results / run / "sessions").glob("*.json")):
            rows += [{"run": run, "session": path.stem, **row} for row in repairs(json.loads(path.read_text()))]
    table: Counter[tuple[str, str, bool]] = Counter((r["started_from"], r["ended"], r["same_outcome"]) for r in rows)
    return {"runs": list(RUNS), "repairs": len(rows),
            "by_start": {start: {"repairs": sum(n for (s, _, _), n in table.items() if s == start),
                                 "activated": sum(n for (s, e, _), n in table.items() if s == start and e == "activated"),
                                 "live": sum(n for (s, e, _), n in table.items() if s == start and e in ("benefit", "activated")),
                                 "same_outcome": sum(n for (s, _, same), n in table.items() if s == start and same)}
                         for start in sorted({r["started_from"] for r in rows})},
            "rows": rows}


def readme(summary: dict[str, Any]) -> str:
    lines = ["# What Level 2's repair rounds achieved (local model)", "",
             "Every repaired sample in the committed session records of " + ", ".join(f"`{r}`" for r in summary["runs"]) +
             f" ({summary['repairs']} repairs). `same outcome`: the repair's simulated outcome equals a sample's before it "
             "in every seed, i.e. it changed nothing the simulation sees. Reproduce: "
             "`python benchmarks/level2_repairs.py --out benchmarks/results/level2-repairs`.", "",
             "| the repair started from a sample that failed at | repairs | ended live | activated | same outcome |",
             "|---|---|---|---|---|"]
    for start, row in summary["by_start"].items():
        lines.append(f"| {start} | {row['repairs']} | {row['live']} | {row['activated']} | {row['same_outcome']} |")
    live = summary["by_start"].get("benefit")
    if live:
        lines += ["", f"**Reading:** repairing a live sample that lacked simulated gain never activated anything: of "
                      f"{live['repairs']} such repairs, {live['same_outcome']} behaved exactly as a sample before them "
                      f"and {live['repairs'] - live['live']} broke. Since this benchmark was added, Level 2 no longer "
                      "repairs a live sample (mechanisms/research_session.py); repairs remain for sessions where no "
                      "sample is live. The records were all made before that change."]
    return "\n".join([*lines, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    summary = collect(ROOT / "benchmarks" / "results")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    (args.out / "README.md").write_text(readme(summary))
    print(readme(summary))


if __name__ == "__main__":
    main()
