"""How the local model answers a Level-2 mutate prompt, without the rest of a session: for each library parent and
each stated change, one mutant drawn at the session's temperature, spliced into its parent (mechanisms/splice.py),
then put through the policy and static checks. Per answer: whether it was a patch (no class line), whether the
spliced mechanism changed anything, where it failed, tokens and seconds.

    python benchmarks/mutant_probe.py --out benchmarks/results/mutant-probe/NAME.json [--parents ucb_bandit,tabu]

No sandbox, simulation or services: it measures the prompt's answers, the cheapest part to iterate on.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from mechanisms.library import library_source
from mechanisms.policy import check_source
from mechanisms.population import CHANGES, Mutation, Parent, methods_to_rewrite, unchanged
from mechanisms.research_session import CodeResult, mutant_prompt, spliced
from mechanisms.static_check import check_mechanism, summary
from search.research import CODE_STOP, SAMPLE_TEMPERATURES, SpecifyAnswer, decode_code_answer

ROOT = Path(__file__).resolve().parents[1]
SPEC = SpecifyAnswer(name="probe_mechanism", hooks=["propose", "observe"], state="what improved recently",
                     behaviour="move towards the parameter values that improved the objective, away from those that "
                               "made it worse")


def probe(client: Any, parent_name: str, kind: str, change: str, number: int, named: bool = True) -> dict[str, Any]:
    """One mutant: drawn, decoded as a patch, spliced, checked. `named`: the prompt names the methods to rewrite
    (else the generic patch request of de88bb4)."""
    parent = Parent(label=f"library:{parent_name}", name=parent_name, source=library_source(parent_name))
    mutation = Mutation(parent=parent, kind=kind, change=change,
                        methods=methods_to_rewrite(parent.source, kind, SPEC.hooks) if named else [])
    temperature = SAMPLE_TEMPERATURES[(10 + number) % len(SAMPLE_TEMPERATURES)]
    started = time.perf_counter()
    answer = client.complete(mutant_prompt(SPEC, mutation), purpose="probe.mutate", call_key=f"probe/{number}",
                             temperature=temperature, max_tokens=1000, stop=CODE_STOP)
    seconds = time.perf_counter() - started
    code, error = decode_code_answer(answer.text, getattr(answer, "finish_reason", "stop"), 1000, require_class=False)
    result = spliced(CodeResult(sample=10, temperature=temperature, code=code, error=error, text=answer.text),
                     parent.source, SPEC)
    record: dict[str, Any] = {
        "parent": parent.label, "kind": kind, "methods": mutation.methods, "temperature": temperature,
        "patch": code is not None and "class " not in code, "seconds": round(seconds, 1),
        "completion_tokens": answer.usage.completion_tokens if answer.usage else None,
        "answer": answer.text, "spliced": result.code, "stage": None, "error": result.error}
    if result.code is None:
        record["stage"] = "no code"
    elif unchanged(result.code, parent.source):
        record["stage"] = "unchanged"
    elif not (policy := check_source(result.code)).ok:
        record["stage"], record["error"] = "policy", policy.summary()[:400]
    elif findings := check_mechanism(result.code):
        record["stage"], record["error"] = "static", summary(findings)[:400]
    else:
        record["stage"] = "passed policy and static"
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--parents", default="ucb_bandit,tabu")
    parser.add_argument("--generic", action="store_true", help="the generic patch request (no methods named)")
    args = parser.parse_args()
    from infra.llm import LLMClient
    from infra.resources import register_llm_providers
    from infra.settings import load_settings

    settings = load_settings()
    register_llm_providers(settings)
    client = LLMClient(settings.model, timeout_s=900, retries=0, temperature=settings.llm_temperature)
    records = []
    for parent_name in args.parents.split(","):
        for kind, change in CHANGES:
            records.append(probe(client, parent_name, kind, change, len(records), named=not args.generic))
            shown = {k: records[-1][k] for k in ("parent", "kind", "methods", "patch", "stage", "seconds",
                                                 "completion_tokens")}
            print(json.dumps(shown), flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"commit": commit.strip(), "model": settings.model, "named": not args.generic,
                                    "load_average": [round(x, 2) for x in os.getloadavg()], "records": records},
                                   indent=1))


if __name__ == "__main__":
    main()
