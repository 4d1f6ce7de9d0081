"""Refused mutant samples of the c43e9e5 yield run (and its development-6e129d2 start), autofixed without and with the
parent restoration (mechanisms/parent_restore.py): how many then pass the policy and static checks. No sandbox, no LLM.

    PYTHONPATH=. python benchmarks/results/level2-yield-2/autofix-parent/measure.py > .../output.txt

mutants.jsonl holds each mutant sample's code, taken from the runs' MLflow transcripts (matched by VersionId)."""
import json
import sys
from pathlib import Path

from mechanisms.autofix import autofix
from mechanisms.library import library_source
from mechanisms.policy import check_source
from mechanisms.static_check import check_mechanism


def passes(code):
    return code is not None and check_source(code).ok and not check_mechanism(code)


rows = [json.loads(line) for line in (Path(__file__).parent / "mutants.jsonl").read_text().splitlines()]
for group in dict.fromkeys(r["group"] for r in rows):
    mine = [r for r in rows if r["group"] == group]
    early = [r for r in mine if r["stage_failed"] in ("policy", "static")]
    without = with_parent = 0
    for r in early:
        parent = library_source(r["parent"].removeprefix("library:"))
        a, b = autofix(r["code"]), autofix(r["code"], parent_source=parent, parent_label=r["parent"])
        ok_a, ok_b = passes(a[0] if a else None), passes(b[0] if b else None)
        without, with_parent = without + ok_a, with_parent + ok_b
        print(r["session_file"], r["round"], r["sample"], r["stage_failed"], "without", ok_a, "with", ok_b,
              (b or (None, []))[1][:3])
    print(f"{group}: {len(mine)} mutant samples, {len(early)} refused at policy/static; pass both after autofix: "
          f"{without} without the parent, {with_parent} with", file=sys.stdout)
