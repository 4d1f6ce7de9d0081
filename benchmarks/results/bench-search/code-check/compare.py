"""Compare the replays of f98a648 and HEAD (out-f98/, out-head/, written by replay.py), and each against the trace.

1. f98a648 vs HEAD: every LLM call (messages, temperature, max_tokens, stop, schema, call key, seq) and every
   decision (changes, config, proposer, kept, decided_by, confirmation, mechanism activity, attempts, errors),
   in order; the first differing lines of a differing prompt.
2. Replay vs recorded trace, per tree: exact, equal up to float round-off (relative 1e-9), or different.
3. HEAD's token estimate (search/prompt_budget.py) of every replayed prompt against the budget the local model's
   4096-token context gives (4096 - 256 - 128 = 3712): a prompt over it would be rendered compactly at HEAD.

    PYTHONPATH=/work/wt/armcheck-head python compare.py
"""

from __future__ import annotations

import difflib
import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, "/work/wt/armcheck-head")
from search.prompt_budget import estimate_tokens, prompt_budget  # noqa: E402

BUDGET = prompt_budget(4096, 256)


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def close(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    return a == b


def prompt_text(call: dict) -> str:
    return "\n".join(f"[{m['role']}]\n{m['content']}" for m in call["messages"])


def main() -> None:
    names = sorted(p.stem for p in (HERE / "out-f98").glob("*.jsonl"))
    assert names == sorted(p.stem for p in (HERE / "out-head").glob("*.jsonl")), "the two trees replayed other runs"
    total_calls = total_decisions = 0
    differing_runs = []
    over_budget = []
    max_estimate = (0, "")
    print("== 1. f98a648 vs HEAD ==")
    for name in names:
        old, new = load(HERE / "out-f98" / f"{name}.jsonl"), load(HERE / "out-head" / f"{name}.jsonl")
        calls = sum(x["kind"] == "call" for x in new)
        decisions = sum(x["kind"] == "decision" for x in new)
        total_calls += calls
        total_decisions += decisions
        for call in (x for x in new if x["kind"] == "call"):
            estimate = estimate_tokens(call["messages"])
            if estimate > max_estimate[0]:
                max_estimate = (estimate, f"{name} #{call['index']} {call['call_key']}")
            if estimate > BUDGET:
                over_budget.append((name, call["index"], estimate))
        if old == new:
            print(f"{name}: identical ({calls} LLM calls, {decisions} decisions)")
            continue
        differing_runs.append(name)
        print(f"{name}: DIFFERENT")
        for position, (a, b) in enumerate(zip(old, new)):
            if a == b:
                continue
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            print(f"  first difference at line {position} ({a['kind']} #{a['index']}): fields {keys}")
            if "messages" in keys:
                diff = difflib.unified_diff(prompt_text(a).splitlines(), prompt_text(b).splitlines(), "f98a648",
                                            "HEAD", lineterm="", n=1)
                print("\n".join("    " + line for line in list(diff)[:30]))
            break
        if len(old) != len(new):
            print(f"  lines: {len(old)} vs {len(new)}")
    print(f"\n{len(names)} meta-runs, {total_calls} LLM calls and {total_decisions} decisions per tree; "
          f"{len(differing_runs)} meta-runs differ: {differing_runs or 'none'}")

    print("\n== 2. replay vs recorded trace ==")
    fields = ("changes", "config", "proposed_by", "kept", "default_kept", "decided_by", "confirmed")
    for tree in ("f98", "head"):
        exact = rounding = 0
        different = []
        for name in names:
            for d in (x for x in load(HERE / f"out-{tree}" / f"{name}.jsonl") if x["kind"] == "decision"):
                got = {k: d[k] for k in fields}
                want = {k: d["recorded"][k] for k in fields}
                if got == want:
                    exact += 1
                elif close(got, want):
                    rounding += 1
                else:
                    bad = [k for k in fields if not close(got[k], want[k])]
                    different.append((name, d["index"], bad, d["proposed_by"], d["recorded"]["proposed_by"],
                                      d["errors"][:1]))
        calls = [(name, d["index"], d["llm_calls"], d["recorded"]["llm_calls"]) for name in names
                 for d in load(HERE / f"out-{tree}" / f"{name}.jsonl")
                 if d["kind"] == "decision" and d["llm_calls"] != d["recorded"]["llm_calls"]]
        print(f"{tree}: {exact} exact, {rounding} equal up to float round-off, {len(different)} different; "
              f"LLM calls per decision differ from the trace's at {len(calls)} decisions {calls[:10]}")
        for item in different:
            print("   ", item)

    print("\n== 3. HEAD's prompt budget ==")
    print(f"budget {BUDGET} estimated tokens; largest replayed prompt {max_estimate[0]} ({max_estimate[1]}); "
          f"prompts over the budget: {len(over_budget)} {over_budget[:10]}")


if __name__ == "__main__":
    main()
